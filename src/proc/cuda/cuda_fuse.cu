/* Which consecutive ops of a recorded decode step the CUDA processor may run as one kernel.
 *
 * The executor issues ops one by one; a captured step knows all of them before it is
 * launched, so it can merge neighbours without the executor or the model changing their order:
 *   - matmuls of one input (q/k/v; gate/up): one GEMV launch over up to three matrices;
 *   - a matmul followed by the residual ADD of its output into another buffer: the GEMV adds
 *     each result into that buffer as it stores it;
 *   - ROPE followed by the KV_STORE of its k: one kernel rotates q and k and stores k and v;
 *   - gate and up matmuls followed by SWIGLU: one kernel computes both rows and the product
 *     (and its q8_1 copy for the down matmul).
 * Each fusion computes every value with the same arithmetic as the ops run one by one, so a
 * fused step is bit-identical to the unfused one; the checks below only admit pairs whose
 * buffers do not overlap in a way that would make running them together differ from running
 * them in order. */
#include "proc/cuda/cuda_common.cuh"

/* The span of floats an op touches in a buffer: rows t < n_tok of ld floats, columns [c0, c1). */
struct span {
    const float *lo, *hi;
};

static span span_of(const float *p, int64_t ld, int n_tok, int64_t c0, int64_t c1) {
    span s;
    s.lo = p + c0;
    s.hi = p + (int64_t)(n_tok - 1) * ld + c1;
    return s;
}

static bool overlap(span a, span b) { return a.lo < b.hi && b.lo < a.hi; }

/* A matmul the GEMV path runs as is: a matrix, rows inside those held, some rows, decode-sized. */
static bool gemv_ok(const hllm_op *op, int gemv_max_tok) {
    const hllm_pweight *w = op->w;
    return op->kind == HLLM_OP_MATMUL && w && !w->vec && op->n_tok >= 1 && op->n_tok <= gemv_max_tok &&
           op->r0 >= w->row0 && op->r1 <= w->row0 + w->rows && op->r1 > op->r0 && op->src && op->dst;
}

static span mm_src(const hllm_op *op) { return span_of(op->src, op->ld_src, op->n_tok, 0, op->w->cols); }
static span mm_dst(const hllm_op *op) { return span_of(op->dst, op->ld_dst, op->n_tok, op->r0, op->r1); }

/* b joins the GEMV launch of a[0..n): same input, same kind of matrix, and no output of the
 * group overlaps the input or another output. */
static bool gemv_joins(const hllm_op *a, int n, const hllm_op *b, int gemv_max_tok) {
    if (!gemv_ok(b, gemv_max_tok) || b->src != a->src || b->ld_src != a->ld_src || b->n_tok != a->n_tok ||
        b->w->type != a->w->type || b->w->cols != a->w->cols)
        return false;
    const span in = mm_src(a), out = mm_dst(b);
    if (overlap(out, in)) return false;
    for (int i = 0; i < n; i++)
        if (overlap(mm_dst(&a[i]), in) || overlap(mm_dst(&a[i]), out)) return false;
    return true;
}

/* add is `add->dst += the matmul's whole output`: it reads exactly columns [0, dim) of the
 * matmul's dst, all of which the matmul writes, and its own dst is neither read nor written by
 * the matmul. */
static bool add_fuses(const hllm_op *mm, const hllm_op *add) {
    if (add->kind != HLLM_OP_ADD || add->src != mm->dst || add->ld_src != mm->ld_dst || add->n_tok != mm->n_tok ||
        mm->r0 != 0 || add->dim != mm->r1 || !add->dst)
        return false;
    const span d = span_of(add->dst, add->ld_dst, add->n_tok, 0, add->dim);
    return !overlap(d, mm_src(mm)) && !overlap(d, mm_dst(mm));
}

/* kv stores rope's rotated k (and a v no rotation touches) at rope's positions. */
static bool rope_kv_fuses(const hllm_op *rope, const hllm_op *kv) {
    if (kv->kind != HLLM_OP_KV_STORE || !kv->kv || kv->src != rope->src2 || kv->ld_src != rope->ld_src2 ||
        kv->n_tok != rope->n_tok || kv->pos0 != rope->pos0 || kv->n_head_kv != rope->n_head_kv ||
        kv->head_dim != rope->head_dim || !rope->dst || !rope->src2 || !kv->src2)
        return false;
    if (rope->head_dim % 2 || rope->n_rot % 2 || rope->n_rot > rope->head_dim || rope->n_rot < 2 || rope->n_tok < 1 ||
        rope->pos0 < 0 || rope->pos0 + rope->n_tok > kv->kv->n_ctx ||
        (kv->kv->type != HLLM_TYPE_F16 && kv->kv->type != HLLM_TYPE_F32))
        return false;
    const int64_t qd = (int64_t)rope->n_head * rope->head_dim, kd = (int64_t)rope->n_head_kv * rope->head_dim;
    const span q = span_of(rope->dst, rope->ld_dst, rope->n_tok, 0, qd);
    const span k = span_of(rope->src2, rope->ld_src2, rope->n_tok, 0, kd);
    const span v = span_of(kv->src2, kv->ld_src2, kv->n_tok, 0, kd);
    return !overlap(q, k) && !overlap(v, q) && !overlap(v, k);
}

/* gate (a[0]) and up (a[1], joining a[0]'s launch) cover rows [0, dim) of their outputs, and
 * sw is SWIGLU in place on gate's output with up's as its second input. */
static bool glu_fuses(const hllm_op *a, const hllm_op *sw) {
    const hllm_op *g = &a[0], *u = &a[1];
    if (sw->kind != HLLM_OP_SWIGLU || sw->dst != g->dst || sw->src != g->dst || sw->src2 != u->dst ||
        sw->ld_dst != g->ld_dst || sw->ld_src != g->ld_dst || sw->ld_src2 != u->ld_dst || sw->n_tok != g->n_tok ||
        g->r0 != 0 || u->r0 != 0 || g->r1 != sw->dim || u->r1 != sw->dim || g->w->row0 != 0 || u->w->row0 != 0)
        return false;
    return cu_gemv_glu_ok(cu_mat_of(g->w), sw->dim) && cu_gemv_glu_ok(cu_mat_of(u->w), sw->dim);
}

int cu_fuse_match(const hllm_op *ops, int n, int gemv_max_tok, bool glu, int *n_ops) {
    *n_ops = 1;
    if (n < 2) return CU_FUSE_NONE;
    const hllm_op *a = &ops[0];
    if (a->kind == HLLM_OP_MATMUL && gemv_ok(a, gemv_max_tok)) {
        if (glu && n >= 3 && gemv_joins(a, 1, &ops[1], gemv_max_tok) && glu_fuses(a, &ops[2])) {
            *n_ops = 3;
            return CU_FUSE_GLU;
        }
        int k = 1;
        while (k < n && k < CU_MAX_SEGS && gemv_joins(a, k, &ops[k], gemv_max_tok)) k++;
        if (k > 1) {
            *n_ops = k;
            return CU_FUSE_GEMV;
        }
        if (add_fuses(a, &ops[1])) {
            *n_ops = 2;
            return CU_FUSE_GEMV_ADD;
        }
    } else if (a->kind == HLLM_OP_ROPE && rope_kv_fuses(a, &ops[1])) {
        *n_ops = 2;
        return CU_FUSE_ROPE_KV;
    }
    return CU_FUSE_NONE;
}
