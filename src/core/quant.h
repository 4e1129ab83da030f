/* Quantized block layouts, bit-exact with GGUF/ggml, and the scalar reference conversions
 * that every fast path is tested against. */
#ifndef HLLM_CORE_QUANT_H
#define HLLM_CORE_QUANT_H
#include "core/types.h"

#define HLLM_QK4_0 32
#define HLLM_QK8_0 32
#define HLLM_QK_K 256
#define HLLM_K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[HLLM_QK4_0 / 2]; } hllm_block_q4_0;
typedef struct { uint16_t d; int8_t qs[HLLM_QK8_0]; } hllm_block_q8_0;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[HLLM_K_SCALE_SIZE];
    uint8_t qs[HLLM_QK_K / 2];
} hllm_block_q4_K;
typedef struct {
    uint8_t ql[HLLM_QK_K / 2];
    uint8_t qh[HLLM_QK_K / 4];
    int8_t scales[HLLM_QK_K / 16];
    uint16_t d;
} hllm_block_q6_K;
typedef struct {
    float d;
    int8_t qs[HLLM_QK_K];
    int16_t bsums[HLLM_QK_K / 16];
} hllm_block_q8_K;

/* Scalar reference: n elements (a multiple of the type's block size) of a row of `type`
 * (F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K, Q8_K) to floats. */
void hllm_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Scalar reference quantization (ggml's reference quantizers: same blocks from the same input). */
void hllm_quantize_row(int type, const float *src, void *dst, int64_t n);
/* Scalar reference dot product of a weight row with an activation row that was quantized
 * to hllm_vec_dot_type(type). */
float hllm_vec_dot_ref(int type, const void *w, const void *xq, int64_t n);
/* The type activations are quantized to for dot products with weights of `type`:
 * Q8_0 for Q4_0/Q8_0, Q8_K for Q4_K/Q6_K, F32 for F32/F16/BF16. */
int hllm_vec_dot_type(int type);

/* Block accessors used by the kernels' repacking: the 6-bit scale and min of sub-block j (0..7)
 * of a Q4_K block, and the unsigned 6-bit value (0..63, i.e. q + 32) of element k of a Q6_K block. */
void hllm_q4_K_get_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m);
int hllm_q6_K_value(const hllm_block_q6_K *b, int k);

#endif
