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
 * the x86 build's. No ARM hardware has run them: no speed is known. */
#include "core/fp16.h"
#include "proc/cpu/cpu_matmul_impl.h"
#include <arm_neon.h>

static inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    /* pairs of |products| <= 128 * 127 fit int16 */
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_s8(p, vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(acc, p);
#endif
}

/* Lanes 0..T-1 of acc (token t0 + t's dot product for one row) to y[t * ldy]. */
static inline void store_lanes(float32x4_t acc, int T, float *y, int64_t ldy) {
    float out[4];
    vst1q_f32(out, acc);
    for (int t = 0; t < T; t++) y[t * ldy] = out[t];
}

static void q8_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const uint8_t *xq, int n_tok, float *y,
                    int64_t ldy) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    const int64_t nb = m->cols / 32;
    const int q4 = m->type == HLLM_TYPE_Q4_0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc = vdupq_n_f32(0); /* lane t = token t0 + t */
            for (int64_t b = 0; b < nb; b++) {
                int8x16_t w0, w1;
                float dw;
                if (q4) {
                    const hllm_block_q4_0 *blk = (const hllm_block_q4_0 *)row + b;
                    const uint8x16_t v = vld1q_u8(blk->qs);
                    const int8x16_t eight = vdupq_n_s8(8);
                    w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), eight);
                    w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
                    dw = hllm_fp16_to_f32(blk->d);
                } else {
                    const hllm_block_q8_0 *blk = (const hllm_block_q8_0 *)row + b;
                    w0 = vld1q_s8(blk->qs);
                    w1 = vld1q_s8(blk->qs + 16);
                    dw = hllm_fp16_to_f32(blk->d);
                }
                float s[4] = {0, 0, 0, 0};
                for (int t = 0; t < T; t++) {
                    const uint8_t *xt = xq + (size_t)(t0 + t) * ag.row_bytes;
                    const hllm_block_q8_0 *xb = (const hllm_block_q8_0 *)xt + b;
                    int32x4_t i = dot16(vdupq_n_s32(0), w0, vld1q_s8(xb->qs));
                    i = dot16(i, w1, vld1q_s8(xb->qs + 16));
                    float dx;
                    memcpy(&dx, xt + ag.ext + 4 * b, 4);
                    s[t] = (float)vaddvq_s32(i) * dx;
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
static void q4_K_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const uint8_t *xq, int n_tok, float *y,
                      int64_t ldy) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    const int64_t nb = m->cols / 256;
    const uint8x16_t m4 = vdupq_n_u8(15);
    for (int64_t r = r0; r < r1; r++) {
        const hllm_block_q4_K *row = (const hllm_block_q4_K *)((const uint8_t *)m->data + (size_t)r * m->row_bytes);
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc = vdupq_n_f32(0); /* lane t = token t0 + t */
            for (int64_t b = 0; b < nb; b++) {
                const hllm_block_q4_K *blk = row + b;
                int8x16_t w[16];
                for (int c = 0; c < 4; c++) {
                    const uint8x16_t v0 = vld1q_u8(blk->qs + 32 * c), v1 = vld1q_u8(blk->qs + 32 * c + 16);
                    w[4 * c + 0] = vreinterpretq_s8_u8(vandq_u8(v0, m4));
                    w[4 * c + 1] = vreinterpretq_s8_u8(vandq_u8(v1, m4));
                    w[4 * c + 2] = vreinterpretq_s8_u8(vshrq_n_u8(v0, 4));
                    w[4 * c + 3] = vreinterpretq_s8_u8(vshrq_n_u8(v1, 4));
                }
                uint8_t sc[8], mn[8];
                for (int j = 0; j < 8; j++) hllm_q4_K_get_scale_min(j, blk->scales, &sc[j], &mn[j]);
                const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
                float si[4] = {0, 0, 0, 0}, sm[4] = {0, 0, 0, 0}, dx[4] = {0, 0, 0, 0};
                for (int t = 0; t < T; t++) {
                    const uint8_t *xt = xq + (size_t)(t0 + t) * ag.row_bytes;
                    const hllm_block_q8_K *xb = (const hllm_block_q8_K *)xt + b;
                    int32x4_t isum = vdupq_n_s32(0);
                    for (int j = 0; j < 8; j++) {
                        int32x4_t i = dot16(vdupq_n_s32(0), w[2 * j], vld1q_s8(xb->qs + 32 * j));
                        i = dot16(i, w[2 * j + 1], vld1q_s8(xb->qs + 32 * j + 16));
                        isum = vmlaq_n_s32(isum, i, sc[j]);
                    }
                    const int16x8_t bs = vld1q_s16((const int16_t *)(xt + ag.ext) + 8 * b);
                    const int32x4_t ms = vmlal_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(bs)), vget_high_s16(mins),
                                                   vget_high_s16(bs));
                    si[t] = (float)vaddvq_s32(isum);
                    sm[t] = (float)vaddvq_s32(ms);
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
 * (-32..31, vector j = sub-block j of 16 columns, in the file's order: ql low / high nibbles
 * and qh bit pairs per 32-column quarter of each 128-column half) and dotted with each token's
 * int8 values; sumi = sum_j scale_j * dot_j is exact, then acc += dx * d * sumi per token lane. */
static void q6_K_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const uint8_t *xq, int n_tok, float *y,
                      int64_t ldy) {
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    const int64_t nb = m->cols / 256;
    const uint8x16_t m4 = vdupq_n_u8(15), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
    for (int64_t r = r0; r < r1; r++) {
        const hllm_block_q6_K *row = (const hllm_block_q6_K *)((const uint8_t *)m->data + (size_t)r * m->row_bytes);
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc = vdupq_n_f32(0); /* lane t = token t0 + t */
            for (int64_t b = 0; b < nb; b++) {
                const hllm_block_q6_K *blk = row + b;
                int8x16_t w[16];
                for (int h = 0; h < 2; h++)
                    for (int e = 0; e < 2; e++) { /* columns 128h + 16e + 32 * quarter + 0..15 */
                        const uint8x16_t l0 = vld1q_u8(blk->ql + 64 * h + 16 * e);
                        const uint8x16_t l1 = vld1q_u8(blk->ql + 64 * h + 32 + 16 * e);
                        const uint8x16_t qh = vld1q_u8(blk->qh + 32 * h + 16 * e);
                        const uint8x16_t q0 = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(qh, m3), 4));
                        const uint8x16_t q1 = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), m3), 4));
                        const uint8x16_t q2 = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), m3), 4));
                        const uint8x16_t q3 = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4));
                        w[8 * h + 0 + e] = vsubq_s8(vreinterpretq_s8_u8(q0), off);
                        w[8 * h + 2 + e] = vsubq_s8(vreinterpretq_s8_u8(q1), off);
                        w[8 * h + 4 + e] = vsubq_s8(vreinterpretq_s8_u8(q2), off);
                        w[8 * h + 6 + e] = vsubq_s8(vreinterpretq_s8_u8(q3), off);
                    }
                float si[4] = {0, 0, 0, 0}, dx[4] = {0, 0, 0, 0};
                for (int t = 0; t < T; t++) {
                    const hllm_block_q8_K *xb = (const hllm_block_q8_K *)(xq + (size_t)(t0 + t) * ag.row_bytes) + b;
                    int32x4_t isum = vdupq_n_s32(0);
                    for (int j = 0; j < 16; j++)
                        isum = vmlaq_n_s32(isum, dot16(vdupq_n_s32(0), w[j], vld1q_s8(xb->qs + 16 * j)), blk->scales[j]);
                    si[t] = (float)vaddvq_s32(isum);
                    dx[t] = xb->d;
                }
                acc = vfmaq_f32(acc, vmulq_n_f32(vld1q_f32(dx), hllm_fp16_to_f32(blk->d)), vld1q_f32(si));
            }
            store_lanes(acc, T, y + t0 * ldy + r, ldy);
        }
    }
}

static inline float32x4_t load4(const uint8_t *p, int type) {
    if (type == HLLM_TYPE_F32) return vld1q_f32((const float *)p);
    const uint16x4_t h = vld1_u16((const uint16_t *)p);
    if (type == HLLM_TYPE_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); /* bf16 */
}

static void float_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const float *x, int n_tok, float *y,
                       int64_t ldy) {
    const size_t xs = hllm_cpu_act_row_bytes(m) / sizeof(float), es = m->type == HLLM_TYPE_F32 ? 4 : 2;
    const int64_t kv = m->cols & ~(int64_t)3;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int t0 = 0; t0 < n_tok; t0 += 4) {
            const int T = n_tok - t0 < 4 ? n_tok - t0 : 4;
            float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
            for (int64_t k = 0; k < kv; k += 4) {
                const float32x4_t w = load4(row + es * k, m->type);
                for (int t = 0; t < T; t++) acc[t] = vfmaq_f32(acc[t], w, vld1q_f32(x + (t0 + t) * xs + k));
            }
            for (int t = 0; t < T; t++) {
                float s = vaddvq_f32(acc[t]);
                for (int64_t k = kv; k < m->cols; k++) {
                    float wk;
                    if (m->type == HLLM_TYPE_F32) memcpy(&wk, row + 4 * k, 4);
                    else {
                        uint16_t h;
                        memcpy(&h, row + 2 * k, 2);
                        wk = m->type == HLLM_TYPE_F16 ? hllm_fp16_to_f32(h) : hllm_bf16_to_f32(h);
                    }
                    s += wk * x[(t0 + t) * xs + k];
                }
                y[(t0 + t) * ldy + r] = s;
            }
        }
    }
}

int hllm_matmul_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                     int64_t ldy) {
    switch (m->type) {
    case HLLM_TYPE_F32:
    case HLLM_TYPE_F16:
    case HLLM_TYPE_BF16: float_rows(m, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: q8_rows(m, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_TYPE_Q4_K: q4_K_rows(m, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_TYPE_Q6_K: q6_K_rows(m, r0, r1, xq, n_tok, y, ldy); return 1;
    default: return 0;
    }
}
