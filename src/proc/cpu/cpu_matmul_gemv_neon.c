/* NEON one-token partial sums for the decode column split (hllm_cpu_gemv_partial): rows
 * [r0, r1) over column blocks [kb0, kb1) of the file's row-major layout, which any block range
 * can be read from, so every type of the NEON matmul splits. A block is the type's quant block
 * (32 columns for Q4_0 / Q8_0, 256 for the K-quants) and 32 columns for the float types (the
 * last one short when the row is). Per block the integer sums and float steps are the
 * multi-token kernels' (cpu_neon_inl.h), in the same order, so blocks [0, kb) give
 * hllm_cpu_matmul_rows' one-token bits; a split's pieces added up differ by summation order
 * only. Tested under qemu, not measured: no ARM hardware has run it. */
#include "proc/cpu/cpu_matmul_impl.h"
#include "proc/cpu/cpu_neon_inl.h"
#include <math.h>

/* Columns of a float "block": a unit to cut rows by, not a layout. */
#define FLOAT_BLOCK 32

static void q8_partial(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const uint8_t *xq,
                       float *y) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    const hllm_block_q8_0 *xb = (const hllm_block_q8_0 *)xq;
    const float *xd = (const float *)(xq + ag.ext);
    const int q4 = m->type == HLLM_TYPE_Q4_0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        float acc = 0;
        for (int64_t b = kb0; b < kb1; b++) {
            int8x16_t w0, w1;
            const float dw = q8_block_w(row, b, q4, &w0, &w1);
            acc = fmaf((float)q8_block_dot(w0, w1, xb[b].qs) * xd[b], dw, acc);
        }
        y[r] = acc;
    }
}

static void q4_K_partial(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const uint8_t *xq,
                         float *y) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    const hllm_block_q8_K *xb = (const hllm_block_q8_K *)xq;
    const int16_t *bs = (const int16_t *)(xq + ag.ext);
    for (int64_t r = r0; r < r1; r++) {
        const hllm_block_q4_K *row = (const hllm_block_q4_K *)((const uint8_t *)m->data + (size_t)r * m->row_bytes);
        float acc = 0;
        for (int64_t b = kb0; b < kb1; b++) {
            int8x16_t w[16];
            uint8_t sc[8];
            int16x8_t mins;
            q4_K_block_w(row + b, w, sc, &mins);
            int32_t sumi, summ;
            q4_K_block_sums(w, sc, mins, xb[b].qs, bs + 8 * b, &sumi, &summ);
            acc = fmaf(xb[b].d * hllm_fp16_to_f32(row[b].d), (float)sumi, acc);
            acc = fmaf(-(xb[b].d * hllm_fp16_to_f32(row[b].dmin)), (float)summ, acc);
        }
        y[r] = acc;
    }
}

static void q6_K_partial(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const uint8_t *xq,
                         float *y) {
    const hllm_block_q8_K *xb = (const hllm_block_q8_K *)xq;
    for (int64_t r = r0; r < r1; r++) {
        const hllm_block_q6_K *row = (const hllm_block_q6_K *)((const uint8_t *)m->data + (size_t)r * m->row_bytes);
        float acc = 0;
        for (int64_t b = kb0; b < kb1; b++) {
            int8x16_t w[16];
            q6_K_block_w(row + b, w);
            acc = fmaf(xb[b].d * hllm_fp16_to_f32(row[b].d), (float)q6_K_block_sumi(w, row[b].scales, xb[b].qs), acc);
        }
        y[r] = acc;
    }
}

/* Columns [c0, c1): 4-wide FMA from c0, then the ragged end one by one (c0 is a multiple of 4,
 * and with the whole row this is the multi-token kernel's order). */
static void float_partial(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const float *x,
                          float *y) {
    const size_t es = m->type == HLLM_TYPE_F32 ? 4 : 2;
    const int64_t kv = c0 + ((c1 - c0) & ~(int64_t)3);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        float32x4_t acc = vdupq_n_f32(0);
        for (int64_t k = c0; k < kv; k += 4) acc = vfmaq_f32(acc, load4(row + es * k, m->type), vld1q_f32(x + k));
        float s = vaddvq_f32(acc);
        for (int64_t k = kv; k < c1; k++) s += load1(row, k, m->type) * x[k];
        y[r] = s;
    }
}

int64_t hllm_gemv_neon_kblocks(const hllm_cpu_mat *m) {
    switch (m->type) {
    case HLLM_TYPE_F32:
    case HLLM_TYPE_F16:
    case HLLM_TYPE_BF16: return (m->cols + FLOAT_BLOCK - 1) / FLOAT_BLOCK;
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: return m->cols / 32;
    case HLLM_TYPE_Q4_K:
    case HLLM_TYPE_Q6_K: return m->cols / 256;
    default: return 0; /* no NEON kernel: the scalar path only dots whole rows */
    }
}

int hllm_gemv_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y) {
    const int64_t kb = hllm_gemv_neon_kblocks(m);
    if (kb == 0) return 0;
    if (kb1 < 0) kb0 = 0, kb1 = kb;
    switch (m->type) {
    case HLLM_TYPE_F32:
    case HLLM_TYPE_F16:
    case HLLM_TYPE_BF16: {
        const int64_t c0 = kb0 * FLOAT_BLOCK < m->cols ? kb0 * FLOAT_BLOCK : m->cols;
        const int64_t c1 = kb1 * FLOAT_BLOCK < m->cols ? kb1 * FLOAT_BLOCK : m->cols;
        float_partial(m, r0, r1, c0, c1 > c0 ? c1 : c0, xq, y);
        return 1;
    }
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: q8_partial(m, r0, r1, kb0, kb1, xq, y); return 1;
    case HLLM_TYPE_Q4_K: q4_K_partial(m, r0, r1, kb0, kb1, xq, y); return 1;
    default: q6_K_partial(m, r0, r1, kb0, kb1, xq, y); return 1;
    }
}
