#include "plan/plan.h"
#include "core/error.h"
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

int hllm_plan_cut_rows(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts,
                       const int *mems) {
    if (step < 0 || step >= g->n_steps || g->steps[step].kind != HLLM_OP_MATMUL)
        return hllm_fail("plan: step %d is not a matmul", step);
    if (n < 1 || n > HLLM_MAX_PARTS) return hllm_fail("plan: %d parts (1..%d)", n, HLLM_MAX_PARTS);
    hllm_step_plan *sp = &p->steps[step];
    int64_t prev = 0, rows = g->steps[step].rows;
    int k = 0;
    for (int i = 0; i < n; i++) {
        int64_t end = i == n - 1 ? rows : cuts[i];
        if (end < prev || end > rows) return hllm_fail("plan: bad cut %lld of %lld rows", (long long)end, (long long)rows);
        if (end == prev) continue; /* empty part */
        sp->parts[k++] = (hllm_part){.proc = procs[i], .r0 = prev, .r1 = end, .mem = mems ? mems[i] : 0};
        prev = end;
    }
    sp->n_parts = k;
    return 0;
}

int hllm_plan_replicate(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs) {
    if (step < 0 || step >= g->n_steps) return hllm_fail("plan: no step %d", step);
    if (g->steps[step].kind != HLLM_OP_SWIGLU) return hllm_fail("plan: only SwiGLU steps are replicated");
    if (n < 1 || n > HLLM_MAX_PARTS) return hllm_fail("plan: %d parts (1..%d)", n, HLLM_MAX_PARTS);
    hllm_step_plan *sp = &p->steps[step];
    for (int k = 0; k < n; k++) sp->parts[k] = (hllm_part){.proc = procs[k], .r0 = 0, .r1 = g->steps[step].rows};
    sp->n_parts = n;
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

int hllm_plan_validate(const hllm_plan *p, const hllm_graph *g) {
    if (p->n_steps != g->n_steps) return hllm_fail("the plan has %d steps but the model has %d", p->n_steps, g->n_steps);
    if (p->n_procs < 1 || p->n_procs > HLLM_MAX_PROCS) return hllm_fail("the plan names %d processors (1..%d)", p->n_procs, HLLM_MAX_PROCS);
    int kv_proc_layer = -1, kv_proc = -1;
    for (int i = 0; i < p->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        const hllm_step_plan *sp = &p->steps[i];
        if (sp->n_parts < 1 || sp->n_parts > HLLM_MAX_PARTS) return hllm_fail("step %d (%s): %d parts", i, s->label, sp->n_parts);
        if (sp->n_parts > 1 && s->kind != HLLM_OP_MATMUL && s->kind != HLLM_OP_SWIGLU)
            return hllm_fail("step %d (%s): only matmuls can be cut across processors", i, s->label);
        if (sp->n_parts > 1 && s->kind == HLLM_OP_SWIGLU)
            for (int k = 0; k < sp->n_parts; k++)
                for (int j = 0; j < k; j++)
                    if (sp->parts[j].proc == sp->parts[k].proc)
                        return hllm_fail("step %d (%s): replicated twice on processor %d", i, s->label, sp->parts[k].proc);
        int64_t prev = 0;
        for (int k = 0; k < sp->n_parts; k++) {
            const hllm_part *pt = &sp->parts[k];
            if (pt->proc < 0 || pt->proc >= p->n_procs) return hllm_fail("step %d (%s): processor %d of %d", i, s->label, pt->proc, p->n_procs);
            if (s->kind == HLLM_OP_MATMUL && (pt->r0 != prev || pt->r1 <= pt->r0))
                return hllm_fail("step %d (%s): part %d rows [%lld, %lld) do not follow %lld", i, s->label, k,
                                 (long long)pt->r0, (long long)pt->r1, (long long)prev);
            prev = pt->r1;
        }
        if (s->kind == HLLM_OP_MATMUL && prev != s->rows)
            return hllm_fail("step %d (%s): parts cover %lld of %lld rows", i, s->label, (long long)prev, (long long)s->rows);
        if (s->kind == HLLM_OP_KV_STORE) {
            kv_proc_layer = s->layer;
            kv_proc = sp->parts[0].proc;
        }
        if (s->kind == HLLM_OP_ATTENTION && (kv_proc_layer != s->layer || kv_proc != sp->parts[0].proc))
            return hllm_fail("layer %d: attention and kv_store must run on one processor (the KV cache's)", s->layer);
    }
    if (p->prefill) {
        const hllm_plan *q = p->prefill;
        if (q->prefill) return hllm_fail("the prefill plan has a prefill plan of its own");
        if (q->n_procs > p->n_procs) return hllm_fail("the prefill plan names more processors than the plan");
        if (p->prefill_min < 2) return hllm_fail("the prefill plan starts at %d tokens (at least 2)", p->prefill_min);
        if (hllm_plan_validate(q, g)) return -1;
        for (int i = 0; i < p->n_steps; i++)
            if (g->steps[i].kind == HLLM_OP_ATTENTION && q->steps[i].parts[0].proc != p->steps[i].parts[0].proc)
                return hllm_fail("layer %d: the prefill plan moves the KV cache to another processor", g->steps[i].layer);
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
        if (s->kind == HLLM_OP_MATMUL && sp->n_parts > 1)
            off += snprintf(buf + off, n - (size_t)off, "%s%s%s[%lld:%lld]", k ? " + " : "", nm, pt->mem ? "(host)" : "",
                            (long long)pt->r0, (long long)pt->r1);
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
