/* Attention with NEON (aarch64 baseline: no fp16 arithmetic, no dotprod), the counterpart of
 * cpu_attn_avx2.c with the same items (token, kv head) and structure: all query heads of a GQA
 * group together so each K and V row is loaded once per token, keys in blocks of 8 (two 4-lane
 * score vectors) with an online softmax, one max update per block, a vector exp with exp8's
 * range reduction and clamp, then V accumulated 8 rows at a time per 4 output lanes. With an
 * F16 cache the block's K and V rows are widened once (vcvt_f32_f16) into buffers shared by the
 * group's heads. Matches the scalar hllm_cpu_attention_items (the reference) up to float
 * reassociation and exp's ~2e-7 error. Tested under qemu (make arm), not measured on hardware. */
#if defined(__aarch64__)
#include "proc/cpu/cpu_attn_simd.h"
#include <arm_neon.h>
#include <math.h>

#define MAX_GROUP ATTN_MAX_GROUP
#define MAX_HD ATTN_MAX_HD
#define BK ATTN_BK

/* exp(x) as exp8 in cpu_attn_avx2.c: 2^n e^r, n = round(x log2 e) (ties to even, as
 * _mm256_round_ps), r = x - n ln 2 (ln 2 in two parts), e^r to r^6; x clamped to [-87, 88] so
 * 2^n is a normal float built in the exponent field. */
static inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0f)), vdupq_n_f32(88.0f));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693145751953125f));
    r = vfmsq_f32(r, n, vdupq_n_f32(1.428606765330187e-06f));
    float32x4_t p = vdupq_n_f32(1.0f / 720);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

/* [sum(a0), sum(a1), sum(a2), sum(a3)] */
static inline float32x4_t hsum4x4(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    return vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
}

/* 8 f16 values widened to f32 */
static inline void widen8(float *dst, const uint16_t *src) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(src));
    vst1q_f32(dst, vcvt_f32_f16(vget_low_f16(h)));
    vst1q_f32(dst + 4, vcvt_high_f32_f16(h));
}

void hllm_cpu_attention_items_neon(const hllm_op *op, int64_t i0, int64_t i1) {
    const hllm_kv *kv = op->kv;
    const int hd = op->head_dim, group = op->n_head / op->n_head_kv;
    const int64_t kv_dim = (int64_t)op->n_head_kv * hd;
    const int g0 = op->h0 / group, ng = op->h1 / group - g0; /* kv heads in range */
    const bool f16 = kv->type == HLLM_TYPE_F16;
    _Alignas(16) float q[MAX_GROUP][MAX_HD], acc[MAX_GROUP][MAX_HD];
    _Alignas(16) float kbuf[BK][MAX_HD], vbuf[BK][MAX_HD]; /* an F16 block widened */
    float m[MAX_GROUP], l[MAX_GROUP];
    static const uint32_t lane_idx[BK] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int64_t it = i0; it < i1; it++) {
        const int t = (int)(it / ng), kvh = g0 + (int)(it % ng);
        const int n_keys = op->pos0 + t + 1;
        attn_item_begin(op, t, kvh, group, f16, q, acc, m, l);
        for (int j0 = 0; j0 < n_keys; j0 += BK) {
            const int nb = n_keys - j0 < BK ? n_keys - j0 : BK;
            const float *kr[BK], *vr[BK];
            attn_block_rows(kv, j0, nb, kvh, hd, kv_dim, f16, widen8, kbuf, vbuf, kr, vr);
            /* lanes past the end: score -inf, weight 0 (keys 0-3 in *_lo, 4-7 in *_hi) */
            const uint32x4_t nbv = vdupq_n_u32((uint32_t)nb);
            const uint32x4_t live_lo = vcltq_u32(vld1q_u32(lane_idx), nbv);
            const uint32x4_t live_hi = vcltq_u32(vld1q_u32(lane_idx + 4), nbv);
            const float32x4_t ninf = vdupq_n_f32(-INFINITY);
            for (int g = 0; g < group; g++) {
                float32x4_t a[BK]; /* one dot product per key: BK independent chains */
                for (int j = 0; j < BK; j++) a[j] = vdupq_n_f32(0.0f);
                for (int i = 0; i < hd; i += 4) {
                    const float32x4_t qv = vld1q_f32(&q[g][i]);
                    for (int j = 0; j < BK; j++) a[j] = vfmaq_f32(a[j], qv, vld1q_f32(kr[j] + i));
                }
                const float32x4_t s_lo = vbslq_f32(live_lo, hsum4x4(a[0], a[1], a[2], a[3]), ninf);
                const float32x4_t s_hi = vbslq_f32(live_hi, hsum4x4(a[4], a[5], a[6], a[7]), ninf);
                const float mb = vmaxvq_f32(vmaxq_f32(s_lo, s_hi));
                if (mb > m[g]) { /* new maximum: rescale what was accumulated (once a block) */
                    const float corr = expf(m[g] - mb);
                    const float32x4_t c4 = vdupq_n_f32(corr);
                    for (int i = 0; i < hd; i += 4) vst1q_f32(&acc[g][i], vmulq_f32(vld1q_f32(&acc[g][i]), c4));
                    l[g] *= corr;
                    m[g] = mb;
                }
                const float32x4_t mv = vdupq_n_f32(m[g]);
                const float32x4_t p_lo = vreinterpretq_f32_u32(
                    vandq_u32(vreinterpretq_u32_f32(exp4(vsubq_f32(s_lo, mv))), live_lo));
                const float32x4_t p_hi = vreinterpretq_f32_u32(
                    vandq_u32(vreinterpretq_u32_f32(exp4(vsubq_f32(s_hi, mv))), live_hi));
                l[g] += vaddvq_f32(vaddq_f32(p_lo, p_hi));
                for (int i = 0; i < hd; i += 4) {
                    float32x4_t x = vld1q_f32(&acc[g][i]);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[0] + i), p_lo, 0);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[1] + i), p_lo, 1);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[2] + i), p_lo, 2);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[3] + i), p_lo, 3);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[4] + i), p_hi, 0);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[5] + i), p_hi, 1);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[6] + i), p_hi, 2);
                    x = vfmaq_laneq_f32(x, vld1q_f32(vr[7] + i), p_hi, 3);
                    vst1q_f32(&acc[g][i], x);
                }
            }
        }
        for (int g = 0; g < group; g++) {
            float *out = op->dst + (int64_t)t * op->ld_dst + (int64_t)(kvh * group + g) * hd;
            const float32x4_t inv = vdupq_n_f32(1.0f / l[g]);
            for (int i = 0; i < hd; i += 4) vst1q_f32(out + i, vmulq_f32(vld1q_f32(&acc[g][i]), inv));
        }
    }
}
#endif
