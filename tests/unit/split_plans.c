#include "split_plans.h"
#include "testutil.h"
#include "core/error.h"
#include "core/types.h"
#include <string.h>

void test_cut2(hllm_plan *p, const hllm_graph *g, int i, int cut, int64_t at, int a, int b, int a_parts, const int *a_mems) {
    const hllm_step *s = &g->steps[i];
    const int64_t total = cut == HLLM_CUT_ROWS ? s->rows : hllm_plan_slice_units(g, s);
    const int64_t blk = cut == HLLM_CUT_COLS ? hllm_type_info(s->w->type)->block_size : 1;
    if (at % blk) at = total;
    const int two = a_parts == 2;
    int procs[3] = {a, a, b}, mems[3] = {0, 0, 0};
    int64_t cuts[3] = {at / 2 / blk * blk, at, total};
    if (a_mems) mems[0] = a_mems[0], mems[1] = a_mems[1];
    if (!two) procs[1] = b, cuts[0] = at, cuts[1] = total, mems[1] = 0;
    const int n = two ? 3 : 2;
    int rc = cut == HLLM_CUT_ROWS ? hllm_plan_cut_rows(p, g, i, n, procs, cuts, mems)
             : cut == HLLM_CUT_COLS ? hllm_plan_cut_cols(p, g, i, n, procs, cuts, mems)
                                    : hllm_plan_slice(p, g, i, n, procs, cuts);
    CHECKF(rc == 0, "cut step %d (%s): %s", i, s->label, hllm_error());
}

hllm_plan *test_plan_heads(const hllm_graph *g, int64_t hq, int64_t f, int a, int b, int a_parts, const int *a_mems,
                           const char *why) {
    hllm_plan *p = hllm_plan_single(g, a, 2, why);
    const int64_t hd = g->head_dim, grp = g->n_head / g->n_head_kv;
    const int both[2] = {a, b};
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (s->layer < 0) {
            if (s->kind == HLLM_OP_MATMUL) test_cut2(p, g, i, HLLM_CUT_ROWS, s->rows / 2, b, a, 1, NULL);
            continue;
        }
        const char *l = s->label;
        if ((s->kind == HLLM_OP_RMSNORM && !s->per_head) || s->kind == HLLM_OP_ADD) CHECK(hllm_plan_replicate(p, g, i, 2, both) == 0);
        else if (!strcmp(l, "attn_q")) test_cut2(p, g, i, HLLM_CUT_ROWS, hq * hd, a, b, a_parts, a_mems);
        else if (!strcmp(l, "attn_k") || !strcmp(l, "attn_v")) test_cut2(p, g, i, HLLM_CUT_ROWS, hq / grp * hd, a, b, a_parts, a_mems);
        else if (s->kind == HLLM_OP_ROPE || s->kind == HLLM_OP_KV_STORE || s->kind == HLLM_OP_ATTENTION)
            test_cut2(p, g, i, HLLM_CUT_SLICE, hq, a, b, 1, NULL);
        else if (!strcmp(l, "attn_output")) test_cut2(p, g, i, HLLM_CUT_COLS, hq * hd, a, b, a_parts, a_mems);
        else if (!strcmp(l, "ffn_gate") || !strcmp(l, "ffn_up")) test_cut2(p, g, i, HLLM_CUT_ROWS, f, a, b, a_parts, a_mems);
        else if (s->kind == HLLM_OP_SWIGLU) test_cut2(p, g, i, HLLM_CUT_SLICE, f, a, b, a_parts, NULL);
        else if (!strcmp(l, "ffn_down")) test_cut2(p, g, i, HLLM_CUT_COLS, f, a, b, a_parts, a_mems);
    }
    CHECKF(hllm_plan_validate(p, g) == 0, "%s: %s", why, hllm_error());
    return p;
}
