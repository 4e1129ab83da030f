/* The executor: places the weights where the plan says, owns the activations and KV caches,
 * and walks the graph's steps for a batch of tokens, issuing each to its processor. */
#ifndef HLLM_EXEC_H
#define HLLM_EXEC_H
#include "plan/plan.h"

typedef struct hllm_exec hllm_exec;

typedef struct {
    int n_ctx;          /* KV cache length */
    int n_batch;        /* most tokens per evaluation call */
    int kv_type;        /* HLLM_TYPE_F16 or HLLM_TYPE_F32 */
    bool logits_all;    /* keep logits for every token of a batch, not only the last */
    void (*progress)(float fraction, void *user);
    void *progress_user;
} hllm_exec_params;

hllm_exec *hllm_exec_new(const hllm_model_s *m, const hllm_graph *g, const hllm_plan *plan, hllm_proc **procs,
                         int n_procs, const hllm_exec_params *p);
void hllm_exec_free(hllm_exec *e);

/* Runs n tokens (n <= n_batch) at positions pos0.. ; writes logits (n_vocab floats for the last
 * token, or for each token when logits_all) to the host buffer `logits`. 0 or -1. */
int hllm_exec_eval(hllm_exec *e, const int32_t *tokens, int n, int pos0, float *logits);

/* 1: when every device holds a step's work until its end (captured graphs), the host first
 * runs what it can before any device has run (the embedding on a CPU), so a device launching
 * the start of its step early does not wait for it (the default, unless the environment has
 * HLLM_EXEC_HOST_FIRST=0). 0: the devices' work is issued first. Same results. Process-wide. */
void hllm_exec_set_host_first(int on);

/* Accumulated wall time per op kind (seconds) and calls, for --verbose. */
void hllm_exec_op_times(const hllm_exec *e, double secs[HLLM_OP_COUNT], long calls[HLLM_OP_COUNT]);
void hllm_exec_set_profiling(hllm_exec *e, bool on);
/* While profiling: wall time of each step summed over the one-token evaluations (secs: one per
 * graph step); returns how many such evaluations there were. */
long hllm_exec_step_times(const hllm_exec *e, double *secs);

#endif
