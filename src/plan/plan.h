/* A Plan: for every step of the graph, which processor(s) run it and on which rows.
 * A step runs whole on one processor (layer-level placement) or is cut by weight rows across
 * several (tensor-level, row-cut): part i computes output rows [r0, r1) on processor `proc`. */
#ifndef HLLM_PLAN_H
#define HLLM_PLAN_H
#include "model/graph.h"

#define HLLM_MAX_PARTS 4

typedef struct {
    int proc;          /* index into the executor's processor list */
    int64_t r0, r1;    /* row range (MATMUL); [0, rows) otherwise */
} hllm_part;

typedef struct {
    int n_parts;
    hllm_part parts[HLLM_MAX_PARTS];
} hllm_step_plan;

typedef struct {
    int n_steps;
    hllm_step_plan *steps;
    int n_procs;
    char why[256];     /* one line: why this plan was chosen */
} hllm_plan;

/* Every step whole on processor `proc`. */
hllm_plan *hllm_plan_single(const hllm_graph *g, int proc, int n_procs, const char *why);
void hllm_plan_free(hllm_plan *p);

#endif
