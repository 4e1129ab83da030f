/* Attention with AVX2 + FMA + F16C: one pass over the keys with an online softmax, all query
 * heads of a GQA group together so each K and V row is loaded once per token. Matches the
 * scalar hllm_cpu_attention_items (the reference) up to float reassociation. */
#include "proc/cpu/cpu_ops.h"
#include "core/fp16.h"
#include <immintrin.h>
#include <math.h>

#define MAX_GROUP 16
#define MAX_HD 512

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load8(const void *base, int64_t i, bool f16) {
    if (f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

bool hllm_cpu_attention_fast_ok(const hllm_op *op) {
    const int group = op->n_head / op->n_head_kv;
    return op->head_dim % 8 == 0 && op->head_dim <= MAX_HD && group <= MAX_GROUP && op->h0 % group == 0 &&
           op->h1 % group == 0;
}

void hllm_cpu_attention_items_avx2(const hllm_op *op, int64_t i0, int64_t i1) {
    const hllm_kv *kv = op->kv;
    const int hd = op->head_dim, group = op->n_head / op->n_head_kv;
    const int64_t kv_dim = (int64_t)op->n_head_kv * hd;
    const int g0 = op->h0 / group, ng = op->h1 / group - g0; /* kv heads in range */
    const bool f16 = kv->type == HLLM_TYPE_F16;
    const size_t elt = f16 ? 2 : 4;
    _Alignas(32) float q[MAX_GROUP][MAX_HD], acc[MAX_GROUP][MAX_HD];
    float m[MAX_GROUP], l[MAX_GROUP];
    for (int64_t it = i0; it < i1; it++) {
        const int t = (int)(it / ng), kvh = g0 + (int)(it % ng);
        const int n_keys = op->pos0 + t + 1;
        for (int g = 0; g < group; g++) {
            const float *qs = op->src + (int64_t)t * op->ld_src + (int64_t)(kvh * group + g) * hd;
            /* with an F16 cache q is rounded to f16, as in the reference (and llama.cpp) */
            for (int i = 0; i < hd; i++) q[g][i] = (f16 ? hllm_fp16_to_f32(hllm_f32_to_fp16(qs[i])) : qs[i]) * op->attn_scale;
            for (int i = 0; i < hd; i++) acc[g][i] = 0.0f;
            m[g] = -INFINITY;
            l[g] = 0.0f;
        }
        const char *kbase = (const char *)kv->k + (size_t)kvh * hd * elt;
        const char *vbase = (const char *)kv->v + (size_t)kvh * hd * elt;
        for (int j = 0; j < n_keys; j++) {
            const void *kj = kbase + (size_t)j * kv_dim * elt, *vj = vbase + (size_t)j * kv_dim * elt;
            for (int g = 0; g < group; g++) {
                __m256 s = _mm256_setzero_ps();
                for (int i = 0; i < hd; i += 8) s = _mm256_fmadd_ps(_mm256_load_ps(&q[g][i]), load8(kj, i, f16), s);
                const float sc = hsum(s);
                float p;
                if (sc > m[g]) { /* new maximum: rescale what was accumulated */
                    const float corr = expf(m[g] - sc);
                    const __m256 c8 = _mm256_set1_ps(corr);
                    for (int i = 0; i < hd; i += 8) _mm256_store_ps(&acc[g][i], _mm256_mul_ps(_mm256_load_ps(&acc[g][i]), c8));
                    l[g] *= corr;
                    m[g] = sc;
                    p = 1.0f;
                } else {
                    p = expf(sc - m[g]);
                }
                l[g] += p;
                const __m256 p8 = _mm256_set1_ps(p);
                for (int i = 0; i < hd; i += 8)
                    _mm256_store_ps(&acc[g][i], _mm256_fmadd_ps(p8, load8(vj, i, f16), _mm256_load_ps(&acc[g][i])));
            }
        }
        for (int g = 0; g < group; g++) {
            float *out = op->dst + (int64_t)t * op->ld_dst + (int64_t)(kvh * group + g) * hd;
            const __m256 inv = _mm256_set1_ps(1.0f / l[g]);
            for (int i = 0; i < hd; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_load_ps(&acc[g][i]), inv));
        }
    }
}
