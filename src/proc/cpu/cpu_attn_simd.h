/* What the SIMD attention kernels (cpu_attn_avx2.c, cpu_attn_neon.c) share besides their
 * intrinsics: an item's queries and softmax state, and a key block's K and V rows. One place for
 * the reference's semantics (q rounded to f16 with an F16 cache; rows past the end read zeros). */
#ifndef HLLM_CPU_ATTN_SIMD_H
#define HLLM_CPU_ATTN_SIMD_H
#include "proc/cpu/cpu_ops.h"
#include "core/fp16.h"
#include <math.h>

#define ATTN_MAX_GROUP HLLM_ATTN_MAX_GROUP
#define ATTN_MAX_HD HLLM_ATTN_MAX_HD
#define ATTN_BK 8 /* keys a block */

static _Alignas(64) const float attn_zero_row[ATTN_MAX_HD];

/* Queries of item (token t, kv head kvh): the group's heads scaled (and, with an F16 cache,
 * rounded to f16 first, as the reference and llama.cpp do); accumulators, maxima and sums reset. */
static inline void attn_item_begin(const hllm_op *op, int t, int kvh, int group, bool f16, float q[][ATTN_MAX_HD],
                                   float acc[][ATTN_MAX_HD], float *m, float *l) {
    const int hd = op->head_dim;
    for (int g = 0; g < group; g++) {
        const float *qs = op->src + (int64_t)t * op->ld_src + (int64_t)(kvh * group + g) * hd;
        for (int i = 0; i < hd; i++) q[g][i] = (f16 ? hllm_fp16_to_f32(hllm_f32_to_fp16(qs[i])) : qs[i]) * op->attn_scale;
        for (int i = 0; i < hd; i++) acc[g][i] = 0.0f;
        m[g] = -INFINITY;
        l[g] = 0.0f;
    }
}

/* The K and V rows of keys [j0, j0 + ATTN_BK) of kv head kvh (nb of them exist; the rest read
 * zeros): f32 rows in place, f16 rows widened by widen8 (8 values a call) into kbuf / vbuf. */
static inline void attn_block_rows(const hllm_kv *kv, int j0, int nb, int kvh, int hd, int64_t kv_dim, bool f16,
                                   void (*widen8)(float *dst, const uint16_t *src), float kbuf[][ATTN_MAX_HD],
                                   float vbuf[][ATTN_MAX_HD], const float *kr[ATTN_BK], const float *vr[ATTN_BK]) {
    for (int j = 0; j < ATTN_BK; j++) {
        const int64_t off = (int64_t)(j0 + j) * kv_dim + (int64_t)kvh * hd;
        if (j >= nb) {
            kr[j] = vr[j] = attn_zero_row;
        } else if (f16) {
            const uint16_t *ks = (const uint16_t *)kv->k + off, *vs = (const uint16_t *)kv->v + off;
            for (int i = 0; i < hd; i += 8) {
                widen8(&kbuf[j][i], ks + i);
                widen8(&vbuf[j][i], vs + i);
            }
            kr[j] = kbuf[j];
            vr[j] = vbuf[j];
        } else {
            kr[j] = (const float *)kv->k + off;
            vr[j] = (const float *)kv->v + off;
        }
    }
}

#endif
