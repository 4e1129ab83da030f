/* Activation rows to Q8_K with AVX-512, bit for bit the scalar quant_q8_K (core/quant.c, the
 * reference): every Q4_K / Q6_K matmul quantizes its input, 7 a layer, and the scalar loop
 * was ~2.5% of a one-thread qwen2.5-1.5b decode. Same steps: the first value of largest
 * magnitude sets iscale = -127 / v, q = min(round-to-even(iscale * x), 127) (cvtps rounds as
 * the scalar cvtss), d = 1 / iscale; sums of 16 for bsums. */
#include "proc/cpu/cpu_matmul_impl.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

void hllm_quantize_q8_K_avx512(const float *x, void *dst, int64_t nb) {
    hllm_block_q8_K *b = dst;
    const __m512 sign = _mm512_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += HLLM_QK_K) {
        __m512 v[16], mx = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++) {
            v[k] = _mm512_loadu_ps(x + 16 * k);
            mx = _mm512_max_ps(mx, _mm512_andnot_ps(sign, v[k]));
        }
        const float amax = _mm512_reduce_max_ps(mx);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const __m512 am = _mm512_set1_ps(amax);
        float vmax = 0;
        for (int k = 0; k < 16; k++) {
            const __mmask16 e = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, v[k]), am, _CMP_EQ_OQ);
            if (e) {
                vmax = x[16 * k + __builtin_ctz(e)];
                break;
            }
        }
        const float iscale = -127.0f / vmax;
        const __m512 is = _mm512_set1_ps(iscale);
        const __m512i top = _mm512_set1_epi32(127);
        for (int k = 0; k < 16; k++) {
            const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(is, v[k])), top);
            _mm_storeu_si128((__m128i *)(b[i].qs + 16 * k), _mm512_cvtepi32_epi8(q));
            b[i].bsums[k] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        b[i].d = 1.0f / iscale;
    }
}
#endif
