/* NEON helpers of the aarch64 matmul kernels (cpu_matmul_neon.c; include from *_neon.c only):
 * the int8 dot, each weight type's block decode and integer block sums, on the file's row-major
 * layout. */
#ifndef HLLM_CPU_NEON_INL_H
#define HLLM_CPU_NEON_INL_H
#include "core/fp16.h"
#include "core/quant.h"
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

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

/* Block b of a Q4_0 (q4 != 0: nibbles less 8) or Q8_0 row as 32 int8 weights; returns its scale. */
static inline float q8_block_w(const uint8_t *row, int64_t b, int q4, int8x16_t *w0, int8x16_t *w1) {
    if (q4) {
        const hllm_block_q4_0 *blk = (const hllm_block_q4_0 *)row + b;
        const uint8x16_t v = vld1q_u8(blk->qs);
        const int8x16_t eight = vdupq_n_s8(8);
        *w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), eight);
        *w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
        return hllm_fp16_to_f32(blk->d);
    }
    const hllm_block_q8_0 *blk = (const hllm_block_q8_0 *)row + b;
    *w0 = vld1q_s8(blk->qs);
    *w1 = vld1q_s8(blk->qs + 16);
    return hllm_fp16_to_f32(blk->d);
}

/* The integer dot of a decoded Q4_0 / Q8_0 block with one token's 32 int8 activations. */
static inline int32_t q8_block_dot(int8x16_t w0, int8x16_t w1, const int8_t *x) {
    return vaddvq_s32(dot16(dot16(vdupq_n_s32(0), w0, vld1q_s8(x)), w1, vld1q_s8(x + 16)));
}

/* A Q4_K block's 256 nibbles (0..15, as int8) as 16 vectors (2j, 2j+1: sub-block j of 32
 * columns), its 6-bit sub-block scales and its mins (widened for the bsum products). */
static inline void q4_K_block_w(const hllm_block_q4_K *blk, int8x16_t w[16], uint8_t sc[8], int16x8_t *mins) {
    const uint8x16_t m4 = vdupq_n_u8(15);
    for (int c = 0; c < 4; c++) {
        const uint8x16_t v0 = vld1q_u8(blk->qs + 32 * c), v1 = vld1q_u8(blk->qs + 32 * c + 16);
        w[4 * c + 0] = vreinterpretq_s8_u8(vandq_u8(v0, m4));
        w[4 * c + 1] = vreinterpretq_s8_u8(vandq_u8(v1, m4));
        w[4 * c + 2] = vreinterpretq_s8_u8(vshrq_n_u8(v0, 4));
        w[4 * c + 3] = vreinterpretq_s8_u8(vshrq_n_u8(v1, 4));
    }
    uint8_t mn[8];
    for (int j = 0; j < 8; j++) hllm_q4_K_get_scale_min(j, blk->scales, &sc[j], &mn[j]);
    *mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
}

/* One token's exact integer sums for a decoded Q4_K block: *sumi = sum_j sc_j * dot_j over the
 * activation's int8 values x, *summ = sum_j m_j * bs_j (bs: the extras' 8 sub-block sums). */
static inline void q4_K_block_sums(const int8x16_t w[16], const uint8_t sc[8], int16x8_t mins, const int8_t *x,
                                   const int16_t *bs, int32_t *sumi, int32_t *summ) {
    int32x4_t isum = vdupq_n_s32(0);
    for (int j = 0; j < 8; j++) {
        int32x4_t i = dot16(vdupq_n_s32(0), w[2 * j], vld1q_s8(x + 32 * j));
        i = dot16(i, w[2 * j + 1], vld1q_s8(x + 32 * j + 16));
        isum = vmlaq_n_s32(isum, i, sc[j]);
    }
    const int16x8_t b = vld1q_s16(bs);
    const int32x4_t ms = vmlal_s16(vmull_s16(vget_low_s16(mins), vget_low_s16(b)), vget_high_s16(mins), vget_high_s16(b));
    *sumi = vaddvq_s32(isum);
    *summ = vaddvq_s32(ms);
}

/* A Q6_K block's 256 6-bit values as 16 vectors of q - 32 (-32..31, vector j = sub-block j of
 * 16 columns, in the file's order: ql low / high nibbles and qh bit pairs per 32-column
 * quarter of each 128-column half). */
static inline void q6_K_block_w(const hllm_block_q6_K *blk, int8x16_t w[16]) {
    const uint8x16_t m4 = vdupq_n_u8(15), m3 = vdupq_n_u8(3);
    const int8x16_t off = vdupq_n_s8(32);
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
}

/* One token's exact sum_j scale_j * dot_j for a decoded Q6_K block. */
static inline int32_t q6_K_block_sumi(const int8x16_t w[16], const int8_t *scales, const int8_t *x) {
    int32x4_t isum = vdupq_n_s32(0);
    for (int j = 0; j < 16; j++) isum = vmlaq_n_s32(isum, dot16(vdupq_n_s32(0), w[j], vld1q_s8(x + 16 * j)), scales[j]);
    return vaddvq_s32(isum);
}

/* 4 consecutive F32 / F16 / BF16 weights at p as floats; one at element k of row p. */
static inline float32x4_t load4(const uint8_t *p, int type) {
    if (type == HLLM_TYPE_F32) return vld1q_f32((const float *)p);
    const uint16x4_t h = vld1_u16((const uint16_t *)p);
    if (type == HLLM_TYPE_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); /* bf16 */
}
static inline float load1(const uint8_t *p, int64_t k, int type) {
    if (type == HLLM_TYPE_F32) {
        float w;
        memcpy(&w, p + 4 * k, 4);
        return w;
    }
    uint16_t h;
    memcpy(&h, p + 2 * k, 2);
    return type == HLLM_TYPE_F16 ? hllm_fp16_to_f32(h) : hllm_bf16_to_f32(h);
}

#endif
