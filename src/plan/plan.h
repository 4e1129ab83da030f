/* A Plan: for every step of the graph, which processor(s) run it and on which rows.
 * A step runs whole on one processor (layer-level placement) or is cut by weight rows across
 * several (tensor-level, row-cut): part i computes output rows [r0, r1) on processor `proc`,
 * reading its rows of the weight from memory `mem` (HLLM_MEM_DEVICE: the processor's own;
 * HLLM_MEM_HOST: host memory it reads directly, e.g. a GPU reading pinned RAM over PCIe).
 * A matmul's parts are in row order and cover [0, rows). A SWIGLU step may instead be replicated:
 * every part computes the whole step on its own processor (each then holds the result, so the
 * processors of a cut ffn_down need not wait for one another's copy of it). */
#ifndef HLLM_PLAN_H
#define HLLM_PLAN_H
#include "model/graph.h"
#include <stdio.h>

#define HLLM_MAX_PARTS 4
#define HLLM_MAX_PROCS 4

typedef struct {
    int proc;          /* index into the executor's processor list */
    int64_t r0, r1;    /* row range (MATMUL); [0, rows) otherwise */
    int mem;           /* hllm_mem_kind of this part's weight rows (0 = DEVICE) */
} hllm_part;

typedef struct {
    int n_parts;
    hllm_part parts[HLLM_MAX_PARTS];
} hllm_step_plan;

typedef struct hllm_plan hllm_plan;
struct hllm_plan {
    int n_steps;
    hllm_step_plan *steps;
    int n_procs;
    char why[256];     /* one line: why this plan was chosen */
    /* Optional: evaluations of at least prefill_min tokens (prompts) run this plan instead
     * (owned; its own prefill is NULL). It must keep every layer's attention on the same
     * processor and needs no VRAM beyond this plan's: the solver derives it from this plan. */
    hllm_plan *prefill;
    int prefill_min;
};

/* Every step whole on processor `proc`. */
hllm_plan *hllm_plan_single(const hllm_graph *g, int proc, int n_procs, const char *why);
/* Layer-level: layer l's steps on layer_proc[l]; the embedding on embed_proc, the output head
 * (norm + lm_head) on head_proc. */
hllm_plan *hllm_plan_layers(const hllm_graph *g, const int *layer_proc, int embed_proc, int head_proc, int n_procs,
                            const char *why);
/* Cuts MATMUL step i (which must be whole on one processor) into parts: processor procs[k] gets
 * a share frac[k] of the rows (the last part takes the rest), with memory mems[k] (NULL = DEVICE).
 * Non-matmul steps are untouched. Row counts are rounded to multiples of `align` (>= 1). */
int hllm_plan_cut(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const double *frac,
                  const int *mems, int64_t align);
/* Cuts step i at explicit rows: part k gets [cuts[k-1], cuts[k]) (cuts[-1] = 0, cuts[n-1] = rows). */
int hllm_plan_cut_rows(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts,
                       const int *mems);
/* Replicates SWIGLU step i on the n processors procs (distinct; the first keeps its place). */
int hllm_plan_replicate(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs);
/* Checks structure: parts in order, covering each matmul's rows, only matmuls cut, processors in
 * range, a layer's kv_store and attention on one processor. 0 or -1 + hllm_fail. */
int hllm_plan_validate(const hllm_plan *p, const hllm_graph *g);
hllm_plan *hllm_plan_clone(const hllm_plan *p);
/* Human-readable listing: one line per step (layers with identical placement folded). */
void hllm_plan_print(FILE *f, const hllm_plan *p, const hllm_graph *g, const char *const *proc_names);
void hllm_plan_free(hllm_plan *p);

#endif
