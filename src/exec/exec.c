/* The executor. Single-processor plans run as before: every op issued to one processor, with
 * the processor's step_begin/step_end hooks around an evaluation.
 *
 * Multi-processor plans: each processor keeps its own copy of every activation it touches. For
 * each activation the executor tracks the slices of its last write (one slice for a whole
 * step, one per part for a row-cut matmul) and which processors hold each slice. Before a step
 * runs on processor p, every input slice p lacks is moved to p:
 *   - from a host-memory processor (the CPU, whose ops are done by the time it signals) the
 *     destination copies it in (copy_in), after waiting on the source's flag;
 *   - from a device processor (GPU) to a host-memory one, the source copies it out (copy_out)
 *     into the destination's buffer and signals; the destination waits on that flag.
 * Every processor has one 32-bit flag in host memory (pinned + mapped when a GPU is present) and
 * a counter: signal(flag, ++count) marks "all my work issued so far is done". Write-after-read:
 * a processor that copied from another's buffer signals after the copy; before that buffer is
 * written again, the writer waits for the reader's signal. No processor is drained (finish)
 * inside an evaluation: the CPU runs synchronously, the GPU only enqueues, and the CPU waits on
 * flags the GPU sets. The KV cache of a layer lives on the processor running its attention.
 *
 * A matmul cut by input columns leaves one partial sum per part (HLLM_ACT_PART0 + k on the part's
 * processor); the ADD after it gathers every part's sum and adds them in part order, on each
 * processor that runs it. A sliced step reads and writes only its slice's columns, so a
 * processor that produced them moves nothing; a layer's KV cache is then one segment per slice
 * of its heads, each on its processor (a host processor's in pinned memory when a device reads
 * it, e.g. a prompt plan that runs that layer's attention whole on the GPU). */
#include "exec/exec_internal.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Loads rows [r0, r1) of t (its columns [c0, c1): a matmul cut by columns) on processor `proc`
 * once; tied tensors share one copy. A column range is handed to the processor as a tensor of
 * its own, each row's columns copied side by side. */
static hllm_pweight *load_once(hllm_exec *e, const hllm_tensor *t, int64_t r0, int64_t r1, int64_t c0, int64_t c1, int proc,
                               int mem) {
    for (int i = 0; i < e->n_loaded; i++) {
        loaded_weight *l = &e->loaded[i];
        if (l->t->data == t->data && l->r0 == r0 && l->r1 == r1 && l->c0 == c0 && l->c1 == c1 && l->proc == proc && l->mem == mem)
            return l->pw;
    }
    if (e->n_loaded == e->cap_loaded) {
        hllm_fail("executor: too many weights");
        return NULL;
    }
    hllm_proc *p = e->procs[proc];
    hllm_tensor view = *t;
    void *copy = NULL;
    if (c0 > 0 || c1 < t->cols) {
        const size_t off = hllm_row_bytes(t->type, c0), rb = hllm_row_bytes(t->type, c1 - c0);
        if (!(copy = malloc(rb * (size_t)(r1 - r0) + 1))) {
            hllm_fail("out of memory cutting %s by columns", t->name);
            return NULL;
        }
        for (int64_t r = r0; r < r1; r++)
            memcpy((char *)copy + (size_t)(r - r0) * rb, (const char *)t->data + (size_t)r * t->row_bytes + off, rb);
        view.cols = c1 - c0;
        view.rows = r1 - r0;
        view.row_bytes = rb;
        view.data = copy;
    }
    hllm_pweight *pw = p->ops->weight_load(p, &view, copy ? 0 : r0, copy ? r1 - r0 : r1, (hllm_mem_kind)mem);
    if (copy && (!pw || !is_host_proc(p))) { /* a device keeps its own copy; the CPU reads this one */
        free(copy);
        copy = NULL;
    }
    if (!pw) return NULL;
    e->loaded[e->n_loaded++] = (loaded_weight){t, r0, r1, c0, c1, proc, mem, pw, copy};
    return pw;
}


static void *buf_alloc(hllm_exec *e, int proc, size_t bytes, hllm_proc **by) {
    hllm_proc *p = e->procs[proc];
    /* a host-memory processor's buffers are pinned + mapped when a GPU is present, so the GPU
     * copies to and from them asynchronously */
    if (is_host_proc(p) && e->host) {
        *by = e->host;
        return e->host->ops->alloc(e->host, bytes, HLLM_MEM_HOST);
    }
    *by = p;
    return p->ops->alloc(p, bytes, HLLM_MEM_DEVICE);
}

/* Segment k of layer l's cache serves a part on processor q when q owns it, or when q is a device
 * and the segment is a host processor's, in pinned host memory the device reads directly. */
static bool kv_reachable(const hllm_exec *e, int l, int k, int q) {
    const int o = e->kvl[l].proc[k];
    return o == q || (is_host_proc(e->procs[o]) && e->procs[q] == e->host);
}

/* Checks that every kv_store and attention part of every plan covers whole segments it can
 * reach, then allocates the segments (a host processor's in pinned memory when a device reads it). */
static int kv_alloc(hllm_exec *e) {
    const hllm_hparams *hp = &e->m->hp;
    const int grp = hp->n_head / hp->n_head_kv;
    bool *pinned = calloc((size_t)hp->n_layer * HLLM_MAX_PARTS, sizeof *pinned); /* a device reads the segment */
    if (!pinned) return hllm_fail("out of memory");
    int rc = 0;
    for (int r = 0; r < e->n_rt; r++) {
        const hllm_plan *pl = e->rt[r].plan;
        for (int i = 0; i < e->g->n_steps; i++) {
            const hllm_step *s = &e->g->steps[i];
            if (s->kind != HLLM_OP_KV_STORE && s->kind != HLLM_OP_ATTENTION) continue;
            const hllm_step_plan *sp = &pl->steps[i];
            const kv_layer *kl = &e->kvl[s->layer];
            for (int k = 0; k < sp->n_parts; k++) {
                int64_t a, b;
                part_heads(sp, k, hp->n_head, &a, &b);
                int64_t covered = 0;
                for (int j = 0; j < kl->n; j++) {
                    if (kl->h1[j] <= a || kl->h0[j] >= b) continue;
                    if (kl->h0[j] < a || kl->h1[j] > b || !kv_reachable(e, s->layer, j, sp->parts[k].proc)) {
                        free(pinned);
                        return hllm_fail("layer %d: %s of heads [%lld, %lld) on %s cannot use the KV cache of heads [%lld, %lld) on %s",
                                         s->layer, s->label, (long long)a, (long long)b, e->procs[sp->parts[k].proc]->name,
                                         (long long)kl->h0[j], (long long)kl->h1[j], e->procs[kl->proc[j]]->name);
                    }
                    covered += kl->h1[j] - kl->h0[j];
                    if (kl->proc[j] != sp->parts[k].proc) pinned[s->layer * HLLM_MAX_PARTS + j] = true;
                }
                if (covered != b - a) {
                    free(pinned);
                    return hllm_fail("layer %d: %s covers heads the KV cache does not hold", s->layer, s->label);
                }
            }
        }
    }
    const size_t elt = e->p.kv_type == HLLM_TYPE_F16 ? 2 : 4;
    for (int l = 0; l < hp->n_layer && !rc; l++) {
        kv_layer *kl = &e->kvl[l];
        for (int k = 0; k < kl->n && !rc; k++) {
            hllm_proc *pr = e->procs[kl->proc[k]];
            const size_t bytes = (size_t)e->p.n_ctx * (size_t)((kl->h1[k] - kl->h0[k]) / grp) * (size_t)hp->head_dim * elt;
            const bool pin = pinned[l * HLLM_MAX_PARTS + k] && e->host;
            kl->by[k] = pin ? e->host : pr;
            kl->kv[k].type = e->p.kv_type;
            kl->kv[k].n_ctx = e->p.n_ctx;
            kl->kv[k].k = kl->by[k]->ops->alloc(kl->by[k], bytes, pin ? HLLM_MEM_HOST : HLLM_MEM_DEVICE);
            kl->kv[k].v = kl->kv[k].k ? kl->by[k]->ops->alloc(kl->by[k], bytes, pin ? HLLM_MEM_HOST : HLLM_MEM_DEVICE) : NULL;
            if (!kl->kv[k].v) rc = -1;
        }
    }
    free(pinned);
    return rc;
}

hllm_exec *hllm_exec_new(const hllm_model_s *m, const hllm_graph *g, const hllm_plan *plan, hllm_proc **procs,
                         int n_procs, const hllm_exec_params *p) {
    if (plan->n_steps != g->n_steps) {
        hllm_fail("the plan has %d steps but the model has %d", plan->n_steps, g->n_steps);
        return NULL;
    }
    if (n_procs < 1 || n_procs > HLLM_MAX_PROCS || plan->n_procs > n_procs) {
        hllm_fail("the plan names %d processors, %d given (at most %d)", plan->n_procs, n_procs, HLLM_MAX_PROCS);
        return NULL;
    }
    if (hllm_plan_validate(plan, g)) return NULL;
    hllm_exec *e = calloc(1, sizeof *e);
    if (!e) {
        hllm_fail("out of memory");
        return NULL;
    }
    e->m = m;
    e->g = g;
    e->procs = procs;
    e->n_procs = n_procs;
    e->p = *p;
    e->issue = ~0u;
    e->n_rt = plan->prefill ? 2 : 1;
    bool any_multi = false;
    for (int r = 0; r < e->n_rt; r++) {
        plan_rt *rt = &e->rt[r];
        rt->plan = r ? plan->prefill : plan;
        const hllm_plan *pl = rt->plan;
        int single = pl->steps[0].parts[0].proc;
        bool used[HLLM_MAX_PROCS] = {0};
        for (int i = 0; i < pl->n_steps; i++)
            for (int k = 0; k < pl->steps[i].n_parts; k++) {
                used[pl->steps[i].parts[k].proc] = true;
                /* partial sums and slices need the bookkeeping of the split path */
                if (pl->steps[i].parts[k].proc != single || pl->steps[i].cut != HLLM_CUT_ROWS) single = -1;
            }
        rt->proc = single;
        if (single >= 0) {
            /* a device running a whole plan may still read a CPU's KV cache the other plan
             * fills: that cache then lives in memory the device maps */
            if (!is_host_proc(procs[single]) && !e->host) e->host = procs[single];
            continue;
        }
        any_multi = true;
        /* cross-processor moves need one side to be host memory */
        for (int q = 0; q < n_procs; q++)
            if (used[q] && !is_host_proc(procs[q])) {
                if (e->host && e->host != procs[q]) {
                    hllm_fail("plans that move activations between two device processors are not supported");
                    goto fail;
                }
                e->host = procs[q];
                rt->dev_mask |= 1u << q;
            }
    }
    e->cur = &e->rt[0];
    e->trace_step = -1;
    e->trace = getenv("HLLM_EXEC_TRACE") && getenv("HLLM_EXEC_TRACE")[0] == '1';
    if (e->trace) {
        e->trace_run = calloc((size_t)g->n_steps, sizeof *e->trace_run);
        e->trace_wait = calloc((size_t)g->n_steps, sizeof *e->trace_wait);
        if (!e->trace_run || !e->trace_wait) e->trace = false;
    }
    e->step_secs = calloc((size_t)g->n_steps, sizeof *e->step_secs);
    e->seen_n = calloc((size_t)p->n_batch + 1, 1);
    e->cap_loaded = g->n_steps * 2 * HLLM_MAX_PARTS * e->n_rt;
    e->loaded = calloc((size_t)e->cap_loaded, sizeof *e->loaded);
    e->kvl = calloc((size_t)m->hp.n_layer, sizeof *e->kvl);
    if (!e->loaded || !e->kvl || !e->step_secs || !e->seen_n) {
        hllm_fail("out of memory");
        goto fail;
    }
    bool use[HLLM_MAX_PROCS][HLLM_ACT_COUNT] = {{0}};
    for (int r = 0; r < e->n_rt; r++) {
        plan_rt *rt = &e->rt[r];
        const hllm_plan *pl = rt->plan;
        if (!(rt->sw = calloc((size_t)g->n_steps, sizeof *rt->sw))) {
            hllm_fail("out of memory");
            goto fail;
        }
        for (int i = 0; i < g->n_steps; i++) {
            const hllm_step *s = &g->steps[i];
            const hllm_step_plan *sp = &pl->steps[i];
            for (int k = 0; k < sp->n_parts; k++) {
                const hllm_part *part = &sp->parts[k];
                if (s->w) {
                    const bool mat = s->kind == HLLM_OP_MATMUL, cols = mat && sp->cut == HLLM_CUT_COLS;
                    const int64_t r0 = mat && !cols ? part->r0 : 0, r1 = mat && !cols ? part->r1 : s->w->rows;
                    const int64_t c0 = cols ? part->r0 : 0, c1 = cols ? part->r1 : s->w->cols;
                    if (!(rt->sw[i].w[k] = load_once(e, s->w, r0, r1, c0, c1, part->proc, mat ? part->mem : 0))) goto fail;
                }
                if (s->bias && !(rt->sw[i].bias[k] = load_once(e, s->bias, 0, 1, 0, s->bias->cols, part->proc, 0))) goto fail;
                if (s->dst != HLLM_ACT_NONE) use[part->proc][s->dst] = true;
                if (s->src != HLLM_ACT_NONE) use[part->proc][s->src] = true;
                if (s->src2 != HLLM_ACT_NONE) use[part->proc][s->src2] = true;
                if (sp->cut == HLLM_CUT_COLS) { /* its partial sum, here and wherever the ADD after it runs */
                    use[part->proc][HLLM_ACT_PART0 + k] = true;
                    for (int j = 0; j < pl->steps[i + 1].n_parts; j++) use[pl->steps[i + 1].parts[j].proc][HLLM_ACT_PART0 + k] = true;
                }
            }
            /* the KV cache's segments: the (first) plan's split of each layer's kv_store */
            if (r == 0 && s->kind == HLLM_OP_KV_STORE) {
                kv_layer *kl = &e->kvl[s->layer];
                kl->n = sp->n_parts;
                for (int k = 0; k < sp->n_parts; k++) {
                    const bool sl = sp->cut == HLLM_CUT_SLICE;
                    kl->proc[k] = sp->parts[k].proc;
                    kl->h0[k] = sl ? sp->parts[k].r0 : 0;
                    kl->h1[k] = sl ? sp->parts[k].r1 : m->hp.n_head;
                }
            }
            if (p->progress) p->progress((float)(r * g->n_steps + i + 1) / (float)(e->n_rt * g->n_steps), p->progress_user);
        }
        /* logits: gathered on a host-memory processor that computes some, else the first part's */
        const hllm_step_plan *last = &pl->steps[g->n_steps - 1];
        rt->out_proc = last->parts[0].proc;
        for (int k = 0; k < last->n_parts; k++)
            if (is_host_proc(procs[last->parts[k].proc])) {
                rt->out_proc = last->parts[k].proc;
                break;
            }
        use[rt->out_proc][HLLM_ACT_LOGITS] = true;
    }
    for (int q = 0; q < n_procs; q++)
        for (int a = 0; a < HLLM_ACT_COUNT; a++) {
            if (!use[q][a]) continue;
            size_t rows = (size_t)p->n_batch;
            if (a == HLLM_ACT_LOGITS && !p->logits_all) rows = 1;
            e->act[q][a] = buf_alloc(e, q, rows * (size_t)g->act_width[a] * sizeof(float), &e->act_alloc[q][a]);
            if (!e->act[q][a]) goto fail;
        }
    if (any_multi) {
        size_t fbytes = (size_t)HLLM_MAX_PROCS * 64;
        e->flag_mem = e->host ? e->host->ops->alloc(e->host, fbytes, HLLM_MEM_HOST) : aligned_alloc(64, fbytes);
        if (!e->flag_mem) {
            hllm_fail("out of memory allocating flags");
            goto fail;
        }
        memset(e->flag_mem, 0, fbytes);
    }
    if (kv_alloc(e)) goto fail;
    return e;
fail:
    hllm_exec_free(e);
    return NULL;
}

/* HLLM_EXEC_TRACE=1: the host's time per token, by step label (layers summed), on stderr. */
static void trace_report(const hllm_exec *e) {
    if (!e->trace || !e->trace_evals) return;
    const double k = 1e6 / (double)e->trace_evals;
    double run = 0, wait = 0;
    for (int i = 0; i < e->g->n_steps; i++) run += e->trace_run[i], wait += e->trace_wait[i];
    fprintf(stderr, "exec trace: %ld overlapped one-token evaluations; per token %.1f us: host ran %.1f us, waited on devices %.1f us, "
            "issued device work %.1f us (step_end %.1f us), the rest %.1f us\n", e->trace_evals, e->trace_total * k, run * k,
            wait * k, e->trace_issue * k, e->trace_launch * k, (e->trace_total - run - wait - e->trace_issue) * k);
    for (int i = 0; i < e->g->n_steps; i++) {
        const char *lab = e->g->steps[i].label;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(e->g->steps[j].label, lab) == 0;
        if (seen) continue;
        double r = 0, w = 0;
        int cnt = 0;
        for (int j = i; j < e->g->n_steps; j++)
            if (strcmp(e->g->steps[j].label, lab) == 0) r += e->trace_run[j], w += e->trace_wait[j], cnt++;
        if (r * k < 0.05 && w * k < 0.05) continue;
        fprintf(stderr, "  %-14s x%-3d host ran %9.1f us  waited %9.1f us\n", lab, cnt, r * k, w * k);
    }
}

void hllm_exec_free(hllm_exec *e) {
    if (!e) return;
    trace_report(e);
    for (int q = 0; q < e->n_procs; q++) e->procs[q]->ops->finish(e->procs[q]);
    for (int i = 0; i < e->n_loaded; i++) {
        hllm_proc *p = e->procs[e->loaded[i].proc];
        p->ops->weight_free(p, e->loaded[i].pw);
        free(e->loaded[i].cols_copy);
    }
    for (int q = 0; q < HLLM_MAX_PROCS; q++)
        for (int a = 0; a < HLLM_ACT_COUNT; a++)
            if (e->act[q][a]) e->act_alloc[q][a]->ops->free(e->act_alloc[q][a], e->act[q][a]);
    if (e->kvl)
        for (int l = 0; l < e->m->hp.n_layer; l++)
            for (int k = 0; k < e->kvl[l].n; k++) {
                hllm_proc *by = e->kvl[l].by[k];
                if (e->kvl[l].kv[k].k) by->ops->free(by, e->kvl[l].kv[k].k);
                if (e->kvl[l].kv[k].v) by->ops->free(by, e->kvl[l].kv[k].v);
            }
    if (e->flag_mem) {
        if (e->host) e->host->ops->free(e->host, e->flag_mem);
        else free(e->flag_mem);
    }
    free(e->kvl);
    free(e->step_secs);
    free(e->trace_run);
    free(e->trace_wait);
    free(e->seen_n);
    for (int r = 0; r < 2; r++) free(e->rt[r].sw);
    free(e->loaded);
    free(e);
}


/* How many steps the device walk may run ahead of the host walk while its work is issued as it
 * goes: a queued processor's queue is finite (a GPU's launch queue holds ~1000 entries), and
 * issuing blocks when it is full, so the device must not wait for host flags behind more work
 * than that. */
#define DEVICE_LEAD_STEPS 12

static int g_host_first = -1;
void hllm_exec_set_host_first(int on) { g_host_first = on != 0; }
static bool host_first(void) {
    if (g_host_first < 0) g_host_first = !(getenv("HLLM_EXEC_HOST_FIRST") && getenv("HLLM_EXEC_HOST_FIRST")[0] == '0');
    return g_host_first == 1;
}

/* Every part of step i on host processors (host_only) or on device processors (device_only). */
static bool parts_on(const hllm_exec *e, int i, bool host) {
    const hllm_step_plan *sp = &e->cur->plan->steps[i];
    for (int k = 0; k < sp->n_parts; k++)
        if (is_host_proc(e->procs[sp->parts[k].proc]) != host) return false;
    return true;
}
static bool host_only(const hllm_exec *e, int i) { return parts_on(e, i, true); }
static bool device_only(const hllm_exec *e, int i) { return parts_on(e, i, false); }

int hllm_exec_eval(hllm_exec *e, const int32_t *tokens, int n, int pos0, float *logits) {
    const hllm_hparams *hp = &e->m->hp;
    const hllm_graph *g = e->g;
    if (n <= 0 || n > e->p.n_batch) return hllm_fail("batch of %d tokens (must be 1..%d)", n, e->p.n_batch);
    if (pos0 < 0 || pos0 + n > e->p.n_ctx)
        return hllm_fail("the context is full: %d tokens at position %d exceed the context size %d", n, pos0, e->p.n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab) return hllm_fail("token id %d is out of range (vocab %d)", tokens[i], hp->n_vocab);
    size_t n_out = e->p.logits_all ? (size_t)n : 1;
    const size_t out_bytes = n_out * (size_t)hp->n_vocab * sizeof(float);
    /* the op sequence depends only on the batch size (pos0 and ids are step state) */
    const uint64_t shape = (uint64_t)n;
    e->cur = e->n_rt > 1 && n >= e->rt[0].plan->prefill_min ? &e->rt[1] : &e->rt[0];
    if (e->cur->proc >= 0) {
        hllm_proc *single = e->procs[e->cur->proc];
        const bool hooks = single->ops->step_begin && !e->profiling;
        if (hooks && single->ops->step_begin(single, shape, pos0, tokens, n) < 0) return -1;
        for (int i = 0; i < g->n_steps; i++) {
            const hllm_step *s = &g->steps[i];
            const int n_tok = s->last_only && !e->p.logits_all ? 1 : n;
            const double t0 = e->profiling && n == 1 ? now_s() : 0;
            for (int k = 0; k < e->cur->plan->steps[i].n_parts; k++)
                if (exec_run_part(e, i, k, n, n_tok, pos0, tokens)) return -1;
            if (e->profiling && n == 1) e->step_secs[i] += now_s() - t0;
        }
        if (e->profiling && n == 1) e->step_evals++;
        if (hooks && single->ops->step_end(single)) return -1;
        if (single->ops->copy_out(single, logits, e->act[e->cur->proc][HLLM_ACT_LOGITS], out_bytes)) return -1;
        return single->ops->finish(single);
    }
    /* Several processors: two walks over the same steps from the same bookkeeping. The device
     * walk queues the device processors' work, their waits on the host's flags included; the
     * host walk runs the host processors' parts, waiting on the devices' flags. The device walk
     * runs ahead of the host walk: all of it first when the devices hold their work back until
     * step_end (a captured graph is launched then), else by DEVICE_LEAD_STEPS. So the host never
     * stops mid-step to issue device work, and the devices run ahead as far as data allows.
     * Profiling (every op timed to completion) issues everything in one walk. */
    static int one_walk = -1; /* HLLM_EXEC_ONE_WALK=1: issue every processor in one walk (diagnostics) */
    if (one_walk < 0) one_walk = getenv("HLLM_EXEC_ONE_WALK") && getenv("HLLM_EXEC_ONE_WALK")[0] == '1';
    memset(e->walks, 0, sizeof e->walks);
    int rc = 0;
    const int last = g->n_steps; /* exec_walk_step(last): the logits */
    /* The first evaluation of each batch size also takes one walk: a GPU may load the code of
     * kernels it has not run yet at their first launch, and loading can wait for its queue,
     * which must not hold waits on flags the host has yet to set. */
    bool first = false;
    for (int q = 0; q < e->n_procs; q++)
        if (((e->cur->dev_mask >> q) & 1u) && e->procs[q]->ops->step_begin) first = !e->seen_n[n];
    e->seen_n[n] = 1;
    if (e->profiling || !e->cur->dev_mask || one_walk || first) {
        e->ws = &e->walks[1];
        e->issue = ~0u;
        for (int i = 0; i <= last && !rc; i++) rc = exec_walk_step(e, i, tokens, n, pos0);
        if (e->profiling && n == 1) e->step_evals++;
    } else {
        const unsigned dev = e->cur->dev_mask;
        const bool trace = e->trace && n == 1;
        const double t_eval = trace ? now_s() : 0;
        bool held = true; /* every device holds its work back until step_end */
        for (int q = 0; q < e->n_procs && !rc; q++) {
            hllm_proc *p = e->procs[q];
            if (!((dev >> q) & 1u)) continue;
            int r = p->ops->step_begin ? p->ops->step_begin(p, shape, pos0, tokens, n) : 0;
            if (r < 0) rc = -1;
            held &= r == 1;
        }
        int i_dev = 0, i_host = 0;
        /* Host first (HLLM_EXEC_HOST_FIRST=0 turns it off): with held devices, the host first runs the steps it can before
         * the devices have run anything (the embedding on the CPU, and the bookkeeping of the
         * device-only steps after it, which signals its output), so a device that launches the
         * start of its step early (the CUDA processor's HLLM_CUDA_EARLY) does not wait for it */
        if (held && host_first() && host_only(e, 0))
            for (e->ws = &e->walks[1], e->issue = ~dev; i_host < last && !rc && (i_host == 0 || device_only(e, i_host));
                 i_host++)
                rc = exec_walk_step(e, i_host, tokens, n, pos0);
        for (; i_host <= last && !rc; i_host++) {
            e->ws = &e->walks[0];
            e->issue = dev;
            const double t_dev = trace ? now_s() : 0;
            for (; i_dev <= last && !rc && (held || i_dev < i_host + DEVICE_LEAD_STEPS); i_dev++) {
                rc = exec_walk_step(e, i_dev, tokens, n, pos0);
                if (i_dev == last)
                    for (int q = 0; q < e->n_procs; q++) {
                        hllm_proc *p = e->procs[q];
                        const double t_end = trace ? now_s() : 0;
                        if (((dev >> q) & 1u) && p->ops->step_end && p->ops->step_end(p)) rc = -1;
                        if (trace) e->trace_launch += now_s() - t_end;
                    }
            }
            if (trace) e->trace_issue += now_s() - t_dev;
            e->ws = &e->walks[1];
            e->issue = ~dev;
            /* the gather of the logits (i_host == last) is booked to the last step */
            if (trace) e->trace_step = i_host < last ? i_host : last - 1;
            if (!rc) rc = exec_walk_step(e, i_host, tokens, n, pos0);
            e->trace_step = -1;
        }
        e->issue = ~0u;
        if (trace && !rc) {
            e->trace_total += now_s() - t_eval;
            e->trace_evals++;
        }
    }
    if (rc) /* release whatever a device still waits for, so that finish() returns */
        for (int q = 0; q < e->n_procs; q++) __atomic_store_n(flag_of(e, q), 0x40000000u, __ATOMIC_RELEASE);
    if (!rc) {
        hllm_proc *po = e->procs[e->cur->out_proc];
        rc = po->ops->copy_out(po, logits, e->act[e->cur->out_proc][HLLM_ACT_LOGITS], out_bytes);
    }
    for (int q = 0; q < e->n_procs; q++)
        if (e->procs[q]->ops->finish(e->procs[q])) rc = -1;
    /* everything is drained: start the next evaluation's flags from zero */
    memset(e->flag_mem, 0, (size_t)HLLM_MAX_PROCS * 64);
    return rc;
}

void hllm_exec_op_times(const hllm_exec *e, double secs[HLLM_OP_COUNT], long calls[HLLM_OP_COUNT]) {
    memcpy(secs, e->op_secs, sizeof e->op_secs);
    memcpy(calls, e->op_calls, sizeof e->op_calls);
}

void hllm_exec_set_profiling(hllm_exec *e, bool on) { e->profiling = on; }

long hllm_exec_step_times(const hllm_exec *e, double *secs) {
    memcpy(secs, e->step_secs, (size_t)e->g->n_steps * sizeof *secs);
    return e->step_evals;
}
