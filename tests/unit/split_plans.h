/* Plans the executor tests build by hand. */
#ifndef HLLM_TEST_SPLIT_PLANS_H
#define HLLM_TEST_SPLIT_PLANS_H
#include "plan/plan.h"

/* Cuts step i (ROWS: a matmul's rows; COLS: its input columns; SLICE: a slice) at `at` between
 * processors a and b: a gets [0, at) in a_parts (1 or 2) parts with memories a_mems (NULL: the
 * processor's own), b the rest. A column cut off the block grid of the weight puts all on a. */
void test_cut2(hllm_plan *p, const hllm_graph *g, int i, int cut, int64_t at, int a, int b, int a_parts, const int *a_mems);
/* The split by heads and FFN columns: a gets query heads [0, hq) and FFN elements [0, f), b the
 * rest; norms and residual ADDs run on both (the ADDs sum the column-cut matmuls' partial sums);
 * the embedding on a, the output head row-cut. Validated. */
hllm_plan *test_plan_heads(const hllm_graph *g, int64_t hq, int64_t f, int a, int b, int a_parts, const int *a_mems,
                           const char *why);

#endif
