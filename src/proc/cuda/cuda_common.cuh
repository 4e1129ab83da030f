/* Internal to the CUDA processor: weight layouts, launch parameters and the kernels' host
 * entry points. CUDA C++; never included from the engine's C files. */
#ifndef HLLM_CUDA_COMMON_CUH
#define HLLM_CUDA_COMMON_CUH
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stddef.h>

extern "C" {
#include "proc/proc.h"
#include "core/error.h"
#include "core/quant.h"
}

/* How a matrix is laid out in memory on the device (or in mapped host memory).
 * RAW:  the file's rows (F32, F16, BF16, Q4_K).
 * SOA:  Q4_0 / Q8_0 split into quants ([rows][nb][16 or 32] bytes, 16-byte aligned units)
 *       followed by the scales ([rows][nb] halves).
 * Q6K:  Q6_K blocks without d ([rows][nb][208]: ql 128, qh 64, scales 16, 16-byte aligned)
 *       followed by the d scales ([rows][nb] halves). */
enum { CU_LAYOUT_RAW = 0, CU_LAYOUT_SOA = 1, CU_LAYOUT_Q6K = 2 };

#define CU_Q6K_BYTES 208

struct hllm_pweight {
    int type, layout;
    int64_t rows, cols, row0; /* rows held, from global row row0 */
    size_t row_bytes;         /* RAW: bytes per row; SOA/Q6K: quant bytes per row */
    void *data;               /* matrices: device pointer (or mapped host pointer) */
    const __half *d;          /* SOA/Q6K: the scales, [rows][nb] */
    float *vec;               /* vectors (rows == 1): f32 */
    bool host;                /* data lives in pinned mapped host memory */
};

/* A matrix as the kernels see it. */
struct cu_mat {
    int type, layout;
    int64_t rows, cols, nb; /* nb: 32-element units per row */
    size_t row_bytes;
    const uint8_t *data;
    const __half *d;
};

static inline cu_mat cu_mat_of(const hllm_pweight *w) {
    cu_mat m;
    m.type = w->type;
    m.layout = w->layout;
    m.rows = w->rows;
    m.cols = w->cols;
    m.nb = w->cols / 32;
    m.row_bytes = w->row_bytes;
    m.data = (const uint8_t *)w->data;
    m.d = w->d;
    return m;
}

static inline bool cu_type_quantized(int type) {
    return type == HLLM_TYPE_Q4_0 || type == HLLM_TYPE_Q8_0 || type == HLLM_TYPE_Q4_K || type == HLLM_TYPE_Q6_K;
}

/* The step state of a captured decode step (proc.h step_begin): written with one async copy
 * before each replay; kernels captured into a graph read pos0 and the ids from it. Kernels
 * issued eagerly get NULL and use their arguments. */
struct cu_dstate {
    int32_t pos0, n_tok, pad[2];
    int32_t tok[8];
};

/* SMs of the device in use (set when the processor is created): sizes GEMV grids. */
extern int cu_n_sm;

/* Programmatic dependent launch (compute capability 9.0+; HLLM_CUDA_PDL=0 turns it off): each
 * kernel may be scheduled while the one before it still runs, and waits at its start
 * (cu_pdl_wait, before touching memory) until that one has finished and its writes are
 * visible. This hides the launch and ramp-up of the hundreds of small kernels of a decode
 * step. Every kernel launched through cu_launch must begin with cu_pdl_wait(). */
extern bool cu_pdl;
/* Set per op by the processor: PDL only for decode-sized ops (n_tok <= 8); on prefill's large
 * grids the early-scheduled blocks cost more than they save (pp512 -12% measured on H100). */
extern bool cu_pdl_op;

static __device__ __forceinline__ void cu_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#ifdef HLLM_PDL_EARLY /* experiment: let the next kernel start before this one's wait is over */
    asm volatile("griddepcontrol.launch_dependents;" :::);
    asm volatile("griddepcontrol.wait;" ::: "memory");
#else
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
#endif
}

template <typename... KArgs, typename... Args>
static inline void cu_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                             Args &&...args) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cfg.attrs = at;
    cfg.numAttrs = cu_pdl && cu_pdl_op ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kernel, static_cast<Args &&>(args)...); /* errors: CU_LAUNCHED */
}

/* A 16-byte load of weights that does not allocate in L1: each weight is read once, and the L1
 * is left to the activation row every warp of the SM rereads (F16 decode on H100: with
 * 4 warps a row, 135.6 -> 157.3 tok/s for llama3-8b). */
static __device__ __forceinline__ int4 ld16w(const void *p) {
    int4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}
/* Quantizes one 32-element unit held one element per lane of a whole warp (v = element lane)
 * to q8_1 style: q[lane] = round(v / d), ds = (d, d * sum q), d = amax / 127. Every kernel that
 * quantizes activations uses this one function, so fused and separate paths agree bit for bit. */
static __device__ __forceinline__ void cu_quant_unit(float v, int8_t *q, float2 *ds, int lane) {
    float amax = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f;
    const int qi = amax > 0.0f ? __float2int_rn(v / d) : 0;
    int s = qi;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    *q = (int8_t)qi;
    if (lane == 0) *ds = make_float2(d, d * (float)s);
}

/* The grid of an element-wise kernel over n_tok rows of cols items, per_block items a block:
 * rows by blockIdx.y (kernels grid-stride past 65535), columns by x, so no 64-bit division per
 * element (it made these kernels ~3x slower than their bytes). */
static inline dim3 cu_rows_grid(int64_t cols, int n_tok, int per_block) {
    return dim3((unsigned)((cols + per_block - 1) / per_block), (unsigned)(n_tok < 65535 ? n_tok : 65535));
}

/* SwiGLU of one element: silu(x) * u (the one formula of every kernel that computes it). */
static __device__ __forceinline__ float cu_silu_mul(float x, float u) { return x / (1.0f + expf(-x)) * u; }

/* Where an op that produces a GEMV input also writes its q8_1 form: xq [n_tok][cols] int8,
 * xds [n_tok][cols / 32]. Unused when xq == NULL. */
struct cu_qout {
    int8_t *xq;
    float2 *xds;
};

/* Fusions of consecutive ops of a recorded step (cuda_fuse.cu): which one starts at ops[0] of
 * the n ops left, and in *n_ops how many ops it covers (1 for CU_FUSE_NONE).
 *   CU_FUSE_GEMV:     *n_ops matmuls of one input, one GEMV launch;
 *   CU_FUSE_GEMV_ADD: a matmul, then ADD of its output into ops[1].dst, by the GEMV;
 *   CU_FUSE_ROPE_KV:  ROPE, then KV_STORE of its k, by cu_rope_kv;
 *   CU_FUSE_GLU:      gate and up matmuls, then SWIGLU of their outputs in place, by cu_gemv_glu. */
enum { CU_FUSE_NONE = 0, CU_FUSE_GEMV, CU_FUSE_GEMV_ADD, CU_FUSE_ROPE_KV, CU_FUSE_GLU };
int cu_fuse_match(const hllm_op *ops, int n, int gemv_max_tok, bool glu, int *n_ops); /* glu: allow CU_FUSE_GLU */

/* Launch checks: a failed launch becomes hllm_fail with the kernel's name. */
int cu_check(cudaError_t e, const char *what);
#define CU_LAUNCHED(name) cu_check(cudaGetLastError(), name)

/* ---- kernels' host entry points (each enqueues on stream st; 0 or hllm_fail) ---- */

/* Matmul, GEMV path: n_tok <= 8. xq/xds: the activation quantized to q8_1-style units (for
 * quantized types), or NULL (float types read x directly). y = op->dst (global row index). */
int cu_quantize_q8_1(cudaStream_t st, const float *x, int64_t ldx, int n_tok, int64_t cols, int8_t *xq, float2 *xds);
/* One matrix of a GEMV launch, which may hold several matmuls of one input (q/k/v, gate/up):
 * local rows [lr0, lr1) of m into y[t][grow0 + r] (+ bias[grow0 + r]); every row is computed
 * the same way whether its matrix is alone in the launch or not. yadd: also yadd[t][grow] += the row's
 * result (a residual ADD fused into the matmul), or NULL. pf: prefetch this matrix's rows into
 * L2 before waiting on the previous kernel (device memory only). */
struct cu_gseg {
    cu_mat m;
    int64_t lr0, lr1, grow0, ldy, ldadd;
    float *y, *yadd;
    const float *bias;
    int pf; /* VRAM rows: the GEMV may ask L2 for them early, or load them before its PDL wait */
};
#define CU_MAX_SEGS 3
/* Gate and up matmuls of one input followed by SWIGLU in place on the gate output, in one
 * kernel (quantized types): gate.y = silu(gate) * up, up.y = up, and (qo.xq != NULL) the q8_1
 * copy of gate.y; rows [0, rows) of both, every row computed as cu_gemv_multi would. cnt:
 * rows / 32 counters, zero before and after. cu_gemv_glu_ok: whether a matrix of `rows` rows
 * can use it (its GEMV takes one warp a row; rows % 32 == 0). */
bool cu_gemv_glu_ok(const cu_mat &m, int64_t rows);
int cu_gemv_multi(cudaStream_t st, const cu_gseg *segs, int n_segs, const float *x, int64_t ldx, const int8_t *xq,
                  const float2 *xds, int n_tok);
int cu_gemv_glu(cudaStream_t st, const cu_gseg &gate, const cu_gseg &up, const int8_t *xq, const float2 *xds, int n_tok,
                cu_qout qo, unsigned *cnt);
/* HLLM_CUDA_PREFETCH=0 turns the GEMV's L2 prefetch off (for measurements). */
extern bool cu_prefetch;
/* One-token Q4_0 / Q8_0 GEMVs load their first weights before the PDL wait: 1 (default) rows in
 * VRAM, 2 host rows too (experiment), 0 none (their L2 prefetch back on): HLLM_CUDA_PRELOAD. */
extern int cu_preload;
/* HLLM_CUDA_PREFETCH_ATTN=0 turns the decode attention's L2 prefetch of the KV cache off. */
extern bool cu_prefetch_attn;
/* HLLM_CUDA_PASS=1: the small decode kernels trigger the next launch before their PDL wait
 * (cuda_pass.cuh); one setter per translation unit holding such kernels. */
bool cu_pass_set_ops(bool on);
bool cu_pass_set_attn(bool on);
bool cu_pass_set_matmul(bool on);
/* Warps per SM a GEMV launch aims for when choosing warps per row (HLLM_CUDA_GEMV_WARPS, for
 * measurements; default 16). */
extern int cu_gemv_warps;
/* Dequantizes local rows [lr0, lr1) into dst (row-major, cols per row) as f16 (bf16 == false)
 * or bf16. */
int cu_dequant_rows(cudaStream_t st, const cu_mat &m, int64_t lr0, int64_t lr1, void *dst, bool bf16);
/* f32 activations [n_tok][ldx] -> packed [n_tok][cols] f16 or bf16. */
int cu_convert_act(cudaStream_t st, const float *x, int64_t ldx, int n_tok, int64_t cols, void *dst, bool bf16);
/* y[t][c0 + i] += bias[c0 + i] for i < n. */
int cu_add_bias(cudaStream_t st, float *y, int64_t ldy, int n_tok, int64_t c0, int64_t n, const float *bias);
/* dst[t] = row (tokens[t] - row0) of m, dequantized to f32. tokens: device memory, or NULL
 * and up to 8 ids passed by value in inl (no copy for decode). */
struct cu_tok8 {
    int32_t t[8];
};
int cu_embed(cudaStream_t st, const cu_mat &m, int64_t row0, const int32_t *tokens, const cu_tok8 &inl, int n_tok,
             float *dst, int64_t ldd);

/* The other ops, with the semantics of proc.h / cpu_ops.c. dpos: device pos0 (the step
 * state) or NULL for op->pos0. qo: also write the q8_1 form of dst (rmsnorm: whole rows,
 * dim % 32 == 0; swiglu: dim % 32 == 0). */
int cu_rmsnorm(cudaStream_t st, const hllm_op *op, const float *w, cu_qout qo);
int cu_rope(cudaStream_t st, const hllm_op *op, const float *ff, const int32_t *dpos);
int cu_kv_store(cudaStream_t st, const hllm_op *op, const int32_t *dpos);
/* ROPE followed by the KV_STORE of its k (kv->src == rope->src2) and of kv->src2, in one
 * kernel; the caller checks that the two ops fit together (head_dim even, same tokens). */
int cu_rope_kv(cudaStream_t st, const hllm_op *rope, const hllm_op *kv, const float *ff, const int32_t *dpos);
int cu_swiglu(cudaStream_t st, const hllm_op *op, cu_qout qo);
int cu_add(cudaStream_t st, const hllm_op *op);

/* Handoffs inside a step (cuda_handoff.cu): flags in pinned mapped memory (wait: until
 * flag - value >= 0 as signed) and small copies between device and pinned host memory, as
 * kernels; copy_signal stores and then signals, wait_copy waits and then reads the host's data. */
int cu_handoff_signal(cudaStream_t st, volatile uint32_t *flag, uint32_t value);
int cu_handoff_wait(cudaStream_t st, volatile uint32_t *flag, uint32_t value);
int cu_handoff_copy(cudaStream_t st, void *dst, const void *src, size_t bytes, bool from_host);
int cu_handoff_copy_signal(cudaStream_t st, void *dst, const void *src, size_t bytes, uint32_t *flag, uint32_t value);
int cu_handoff_wait_copy(cudaStream_t st, void *dst, const void *src, size_t bytes, const uint32_t *flag, uint32_t value);
/* Runs each handoff kernel once (nothing copied) so that none loads inside a split step. */
int cu_handoff_preload(cudaStream_t st, uint32_t *zeroed_flag);

/* Attention. Split-KV decode, any n_tok: a grid of a fixed number of chunks per (token, head)
 * that depends only on the cache size (so a captured graph serves every position); each block
 * derives its chunk of keys from pos0 (read from dpos when given) and exits early past the
 * keys; the last block of each (token, head) merges the chunks (counters in cnt, zero before
 * and after). part: cu_attn_split_scratch floats; cnt: n_tok * heads ints. qo: also write the
 * q8_1 form of dst (all heads, head_dim % 32 == 0). */
size_t cu_attn_split_scratch(const hllm_op *op, int n_sm, int *n_chunks);
int cu_attn_split(cudaStream_t st, const hllm_op *op, int n_chunks, float *part, unsigned *cnt, cu_qout qo,
                  const int32_t *dpos);
/* Tiled flash attention for prefill (head_dim <= 256; smem_optin: the device's per-block
 * shared-memory opt-in limit). Returns 1 if this shape cannot use it (caller falls back). */
int cu_attn_flash(cudaStream_t st, const hllm_op *op, size_t smem_optin);
/* The same on tensor cores (cuda_attn_mma.cu): F16 cache, head_dim a multiple of 16 up to 128,
 * compute capability 8.0+ (cc_major). Returns 1 if this shape cannot use it. */
int cu_attn_mma(cudaStream_t st, const hllm_op *op, int cc_major);

#endif
