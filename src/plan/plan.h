/* A Plan: for every step of the graph, which processor(s) run it and on which rows.
 * A step runs whole on one processor (layer-level placement) or is cut across several:
 *  - HLLM_CUT_ROWS, a matmul (tensor-level row-cut): part i computes output rows [r0, r1) on
 *    processor `proc`, reading its rows of the weight from memory `mem` (HLLM_MEM_DEVICE: the
 *    processor's own; HLLM_MEM_HOST: host memory it reads directly, e.g. a GPU reading pinned RAM
 *    over PCIe). Parts are in row order and cover [0, rows).
 *  - HLLM_CUT_ROWS, another step with several parts: replicated, every part computes the whole
 *    step on its own processor (SWIGLU, RMSNORM, ADD, EMBED), so each holds the result.
 *  - HLLM_CUT_COLS, a matmul: part i reads input columns [r0, r1) (its columns of the weight)
 *    and computes a partial sum of every output row; the ADD step that follows (the residual)
 *    adds the parts' sums in part order on each processor running it. With the attention's
 *    heads and the FFN's inner dimension sliced, a layer crosses processors twice (after
 *    attn_output and after ffn_down) and each processor runs its share of every step.
 *  - HLLM_CUT_SLICE: part i runs its slice of a SWIGLU (elements [r0, r1)) or of ROPE, KV_STORE
 *    and ATTENTION (query heads [r0, r1), whole GQA groups); a layer's KV cache is split the same
 *    way, each part's heads on its processor. */
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

typedef enum { HLLM_CUT_ROWS = 0, HLLM_CUT_COLS = 1, HLLM_CUT_SLICE = 2 } hllm_cut;

typedef struct {
    int n_parts;
    int cut; /* hllm_cut; ROWS for a step with one part */
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
/* Cuts matmul step i by input columns at explicit columns (as hllm_plan_cut_rows). */
int hllm_plan_cut_cols(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts,
                       const int *mems);
/* Slices step i (SWIGLU: elements; ROPE, KV_STORE, ATTENTION: query heads) at explicit cuts. */
int hllm_plan_slice(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs, const int64_t *cuts);
/* What HLLM_CUT_SLICE cuts in step s (elements or query heads), and what HLLM_CUT_COLS cuts
 * (input columns); 0 when the step cannot be cut that way. */
int64_t hllm_plan_slice_units(const hllm_graph *g, const hllm_step *s);
/* Replicates step i (SWIGLU, RMSNORM, ADD, EMBED) on the n processors procs (distinct; the first
 * keeps its place). */
int hllm_plan_replicate(hllm_plan *p, const hllm_graph *g, int step, int n, const int *procs);
/* Checks structure: parts in order, covering each cut's range, only steps that can be cut cut,
 * processors in range, a layer's kv_store and attention split alike, a column-cut matmul summed
 * by the ADD after it. 0 or -1 + hllm_fail. */
int hllm_plan_validate(const hllm_plan *p, const hllm_graph *g);
hllm_plan *hllm_plan_clone(const hllm_plan *p);
/* Human-readable listing: one line per step (layers with identical placement folded). */
void hllm_plan_print(FILE *f, const hllm_plan *p, const hllm_graph *g, const char *const *proc_names);
void hllm_plan_free(hllm_plan *p);

#endif
