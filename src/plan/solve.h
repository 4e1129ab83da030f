/* The solver: from a measured profile and a VRAM budget, a plan that minimizes the predicted
 * decode time per token (prefill time per prompt is predicted and reported alongside).
 *
 * Candidates: CPU only; GPU only (rows beyond the VRAM budget read from pinned host memory,
 * zero-copy); layer-level (whole layers in VRAM, the rest on the CPU); tensor-level (every
 * matmul row-cut: the GPU takes rows in VRAM first, then host rows read zero-copy, the CPU takes
 * host rows, with the cut set so both finish together under shared host bandwidth); tensor-level
 * by heads (each layer's attention heads and FFN columns shared out, every processor running
 * its share of each step, the residual adds summing the partials: two crossings a layer). The cost
 * model counts per-op issue costs, the flag round trip and copy for each activation that
 * crosses processors (token by token for cut slices in a batch), and host-bandwidth contention
 * when CPU and GPU read host memory at once. */
#ifndef HLLM_PLAN_SOLVE_H
#define HLLM_PLAN_SOLVE_H
#include "plan/plan.h"
#include "plan/profile.h"

/* Which kinds of plan the solver weighs: one processor, layer-level, tensor-level (each forced,
 * for experiments), or all of them (AUTO). */
typedef enum { HLLM_SPLIT_NONE = 0, HLLM_SPLIT_LAYER = 1, HLLM_SPLIT_TENSOR = 2, HLLM_SPLIT_AUTO = 3 } hllm_split;

typedef struct {
    hllm_split split;      /* the kinds of plan weighed */
    double gpu_mem;        /* bytes of weights the GPU may hold (< 0: unlimited) */
    int n_prompt;          /* prompt length for the prefill prediction (default 512) */
    int n_batch;           /* prompt batch (default 512) */
    int cpu, gpu;          /* indices of the processors (-1: absent) */
    const char *const *names; /* processor names, as in the profile ("cpu", "cuda") */
    FILE *explain;         /* the plan's reasoning and rejected alternatives (NULL: quiet) */
    int64_t align;         /* row-cut granularity (default 64) */
} hllm_solve_opts;

typedef struct {
    double decode_s, prefill_s; /* predicted per token / per prompt */
    double gpu_dev_bytes, gpu_host_bytes, cpu_bytes; /* weight bytes by where they are read */
} hllm_prediction;

/* Predicted times of a plan (decode: 1 token; prefill: o->n_prompt tokens). */
hllm_prediction hllm_plan_predict(const hllm_plan *p, const hllm_graph *g, const hllm_profile *prof,
                                  const hllm_solve_opts *o);
/* Predicted seconds of each step of a plan for n tokens (secs: one per graph step). */
void hllm_plan_predict_steps(const hllm_plan *p, const hllm_graph *g, const hllm_profile *prof, const hllm_solve_opts *o,
                             int n, double *secs);
/* The chosen plan (its why says which candidate and the prediction); *pred optional. */
hllm_plan *hllm_solve(const hllm_graph *g, const hllm_profile *prof, const hllm_solve_opts *o, hllm_prediction *pred);
/* "50%" (of total bytes), "6G", "512M", "1234567": bytes, or -1 on a bad string. */
double hllm_parse_mem(const char *s, double total);

#endif
