#include "plan/plan.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>

hllm_plan *hllm_plan_single(const hllm_graph *g, int proc, int n_procs, const char *why) {
    hllm_plan *p = calloc(1, sizeof *p);
    if (p) p->steps = calloc((size_t)g->n_steps, sizeof *p->steps);
    if (!p || !p->steps) {
        free(p);
        hllm_fail("out of memory");
        return NULL;
    }
    p->n_steps = g->n_steps;
    p->n_procs = n_procs;
    for (int i = 0; i < g->n_steps; i++) {
        p->steps[i].n_parts = 1;
        p->steps[i].parts[0] = (hllm_part){.proc = proc, .r0 = 0, .r1 = g->steps[i].rows};
    }
    snprintf(p->why, sizeof p->why, "%s", why ? why : "");
    return p;
}

void hllm_plan_free(hllm_plan *p) {
    if (!p) return;
    free(p->steps);
    free(p);
}
