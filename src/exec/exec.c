#include "exec/exec.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const hllm_tensor *t;
    int64_t r0, r1;
    int proc;
    hllm_pweight *pw;
} loaded_weight;

typedef struct {
    hllm_pweight *w[HLLM_MAX_PARTS];
    hllm_pweight *bias[HLLM_MAX_PARTS];
} step_weights;

struct hllm_exec {
    const hllm_model_s *m;
    const hllm_graph *g;
    const hllm_plan *plan;
    hllm_proc **procs;
    int n_procs;
    int proc;               /* the processor running every step (single-processor plans) */
    hllm_exec_params p;
    step_weights *sw;
    loaded_weight *loaded;
    int n_loaded;
    float *act[HLLM_ACT_COUNT];
    hllm_kv *kv;
    bool profiling;
    double op_secs[HLLM_OP_COUNT];
    long op_calls[HLLM_OP_COUNT];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Loads rows [r0, r1) of t on processor `proc` once; tied tensors share one copy. */
static hllm_pweight *load_once(hllm_exec *e, const hllm_tensor *t, int64_t r0, int64_t r1, int proc) {
    for (int i = 0; i < e->n_loaded; i++) {
        loaded_weight *l = &e->loaded[i];
        if (l->t->data == t->data && l->r0 == r0 && l->r1 == r1 && l->proc == proc) return l->pw;
    }
    hllm_proc *p = e->procs[proc];
    hllm_pweight *pw = p->ops->weight_load(p, t, r0, r1, HLLM_MEM_DEVICE);
    if (!pw) return NULL;
    e->loaded[e->n_loaded++] = (loaded_weight){t, r0, r1, proc, pw};
    return pw;
}

hllm_exec *hllm_exec_new(const hllm_model_s *m, const hllm_graph *g, const hllm_plan *plan, hllm_proc **procs,
                         int n_procs, const hllm_exec_params *p) {
    if (plan->n_steps != g->n_steps) {
        hllm_fail("the plan has %d steps but the model has %d", plan->n_steps, g->n_steps);
        return NULL;
    }
    /* This executor runs plans that keep all steps on one processor; cross-processor plans
     * (tensor-level splits) need the flag-synchronized executor. */
    int proc = plan->steps[0].parts[0].proc;
    for (int i = 0; i < plan->n_steps; i++) {
        const hllm_step_plan *sp = &plan->steps[i];
        if (sp->n_parts != 1 || sp->parts[0].proc != proc) {
            hllm_fail("step %d (%s): plans that split steps across processors are not supported yet", i, g->steps[i].label);
            return NULL;
        }
    }
    if (proc < 0 || proc >= n_procs) {
        hllm_fail("the plan names processor %d of %d", proc, n_procs);
        return NULL;
    }
    hllm_exec *e = calloc(1, sizeof *e);
    if (!e) {
        hllm_fail("out of memory");
        return NULL;
    }
    e->m = m;
    e->g = g;
    e->plan = plan;
    e->procs = procs;
    e->n_procs = n_procs;
    e->proc = proc;
    e->p = *p;
    hllm_proc *pr = procs[proc];
    e->sw = calloc((size_t)g->n_steps, sizeof *e->sw);
    e->loaded = calloc((size_t)g->n_steps * 2, sizeof *e->loaded);
    e->kv = calloc((size_t)m->hp.n_layer, sizeof *e->kv);
    if (!e->sw || !e->loaded || !e->kv) {
        hllm_fail("out of memory");
        goto fail;
    }
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        const hllm_part *part = &plan->steps[i].parts[0];
        if (s->w) {
            int64_t r0 = s->kind == HLLM_OP_MATMUL ? part->r0 : 0, r1 = s->kind == HLLM_OP_MATMUL ? part->r1 : s->w->rows;
            if (!(e->sw[i].w[0] = load_once(e, s->w, r0, r1, proc))) goto fail;
        }
        if (s->bias && !(e->sw[i].bias[0] = load_once(e, s->bias, 0, 1, proc))) goto fail;
        if (p->progress) p->progress((float)(i + 1) / (float)g->n_steps, p->progress_user);
    }
    for (int a = 0; a < HLLM_ACT_COUNT; a++) {
        size_t rows = (size_t)p->n_batch;
        if (a == HLLM_ACT_LOGITS && !p->logits_all) rows = 1;
        e->act[a] = pr->ops->alloc(pr, rows * (size_t)g->act_width[a] * sizeof(float), HLLM_MEM_DEVICE);
        if (!e->act[a]) goto fail;
    }
    const size_t kv_dim = (size_t)m->hp.n_head_kv * (size_t)m->hp.head_dim;
    const size_t elt = p->kv_type == HLLM_TYPE_F16 ? 2 : 4;
    for (int l = 0; l < m->hp.n_layer; l++) {
        e->kv[l].type = p->kv_type;
        e->kv[l].n_ctx = p->n_ctx;
        e->kv[l].k = pr->ops->alloc(pr, (size_t)p->n_ctx * kv_dim * elt, HLLM_MEM_DEVICE);
        e->kv[l].v = e->kv[l].k ? pr->ops->alloc(pr, (size_t)p->n_ctx * kv_dim * elt, HLLM_MEM_DEVICE) : NULL;
        if (!e->kv[l].v) goto fail;
    }
    return e;
fail:
    hllm_exec_free(e);
    return NULL;
}

void hllm_exec_free(hllm_exec *e) {
    if (!e) return;
    hllm_proc *pr = e->procs[e->proc];
    for (int i = 0; i < e->n_loaded; i++) {
        hllm_proc *p = e->procs[e->loaded[i].proc];
        p->ops->weight_free(p, e->loaded[i].pw);
    }
    for (int a = 0; a < HLLM_ACT_COUNT; a++)
        if (e->act[a]) pr->ops->free(pr, e->act[a]);
    if (e->kv)
        for (int l = 0; l < e->m->hp.n_layer; l++) {
            if (e->kv[l].k) pr->ops->free(pr, e->kv[l].k);
            if (e->kv[l].v) pr->ops->free(pr, e->kv[l].v);
        }
    free(e->kv);
    free(e->sw);
    free(e->loaded);
    free(e);
}

int hllm_exec_eval(hllm_exec *e, const int32_t *tokens, int n, int pos0, float *logits) {
    const hllm_hparams *hp = &e->m->hp;
    const hllm_graph *g = e->g;
    if (n <= 0 || n > e->p.n_batch) return hllm_fail("batch of %d tokens (must be 1..%d)", n, e->p.n_batch);
    if (pos0 < 0 || pos0 + n > e->p.n_ctx)
        return hllm_fail("the context is full: %d tokens at position %d exceed the context size %d", n, pos0, e->p.n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab) return hllm_fail("token id %d is out of range (vocab %d)", tokens[i], hp->n_vocab);
    hllm_proc *pr = e->procs[e->proc];
    /* the op sequence depends only on the batch size (pos0 and ids are step state) */
    const uint64_t shape = (uint64_t)n;
    if (pr->ops->step_begin && !e->profiling && pr->ops->step_begin(pr, shape, pos0, tokens, n)) return -1;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        const hllm_part *part = &e->plan->steps[i].parts[0];
        hllm_op op = {.kind = s->kind, .n_tok = n, .w = e->sw[i].w[0], .bias = e->sw[i].bias[0], .pos0 = pos0,
                      .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .eps = hp->rms_eps};
        int64_t src_off = 0;
        if (s->last_only && !e->p.logits_all) { /* only the last token's logits are wanted */
            op.n_tok = 1;
            if (s->src == HLLM_ACT_X) src_off = (int64_t)(n - 1) * g->act_width[s->src];
        }
        if (s->dst != HLLM_ACT_NONE) {
            op.dst = e->act[s->dst];
            op.ld_dst = g->act_width[s->dst];
        }
        if (s->src != HLLM_ACT_NONE) {
            op.src = e->act[s->src] + src_off;
            op.ld_src = g->act_width[s->src];
        }
        if (s->src2 != HLLM_ACT_NONE) {
            op.src2 = e->act[s->src2];
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
            break;
        case HLLM_OP_ROPE:
            op.n_rot = hp->n_rot;
            op.rope_type = hp->rope_type;
            op.freq_base = hp->rope_base;
            op.freq_scale = hp->rope_freq_scale;
            op.freq_factors = e->sw[i].w[0];
            op.w = NULL;
            break;
        case HLLM_OP_KV_STORE: op.kv = &e->kv[s->layer]; break;
        case HLLM_OP_ATTENTION:
            op.kv = &e->kv[s->layer];
            op.h0 = 0;
            op.h1 = hp->n_head;
            op.attn_scale = 1.0f / sqrtf((float)hp->head_dim);
            break;
        case HLLM_OP_SWIGLU:
        case HLLM_OP_ADD: op.dim = g->act_width[s->dst]; break;
        default: break;
        }
        double t0 = e->profiling ? now_s() : 0;
        if (pr->ops->run(pr, &op)) return -1;
        if (e->profiling) {
            pr->ops->finish(pr);
            e->op_secs[s->kind] += now_s() - t0;
            e->op_calls[s->kind]++;
        }
    }
    if (pr->ops->step_begin && !e->profiling && pr->ops->step_end(pr)) return -1;
    size_t n_out = e->p.logits_all ? (size_t)n : 1;
    if (pr->ops->copy_out(pr, logits, e->act[HLLM_ACT_LOGITS], n_out * (size_t)hp->n_vocab * sizeof(float))) return -1;
    return pr->ops->finish(pr);
}

void hllm_exec_op_times(const hllm_exec *e, double secs[HLLM_OP_COUNT], long calls[HLLM_OP_COUNT]) {
    memcpy(secs, e->op_secs, sizeof e->op_secs);
    memcpy(calls, e->op_calls, sizeof e->op_calls);
}

void hllm_exec_set_profiling(hllm_exec *e, bool on) { e->profiling = on; }
