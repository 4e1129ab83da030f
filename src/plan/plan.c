#include "plan/plan.h"
#include "core/error.h"
#include "core/types.h"
#include <stdlib.h>
#include <string.h>

hllm_plan *hllm_plan_single(const hllm_graph *g, int proc, int n_procs, const char *why) {
    hllm_plan *p = calloc(1, sizeof *p);
    if (p) p->steps = calloc((size_t)g->n_steps, sizeof *p->steps);
    if (!p || !p->steps) {
        free(p);
        hllm_fail("out of memory");
        return NULL;
    }
    p->n_steps = g->n_steps;
    p->n_procs = n_procs;
    for (int i = 0; i < g->n_steps; i++) {
        p->steps[i].n_parts = 1;
        p->steps[i].parts[0] = (hllm_part){.proc = proc, .r0 = 0, .r1 = g->steps[i].rows};
    }
    snprintf(p->why, sizeof p->why, "%s", why ? why : "");
    return p;
}

hllm_plan *hllm_plan_layers(const hllm_graph *g, const int *layer_proc, int embed_proc, int head_proc, int n_procs,
                            const char *why) {
    hllm_plan *p = hllm_plan_single(g, 0, n_procs, why);
    if (!p) return NULL;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        int proc = s->layer >= 0 ? layer_proc[s->layer] : s->kind == HLLM_OP_EMBED ? embed_proc : head_proc;
        p->steps[i].parts[0].proc = proc;
    }
    return p;
}

int64_t hllm_plan_slice_units(const hllm_graph *g, const hllm_step *s) {
    switch (s->kind) {
    case HLLM_OP_MATMUL: return s->w ? s->w->cols : 0;
    case HLLM_OP_SWIGLU: return g->act_width[s->dst];
    case HLLM_OP_ROPE:
    case HLLM_OP_KV_STORE:
    case HLLM_OP_ATTENTION: return g->n_head;
    default: return 0;
    }
}

/* Parts at explicit cuts of [0, total): part i gets [cuts[i-1], cuts[i]), empty parts dropped. */
static int cut_at(hllm_step_plan *sp, int n, const int *procs, const int64_t *cuts, const int *mems, int64_t total, int cut) {
    if (n < 1 || n > HLLM_MAX_PARTS) return hllm_fail("plan: %d parts (1..%d)", n, HLLM_MAX_PARTS);
    hllm_step_plan out = {.cut = cut};
    int64_t prev = 0;
    for (int i = 0; i < n; i++) {
        int64_t end = i == n - 1 ? total : cuts[i];
        if (end < prev || end > total) return hllm_fail("plan: bad cut %lld of %lld", (long long)end, (long long)total);
        if (end == prev) continue; /* empty part */
        out.parts[out.n_parts++] = (hllm_part){.proc = procs[i], .r0 = prev, .r1 = end, .mem = mems ? mems[i] : 0};
        prev = end;
    }
    if (out.n_parts == 1 && cut == HLLM_CUT_SLICE) { /* one slice is the whole step */
        out.cut = HLLM_CUT_ROWS;
        out.parts[0].mem = 0;
    }
    *sp = out;
    return 0;
}

int hllm_plan_cut_rows(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts,
                       const int *mems) {
    if (step < 0 || step >= g->n_steps || g->steps[step].kind != HLLM_OP_MATMUL)
        return hllm_fail("plan: step %d is not a matmul", step);
    return cut_at(&p->steps[step], n, procs, cuts, mems, g->steps[step].rows, HLLM_CUT_ROWS);
}

int hllm_plan_cut_cols(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts,
                       const int *mems) {
    if (step < 0 || step >= g->n_steps || g->steps[step].kind != HLLM_OP_MATMUL)
        return hllm_fail("plan: step %d is not a matmul", step);
    return cut_at(&p->steps[step], n, procs, cuts, mems, g->steps[step].w->cols, HLLM_CUT_COLS);
}

int hllm_plan_slice(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts) {
    if (step < 0 || step >= g->n_steps) return hllm_fail("plan: no step %d", step);
    const hllm_step *s = &g->steps[step];
    if (s->kind == HLLM_OP_MATMUL || !hllm_plan_slice_units(g, s)) return hllm_fail("plan: step %d (%s) cannot be sliced", step, s->label);
    return cut_at(&p->steps[step], n, procs, cuts, NULL, hllm_plan_slice_units(g, s), HLLM_CUT_SLICE);
}

static bool replicable(hllm_op_kind k) {
    return k == HLLM_OP_SWIGLU || k == HLLM_OP_RMSNORM || k == HLLM_OP_ADD || k == HLLM_OP_EMBED;
}

int hllm_plan_replicate(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs) {
    if (step < 0 || step >= g->n_steps) return hllm_fail("plan: no step %d", step);
    if (!replicable(g->steps[step].kind)) return hllm_fail("plan: step %d (%s) cannot be replicated", step, g->steps[step].label);
    if (n < 1 || n > HLLM_MAX_PARTS) return hllm_fail("plan: %d parts (1..%d)", n, HLLM_MAX_PARTS);
    hllm_step_plan *sp = &p->steps[step];
    for (int k = 0; k < n; k++) sp->parts[k] = (hllm_part){.proc = procs[k], .r0 = 0, .r1 = g->steps[step].rows};
    sp->n_parts = n;
    sp->cut = HLLM_CUT_ROWS;
    return 0;
}

int hllm_plan_cut(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const double *frac,
                  const int *mems, int64_t align) {
    if (step < 0 || step >= g->n_steps) return hllm_fail("plan: no step %d", step);
    if (n < 1 || n > HLLM_MAX_PARTS) return hllm_fail("plan: %d parts (1..%d)", n, HLLM_MAX_PARTS);
    if (align < 1) align = 1;
    int64_t rows = g->steps[step].rows, cuts[HLLM_MAX_PARTS];
    double acc = 0;
    for (int i = 0; i < n; i++) {
        acc += frac[i];
        int64_t c = (int64_t)(acc * (double)rows / (double)align + 0.5) * align;
        if (c > rows) c = rows;
        if (i > 0 && c < cuts[i - 1]) c = cuts[i - 1];
        cuts[i] = c;
    }
    return hllm_plan_cut_rows(p, g, step, n, procs, cuts, mems);
}

static bool same_split(const hllm_step_plan *a, const hllm_step_plan *b) {
    if (a->n_parts != b->n_parts || a->cut != b->cut) return false;
    for (int k = 0; k < a->n_parts; k++)
        if (a->parts[k].proc != b->parts[k].proc || (a->cut == HLLM_CUT_SLICE && (a->parts[k].r0 != b->parts[k].r0 || a->parts[k].r1 != b->parts[k].r1)))
            return false;
    return true;
}

/* One step's parts: what its cut allows, in order, covering its range. */
static int validate_step(const hllm_plan *p, const hllm_graph *g, int i) {
    const hllm_step *s = &g->steps[i];
    const hllm_step_plan *sp = &p->steps[i];
    if (sp->n_parts < 1 || sp->n_parts > HLLM_MAX_PARTS) return hllm_fail("step %d (%s): %d parts", i, s->label, sp->n_parts);
    for (int k = 0; k < sp->n_parts; k++)
        if (sp->parts[k].proc < 0 || sp->parts[k].proc >= p->n_procs)
            return hllm_fail("step %d (%s): processor %d of %d", i, s->label, sp->parts[k].proc, p->n_procs);
    const bool mat = s->kind == HLLM_OP_MATMUL;
    int64_t total = 0;
    switch (sp->cut) {
    case HLLM_CUT_ROWS:
        if (mat) {
            total = s->rows;
            break;
        }
        if (sp->n_parts > 1 && !replicable(s->kind))
            return hllm_fail("step %d (%s): only matmuls can be cut across processors", i, s->label);
        for (int k = 0; k < sp->n_parts; k++)
            for (int j = 0; j < k; j++)
                if (sp->parts[j].proc == sp->parts[k].proc)
                    return hllm_fail("step %d (%s): replicated twice on processor %d", i, s->label, sp->parts[k].proc);
        return 0;
    case HLLM_CUT_COLS: {
        if (!mat) return hllm_fail("step %d (%s): only a matmul can be cut by columns", i, s->label);
        const hllm_step *nx = i + 1 < g->n_steps ? &g->steps[i + 1] : NULL;
        if (!nx || nx->kind != HLLM_OP_ADD || nx->src != s->dst || p->steps[i + 1].cut != HLLM_CUT_ROWS)
            return hllm_fail("step %d (%s): a matmul cut by columns must be followed by the ADD that sums it", i, s->label);
        total = s->w->cols;
        const int64_t blk = hllm_type_info(s->w->type)->block_size;
        for (int k = 0; k < sp->n_parts; k++)
            if (blk > 1 && sp->parts[k].r0 % blk)
                return hllm_fail("step %d (%s): column %lld is inside a %s block", i, s->label, (long long)sp->parts[k].r0,
                                 hllm_type_name(s->w->type));
        break;
    }
    case HLLM_CUT_SLICE: {
        total = hllm_plan_slice_units(g, s);
        if (mat || !total) return hllm_fail("step %d (%s): cannot be sliced", i, s->label);
        const int64_t grp = s->kind == HLLM_OP_SWIGLU ? 1 : g->n_head / (g->n_head_kv > 0 ? g->n_head_kv : 1);
        for (int k = 0; k < sp->n_parts; k++)
            if (sp->parts[k].r0 % grp) return hllm_fail("step %d (%s): head %lld splits a group of %lld query heads", i, s->label,
                                                        (long long)sp->parts[k].r0, (long long)grp);
        break;
    }
    default: return hllm_fail("step %d (%s): unknown cut %d", i, s->label, sp->cut);
    }
    int64_t prev = 0;
    for (int k = 0; k < sp->n_parts; k++) {
        const hllm_part *pt = &sp->parts[k];
        if (pt->r0 != prev || pt->r1 <= pt->r0)
            return hllm_fail("step %d (%s): part %d [%lld, %lld) does not follow %lld", i, s->label, k, (long long)pt->r0,
                             (long long)pt->r1, (long long)prev);
        prev = pt->r1;
    }
    if (prev != total) return hllm_fail("step %d (%s): parts cover %lld of %lld", i, s->label, (long long)prev, (long long)total);
    return 0;
}

int hllm_plan_validate(const hllm_plan *p, const hllm_graph *g) {
    if (p->n_steps != g->n_steps) return hllm_fail("the plan has %d steps but the model has %d", p->n_steps, g->n_steps);
    if (p->n_procs < 1 || p->n_procs > HLLM_MAX_PROCS) return hllm_fail("the plan names %d processors (1..%d)", p->n_procs, HLLM_MAX_PROCS);
    int kv_step = -1;
    for (int i = 0; i < p->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (validate_step(p, g, i)) return -1;
        if (s->kind == HLLM_OP_KV_STORE) kv_step = i;
        if (s->kind == HLLM_OP_ATTENTION && (kv_step < 0 || g->steps[kv_step].layer != s->layer || !same_split(&p->steps[kv_step], &p->steps[i])))
            return hllm_fail("layer %d: attention and kv_store must be split alike (the KV cache's heads and processors)", s->layer);
    }
    if (p->prefill) {
        const hllm_plan *q = p->prefill;
        if (q->prefill) return hllm_fail("the prefill plan has a prefill plan of its own");
        if (q->n_procs > p->n_procs) return hllm_fail("the prefill plan names more processors than the plan");
        if (p->prefill_min < 2) return hllm_fail("the prefill plan starts at %d tokens (at least 2)", p->prefill_min);
        if (hllm_plan_validate(q, g)) return -1;
        /* the KV cache stays where the plan puts it: the prefill plan runs a layer's attention
         * as the plan splits it, or whole on one processor (the executor checks that processor
         * can reach every part of the cache) */
        for (int i = 0; i < p->n_steps; i++)
            if (g->steps[i].kind == HLLM_OP_ATTENTION && !same_split(&q->steps[i], &p->steps[i]) && q->steps[i].n_parts != 1)
                return hllm_fail("layer %d: the prefill plan splits the KV cache differently", g->steps[i].layer);
    }
    return 0;
}

hllm_plan *hllm_plan_clone(const hllm_plan *p) {
    hllm_plan *c = malloc(sizeof *c);
    if (c) c->steps = malloc((size_t)p->n_steps * sizeof *c->steps);
    if (!c || !c->steps) {
        free(c);
        hllm_fail("out of memory");
        return NULL;
    }
    memcpy(c->steps, p->steps, (size_t)p->n_steps * sizeof *c->steps);
    c->n_steps = p->n_steps;
    c->n_procs = p->n_procs;
    memcpy(c->why, p->why, sizeof c->why);
    c->prefill = NULL;
    c->prefill_min = p->prefill_min;
    if (p->prefill && !(c->prefill = hllm_plan_clone(p->prefill))) {
        hllm_plan_free(c);
        return NULL;
    }
    return c;
}

static void step_desc(char *buf, size_t n, const hllm_step_plan *sp, const hllm_step *s, const char *const *names) {
    int off = 0;
    buf[0] = 0;
    for (int k = 0; k < sp->n_parts && off < (int)n; k++) {
        const hllm_part *pt = &sp->parts[k];
        const char *nm = names ? names[pt->proc] : NULL;
        char pn[16];
        if (!nm) {
            snprintf(pn, sizeof pn, "p%d", pt->proc);
            nm = pn;
        }
        if ((s->kind == HLLM_OP_MATMUL || sp->cut != HLLM_CUT_ROWS) && sp->n_parts > 1)
            off += snprintf(buf + off, n - (size_t)off, "%s%s%s%s[%lld:%lld]", k ? " + " : "", nm, pt->mem ? "(host)" : "",
                            sp->cut == HLLM_CUT_COLS ? " cols" : sp->cut == HLLM_CUT_SLICE ? " slice" : "", (long long)pt->r0,
                            (long long)pt->r1);
        else
            off += snprintf(buf + off, n - (size_t)off, "%s%s%s", k ? " + " : "", nm, pt->mem ? "(host)" : "");
    }
}

void hllm_plan_print(FILE *f, const hllm_plan *p, const hllm_graph *g, const char *const *names) {
    if (p->why[0]) fprintf(f, "plan: %s\n", p->why);
    /* one block per layer; consecutive layers with the same placement folded */
    int i = 0;
    while (i < p->n_steps) {
        const hllm_step *s = &g->steps[i];
        if (s->layer < 0) {
            char d[512];
            step_desc(d, sizeof d, &p->steps[i], s, names);
            fprintf(f, "  %-16s %s\n", s->label, d);
            i++;
            continue;
        }
        int l = s->layer, a = i, b = i;
        while (b < p->n_steps && g->steps[b].layer == l) b++;
        int n = b - a, l_end = l, next = b;
        for (;;) { /* does layer l_end + 1 repeat this placement? */
            int c = next, m = 0;
            while (c < p->n_steps && g->steps[c].layer == l_end + 1) c++, m++;
            if (m != n || memcmp(&p->steps[next], &p->steps[a], (size_t)n * sizeof *p->steps) != 0) break;
            l_end++;
            next = c;
        }
        if (l_end > l) fprintf(f, "  layers %d-%d:\n", l, l_end);
        else fprintf(f, "  layer %d:\n", l);
        for (int k = a; k < b; k++) {
            char d[512];
            step_desc(d, sizeof d, &p->steps[k], &g->steps[k], names);
            fprintf(f, "    %-14s %s\n", g->steps[k].label, d);
        }
        i = next;
    }
    if (p->prefill) {
        fprintf(f, "prompts of %d tokens or more:\n", p->prefill_min);
        hllm_plan_print(f, p->prefill, g, names);
    }
}

void hllm_plan_free(hllm_plan *p) {
    if (!p) return;
    hllm_plan_free(p->prefill);
    free(p->steps);
    free(p);
}
