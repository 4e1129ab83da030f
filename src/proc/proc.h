/* The processor interface. Every processor (CPU, CUDA, OpenCL, ...) implements it; the
 * executor drives processors only through it, and model code never names one.
 *
 * Memory: a processor allocates its own memory (device memory, or host memory it can read
 * directly: pinned + mapped for a discrete GPU). Activations are f32, token-major:
 * row t of an activation buffer holds token t's vector, rows `ld` floats apart.
 *
 * Work: run() issues one op, in issue order. The CPU executes it before returning, except an op
 * marked `more` (a matmul whose caller issues another of the same input next), which it may hold
 * to run them together, until its next op, signal, wait, copy or finish; a GPU may only enqueue it. signal()/wait() order work across processors through 32-bit
 * flags in host memory that all processors see, so the hand-off costs microseconds, not a
 * driver round trip. finish() blocks until everything issued is done. */
#ifndef HLLM_PROC_H
#define HLLM_PROC_H
#include "core/types.h"

typedef struct hllm_proc hllm_proc;
typedef struct hllm_pweight hllm_pweight; /* a weight prepared on a processor (opaque) */

typedef enum {
    HLLM_MEM_DEVICE = 0, /* the processor's own memory (VRAM for a GPU; host RAM for the CPU) */
    HLLM_MEM_HOST = 1,   /* host memory this processor reads directly (pinned + mapped) */
} hllm_mem_kind;

/* A host-resident weight as the file holds it: rows x cols of `type`, row-major.
 * Vectors (norm weights, biases) are rows = 1. */
typedef struct {
    const char *name;
    int type;
    int64_t rows, cols;
    const void *data;
    size_t row_bytes;
} hllm_tensor;

typedef enum {
    HLLM_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
    HLLM_ROPE_NEOX = 2, /* rotate (x[i], x[i + n_rot/2]): qwen2, qwen3 */
} hllm_rope_type;

typedef enum {
    HLLM_OP_EMBED,     /* dst[t] = row tokens[t] of w, dequantized */
    HLLM_OP_RMSNORM,   /* dst[i] = src[i] / rms(src[i]) * w, for n_rows rows of `dim` */
    HLLM_OP_MATMUL,    /* dst[t][r] = dot(w row r, src[t]) (+ bias[r]) for r in [r0, r1) */
    HLLM_OP_ROPE,      /* rotate q (src as dst, n_head heads) and k (src2, n_head_kv heads) in place */
    HLLM_OP_KV_STORE,  /* cache rows pos0 + t <- k = src[t], v = src2[t] */
    HLLM_OP_ATTENTION, /* dst[t] = softmax(q[t] . K[0..pos0+t] * scale) V, heads [h0, h1) */
    HLLM_OP_SWIGLU,    /* dst[t][i] = silu(src[t][i]) * src2[t][i], i < dim */
    HLLM_OP_ADD,       /* dst[t][i] += src[t][i], i < dim */
    HLLM_OP_COUNT
} hllm_op_kind;

/* A layer's KV cache on one processor: n_ctx rows of kv_dim (= n_head_kv * head_dim). */
typedef struct {
    void *k, *v;
    int type; /* HLLM_TYPE_F16 or HLLM_TYPE_F32 */
    int n_ctx;
} hllm_kv;

typedef struct {
    hllm_op_kind kind;
    int n_tok;              /* tokens (rows of src/dst) in this call */
    float *dst;
    const float *src, *src2;
    int64_t ld_dst, ld_src, ld_src2; /* row strides, in floats */
    const hllm_pweight *w;  /* EMBED, MATMUL: a matrix; RMSNORM: the weight vector */
    const hllm_pweight *bias; /* MATMUL: optional f32 vector of the matrix's full row count */
    int64_t r0, r1;         /* MATMUL: output rows, global indices inside w's row range */
    int64_t dim;            /* RMSNORM: row length; SWIGLU, ADD: columns */
    int64_t n_rows;         /* RMSNORM: rows (n_tok * n_head for per-head norms) */
    float eps;
    const int32_t *tokens;  /* EMBED: n_tok ids in host memory */
    int pos0;               /* position of row 0 (ROPE, KV_STORE, ATTENTION) */
    int n_head, n_head_kv, head_dim;
    int h0, h1;             /* ATTENTION: query heads to compute */
    float attn_scale;
    int n_rot;              /* ROPE */
    hllm_rope_type rope_type;
    float freq_base, freq_scale;
    const hllm_pweight *freq_factors; /* ROPE: optional per-dimension divisors (llama 3.1) */
    const hllm_kv *kv;      /* KV_STORE, ATTENTION */
    bool more;              /* MATMUL: the next op is another matmul of the same input (a hint) */
} hllm_op;

typedef struct {
    const char *name;
    void *(*alloc)(hllm_proc *p, size_t bytes, hllm_mem_kind kind); /* NULL + hllm_fail */
    void (*free)(hllm_proc *p, void *ptr);
    /* Host <-> processor memory, ordered with the processor's queued work. */
    int (*copy_in)(hllm_proc *p, void *dst, const void *host_src, size_t bytes);
    int (*copy_out)(hllm_proc *p, void *host_dst, const void *src, size_t bytes);
    /* Prepares rows [r0, r1) of a host tensor for this processor (repack, upload, or use in
     * place when mem == HLLM_MEM_HOST and the processor can read host memory). */
    hllm_pweight *(*weight_load)(hllm_proc *p, const hllm_tensor *t, int64_t r0, int64_t r1, hllm_mem_kind mem);
    void (*weight_free)(hllm_proc *p, hllm_pweight *w);
    int (*run)(hllm_proc *p, const hllm_op *op);
    /* Sets *flag = value once all work issued before it is done. */
    void (*signal)(hllm_proc *p, volatile uint32_t *flag, uint32_t value);
    /* Work issued after this starts only once *flag >= value. */
    void (*wait)(hllm_proc *p, volatile uint32_t *flag, uint32_t value);
    int (*finish)(hllm_proc *p);
    void (*destroy)(hllm_proc *p);
    /* Optional (NULL = not used): bracket the ops of one evaluation of the graph. `shape`
     * identifies the op sequence (same shape = same ops with the same operands, differing only
     * in pos0 and token ids), so a GPU may capture the ops issued between the two calls once
     * and replay them, reading pos0 and the ids from the step state given here. step_begin
     * returns 1 when this step's work is held back until step_end (nothing it is given runs
     * before then), 0 when it runs as issued, -1 on error. Between the two calls a processor
     * must not block on its own queue: another processor may be waiting to set the flags its
     * queued waits need. */
    int (*step_begin)(hllm_proc *p, uint64_t shape, int pos0, const int32_t *tokens, int n_tok);
    int (*step_end)(hllm_proc *p);
} hllm_proc_ops;

struct hllm_proc {
    const hllm_proc_ops *ops;
    const char *name;
    int n_threads; /* CPU: threads in its pool; others: 0 */
    void *impl;
};

/* Constructors (each returns NULL + hllm_fail when the processor is not available). */
hllm_proc *hllm_proc_cpu_new(int n_threads);
#ifdef HLLM_HAVE_CUDA
hllm_proc *hllm_proc_cuda_new(int device);
#endif
/* By name: "cpu" or "cuda"; NULL + hllm_fail if not compiled in or unavailable. */
hllm_proc *hllm_proc_new(const char *name, int n_threads);
void hllm_proc_free(hllm_proc *p);

#endif
