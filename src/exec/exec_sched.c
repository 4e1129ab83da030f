/* What each step of an evaluation issues (see exec.c for the design): the activations a part
 * needs moved to its processor, the flags that order the moves, and the part's ops. */
#include "exec/exec_internal.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- flags ---- */

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
        st->n = sp->n_parts;
        for (int k = 0; k < sp->n_parts; k++) {
            const int q = sp->parts[k].proc;
            e->ws->st[HLLM_ACT_PART0 + k] =
                (act_state){.n = 1, .s = {{q, 0, e->g->act_width[HLLM_ACT_PART0 + k]}}, .have = {1u << q}, .rows = rows};
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
int exec_run_part(hllm_exec *e, int i, int k, int n, int n_tok, int pos0, const int32_t *tokens) {
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
        int64_t a, b;
        part_heads(sp, k, hp->n_head, &a, &b);
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

int exec_walk_step(hllm_exec *e, int i, const int32_t *tokens, int n, int pos0) {
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
            if (exec_run_part(e, i, k, n, n_tok, pos0, tokens)) return -1;
        }
        e->defer = false;
    }
    for (int j = 0; j < nw; j++) set_written(e, i, sp, wr[j], n_tok);
    if (e->profiling && n == 1) e->step_secs[i] += now_s() - t0; /* each op ran to completion */
    return 0;
}
