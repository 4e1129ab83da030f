/* The CUDA processor's state, shared by its two halves: cuda_proc.cu (memory, weights, ops, the
 * processor's life) and cuda_step.cu (captured decode steps, flags and handoffs). */
#ifndef HLLM_CUDA_IMPL_CUH
#define HLLM_CUDA_IMPL_CUH
#include "proc/cuda/cuda_common.cuh"
#include <cuda.h>
#include <cublas_v2.h>

typedef CUresult(CUDAAPI *pfn_stream_value32)(CUstream, CUdeviceptr, cuuint32_t, unsigned int);

struct cu_pending { /* a copy_out to pageable memory, completed by finish() */
    void *dst;
    size_t off, bytes;
};

struct cu_buf {
    void *p;
    size_t size;
};

/* A captured step: the ops it was captured from (pos0 and ids aside, a later step replays it
 * only if it issues the same ops) and the instantiated graph. */
struct cu_graph {
    uint64_t shape;
    int n_tok;
    cudaGraphExec_t exec; /* NULL: free slot */
    /* A step that waits on another processor is captured in two graphs: exec holds its ops
     * before the first wait (ops [0, cut)), launched as soon as a replay reaches that wait, and
     * exec2 the rest, launched at step_end. So the device starts on what needs nobody else
     * while the rest is still being issued. cut == 0: one graph. */
    cudaGraphExec_t exec2;
    int cut;
    hllm_op *ops;
    int n_ops;
    int handoff; /* the handoff mode it was captured with */
    bool early;  /* captured with early launches on (hllm_cuda_set_early) */
    long last_use;
};

#define CU_GRAPHS 4
#define CU_RING 16
#define CU_SLOTS 3 /* VRAM slots for host-resident weight tiles of prompts */

/* Step modes between step_begin and step_end. PLAIN: ops run as issued (not a decode shape).
 * RECORD: ops run as issued and are recorded; step_end captures them into a graph. REPLAY: a
 * graph of this shape exists; ops are only recorded, and step_end launches the graph if they
 * match the graph's ops (else runs them and captures anew). */
enum { STEP_NONE = 0, STEP_PLAIN, STEP_RECORD, STEP_REPLAY };

/* Besides ops, a step records the copies and flag operations issued between them (a split plan
 * issues them mid-step), so they are captured into the graph too. They travel as hllm_op with
 * these kinds: COPY: dst <- src, n_rows bytes; SIGNAL / WAIT: the flag's device address in src2,
 * the value in r0. */
enum { CU_ACT_COPY = HLLM_OP_COUNT + 1, CU_ACT_SIGNAL, CU_ACT_WAIT };

/* A pinned mapped host allocation made here: where the host and the device see it. */
struct cu_pinned {
    const char *p;
    size_t n;
    char *d;
};

struct cuda_impl {
    /* the pinned mapped allocations made here, sorted by address (asking the driver costs
     * microseconds a pointer, and a split token asks for every copy and flag it issues) */
    cu_pinned *pinned;
    int n_pinned, cap_pinned;
    int dev;
    cudaStream_t st;
    cudaDeviceProp prop;
    cublasHandle_t blas;
    bool blas_ok;
    void *blas_ws;
    pfn_stream_value32 write32, wait32;
    bool memops; /* stream memory operations usable */
    cu_buf xq, xh, wt, part, tok, cnt;
    cu_buf xq2, gcnt; /* fused gate/up + swiglu: its q8_1 output (beside its input's), counters */
    bool any_quant; /* a quantized matrix is loaded: ops feeding GEMVs also write q8_1 copies */
    /* step state: device copy, pinned ring of host copies (an event each) */
    cu_dstate *dstate, *hstate;
    cudaEvent_t ring_ev[CU_RING];
    int ring_i;
    /* while capturing: kernels read pos0 / ids from dstate */
    bool capturing;
    const int32_t *dpos, *dtok;
    int mode;
    uint64_t shape;
    int step_ntok, cur;
    bool early; /* this replay launched the graph's first part (exec) at its cut */
    hllm_op *rec;
    int n_rec, cap_rec;
    cu_graph graphs[CU_GRAPHS];
    long use_clock, n_captures, n_replays, n_mismatch, n_fused, n_early;
    size_t last_nodes; /* nodes of the last step captured, both graphs (HLLM_CUDA_STATS) */
    int n_capture_fail; /* captures that failed: after a few, steps are no longer recorded */
    /* pinned staging for copy_out to pageable memory */
    char *stage;
    size_t stage_size, stage_used;
    cu_pending *pend;
    int n_pend, cap_pend;
    /* the activation last quantized for a GEMV, reused by the next matmuls of the same input
     * (q/k/v, gate/up) until any other op or copy could have changed it */
    const float *xq_src;
    int64_t xq_ld, xq_cols;
    int xq_ntok;
    /* the same for the f16/bf16 copy of a prompt matmul's input in xh (q, k and v read one) */
    const float *xh_src;
    int64_t xh_ld, xh_cols;
    int xh_ntok;
    bool xh_bf;
    bool xq_alt; /* that copy is in xq2 (written by a fused gate/up + swiglu), not in xq */
    /* prompts over host-resident rows: copy stream, VRAM slots, and per slot an event when its
     * copy is done and one when the last GEMM reading it is */
    cudaStream_t cst;
    cu_buf slot[CU_SLOTS];
    cudaEvent_t slot_copied[CU_SLOTS], slot_free[CU_SLOTS];
    int slot_i;
    bool staging; /* the above exist */
    char name[96];
};

static inline cuda_impl *impl_of(hllm_proc *p) { return (cuda_impl *)p->impl; }

/* Every op but a matmul, and every copy in, may write the activations the cached converted
 * inputs (xq, xh) were made from. */
static inline void act_forget(cuda_impl *c) {
    c->xq_src = NULL;
    c->xh_src = NULL;
}

#define STEP_GUARD(c)                                                   \
    do {                                                                \
        if ((c)->mode == STEP_RECORD || (c)->mode == STEP_REPLAY) cu_step_interrupt(c); \
    } while (0)

/* cudaSetDevice once per thread and device, not once per op (the decode step issues hundreds).
 * One variable for every file of the processor (defined in cuda_proc.cu): a copy per file would
 * let one file skip the switch back after another moved the thread to another device. */
extern __thread int cu_tl_dev;
static inline void use_dev(int dev) {
    if (cu_tl_dev != dev) {
        cudaSetDevice(dev);
        cu_tl_dev = dev;
    }
}

/* Copies a step records (hllm_op.r1 of a CU_ACT_COPY): the side in pinned mapped host memory
 * allocated here, so that a kernel may make the copy; 0: neither or unknown. */
enum { COPY_FROM_HOST = 1, COPY_TO_HOST = 2 };

/* the largest batches the decode kernels take (GEMVs; split-KV attention) */
extern int cu_gemv_max_tok, cu_split_max_tok;

/* cuda_proc.cu */
/* The device address of [ptr, ptr + bytes) when it lies in a pinned mapped allocation made
 * here, else NULL. */
void *cu_pinned_dev(const cuda_impl *c, const void *ptr, size_t bytes);
int cu_run_op(cuda_impl *c, const hllm_op *op); /* one op on the stream (or into a capture) */
int cu_run_gemv(cuda_impl *c, const hllm_op *ops, int n, const hllm_op *add);
int cu_run_glu(cuda_impl *c, const hllm_op *ops);
int cu_glu_buffers(cuda_impl *c, int n_tok, int64_t dim, cu_qout *qo);

/* cuda_step.cu */
void cu_steps_configure(void); /* reads the environment's HLLM_CUDA_SKIP */
void cu_step_interrupt(cuda_impl *c);
/* Destroys a captured step's graphs and ops (no sync: one in flight is freed when it completes)
 * and empties its slot. */
void cu_free_graph(cu_graph *g);
int cu_run_action(cuda_impl *c, const hllm_op *op); /* a recorded copy, signal or wait */
int cu_run(hllm_proc *p, const hllm_op *op);
int cu_step_begin(hllm_proc *p, uint64_t shape, int pos0, const int32_t *tokens, int n_tok);
int cu_step_end(hllm_proc *p);
void cu_signal(hllm_proc *p, volatile uint32_t *flag, uint32_t value);
void cu_wait(hllm_proc *p, volatile uint32_t *flag, uint32_t value);

#endif
