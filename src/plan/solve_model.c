/* The solver's cost model (see solve_model.h): per-step predicted seconds under a measured profile. */
#include "plan/solve_model.h"
#include "core/types.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

double solve_step_bytes(const hllm_step *s, int64_t r0, int64_t r1) {
    return s->w ? (double)hllm_row_bytes(s->w->type, s->w->cols) * (double)(r1 - r0) : 0.0;
}

const char *solve_pname(const hllm_solve_opts *o, int q) {
    return o->names && o->names[q] ? o->names[q] : q == o->cpu ? "cpu" : "cuda";
}

void solve_ctx_init(model_ctx *c, const hllm_profile *prof, const hllm_solve_opts *o) {
    char key[96];
    c->prof = prof;
    c->o = o;
    c->sync_s = hllm_profile_get(prof, "sync.round_trip_us", 5.0) * 1e-6;
    c->cpu_op_s = c->gpu_op_s = c->gpu_step_op_s = 2e-6;
    c->h2d = c->d2h = 20;
    c->conc_cpu = c->conc_gpu = 1;
    c->conc_cpu_gbs = c->conc_gpu_gbs = 0;
    c->split_s = 0;
    if (o->cpu >= 0) {
        snprintf(key, sizeof key, "%s.op_us", solve_pname(o, o->cpu));
        c->cpu_op_s = hllm_profile_get(prof, key, 2.0) * 1e-6;
    }
    if (o->gpu >= 0) {
        const char *gn = solve_pname(o, o->gpu);
        snprintf(key, sizeof key, "%s.op_us", gn);
        c->gpu_op_s = hllm_profile_get(prof, key, 5.0) * 1e-6;
        snprintf(key, sizeof key, "%s.graph_op_us", gn);
        c->gpu_step_op_s = hllm_profile_get(prof, key, c->gpu_op_s * 1e6) * 1e-6;
        snprintf(key, sizeof key, "%s.h2d_gbs", gn);
        c->h2d = hllm_profile_get(prof, key, 20);
        snprintf(key, sizeof key, "%s.d2h_gbs", gn);
        c->d2h = hllm_profile_get(prof, key, 20);
        /* the profile's handoff holds a round trip of flags and a copy each way, which the
         * crossings of a cut step already count; the rest is what cutting costs besides */
        const double h = hllm_profile_get(prof, "split.handoff_us", 0) * 1e-6 - 2 * (c->sync_s + c->gpu_op_s);
        c->split_s = h > 0 ? h : 0;
        if (o->cpu >= 0) {
            char k2[96];
            snprintf(key, sizeof key, "%s.concurrent_host_gbs", solve_pname(o, o->cpu));
            snprintf(k2, sizeof k2, "%s.read_gbs", solve_pname(o, o->cpu));
            double a = c->conc_cpu_gbs = hllm_profile_get(prof, key, 0), b = hllm_profile_get(prof, k2, 0);
            if (a > 0 && b > 0) c->conc_cpu = a / b < 1 ? a / b : 1;
            snprintf(key, sizeof key, "%s.concurrent_host_gbs", gn);
            snprintf(k2, sizeof k2, "%s.host_read_gbs", gn);
            a = c->conc_gpu_gbs = hllm_profile_get(prof, key, 0), b = hllm_profile_get(prof, k2, 0);
            if (a > 0 && b > 0) c->conc_gpu = a / b < 1 ? a / b : 1;
            /* measured inside a cut as the executor runs it, when profiled: the lower rules */
            const double f = hllm_profile_get(prof, "split.gpu_host_factor", 0);
            if (f > 0 && f < c->conc_gpu) c->conc_gpu = f;
        }
    }
}

/* Batches of at most n_batch tokens that n tokens take. */
static double chunks_of(const model_ctx *c, int n) {
    const int nb = c->o->n_batch > 0 ? c->o->n_batch : 512;
    return ceil((double)n / nb);
}

/* Cost of issuing one op of n_tok tokens on proc q: decode steps (n_tok <= 8) of a GPU are
 * captured and replayed, where an op costs its gap in the graph, not a launch. */
static double op_cost(const model_ctx *c, int q, int n_tok) {
    if (q == c->o->cpu) return c->cpu_op_s;
    return n_tok <= 8 ? c->gpu_step_op_s : c->gpu_op_s;
}

/* Seconds for n_rows rows (bytes of weights) of a matmul step on proc q reading memory mem, n tokens. */
static double mm_time_b(const model_ctx *c, const hllm_step *s, int q, int mem, int64_t n_rows, double bytes, int n,
                        bool contended) {
    const int nb = c->o->n_batch > 0 ? c->o->n_batch : 512;
    const int b = n < nb ? n : nb;
    const double chunks = chunks_of(c, n), op = op_cost(c, q, b);
    double slow = 1; /* host-read contention when CPU and GPU read host memory together */
    if (contended && mem == HLLM_MEM_HOST) slow /= c->conc_gpu;
    if (contended && q == c->o->cpu) slow /= c->conc_cpu;
    if (b == 1 && n_rows < s->w->rows) { /* a slice: measured fixed cost + per-row cost, when profiled */
        const double t = hllm_profile_matmul_slice_s(c->prof, solve_pname(c->o, q), mem, s->w->type, s->w->rows, s->w->cols, n_rows);
        if (t > 0) return chunks * (t * slow + op);
    }
    double gbs = hllm_profile_matmul_shape_gbs(c->prof, solve_pname(c->o, q), mem, s->w->type, s->w->rows, s->w->cols, b, 0);
    if (gbs <= 0) gbs = hllm_profile_matmul_gbs(c->prof, solve_pname(c->o, q), mem, s->w->type, b, 0);
    if (gbs <= 0) gbs = q == c->o->cpu ? 50 : 500;
    return chunks * (bytes * slow / (gbs * 1e9) + op);
}

/* Seconds for rows [r0, r1) of a matmul step on proc q reading memory mem, n tokens. */
double solve_mm_time(const model_ctx *c, const hllm_step *s, int q, int mem, int64_t r0, int64_t r1, int n,
                      bool contended) {
    return mm_time_b(c, s, q, mem, r1 - r0, solve_step_bytes(s, r0, r1), n, contended);
}

/* Weight bytes a matmul part reads: its rows, or (cut by columns) its columns of every row. */
static double part_bytes(const hllm_step *s, int cut, const hllm_part *pt) {
    if (cut != HLLM_CUT_COLS) return solve_step_bytes(s, pt->r0, pt->r1);
    return (double)hllm_row_bytes(s->w->type, pt->r1 - pt->r0) * (double)s->w->rows;
}

/* Seconds for one part of a matmul; a column part counts as rows * (its columns / cols) rows. */
static double part_time(const model_ctx *c, const hllm_step *s, int cut, const hllm_part *pt, int n, bool contended) {
    const int q = pt->proc, mem = q == c->o->cpu ? HLLM_MEM_DEVICE : pt->mem;
    if (cut != HLLM_CUT_COLS) return solve_mm_time(c, s, q, mem, pt->r0, pt->r1, n, contended);
    const int64_t eq = s->w->rows * (pt->r1 - pt->r0) / s->w->cols;
    return mm_time_b(c, s, q, mem, eq, part_bytes(s, cut, pt), n, contended);
}

/* A matmul's parts' seconds summed per processor (host reads contended when the CPU has a part
 * and the GPU a host part). */
void solve_matmul_per_proc(const model_ctx *c, const hllm_step *s, const hllm_step_plan *sp, int n, double per[HLLM_MAX_PROCS]) {
    bool cpu_part = false, host_part = false;
    for (int k = 0; k < sp->n_parts; k++) {
        if (sp->parts[k].proc == c->o->cpu) cpu_part = true;
        else if (sp->parts[k].mem == HLLM_MEM_HOST) host_part = true;
    }
    for (int q = 0; q < HLLM_MAX_PROCS; q++) per[q] = 0;
    for (int k = 0; k < sp->n_parts; k++) per[sp->parts[k].proc] += part_time(c, s, sp->cut, &sp->parts[k], n, cpu_part && host_part);
}

/* The step of plan p that next reads what step i writes (NULL: none, or no plan). */
static const hllm_step_plan *consumer(const hllm_graph *g, const hllm_plan *p, int i) {
    const hllm_act a = g->steps[i].dst;
    if (!p || a == HLLM_ACT_NONE) return NULL;
    for (int j = i + 1; j < g->n_steps; j++) {
        const hllm_step *s = &g->steps[j];
        if (s->src == a || s->src2 == a || (s->dst == a && (s->kind == HLLM_OP_ADD || s->kind == HLLM_OP_ROPE))) return &p->steps[j];
        if (s->dst == a) return NULL;
    }
    return NULL;
}

/* The column-cut matmul whose partial sums ADD step i adds (NULL: none, or no plan). */
static const hllm_step_plan *summed_cols(const hllm_graph *g, const hllm_plan *p, int i) {
    if (!p || i < 1 || g->steps[i].kind != HLLM_OP_ADD || p->steps[i - 1].cut != HLLM_CUT_COLS) return NULL;
    return g->steps[i - 1].dst == g->steps[i].src ? &p->steps[i - 1] : NULL;
}

static double max_of(const double *v, int n) {
    double m = 0;
    for (int k = 0; k < n; k++) m = v[k] > m ? v[k] : m;
    return m;
}

/* The cost of cutting matmul step i between CPU and GPU beyond its parts, unless its output
 * goes straight to slices (each processor keeps its share). */
static double cut_secs(const model_ctx *c, const hllm_graph *g, const hllm_plan *p, int i, const hllm_step_plan *sp, int n_tok) {
    bool cpu = false, other = false;
    for (int k = 0; k < sp->n_parts; k++) cpu |= sp->parts[k].proc == c->o->cpu, other |= sp->parts[k].proc != c->o->cpu;
    const hllm_step_plan *next = sp->cut == HLLM_CUT_ROWS ? consumer(g, p, i) : NULL;
    return cpu && other && !(next && next->cut == HLLM_CUT_SLICE) ? c->split_s * chunks_of(c, n_tok) : 0;
}

/* Seconds of an ADD that sums a column cut's partials (cols): each processor running it gets
 * the partials held elsewhere (a flag, a copy, an op each) and adds every partial (an op each);
 * replicated, the slowest processor. */
static double partials_secs(const model_ctx *c, const hllm_graph *g, const hllm_step_plan *cols, const hllm_step_plan *sp,
                            int n_tok) {
    const double bytes = (double)g->act_width[HLLM_ACT_PART0] * 4.0 * n_tok;
    double slowest = 0;
    for (int k = 0; k < sp->n_parts; k++) {
        const int q = sp->parts[k].proc;
        double t = 0;
        for (int j = 0; j < cols->n_parts; j++) {
            if (cols->parts[j].proc != q) t += c->sync_s + bytes / ((q == c->o->cpu ? c->d2h : c->h2d) * 1e9) + c->gpu_op_s;
            t += op_cost(c, q, n_tok);
        }
        slowest = t > slowest ? t : slowest;
    }
    return slowest;
}

/* Seconds of a non-matmul step's op: the slowest processor (a slice's parts each cost an op on
 * their processor; a replicated step's copies run side by side). */
static double op_secs(const model_ctx *c, const hllm_step_plan *sp, int n_tok) {
    if (sp->cut == HLLM_CUT_SLICE) {
        double per[HLLM_MAX_PROCS] = {0};
        for (int k = 0; k < sp->n_parts; k++) per[sp->parts[k].proc] += op_cost(c, sp->parts[k].proc, n_tok);
        return max_of(per, HLLM_MAX_PROCS);
    }
    int q = sp->parts[0].proc;
    for (int k = 1; k < sp->n_parts; k++) /* replicated: the slowest copy */
        if (op_cost(c, sp->parts[k].proc, n_tok) > op_cost(c, q, n_tok)) q = sp->parts[k].proc;
    return op_cost(c, q, n_tok);
}

/* Seconds moving a step's inputs to its parts' processors (none for column parts and slices:
 * the plan gives each processor its share in place; skip_src: the src is a column cut's
 * partials, which the ADD's own cost moves). */
static double inputs_secs(const model_ctx *c, const hllm_graph *g, const hllm_step *s, const hllm_step_plan *sp, int n_tok,
                          unsigned holder[HLLM_ACT_COUNT], bool skip_src) {
    if (sp->cut != HLLM_CUT_ROWS) return 0;
    hllm_act rd[3];
    int nr = 0;
    if (s->src != HLLM_ACT_NONE && !skip_src) rd[nr++] = s->src;
    if (s->src2 != HLLM_ACT_NONE) rd[nr++] = s->src2;
    if (s->kind == HLLM_OP_ADD || s->kind == HLLM_OP_ROPE) rd[nr++] = s->dst;
    /* a cut matmul's parts get their inputs in turn; a replicated step's side by side, each
     * from what the processors held before it */
    const bool replicated = s->kind != HLLM_OP_MATMUL && sp->n_parts > 1;
    unsigned before[HLLM_ACT_COUNT];
    memcpy(before, holder, sizeof before);
    double t = 0, slowest = 0;
    for (int k = 0; k < sp->n_parts; k++) {
        const int q = sp->parts[k].proc;
        const unsigned *h = replicated ? before : holder;
        double mv = 0;
        for (int j = 0; j < nr; j++) {
            if (h[rd[j]] & (1u << q)) continue;
            bool whole = h[rd[j]] != 0; /* a whole copy elsewhere: one copy; else slices token by token */
            double bytes = (double)g->act_width[rd[j]] * 4.0 * n_tok;
            mv += c->sync_s + bytes / ((q == c->o->cpu ? c->d2h : c->h2d) * 1e9) + (whole ? 1 : n_tok) * c->gpu_op_s;
            holder[rd[j]] |= 1u << q;
        }
        if (replicated) slowest = mv > slowest ? mv : slowest;
        else t += mv;
    }
    return t + slowest;
}

/* Who holds what step s wrote: every copy's processor when replicated, the one processor when
 * all parts are on it, else nobody (row parts, column partials and slices are not whole). */
static void written(const hllm_step *s, const hllm_step_plan *sp, unsigned holder[HLLM_ACT_COUNT]) {
    const bool replicated = s->kind != HLLM_OP_MATMUL && sp->n_parts > 1 && sp->cut == HLLM_CUT_ROWS;
    bool one = true;
    unsigned all = 0;
    for (int k = 0; k < sp->n_parts; k++) one &= sp->parts[k].proc == sp->parts[0].proc, all |= 1u << sp->parts[k].proc;
    const unsigned h = replicated ? all : one ? 1u << sp->parts[0].proc : 0;
    if (s->dst != HLLM_ACT_NONE) holder[s->dst] = h;
    if (s->kind == HLLM_OP_ROPE) holder[s->src2] = h;
}

/* Time of step i run as sp, n tokens; holder[] tracks which processors hold each activation
 * whole. p: the plan it belongs to, for what steps around it do (NULL: the step alone). */
double solve_step_time(const model_ctx *c, const hllm_graph *g, const hllm_plan *p, int i, const hllm_step_plan *sp, int n,
                        unsigned holder[HLLM_ACT_COUNT]) {
    const hllm_step *s = &g->steps[i];
    const int n_tok = s->last_only ? 1 : n;
    const hllm_step_plan *cols = summed_cols(g, p, i);
    double t = inputs_secs(c, g, s, sp, n_tok, holder, cols != NULL);
    if (s->kind == HLLM_OP_MATMUL) { /* the slowest processor */
        double per[HLLM_MAX_PROCS];
        solve_matmul_per_proc(c, s, sp, n_tok, per);
        t += max_of(per, HLLM_MAX_PROCS);
        const double cut = cut_secs(c, g, p, i, sp, n_tok);
        if (cut > 0) t += cut;
    } else if (cols) t += partials_secs(c, g, cols, sp, n_tok);
    else t += op_secs(c, sp, n_tok);
    written(s, sp, holder);
    return t;
}

double solve_plan_time(const model_ctx *c, const hllm_plan *p, const hllm_graph *g, int n) {
    unsigned holder[HLLM_ACT_COUNT] = {0};
    double t = 0;
    for (int i = 0; i < g->n_steps; i++) t += solve_step_time(c, g, p, i, &p->steps[i], n, holder);
    return t;
}

void hllm_plan_predict_steps(const hllm_plan *p, const hllm_graph *g, const hllm_profile *prof, const hllm_solve_opts *o,
                             int n, double *secs) {
    model_ctx c;
    solve_ctx_init(&c, prof, o);
    unsigned holder[HLLM_ACT_COUNT] = {0};
    for (int i = 0; i < g->n_steps; i++) secs[i] = solve_step_time(&c, g, p, i, &p->steps[i], n, holder);
}

hllm_prediction hllm_plan_predict(const hllm_plan *p, const hllm_graph *g, const hllm_profile *prof,
                                  const hllm_solve_opts *o) {
    model_ctx c;
    solve_ctx_init(&c, prof, o);
    hllm_prediction r = {0};
    r.decode_s = solve_plan_time(&c, p, g, 1);
    r.prefill_s = solve_plan_time(&c, p, g, o->n_prompt > 0 ? o->n_prompt : 512);
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (!s->w || s->w->rows == 1) continue;
        for (int k = 0; k < p->steps[i].n_parts; k++) {
            const hllm_part *pt = &p->steps[i].parts[k];
            double b = s->kind == HLLM_OP_MATMUL ? part_bytes(s, p->steps[i].cut, pt) : solve_step_bytes(s, 0, s->w->rows);
            if (pt->proc == o->cpu) r.cpu_bytes += b;
            else if (pt->mem == HLLM_MEM_HOST) r.gpu_host_bytes += b;
            else r.gpu_dev_bytes += b;
        }
    }
    return r;
}

