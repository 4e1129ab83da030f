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
#include "exec/exec.h"
#include "core/error.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const hllm_tensor *t;
    int64_t r0, r1, c0, c1; /* rows; columns (a matmul cut by columns) */
    int proc, mem;
    hllm_pweight *pw;
    void *cols_copy;        /* columns [c0, c1) of every row, contiguous (owned) */
} loaded_weight;

typedef struct {
    hllm_pweight *w[HLLM_MAX_PARTS];
    hllm_pweight *bias[HLLM_MAX_PARTS];
} step_weights;

typedef struct {
    int proc;
    int64_t c0, c1;
} act_slice;

typedef struct {
    int n;               /* slices of the last write (0 = never written this evaluation) */
    act_slice s[HLLM_MAX_PARTS];
    unsigned have[HLLM_MAX_PARTS]; /* bit p: processor p holds slice k */
    int rows;            /* token rows the last write produced */
    bool partial;        /* written by a matmul cut by columns: slice k is the partial sum in
                          * HLLM_ACT_PART0 + k (whole width) on s[k].proc, summed by the ADD after it */
} act_state;

/* A layer's KV cache: one segment per slice of its heads, each on the processor that owns it. */
typedef struct {
    int n;
    int proc[HLLM_MAX_PARTS];
    int64_t h0[HLLM_MAX_PARTS], h1[HLLM_MAX_PARTS]; /* query heads */
    hllm_kv kv[HLLM_MAX_PARTS];                      /* the segment's kv heads only */
    hllm_proc *by[HLLM_MAX_PARTS];                   /* who allocated it */
} kv_layer;

/* A plan as the executor runs it. */
typedef struct {
    const hllm_plan *plan;
    step_weights *sw;
    int proc;               /* single-processor plans: the processor running every step; else -1 */
    unsigned dev_mask;      /* several processors: the device processors it uses */
    int out_proc;           /* where the logits are gathered */
} plan_rt;

/* What the executor knows about an evaluation in flight: every walk over the steps starts from
 * the same state and changes it the same way, whichever processors it issues for. */
typedef struct {
    uint32_t count[HLLM_MAX_PROCS];
    bool dirty[HLLM_MAX_PROCS];     /* work issued since the last signal */
    uint32_t pending_read[HLLM_MAX_PROCS][HLLM_ACT_COUNT][HLLM_MAX_PROCS]; /* [owner][act][reader] = reader's signal */
    bool touched[HLLM_MAX_PROCS][HLLM_ACT_COUNT]; /* a host processor's op used its own buffer since a device wrote it */
    act_state st[HLLM_ACT_COUNT];
} sched_state;

struct hllm_exec {
    const hllm_model_s *m;
    const hllm_graph *g;
    plan_rt rt[2];          /* the plan, and its prefill plan if it has one */
    int n_rt;
    plan_rt *cur;           /* the one running */
    hllm_proc **procs;
    int n_procs;
    hllm_exec_params p;
    loaded_weight *loaded;
    int n_loaded, cap_loaded;
    float *act[HLLM_MAX_PROCS][HLLM_ACT_COUNT];
    hllm_proc *act_alloc[HLLM_MAX_PROCS][HLLM_ACT_COUNT]; /* who allocated it (to free it) */
    kv_layer *kvl;
    /* multi-processor state */
    hllm_proc *host;        /* allocates host-memory buffers and flags (a GPU, or NULL = plain memory) */
    uint32_t *flag_mem;     /* one flag per processor, 64 bytes apart */
    sched_state walks[2];   /* bookkeeping of the device walk and of the host walk */
    sched_state *ws;        /* the walk being issued */
    unsigned issue;         /* bit q: this walk issues processor q's actions (see hllm_exec_eval) */
    bool defer;             /* collect host-side waits instead of waiting (see walk) */
    int n_deferred;
    struct { int waiter, q; uint32_t v; } deferred[HLLM_ACT_COUNT * HLLM_MAX_PARTS * 2];
    bool profiling;
    double *step_secs;      /* profiling: per step, summed over one-token evaluations */
    unsigned char *seen_n;  /* batch sizes evaluated before (index n, 1..n_batch) */
    long step_evals;
    double op_secs[HLLM_OP_COUNT];
    long op_calls[HLLM_OP_COUNT];
    /* HLLM_EXEC_TRACE=1: where the host's time goes in overlapped one-token evaluations */
    bool trace;
    int trace_step;         /* the step the host walk is in */
    double *trace_run;      /* per step: host processors running their parts */
    double *trace_wait;     /* per step: host processors waiting on device flags */
    double trace_total;
    double trace_issue;     /* issuing the devices' work (walk, graph launch) */
    double trace_launch;    /* of which the devices' step_end (a captured graph's launch) */
    long trace_evals;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool is_host_proc(const hllm_proc *p) { return p->n_threads > 0; }

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

/* Activations each step reads and writes (besides dst, which is written). */
static int step_reads(const hllm_step *s, hllm_act out[3]) {
    int n = 0;
    switch (s->kind) {
    case HLLM_OP_EMBED: break;
    case HLLM_OP_ROPE: out[n++] = s->dst; out[n++] = s->src2; break;
    case HLLM_OP_ADD: out[n++] = s->src; out[n++] = s->dst; break;
    default:
        if (s->src != HLLM_ACT_NONE) out[n++] = s->src;
        if (s->src2 != HLLM_ACT_NONE) out[n++] = s->src2;
        break;
    }
    return n;
}

static int step_writes(const hllm_step *s, hllm_act out[2]) {
    int n = 0;
    if (s->dst != HLLM_ACT_NONE) out[n++] = s->dst;
    if (s->kind == HLLM_OP_ROPE && s->src2 != HLLM_ACT_NONE) out[n++] = s->src2;
    return n;
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
                const int64_t a = sp->cut == HLLM_CUT_SLICE ? sp->parts[k].r0 : 0;
                const int64_t b = sp->cut == HLLM_CUT_SLICE ? sp->parts[k].r1 : hp->n_head;
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
                if (sp->cut == HLLM_CUT_COLS) /* its partial sum, here and wherever the ADD after it runs */
                    for (int j = 0; j < pl->steps[i + 1].n_parts; j++) use[pl->steps[i + 1].parts[j].proc][HLLM_ACT_PART0 + k] = true;
                if (sp->cut == HLLM_CUT_COLS) use[part->proc][HLLM_ACT_PART0 + k] = true;
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

/* ---- flags ---- */

static volatile uint32_t *flag_of(hllm_exec *e, int q) { return (volatile uint32_t *)(e->flag_mem + (size_t)q * 16); }

static bool issues(const hllm_exec *e, int q) { return (e->issue >> q) & 1u; }

/* Makes processor q's flag cover all its work issued so far; returns the value to wait for. */
static uint32_t ensure_signaled(hllm_exec *e, int q) {
    if (e->ws->dirty[q]) {
        ++e->ws->count[q];
        if (issues(e, q)) {
            hllm_proc *p = e->procs[q];
            /* a host processor may run held work here (see proc.h): the step's, for the trace */
            const bool tr = e->trace && e->trace_step >= 0 && is_host_proc(p);
            const double t0 = tr ? now_s() : 0;
            p->ops->signal(p, flag_of(e, q), e->ws->count[q]);
            if (tr) e->trace_run[e->trace_step] += now_s() - t0;
        }
        e->ws->dirty[q] = false;
    }
    return e->ws->count[q];
}

static void wait_for(hllm_exec *e, int waiter, int q, uint32_t value) {
    if (waiter == q || value == 0 || !issues(e, waiter)) return;
    hllm_proc *p = e->procs[waiter];
    const bool tr = e->trace && e->trace_step >= 0 && is_host_proc(p);
    const double t0 = tr ? now_s() : 0;
    p->ops->wait(p, flag_of(e, q), value);
    if (tr) e->trace_wait[e->trace_step] += now_s() - t0;
}

/* Before processor `writer` writes buffer (owner, a): wait until every other processor that
 * copied from that buffer has finished reading it. */
static void before_write(hllm_exec *e, int writer, int owner, int a) {
    for (int r = 0; r < e->n_procs; r++) {
        uint32_t v = e->ws->pending_read[owner][a][r];
        if (!v) continue;
        if (r != writer) wait_for(e, writer, r, v);
        e->ws->pending_read[owner][a][r] = 0;
    }
}

/* Copies columns [c0, c1) of `rows` token rows of activation a from processor s to d. */
static int move_slice(hllm_exec *e, int a, int s, int d, int64_t c0, int64_t c1, int rows) {
    const int64_t W = e->g->act_width[a];
    float *src = e->act[s][a], *dst = e->act[d][a];
    if (!src || !dst) return hllm_fail("executor: activation %d has no buffer on processor %d or %d", a, s, d);
    hllm_proc *ps = e->procs[s], *pd = e->procs[d];
    const bool whole = c0 == 0 && c1 == W;
    const int n_copies = whole ? 1 : rows;
    const size_t bytes = whole ? (size_t)rows * (size_t)W * sizeof(float) : (size_t)(c1 - c0) * sizeof(float);
    if (is_host_proc(ps)) { /* the destination reads the source's memory */
        uint32_t v = ensure_signaled(e, s);
        wait_for(e, d, s, v);
        before_write(e, d, d, a);
        if (issues(e, d))
            for (int t = 0; t < n_copies; t++) {
                size_t off = (size_t)t * (size_t)W + (size_t)c0;
                if (pd->ops->copy_in(pd, dst + off, src + off, bytes)) return -1;
            }
        e->ws->dirty[d] = true;
        e->ws->pending_read[s][a][d] = ensure_signaled(e, d);
    } else { /* device -> host memory: the source writes into the destination's buffer */
        if (!is_host_proc(pd)) return hllm_fail("executor: no path between two device processors");
        before_write(e, s, d, a);
        /* a device may run ahead of the host: it waits until the host's ops that used this
         * buffer (issued earlier) are done before overwriting it */
        if (e->ws->touched[d][a]) {
            wait_for(e, s, d, ensure_signaled(e, d));
            e->ws->touched[d][a] = false;
        }
        if (issues(e, s))
            for (int t = 0; t < n_copies; t++) {
                size_t off = (size_t)t * (size_t)W + (size_t)c0;
                if (ps->ops->copy_out(ps, dst + off, src + off, bytes)) return -1;
            }
        e->ws->dirty[s] = true;
        uint32_t v = ensure_signaled(e, s);
        const int cap = (int)(sizeof e->deferred / sizeof e->deferred[0]);
        if (e->defer && e->n_deferred < cap) { /* the host waits after the device's parts are queued */
            e->deferred[e->n_deferred].waiter = d;
            e->deferred[e->n_deferred].q = s;
            e->deferred[e->n_deferred++].v = v;
        } else
            wait_for(e, d, s, v);
    }
    return 0;
}

/* Columns of activation a that part k of step i reads or writes: its rows of a row-cut matmul's
 * output, its input columns of a column-cut one, its slice of a sliced step; else all of them. */
static void part_cols(const hllm_exec *e, int i, const hllm_step_plan *sp, int k, int a, int64_t *c0, int64_t *c1) {
    const hllm_step *s = &e->g->steps[i];
    const hllm_part *pt = &sp->parts[k];
    *c0 = 0;
    *c1 = e->g->act_width[a];
    const bool rows = s->kind == HLLM_OP_MATMUL && sp->cut == HLLM_CUT_ROWS && a == (int)s->dst;
    const bool cols = sp->cut == HLLM_CUT_COLS && a == (int)s->src;
    if (rows || cols || (sp->cut == HLLM_CUT_SLICE && s->kind == HLLM_OP_SWIGLU)) {
        *c0 = pt->r0;
        *c1 = pt->r1;
    } else if (sp->cut == HLLM_CUT_SLICE) { /* query heads; K and V in kv heads */
        const int64_t hd = e->g->head_dim, grp = e->g->n_head / e->g->n_head_kv;
        const bool kv = a == HLLM_ACT_K || a == HLLM_ACT_V;
        *c0 = (kv ? pt->r0 / grp : pt->r0) * hd;
        *c1 = (kv ? pt->r1 / grp : pt->r1) * hd;
    }
}

/* Makes columns [c0, c1) of activation a present on processor d (the slices that overlap them). */
static int gather_cols(hllm_exec *e, int a, int d, int64_t c0, int64_t c1) {
    act_state *st = &e->ws->st[a];
    for (int k = 0; k < st->n; k++) {
        if (st->have[k] & (1u << d) || st->s[k].c1 <= c0 || st->s[k].c0 >= c1) continue;
        if (move_slice(e, a, st->s[k].proc, d, st->s[k].c0, st->s[k].c1, st->rows)) return -1;
        st->have[k] |= 1u << d;
    }
    return 0;
}

static int gather(hllm_exec *e, int a, int d) { return gather_cols(e, a, d, 0, e->g->act_width[a]); }

/* Makes what part k of step i reads of activation a present on its processor: the part's
 * columns, or every partial sum when a is the output of a column-cut matmul (only the ADD after
 * it reads that). */
static int gather_input(hllm_exec *e, int i, const hllm_step_plan *sp, int k, int a) {
    const hllm_step *s = &e->g->steps[i];
    const int d = sp->parts[k].proc;
    const act_state *st = &e->ws->st[a];
    if (st->partial) {
        if (s->kind != HLLM_OP_ADD || a != (int)s->src)
            return hllm_fail("executor: step %d (%s) reads partial sums that only an ADD can sum", i, s->label);
        for (int j = 0; j < st->n; j++)
            if (gather(e, HLLM_ACT_PART0 + j, d)) return -1;
        return 0;
    }
    int64_t c0, c1;
    part_cols(e, i, sp, k, a, &c0, &c1);
    return gather_cols(e, a, d, c0, c1);
}

static void set_written(hllm_exec *e, int i, const hllm_step_plan *sp, int a, int rows) {
    const hllm_step *s = &e->g->steps[i];
    act_state *st = &e->ws->st[a];
    const int64_t W = e->g->act_width[a];
    st->rows = rows;
    st->n = 0;
    st->partial = false;
    if (sp->cut == HLLM_CUT_COLS && a == (int)s->dst) { /* part k's sum in HLLM_ACT_PART0 + k */
        st->partial = true;
        for (int k = 0; k < sp->n_parts; k++) {
            const int q = sp->parts[k].proc;
            act_state *ps = &e->ws->st[HLLM_ACT_PART0 + k];
            *ps = (act_state){.n = 1, .s = {{q, 0, e->g->act_width[HLLM_ACT_PART0 + k]}}, .have = {1u << q}, .rows = rows};
            st->s[st->n] = (act_slice){q, 0, W};
            st->have[st->n++] = 1u << q;
        }
        return;
    }
    const bool sliced = (s->kind == HLLM_OP_MATMUL && a == (int)s->dst) || sp->cut == HLLM_CUT_SLICE;
    if (!sliced) { /* whole; a replicated step leaves it on every part's processor */
        st->s[0] = (act_slice){sp->parts[0].proc, 0, W};
        st->have[0] = 0;
        for (int k = 0; k < sp->n_parts; k++) st->have[0] |= 1u << sp->parts[k].proc;
        st->n = 1;
        return;
    }
    for (int k = 0; k < sp->n_parts; k++) { /* adjacent parts on one processor make one slice */
        const int q = sp->parts[k].proc;
        int64_t c0, c1;
        part_cols(e, i, sp, k, a, &c0, &c1);
        if (st->n && st->s[st->n - 1].proc == q && st->s[st->n - 1].c1 == c0) {
            st->s[st->n - 1].c1 = c1;
            continue;
        }
        st->s[st->n] = (act_slice){q, c0, c1};
        st->have[st->n] = 1u << q;
        st->n++;
    }
}

/* Issues part k of step i. */
static int run_part(hllm_exec *e, int i, int k, int n, int n_tok, int pos0, const int32_t *tokens) {
    const hllm_hparams *hp = &e->m->hp;
    const hllm_graph *g = e->g;
    const hllm_step *s = &g->steps[i];
    const hllm_step_plan *sp = &e->cur->plan->steps[i];
    const bool last_only = s->last_only && !e->p.logits_all;
    const bool multi = e->cur->proc < 0;
    const hllm_part *part = &sp->parts[k];
    const int q = part->proc;
    float *const *act = e->act[q];
    hllm_proc *pr = e->procs[q];
    hllm_op op = {.kind = s->kind, .n_tok = n_tok, .w = e->cur->sw[i].w[k], .bias = e->cur->sw[i].bias[k], .pos0 = pos0,
                  .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .eps = hp->rms_eps};
    int64_t src_off = 0;
    if (last_only && s->src == HLLM_ACT_X) src_off = (int64_t)(n - 1) * g->act_width[s->src];
    if (s->dst != HLLM_ACT_NONE) {
        op.dst = act[s->dst];
        op.ld_dst = g->act_width[s->dst];
    }
    if (s->src != HLLM_ACT_NONE) {
        op.src = act[s->src] + src_off;
        op.ld_src = g->act_width[s->src];
    }
    if (s->src2 != HLLM_ACT_NONE) {
        op.src2 = act[s->src2];
        op.ld_src2 = g->act_width[s->src2];
    }
    switch (s->kind) {
    case HLLM_OP_EMBED: op.tokens = tokens; break;
    case HLLM_OP_RMSNORM:
        op.dim = s->w->cols;
        op.n_rows = s->per_head ? (int64_t)op.n_tok * (g->act_width[s->src] / hp->head_dim) : op.n_tok;
        break;
    case HLLM_OP_MATMUL:
        op.r0 = part->r0;
        op.r1 = part->r1;
        /* a host processor may run it with the next step's part when that reads the same input */
        if (is_host_proc(pr) && i + 1 < g->n_steps && g->steps[i + 1].kind == HLLM_OP_MATMUL && g->steps[i + 1].src == s->src)
            for (int j = 0; j < e->cur->plan->steps[i + 1].n_parts; j++) op.more |= e->cur->plan->steps[i + 1].parts[j].proc == q;
        if (sp->cut == HLLM_CUT_COLS) { /* its columns of the input; a partial sum of every row */
            op.dst = act[HLLM_ACT_PART0 + k];
            op.ld_dst = g->act_width[HLLM_ACT_PART0 + k];
            op.src += part->r0;
            op.r0 = 0;
            op.r1 = s->rows;
            if (k) op.bias = NULL; /* added once */
        }
        break;
    case HLLM_OP_ROPE:
        op.n_rot = hp->n_rot;
        op.rope_type = hp->rope_type;
        op.freq_base = hp->rope_base;
        op.freq_scale = hp->rope_freq_scale;
        op.freq_factors = e->cur->sw[i].w[k];
        op.w = NULL;
        break;
    case HLLM_OP_ATTENTION: op.attn_scale = 1.0f / sqrtf((float)hp->head_dim); break;
    case HLLM_OP_SWIGLU:
        op.dim = g->act_width[s->dst];
        if (sp->cut == HLLM_CUT_SLICE) {
            op.dst += part->r0;
            op.src += part->r0;
            op.src2 += part->r0;
            op.dim = part->r1 - part->r0;
        }
        break;
    case HLLM_OP_ADD: op.dim = g->act_width[s->dst]; break;
    default: break;
    }
    /* the ops this part issues: one, or one per KV segment / per partial sum */
    hllm_op ops[HLLM_MAX_PARTS];
    int n_ops = 0;
    const act_state *src_st = multi && s->src != HLLM_ACT_NONE ? &e->ws->st[s->src] : NULL;
    if (s->kind == HLLM_OP_ROPE && sp->cut == HLLM_CUT_SLICE) { /* its heads: pointers into q and k */
        const int grp = hp->n_head / hp->n_head_kv;
        op.dst += part->r0 * hp->head_dim;
        op.src2 += part->r0 / grp * hp->head_dim;
        op.n_head = (int)(part->r1 - part->r0);
        op.n_head_kv = op.n_head / grp;
        ops[n_ops++] = op;
    } else if (s->kind == HLLM_OP_KV_STORE || s->kind == HLLM_OP_ATTENTION) {
        const kv_layer *kl = &e->kvl[s->layer];
        const int64_t a = sp->cut == HLLM_CUT_SLICE ? part->r0 : 0, b = sp->cut == HLLM_CUT_SLICE ? part->r1 : hp->n_head;
        const int grp = hp->n_head / hp->n_head_kv;
        for (int j = 0; j < kl->n; j++) { /* the segments of [a, b) (exec_new checked they tile it) */
            if (kl->h1[j] <= a || kl->h0[j] >= b) continue;
            hllm_op o = op;
            const int64_t h0 = kl->h0[j], nh = kl->h1[j] - kl->h0[j];
            o.kv = &kl->kv[j];
            o.n_head = (int)nh;
            o.n_head_kv = (int)(nh / grp);
            if (s->kind == HLLM_OP_KV_STORE) {
                o.src += h0 / grp * hp->head_dim;
                o.src2 += h0 / grp * hp->head_dim;
            } else {
                o.src += h0 * hp->head_dim;
                o.dst += h0 * hp->head_dim;
                o.h0 = 0;
                o.h1 = (int)nh;
            }
            ops[n_ops++] = o;
        }
    } else if (s->kind == HLLM_OP_ADD && src_st && src_st->partial) { /* the sums, in part order */
        for (int j = 0; j < src_st->n; j++) {
            ops[n_ops] = op;
            ops[n_ops].src = act[HLLM_ACT_PART0 + j];
            ops[n_ops++].ld_src = g->act_width[HLLM_ACT_PART0 + j];
        }
    } else
        ops[n_ops++] = op;
    if (multi) {
        e->ws->dirty[q] = true;
        if (is_host_proc(pr)) { /* for a device that may overwrite these buffers later */
            hllm_act rd[3], wr[2];
            int nr = step_reads(s, rd), nw = step_writes(s, wr);
            for (int j = 0; j < nr; j++) e->ws->touched[q][rd[j]] = true;
            for (int j = 0; j < nw; j++) e->ws->touched[q][wr[j]] = true;
            if (sp->cut == HLLM_CUT_COLS) e->ws->touched[q][HLLM_ACT_PART0 + k] = true;
            if (src_st && src_st->partial)
                for (int j = 0; j < src_st->n; j++) e->ws->touched[q][HLLM_ACT_PART0 + j] = true;
        }
        if (!issues(e, q)) return 0;
    }
    const bool tr = e->trace && e->trace_step >= 0 && is_host_proc(pr);
    double t0 = e->profiling || tr ? now_s() : 0;
    for (int j = 0; j < n_ops; j++)
        if (pr->ops->run(pr, &ops[j])) return -1;
    if (tr) e->trace_run[e->trace_step] += now_s() - t0;
    if (e->profiling) {
        pr->ops->finish(pr);
        e->op_secs[s->kind] += now_s() - t0;
        e->op_calls[s->kind]++;
    }
    return 0;
}

/* Step i of a walk over a multi-processor evaluation (i == n_steps: the gather of the logits on
 * the output processor), issuing the actions of the processors in e->issue. */
static int walk_step(hllm_exec *e, int i, const int32_t *tokens, int n, int pos0) {
    const hllm_graph *g = e->g;
    if (i == g->n_steps) return gather(e, HLLM_ACT_LOGITS, e->cur->out_proc);
    const hllm_step *s = &g->steps[i];
    const hllm_step_plan *sp = &e->cur->plan->steps[i];
    const int n_tok = s->last_only && !e->p.logits_all ? 1 : n;
    const double t0 = e->profiling && n == 1 ? now_s() : 0;
    /* Issue order, so that a queued processor (GPU) overlaps with a synchronous one (CPU):
     * 0. the copies host processors need from device processors are queued with their
     *    signals, the host-side waits deferred; 1. device processors get their inputs and
     *    their parts are queued; 2. host processors wait, then run their parts. */
    hllm_act rd[3], wr[2];
    int nr = step_reads(s, rd), nw = step_writes(s, wr);
    for (int pass = 0; pass < 3; pass++) {
        e->defer = pass == 0;
        if (pass == 2) {
            for (int d = 0; d < e->n_deferred; d++) wait_for(e, e->deferred[d].waiter, e->deferred[d].q, e->deferred[d].v);
            e->n_deferred = 0;
        }
        for (int k = 0; k < sp->n_parts; k++) {
            const int q = sp->parts[k].proc;
            if ((pass == 1) == is_host_proc(e->procs[q])) continue; /* passes 0, 2: host parts; 1: device */
            if (pass < 2) /* each part's own columns (a repeat finds them present) */
                for (int j = 0; j < nr; j++)
                    if (e->ws->st[rd[j]].n && gather_input(e, i, sp, k, rd[j])) return -1;
            if (pass == 0) continue;
            if (sp->cut == HLLM_CUT_COLS) before_write(e, q, q, HLLM_ACT_PART0 + k);
            else if (!(k > 0 && sp->parts[k - 1].proc == q))
                for (int j = 0; j < nw; j++) before_write(e, q, q, wr[j]);
            if (run_part(e, i, k, n, n_tok, pos0, tokens)) return -1;
        }
        e->defer = false;
    }
    for (int j = 0; j < nw; j++) set_written(e, i, sp, wr[j], n_tok);
    if (e->profiling && n == 1) e->step_secs[i] += now_s() - t0; /* each op ran to completion */
    return 0;
}

/* How many steps the device walk may run ahead of the host walk while its work is issued as it
 * goes: a queued processor's queue is finite (a GPU's launch queue holds ~1000 entries), and
 * issuing blocks when it is full, so the device must not wait for host flags behind more work
 * than that. */
#define DEVICE_LEAD_STEPS 12

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
                if (run_part(e, i, k, n, n_tok, pos0, tokens)) return -1;
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
    const int last = g->n_steps; /* walk_step(last): the logits */
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
        for (int i = 0; i <= last && !rc; i++) rc = walk_step(e, i, tokens, n, pos0);
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
        int i_dev = 0;
        for (int i_host = 0; i_host <= last && !rc; i_host++) {
            e->ws = &e->walks[0];
            e->issue = dev;
            const double t_dev = trace ? now_s() : 0;
            for (; i_dev <= last && !rc && (held || i_dev < i_host + DEVICE_LEAD_STEPS); i_dev++) {
                rc = walk_step(e, i_dev, tokens, n, pos0);
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
            if (trace) e->trace_step = i_host < last ? i_host : -1;
            if (!rc) rc = walk_step(e, i_host, tokens, n, pos0);
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
