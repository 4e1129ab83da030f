/* Attention with AVX2 + FMA + F16C: all query heads of a GQA group together so each K and V row
 * is loaded once per token, keys in blocks of 8 with an online softmax. A block's 8 scores come
 * out as one vector (8 dot products reduced by an hadd transpose), one max update per block
 * (so at most one rescale of the accumulator per block), the 8 exps by a vector exp (range
 * reduction as in cpu_swiglu_avx512.c), then V accumulated 8 rows at a time per 8 output lanes
 * (one load/store of the accumulator per block). With an F16 cache the block's K and V rows are
 * widened once into buffers shared by the group's heads. Matches the scalar
 * hllm_cpu_attention_items (the reference) up to float reassociation and exp's ~2e-7 error. */
#include "proc/cpu/cpu_attn_simd.h"
#include <immintrin.h>
#include <math.h>

#define MAX_GROUP ATTN_MAX_GROUP
#define MAX_HD ATTN_MAX_HD
#define BK ATTN_BK

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* exp(x) = 2^n e^r, n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts), e^r by its Taylor
 * series to r^6 (|r| <= ln2 / 2: error below 1.5e-7 relative). x is clamped to [-87, 88] so that
 * 2^n is a normal float built in the exponent field (n in [-126, 127]); below e^-87 (~1.6e-38)
 * the result is that floor instead of 0, far under anything a softmax sum can see. */
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* [sum(a0), ..., sum(a7)] */
static inline __m256 hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7) {
    const __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
    const __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* 8 f16 values widened to f32 (F16C) */
static inline void widen8(float *dst, const uint16_t *src) {
    _mm256_store_ps(dst, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src)));
}

void hllm_cpu_attention_items_avx2(const hllm_op *op, int64_t i0, int64_t i1) {
    const hllm_kv *kv = op->kv;
    const int hd = op->head_dim, group = op->n_head / op->n_head_kv;
    const int64_t kv_dim = (int64_t)op->n_head_kv * hd;
    const int g0 = op->h0 / group, ng = op->h1 / group - g0; /* kv heads in range */
    const bool f16 = kv->type == HLLM_TYPE_F16;
    _Alignas(32) float q[MAX_GROUP][MAX_HD], acc[MAX_GROUP][MAX_HD];
    _Alignas(32) float kbuf[BK][MAX_HD], vbuf[BK][MAX_HD]; /* an F16 block widened */
    float m[MAX_GROUP], l[MAX_GROUP];
    for (int64_t it = i0; it < i1; it++) {
        const int t = (int)(it / ng), kvh = g0 + (int)(it % ng);
        const int n_keys = op->pos0 + t + 1;
        attn_item_begin(op, t, kvh, group, f16, q, acc, m, l);
        for (int j0 = 0; j0 < n_keys; j0 += BK) {
            const int nb = n_keys - j0 < BK ? n_keys - j0 : BK;
            const float *kr[BK], *vr[BK];
            attn_block_rows(kv, j0, nb, kvh, hd, kv_dim, f16, widen8, kbuf, vbuf, kr, vr);
            /* lanes past the end: score -inf, weight 0 */
            const __m256 live = _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps((float)nb), _CMP_LT_OQ);
            for (int g = 0; g < group; g++) {
                __m256 a[BK]; /* one dot product per key: BK independent chains */
                for (int j = 0; j < BK; j++) a[j] = _mm256_setzero_ps();
                for (int i = 0; i < hd; i += 8) {
                    const __m256 qv = _mm256_load_ps(&q[g][i]);
                    for (int j = 0; j < BK; j++) a[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kr[j] + i), a[j]);
                }
                const __m256 dots = hsum8x8(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
                const __m256 s = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), dots, live);
                const float mb = hmax(s);
                if (mb > m[g]) { /* new maximum: rescale what was accumulated (once a block) */
                    const float corr = expf(m[g] - mb);
                    const __m256 c8 = _mm256_set1_ps(corr);
                    for (int i = 0; i < hd; i += 8) _mm256_store_ps(&acc[g][i], _mm256_mul_ps(_mm256_load_ps(&acc[g][i]), c8));
                    l[g] *= corr;
                    m[g] = mb;
                }
                const __m256 p = _mm256_and_ps(exp8(_mm256_sub_ps(s, _mm256_set1_ps(m[g]))), live);
                l[g] += hsum(p);
                _Alignas(32) float pw[BK];
                _mm256_store_ps(pw, p);
                __m256 pb[BK];
                for (int j = 0; j < BK; j++) pb[j] = _mm256_set1_ps(pw[j]);
                for (int i = 0; i < hd; i += 8) {
                    __m256 x = _mm256_load_ps(&acc[g][i]);
                    for (int j = 0; j < BK; j++) x = _mm256_fmadd_ps(pb[j], _mm256_loadu_ps(vr[j] + i), x);
                    _mm256_store_ps(&acc[g][i], x);
                }
            }
        }
        for (int g = 0; g < group; g++) {
            float *out = op->dst + (int64_t)t * op->ld_dst + (int64_t)(kvh * group + g) * hd;
            const __m256 inv = _mm256_set1_ps(1.0f / l[g]);
            for (int i = 0; i < hd; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_load_ps(&acc[g][i]), inv));
        }
    }
}
