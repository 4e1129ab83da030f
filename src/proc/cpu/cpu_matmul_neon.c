/* NEON (aarch64) matmul kernels on the file's row-major layout: F32/F16/BF16 with FMA in f32,
 * Q4_0/Q8_0 against Q8_0 activations and Q4_K/Q6_K against Q8_K activations with int8 dots
 * (sdot where the build targets it, else smull/sadalp). Each weight block is decoded once and
 * used for up to 4 tokens; the K-quants' integer sums per block are exact (as on the scalar
 * path), only the f32 accumulation differs. Tested, not measured: `make arm` cross-compiles for
 * aarch64 and runs the unit tests under qemu-user, twice: -march=armv8-a (the smull/sadalp dots)
 * on an emulated Cortex-A57, and -march=armv8.2-a+dotprod (sdot) on qemu's "max" CPU.
 * test_matmul checks that every type has a kernel here and runs it against the scalar
 * reference (shapes, token counts, row ranges, one token vs the tile bit for bit); the
 * executor, model and CLI tests run on these kernels, and stories260K's greedy text must equal
 * the x86 build's. No ARM hardware has run them: no speed is known. The block decodes and
 * integer sums are cpu_neon_inl.h's. The decode column split (hllm_gemv_neon) runs the same
 * kernels over a range of a row's blocks. */
#include "proc/cpu/cpu_matmul_impl.h"
#include "proc/cpu/cpu_neon_inl.h"

/* Lanes 0..T-1 of acc (token t0 + t's dot product for one row) to y[t * ldy]. */
static inline void store_lanes(float32x4_t acc, int T, float *y, int64_t ldy) {
    float out[4];
    vst1q_f32(out, acc);
    for (int t = 0; t < T; t++) y[t * ldy] = out[t];
}

static void q8_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const uint8_t *xq, int n_tok, float *y,
                    int64_t ldy) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    const int q4 = m->type == HLLM_TYPE_Q4_0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc = vdupq_n_f32(0); /* lane t = token t0 + t */
            for (int64_t b = kb0; b < kb1; b++) {
                int8x16_t w0, w1;
                const float dw = q8_block_w(row, b, q4, &w0, &w1);
                float s[4] = {0, 0, 0, 0};
                for (int t = 0; t < T; t++) {
                    const uint8_t *xt = xq + (size_t)(t0 + t) * ag.row_bytes;
                    const hllm_block_q8_0 *xb = (const hllm_block_q8_0 *)xt + b;
                    float dx;
                    memcpy(&dx, xt + ag.ext + 4 * b, 4);
                    s[t] = (float)q8_block_dot(w0, w1, xb->qs) * dx;
                }
                acc = vfmaq_n_f32(acc, vld1q_f32(s), dw);
            }
            store_lanes(acc, T, y + t0 * ldy + r, ldy);
        }
    }
}

/* Q4_K against Q8_K: a block's 256 nibbles (0..15, as int8) are decoded once into 16 vectors
 * (vector 2j, 2j+1: sub-block j of 32 columns) and dotted with each token's int8 values. The
 * integer sums are exact, as on the scalar path: sumi = sum_j sc_j * dot_j, summ = sum_j m_j *
 * (activation sum of sub-block j, the extras' bsum32); then, per token lane, acc += dx * d *
 * sumi - dx * dmin * summ. */
static void q4_K_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const uint8_t *xq, int n_tok, float *y,
                      int64_t ldy) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    for (int64_t r = r0; r < r1; r++) {
        const hllm_block_q4_K *row = (const hllm_block_q4_K *)((const uint8_t *)m->data + (size_t)r * m->row_bytes);
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc = vdupq_n_f32(0); /* lane t = token t0 + t */
            for (int64_t b = kb0; b < kb1; b++) {
                const hllm_block_q4_K *blk = row + b;
                int8x16_t w[16];
                uint8_t sc[8];
                int16x8_t mins;
                q4_K_block_w(blk, w, sc, &mins);
                float si[4] = {0, 0, 0, 0}, sm[4] = {0, 0, 0, 0}, dx[4] = {0, 0, 0, 0};
                for (int t = 0; t < T; t++) {
                    const uint8_t *xt = xq + (size_t)(t0 + t) * ag.row_bytes;
                    const hllm_block_q8_K *xb = (const hllm_block_q8_K *)xt + b;
                    int32_t sumi, summ;
                    q4_K_block_sums(w, sc, mins, xb->qs, (const int16_t *)(xt + ag.ext) + 8 * b, &sumi, &summ);
                    si[t] = (float)sumi;
                    sm[t] = (float)summ;
                    dx[t] = xb->d;
                }
                const float32x4_t dxv = vld1q_f32(dx);
                acc = vfmaq_f32(acc, vmulq_n_f32(dxv, hllm_fp16_to_f32(blk->d)), vld1q_f32(si));
                acc = vfmsq_f32(acc, vmulq_n_f32(dxv, hllm_fp16_to_f32(blk->dmin)), vld1q_f32(sm));
            }
            store_lanes(acc, T, y + t0 * ldy + r, ldy);
        }
    }
}

/* Q6_K against Q8_K: a block's 256 6-bit values are decoded once into 16 vectors of q - 32
 * (q6_K_block_w) and dotted with each token's int8 values; sumi = sum_j scale_j * dot_j is
 * exact, then acc += dx * d * sumi per token lane. */
static void q6_K_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const uint8_t *xq, int n_tok, float *y,
                      int64_t ldy) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    for (int64_t r = r0; r < r1; r++) {
        const hllm_block_q6_K *row = (const hllm_block_q6_K *)((const uint8_t *)m->data + (size_t)r * m->row_bytes);
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc = vdupq_n_f32(0); /* lane t = token t0 + t */
            for (int64_t b = kb0; b < kb1; b++) {
                const hllm_block_q6_K *blk = row + b;
                int8x16_t w[16];
                q6_K_block_w(blk, w);
                float si[4] = {0, 0, 0, 0}, dx[4] = {0, 0, 0, 0};
                for (int t = 0; t < T; t++) {
                    const hllm_block_q8_K *xb = (const hllm_block_q8_K *)(xq + (size_t)(t0 + t) * ag.row_bytes) + b;
                    si[t] = (float)q6_K_block_sumi(w, blk->scales, xb->qs);
                    dx[t] = xb->d;
                }
                acc = vfmaq_f32(acc, vmulq_n_f32(vld1q_f32(dx), hllm_fp16_to_f32(blk->d)), vld1q_f32(si));
            }
            store_lanes(acc, T, y + t0 * ldy + r, ldy);
        }
    }
}

/* Columns [c0, c1) (c0 a multiple of 4): 4-wide FMA from c0, then the ragged end one by one. */
static void float_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const float *x, int n_tok,
                       float *y, int64_t ldy) {
    const size_t xs = hllm_cpu_act_row_bytes(m) / sizeof(float), es = m->type == HLLM_TYPE_F32 ? 4 : 2;
    const int64_t kv = c0 + ((c1 - c0) & ~(int64_t)3);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
            for (int64_t k = c0; k < kv; k += 4) {
                const float32x4_t w = load4(row + es * k, m->type);
                for (int t = 0; t < T; t++) acc[t] = vfmaq_f32(acc[t], w, vld1q_f32(x + (t0 + t) * xs + k));
            }
            for (int t = 0; t < T; t++) {
                float s = vaddvq_f32(acc[t]);
                for (int64_t k = kv; k < c1; k++) s += load1(row, k, m->type) * x[(t0 + t) * xs + k];
                y[(t0 + t) * ldy + r] = s;
            }
        }
    }
}

/* Columns of a float "block" for the column split: a unit to cut rows by, not a layout. */
#define FLOAT_BLOCK 32

/* Quant blocks of a row (32 columns for Q4_0 / Q8_0, 256 for the K-quants), FLOAT_BLOCK column
 * groups for the float types (the last one short when the row is); 0 without a kernel. */
int64_t hllm_gemv_neon_kblocks(const hllm_cpu_mat *m) {
    switch (m->type) {
    case HLLM_TYPE_F32:
    case HLLM_TYPE_F16:
    case HLLM_TYPE_BF16: return (m->cols + FLOAT_BLOCK - 1) / FLOAT_BLOCK;
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: return m->cols / 32;
    case HLLM_TYPE_Q4_K:
    case HLLM_TYPE_Q6_K: return m->cols / 256;
    default: return 0;
    }
}

/* Rows [r0, r1), blocks [kb0, kb1) of the row (kb1 < 0: all), n_tok tokens. */
static int rows_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, int n_tok,
                     float *y, int64_t ldy) {
    const int64_t kb = hllm_gemv_neon_kblocks(m);
    if (kb == 0) return 0;
    if (kb1 < 0) kb0 = 0, kb1 = kb;
    switch (m->type) {
    case HLLM_TYPE_F32:
    case HLLM_TYPE_F16:
    case HLLM_TYPE_BF16: {
        const int64_t c0 = kb0 * FLOAT_BLOCK < m->cols ? kb0 * FLOAT_BLOCK : m->cols;
        const int64_t c1 = kb1 * FLOAT_BLOCK < m->cols ? kb1 * FLOAT_BLOCK : m->cols;
        float_rows(m, r0, r1, c0, c1 > c0 ? c1 : c0, xq, n_tok, y, ldy);
        return 1;
    }
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: q8_rows(m, r0, r1, kb0, kb1, xq, n_tok, y, ldy); return 1;
    case HLLM_TYPE_Q4_K: q4_K_rows(m, r0, r1, kb0, kb1, xq, n_tok, y, ldy); return 1;
    default: q6_K_rows(m, r0, r1, kb0, kb1, xq, n_tok, y, ldy); return 1;
    }
}

int hllm_matmul_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                     int64_t ldy) {
    return rows_neon(m, r0, r1, 0, -1, xq, n_tok, y, ldy);
}

/* The decode column split is the same kernels over a block range, one token: blocks [0, kb)
 * give hllm_matmul_neon's one-token bits, pieces added up differ by summation order only. */
int hllm_gemv_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y) {
    return rows_neon(m, r0, r1, kb0, kb1, xq, 1, y, 0);
}
