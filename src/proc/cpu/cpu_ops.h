/* The CPU's non-matmul ops, each over a slice of its work so threads can share it. */
#ifndef HLLM_CPU_OPS_H
#define HLLM_CPU_OPS_H
#include "proc/proc.h"

/* Rows [i0, i1) of an RMS norm; w has dim floats. Rows are ld_src / ld_dst apart, but for
 * per-head norms (dim < ld) row i lives at (i / per_row) * ld + (i % per_row) * dim. */
void hllm_cpu_rmsnorm_rows(const hllm_op *op, const float *w, int64_t i0, int64_t i1);
/* Rotates tokens [t0, t1) of q and k. ff: per-dimension frequency divisors or NULL. */
void hllm_cpu_rope_tokens(const hllm_op *op, const float *ff, int t0, int t1);
/* Attention output for work items [i0, i1) of n_tok * (h1 - h0); scratch holds n_ctx floats. */
void hllm_cpu_attention_items(const hllm_op *op, int64_t i0, int64_t i1, float *scratch);
/* The SIMD paths (AVX2 on x86-64, NEON on aarch64): work items are (token, kv head) pairs over
 * n_tok * (h1 - h0) / group. fast_ok: the op fits them (head_dim a multiple of 8, within the
 * limits of their stack buffers, whole GQA groups in [h0, h1)). */
#define HLLM_ATTN_MAX_GROUP 16
#define HLLM_ATTN_MAX_HD 512
bool hllm_cpu_attention_fast_ok(const hllm_op *op);
#if defined(__x86_64__)
void hllm_cpu_attention_items_avx2(const hllm_op *op, int64_t i0, int64_t i1);
#endif
#if defined(__aarch64__)
void hllm_cpu_attention_items_neon(const hllm_op *op, int64_t i0, int64_t i1);
#endif
void hllm_cpu_kv_store_tokens(const hllm_op *op, int t0, int t1);
void hllm_cpu_swiglu_tokens(const hllm_op *op, int t0, int t1);
/* One row of n with AVX-512 (cpu_swiglu_avx512.c; x86-64 builds, callers check the ISA): the
 * scalar formula within 2e-7 relative. */
void hllm_cpu_swiglu_row_avx512(const float *g, const float *u, float *y, int64_t n);
void hllm_cpu_add_tokens(const hllm_op *op, int t0, int t1);

#endif
