/* Small AVX-512 helpers shared by the AVX-512 matmul kernels (files built with AVX-512 flags
 * only: include this from *_avx512.c). */
#ifndef HLLM_CPU_AVX512_INL_H
#define HLLM_CPU_AVX512_INL_H
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define INL static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* the 4 bytes at p, as an int32 broadcast to every lane */
INL __m512i bcast32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}
/* the float at p, broadcast */
INL __m512 bcastf(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return _mm512_set1_ps(v);
}
/* 16 halves at p, as floats */
INL __m512 load_f16x16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

#endif
