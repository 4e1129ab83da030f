/* CPU matrix kernels: y[t][r] = dot(W row r, x[t]) for a row range and a batch of tokens.
 * The instruction set (scalar / AVX2 / AVX-512 / NEON) is chosen at run time from cpuid;
 * the scalar path is the reference. Threading is the caller's: each thread calls
 * hllm_cpu_matmul_rows for its own row range. */
#ifndef HLLM_CPU_MATMUL_H
#define HLLM_CPU_MATMUL_H
#include "core/types.h"

typedef enum { HLLM_ISA_SCALAR = 0, HLLM_ISA_AVX2 = 1, HLLM_ISA_AVX512 = 2, HLLM_ISA_NEON = 3 } hllm_isa;

/* Best instruction set this CPU and build support. */
hllm_isa hllm_cpu_isa_detect(void);
/* The set in use (defaults to the detected one; HLLM_ISA env var "scalar|avx2|avx512|neon" overrides). */
hllm_isa hllm_cpu_isa(void);
/* Forces a set (tests); returns -1 if this CPU/build cannot run it. */
int hllm_cpu_set_isa(hllm_isa isa);
const char *hllm_isa_name(hllm_isa isa);

/* A weight matrix prepared for the CPU: rows x cols of `type` (row-major, `data` in the file's
 * layout), optionally repacked into a kernel-friendly layout at init. */
typedef struct {
    int type;
    int64_t rows, cols;
    const void *data;
    size_t row_bytes;
    void *packed;      /* kernel-specific layout or NULL; owned */
    int packed_kind;
    size_t packed_map; /* bytes mapped for packed (hllm_huge_alloc), 0 if malloc'd */
} hllm_cpu_mat;

int hllm_cpu_mat_init(hllm_cpu_mat *m, int type, int64_t rows, int64_t cols, const void *data);
/* The same, repacking on the threads of `pool` (NULL: on this thread). */
struct hllm_pool;
int hllm_cpu_mat_init_pool(hllm_cpu_mat *m, int type, int64_t rows, int64_t cols, const void *data,
                           struct hllm_pool *pool);
void hllm_cpu_mat_free(hllm_cpu_mat *m);

/* Bytes of one activation row quantized for this matrix (see hllm_vec_dot_type). */
size_t hllm_cpu_act_row_bytes(const hllm_cpu_mat *m);
/* Quantizes one activation row (m->cols floats) into xq. */
void hllm_cpu_quantize_act(const hllm_cpu_mat *m, const float *x, void *xq);
/* y[t * ldy + r] = dot(row r, x_t) for r in [r0, r1), t in [0, n_tok); xq holds n_tok rows of
 * hllm_cpu_act_row_bytes(m) bytes each. */
void hllm_cpu_matmul_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok,
                          float *y, int64_t ldy);

/* Decode split by columns as well as rows (so that a few row stripes still keep every thread
 * busy): the number of column blocks a one-token product of m can be cut into, 0 if it cannot
 * (no such kernel for this type or instruction set); and the partial sums of rows [r0, r1) over
 * blocks [kb0, kb1) into y[r] (one token, xq quantized as for hllm_cpu_matmul_rows). */
int64_t hllm_cpu_gemv_kblocks(const hllm_cpu_mat *m);
void hllm_cpu_gemv_partial(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y);
/* Rows of a repacked stripe: a decode thread reading whole stripes streams whole lines */
#define HLLM_CPU_STRIPE_ROWS 64

/* Rows per repacked group: callers splitting rows across threads should use multiples of this
 * (any range works, but a group cut in two is computed twice). */
#define HLLM_CPU_ROW_ALIGN 16
/* Overrides the cache blocking (token chunk, float column chunk) to exercise edge paths in
 * tests; 0 restores the defaults. Not thread-safe against running kernels. */
void hllm_cpu_matmul_set_blocking(int token_chunk, int col_chunk);

#endif
