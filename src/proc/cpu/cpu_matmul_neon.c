/* NEON (aarch64) matmul kernels on the file's row-major layout: F32/F16/BF16 with FMA in f32,
 * Q4_0/Q8_0 against Q8_0 activations with int8 dots (sdot where the build targets it).
 * Each weight block is decoded once and used for up to 4 tokens. K-quants take the scalar
 * path for now. Tested, not measured: `make arm` cross-compiles for aarch64 and runs the unit
 * tests under qemu-user, twice: -march=armv8-a (the smull/sadalp dots) on an emulated
 * Cortex-A57, and -march=armv8.2-a+dotprod (sdot) on qemu's "max" CPU. test_matmul runs every
 * type here against the scalar reference (shapes, token counts, row ranges, one token vs the
 * tile bit for bit); the executor, model and CLI tests run on these kernels, and stories260K's
 * greedy text must equal the x86 build's. No ARM hardware has run them: no speed is known. */
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
            float out[4];
            vst1q_f32(out, acc);
            for (int t = 0; t < T; t++) y[(t0 + t) * ldy + r] = out[t];
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
    default: return 0;
    }
}
