/* The solver's cost model: predicted seconds of a plan's steps from a measured profile (shared by
 * the candidates in solve.c). */
#ifndef HLLM_PLAN_SOLVE_MODEL_H
#define HLLM_PLAN_SOLVE_MODEL_H
#include "plan/solve.h"
#include <stdbool.h>

typedef struct {
    const hllm_profile *prof;
    const hllm_solve_opts *o;
    double sync_s, cpu_op_s, gpu_op_s, h2d, d2h;
    double gpu_step_op_s; /* a GPU op in decode, where steps are captured and replayed */
    double split_s; /* measured cost of cutting a matmul between CPU and GPU beyond its modeled crossings */
    double conc_cpu, conc_gpu; /* factors (<= 1) on host-read speeds when both read host memory */
    double conc_cpu_gbs, conc_gpu_gbs; /* those speeds as profiled (GB/s; 0: not profiled) */
} model_ctx;

/* Weight bytes of rows [r0, r1) of step s's matrix (0 without one). */
double solve_step_bytes(const hllm_step *s, int64_t r0, int64_t r1);
/* Processor q's name in the profile ("cpu", "cuda"). */
const char *solve_pname(const hllm_solve_opts *o, int q);
void solve_ctx_init(model_ctx *c, const hllm_profile *prof, const hllm_solve_opts *o);
/* Seconds for rows [r0, r1) of a matmul step on proc q reading memory mem, n tokens. */
double solve_mm_time(const model_ctx *c, const hllm_step *s, int q, int mem, int64_t r0, int64_t r1, int n, bool contended);
/* A matmul's parts' seconds summed per processor. */
void solve_matmul_per_proc(const model_ctx *c, const hllm_step *s, const hllm_step_plan *sp, int n, double per[HLLM_MAX_PROCS]);
/* Time of step i run as sp, n tokens; holder[] tracks which processors hold each activation
 * whole. p: the plan it belongs to, for what steps around it do (NULL: the step alone). */
double solve_step_time(const model_ctx *c, const hllm_graph *g, const hllm_plan *p, int i, const hllm_step_plan *sp, int n,
                       unsigned holder[HLLM_ACT_COUNT]);
/* Predicted seconds of plan p for n tokens. */
double solve_plan_time(const model_ctx *c, const hllm_plan *p, const hllm_graph *g, int n);

#endif
