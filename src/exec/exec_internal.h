/* The executor's state, shared by exec.c (building and running an evaluation) and exec_sched.c
 * (what each step issues: moving activations between processors, flags, the parts' ops). */
#ifndef HLLM_EXEC_INTERNAL_H
#define HLLM_EXEC_INTERNAL_H
#include "exec/exec.h"
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct {
    const hllm_tensor *t;
    int64_t r0, r1, c0, c1; /* rows; columns (a matmul cut by columns) */
    int proc, mem;
    hllm_pweight *pw;
    void *cols_copy;        /* columns [c0, c1) of every row, contiguous (owned) */
} loaded_weight;

typedef struct {
    hllm_pweight *w[HLLM_MAX_PARTS];
    hllm_pweight *bias[HLLM_MAX_PARTS];
} step_weights;

typedef struct {
    int proc;
    int64_t c0, c1;
} act_slice;

typedef struct {
    int n;               /* slices of the last write (0 = never written this evaluation) */
    act_slice s[HLLM_MAX_PARTS];
    unsigned have[HLLM_MAX_PARTS]; /* bit p: processor p holds slice k */
    int rows;            /* token rows the last write produced */
    bool partial;        /* written by a matmul cut by columns: slice k is the partial sum in
                          * HLLM_ACT_PART0 + k (whole width) on s[k].proc, summed by the ADD after it */
} act_state;

/* A layer's KV cache: one segment per slice of its heads, each on the processor that owns it. */
typedef struct {
    int n;
    int proc[HLLM_MAX_PARTS];
    int64_t h0[HLLM_MAX_PARTS], h1[HLLM_MAX_PARTS]; /* query heads */
    hllm_kv kv[HLLM_MAX_PARTS];                      /* the segment's kv heads only */
    hllm_proc *by[HLLM_MAX_PARTS];                   /* who allocated it */
} kv_layer;

/* A plan as the executor runs it. */
typedef struct {
    const hllm_plan *plan;
    step_weights *sw;
    int proc;               /* single-processor plans: the processor running every step; else -1 */
    unsigned dev_mask;      /* several processors: the device processors it uses */
    int out_proc;           /* where the logits are gathered */
} plan_rt;

/* What the executor knows about an evaluation in flight: every walk over the steps starts from
 * the same state and changes it the same way, whichever processors it issues for. */
typedef struct {
    uint32_t count[HLLM_MAX_PROCS];
    bool dirty[HLLM_MAX_PROCS];     /* work issued since the last signal */
    uint32_t pending_read[HLLM_MAX_PROCS][HLLM_ACT_COUNT][HLLM_MAX_PROCS]; /* [owner][act][reader] = reader's signal */
    bool touched[HLLM_MAX_PROCS][HLLM_ACT_COUNT]; /* a host processor's op used its own buffer since a device wrote it */
    act_state st[HLLM_ACT_COUNT];
} sched_state;

struct hllm_exec {
    const hllm_model_s *m;
    const hllm_graph *g;
    plan_rt rt[2];          /* the plan, and its prefill plan if it has one */
    int n_rt;
    plan_rt *cur;           /* the one running */
    hllm_proc **procs;
    int n_procs;
    hllm_exec_params p;
    loaded_weight *loaded;
    int n_loaded, cap_loaded;
    float *act[HLLM_MAX_PROCS][HLLM_ACT_COUNT];
    hllm_proc *act_alloc[HLLM_MAX_PROCS][HLLM_ACT_COUNT]; /* who allocated it (to free it) */
    kv_layer *kvl;
    /* multi-processor state */
    hllm_proc *host;        /* allocates host-memory buffers and flags (a GPU, or NULL = plain memory) */
    uint32_t *flag_mem;     /* one flag per processor, 64 bytes apart */
    sched_state walks[2];   /* bookkeeping of the device walk and of the host walk */
    sched_state *ws;        /* the walk being issued */
    unsigned issue;         /* bit q: this walk issues processor q's actions (see hllm_exec_eval) */
    bool defer;             /* collect host-side waits instead of waiting (see walk) */
    int n_deferred;
    struct { int waiter, q; uint32_t v; } deferred[HLLM_ACT_COUNT * HLLM_MAX_PARTS * 2];
    bool profiling;
    double *step_secs;      /* profiling: per step, summed over one-token evaluations */
    unsigned char *seen_n;  /* batch sizes evaluated before (index n, 1..n_batch) */
    long step_evals;
    double op_secs[HLLM_OP_COUNT];
    long op_calls[HLLM_OP_COUNT];
    /* HLLM_EXEC_TRACE=1: where the host's time goes in overlapped one-token evaluations */
    bool trace;
    int trace_step;         /* the step the host walk is in */
    double *trace_run;      /* per step: host processors running their parts */
    double *trace_wait;     /* per step: host processors waiting on device flags */
    double trace_total;
    double trace_issue;     /* issuing the devices' work (walk, graph launch) */
    double trace_launch;    /* of which the devices' step_end (a captured graph's launch) */
    long trace_evals;
};

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* one partial-sum slot per part of a column-cut matmul */
_Static_assert(HLLM_ACT_PART3 - HLLM_ACT_PART0 + 1 == HLLM_MAX_PARTS, "a partial-sum slot per part");

static inline bool is_host_proc(const hllm_proc *p) { return p->n_threads > 0; }

/* Query heads [*a, *b) that part k of a kv_store or attention step covers. */
static inline void part_heads(const hllm_step_plan *sp, int k, int64_t n_head, int64_t *a, int64_t *b) {
    const bool sliced = sp->cut == HLLM_CUT_SLICE;
    *a = sliced ? sp->parts[k].r0 : 0;
    *b = sliced ? sp->parts[k].r1 : n_head;
}

static inline volatile uint32_t *flag_of(hllm_exec *e, int q) { return (volatile uint32_t *)(e->flag_mem + (size_t)q * 16); }

/* Issues part k of step i (n tokens in the evaluation, n_tok of them in this step). */
int exec_run_part(hllm_exec *e, int i, int k, int n, int n_tok, int pos0, const int32_t *tokens);
/* Step i of a walk over a multi-processor evaluation (i == n_steps: the gather of the logits on
 * the output processor), issuing the actions of the processors in e->issue. */
int exec_walk_step(hllm_exec *e, int i, const int32_t *tokens, int n, int pos0);

#endif
