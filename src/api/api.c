/* The public API over the model, graph, plan and executor. */
#include "hllm.h"
#include "core/error.h"
#include "exec/exec.h"
#include "model/graph.h"
#include "model/model.h"
#include "plan/profile.h"
#include "plan/solve.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hllm_model {
    hllm_model_s *m;
};

struct hllm_context {
    hllm_model *model;
    hllm_proc *proc;      /* procs[0] */
    hllm_proc *procs[2];  /* heterogeneous: cpu, cuda */
    int n_procs;
    char proc_name[32];
    char *plan_text;
    hllm_graph graph;
    hllm_plan *plan;
    hllm_exec *exec;
    hllm_context_params p;
    float *logits;
    int last_n;
    int pos;
    hllm_timings timings;
    double *pred_steps;   /* solver's prediction per step for one token (placed by the solver), or NULL */
    char report[8192];
};

const char *hllm_last_error(void) { return hllm_error(); }

hllm_model_params hllm_model_default_params(void) { return (hllm_model_params){0}; }

hllm_model *hllm_model_load(const char *path, const hllm_model_params *params) {
    (void)params;
    hllm_gguf_file *f = hllm_gguf_open(path);
    if (!f) return NULL;
    hllm_model_s *ms = hllm_model_from_gguf(f);
    if (!ms) {
        hllm_gguf_close(f);
        return NULL;
    }
    hllm_model *m = malloc(sizeof *m);
    if (!m) {
        hllm_model_destroy(ms);
        hllm_fail("out of memory");
        return NULL;
    }
    m->m = ms;
    if (params && params->progress) params->progress(1.0f, params->progress_user);
    return m;
}

void hllm_model_free(hllm_model *m) {
    if (!m) return;
    hllm_model_destroy(m->m);
    free(m);
}

const char *hllm_model_desc(const hllm_model *m) { return m->m->desc; }
const char *hllm_model_arch(const hllm_model *m) { return m->m->arch_name; }
int32_t hllm_model_n_vocab(const hllm_model *m) { return m->m->hp.n_vocab; }
int32_t hllm_model_n_embd(const hllm_model *m) { return m->m->hp.n_embd; }
int32_t hllm_model_n_layer(const hllm_model *m) { return m->m->hp.n_layer; }
int32_t hllm_model_n_ctx_train(const hllm_model *m) { return m->m->hp.n_ctx_train; }
uint64_t hllm_model_n_params(const hllm_model *m) { return m->m->n_params; }
uint64_t hllm_model_size(const hllm_model *m) { return m->m->n_bytes; }

int hllm_model_tokenize(const hllm_model *m, const char *text, size_t len, bool add_special, bool parse_special,
                        hllm_token *out, int max) {
    return hllm_tokenize(m->m->tok, text, len, add_special, parse_special, out, max);
}
int hllm_model_token_to_piece(const hllm_model *m, hllm_token id, char *buf, int size, bool special) {
    return hllm_token_to_piece(m->m->tok, id, buf, size, special);
}
hllm_token hllm_model_token_bos(const hllm_model *m) { return hllm_tokenizer_bos(m->m->tok); }
hllm_token hllm_model_token_eos(const hllm_model *m) { return hllm_tokenizer_eos(m->m->tok); }
bool hllm_model_token_is_eog(const hllm_model *m, hllm_token id) { return hllm_tokenizer_is_eog(m->m->tok, id); }

int hllm_detok_piece(const hllm_model *m, hllm_detok *d, hllm_token id, char *out, int size) {
    _Static_assert(sizeof(hllm_detok) == sizeof(hllm_detok_stream), "detok state layouts differ");
    return hllm_detok_push(m->m->tok, (hllm_detok_stream *)d, id, out, size);
}
int hllm_detok_finish(hllm_detok *d, char *out, int size) { return hllm_detok_flush((hllm_detok_stream *)d, out, size); }

hllm_context_params hllm_context_default_params(void) {
    return (hllm_context_params){.n_ctx = 0, .n_batch = 512, .n_threads = 0, .kv_type = HLLM_KV_F16};
}

/* CPU + GPU (when present) placed by the solver. */
static int place_hetero(hllm_context *c, hllm_model *m, const hllm_context_params *p) {
    c->procs[0] = c->proc = hllm_proc_new("cpu", p->n_threads);
    if (!c->proc) return -1;
    c->n_procs = 1;
    c->p.n_threads = c->proc->n_threads;
    if (hllm_graph_build(m->m, &c->graph)) return -1;
    hllm_proc *gpu = hllm_proc_new("cuda", 0);
    if (gpu) c->procs[c->n_procs++] = gpu;
    snprintf(c->proc_name, sizeof c->proc_name, "%s", gpu ? "cpu+cuda" : "cpu");
    hllm_profile *pf = p->profile ? hllm_profile_load(p->profile) : hllm_profile_builtin();
    if (!pf) return -1;
    double weights = 0;
    for (int i = 0; i < c->graph.n_steps; i++) {
        const hllm_step *s = &c->graph.steps[i];
        if (s->kind == HLLM_OP_MATMUL) weights += (double)s->w->row_bytes * (double)s->w->rows;
    }
    hllm_solve_opts so = {.split = p->split == HLLM_SPLIT_MODE_NONE     ? HLLM_SPLIT_NONE
                                   : p->split == HLLM_SPLIT_MODE_LAYER  ? HLLM_SPLIT_LAYER
                                   : p->split == HLLM_SPLIT_MODE_TENSOR ? HLLM_SPLIT_TENSOR
                                                                        : HLLM_SPLIT_AUTO,
                          .gpu_mem = -1, .n_batch = p->n_batch > 0 ? p->n_batch : 512, .cpu = 0, .gpu = gpu ? 1 : -1};
    const char *names[2] = {"cpu", "cuda"};
    so.names = names;
    if (p->gpu_mem && (so.gpu_mem = hllm_parse_mem(p->gpu_mem, weights)) < 0) {
        hllm_profile_free(pf);
        return hllm_fail("bad GPU memory size '%s' (e.g. 50%%, 6G, 512M)", p->gpu_mem);
    }
    c->plan = hllm_solve(&c->graph, pf, &so, NULL);
    if (c->plan && (c->pred_steps = malloc((size_t)c->graph.n_steps * sizeof *c->pred_steps)))
        hllm_plan_predict_steps(c->plan, &c->graph, pf, &so, 1, c->pred_steps);
    hllm_profile_free(pf);
    return c->plan ? 0 : -1;
}

hllm_context *hllm_context_new(hllm_model *m, const hllm_context_params *params) {
    hllm_context_params p = params ? *params : hllm_context_default_params();
    if (p.n_ctx <= 0) p.n_ctx = m->m->hp.n_ctx_train < 4096 ? m->m->hp.n_ctx_train : 4096;
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_ctx > 1 << 20) {
        hllm_fail("context size %d is too large (at most %d)", p.n_ctx, 1 << 20);
        return NULL;
    }
    hllm_context *c = calloc(1, sizeof *c);
    if (!c) {
        hllm_fail("out of memory");
        return NULL;
    }
    c->model = m;
    c->p = p;
    if (p.split != HLLM_SPLIT_DEFAULT || p.gpu_mem) {
        if (place_hetero(c, m, &p)) goto fail;
    } else {
        c->proc = c->procs[0] = hllm_proc_new(p.proc ? p.proc : "cpu", p.n_threads);
        if (!c->proc) goto fail;
        c->n_procs = 1;
        snprintf(c->proc_name, sizeof c->proc_name, "%s", c->proc->name);
        c->p.n_threads = c->proc->n_threads;
        if (hllm_graph_build(m->m, &c->graph)) goto fail;
        c->plan = hllm_plan_single(&c->graph, 0, 1, "one processor");
        if (!c->plan) goto fail;
    }
    hllm_exec_params ep = {.n_ctx = p.n_ctx, .n_batch = p.n_batch,
                           .kv_type = p.kv_type == HLLM_KV_F32 ? HLLM_TYPE_F32 : HLLM_TYPE_F16,
                           .logits_all = p.logits_all, .progress = p.progress, .progress_user = p.progress_user};
    c->exec = hllm_exec_new(m->m, &c->graph, c->plan, c->procs, c->n_procs, &ep);
    if (!c->exec) goto fail;
    size_t n_logits = (size_t)m->m->hp.n_vocab * (p.logits_all ? (size_t)p.n_batch : 1);
    c->logits = calloc(n_logits, sizeof(float));
    if (!c->logits) {
        hllm_fail("out of memory allocating logits");
        goto fail;
    }
    return c;
fail:
    hllm_context_free(c);
    return NULL;
}

void hllm_context_free(hllm_context *c) {
    if (!c) return;
    hllm_exec_free(c->exec);
    hllm_plan_free(c->plan);
    free(c->pred_steps);
    hllm_graph_free(&c->graph);
    for (int i = 0; i < c->n_procs; i++) hllm_proc_free(c->procs[i]);
    free(c->plan_text);
    free(c->logits);
    free(c);
}

int hllm_context_n_ctx(const hllm_context *c) { return c->p.n_ctx; }
int hllm_context_pos(const hllm_context *c) { return c->pos; }
void hllm_context_reset(hllm_context *c) { c->pos = 0; }
const char *hllm_context_proc(const hllm_context *c) { return c->proc_name; }

const char *hllm_context_plan(hllm_context *c) {
    if (c->plan_text) return c->plan_text;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return c->plan->why;
    const char *names[2] = {c->procs[0]->name, c->n_procs > 1 ? c->procs[1]->name : NULL};
    hllm_plan_print(f, c->plan, &c->graph, names);
    fclose(f);
    c->plan_text = buf;
    return buf ? buf : c->plan->why;
}
int hllm_context_n_threads(const hllm_context *c) { return c->p.n_threads; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int hllm_eval(hllm_context *c, const hllm_token *tokens, int n) {
    if (n <= 0) return hllm_fail("nothing to evaluate (0 tokens)");
    if (c->pos + n > c->p.n_ctx)
        return hllm_fail("%d tokens do not fit: %d of the context's %d are used (raise -c)", n, c->pos, c->p.n_ctx);
    if (n > c->p.n_batch && c->p.logits_all)
        return hllm_fail("%d tokens exceed the batch size %d with logits for every token", n, c->p.n_batch);
    double t0 = now_s();
    for (int done = 0; done < n;) {
        int chunk = n - done < c->p.n_batch ? n - done : c->p.n_batch;
        if (hllm_exec_eval(c->exec, tokens + done, chunk, c->pos + done, c->logits)) return -1;
        done += chunk;
    }
    c->pos += n;
    c->last_n = n;
    double dt = now_s() - t0;
    if (n > 1) {
        c->timings.t_prompt_s += dt;
        c->timings.n_prompt += n;
    } else {
        c->timings.t_gen_s += dt;
        c->timings.n_gen += 1;
    }
    return 0;
}

float *hllm_get_logits(hllm_context *c) {
    if (c->p.logits_all && c->last_n > 0) return c->logits + (size_t)(c->last_n - 1) * (size_t)c->model->m->hp.n_vocab;
    return c->logits;
}

float *hllm_get_logits_ith(hllm_context *c, int i) {
    if (!c->p.logits_all) return i == c->last_n - 1 ? c->logits : NULL;
    if (i < 0 || i >= c->last_n) return NULL;
    return c->logits + (size_t)i * (size_t)c->model->m->hp.n_vocab;
}

hllm_timings hllm_get_timings(const hllm_context *c) { return c->timings; }
void hllm_reset_timings(hllm_context *c) { memset(&c->timings, 0, sizeof c->timings); }

void hllm_context_set_profiling(hllm_context *c, bool on) { hllm_exec_set_profiling(c->exec, on); }

const char *hllm_context_profile_report(hllm_context *c) {
    static const char *names[HLLM_OP_COUNT] = {"embed", "rmsnorm", "matmul", "rope", "kv_store", "attention", "swiglu", "add"};
    double secs[HLLM_OP_COUNT];
    long calls[HLLM_OP_COUNT];
    hllm_exec_op_times(c->exec, secs, calls);
    double total = 0;
    for (int i = 0; i < HLLM_OP_COUNT; i++) total += secs[i];
    int off = snprintf(c->report, sizeof c->report, "time per op on %s (%d threads):\n", c->proc_name, c->p.n_threads);
    for (int i = 0; i < HLLM_OP_COUNT && off < (int)sizeof c->report; i++)
        if (calls[i])
            off += snprintf(c->report + off, sizeof c->report - (size_t)off, "  %-10s %9.3f ms %6.1f%% %8ld calls\n",
                            names[i], secs[i] * 1e3, total > 0 ? 100.0 * secs[i] / total : 0.0, calls[i]);
    /* the solver's prediction next to the measured time of each step (ops timed to completion,
     * so the measured side has no overlap between processors), one token, layers summed */
    const hllm_graph *g = &c->graph;
    double *meas = c->pred_steps ? calloc((size_t)g->n_steps, sizeof *meas) : NULL;
    long evals = meas ? hllm_exec_step_times(c->exec, meas) : 0;
    if (evals > 0 && off < (int)sizeof c->report) {
        off += snprintf(c->report + off, sizeof c->report - (size_t)off,
                        "predicted vs measured per generated token (%ld tokens; steps summed over layers):\n", evals);
        double tp = 0, tm = 0;
        for (int i = 0; i < g->n_steps && off < (int)sizeof c->report; i++) {
            bool first = true; /* first step with this label */
            for (int j = 0; j < i && first; j++) first = strcmp(g->steps[j].label, g->steps[i].label) != 0;
            if (!first) continue;
            double ps = 0, ms = 0;
            for (int j = i; j < g->n_steps; j++)
                if (!strcmp(g->steps[j].label, g->steps[i].label)) ps += c->pred_steps[j], ms += meas[j] / (double)evals;
            tp += ps, tm += ms;
            off += snprintf(c->report + off, sizeof c->report - (size_t)off, "  %-14s predicted %9.3f ms  measured %9.3f ms\n",
                            g->steps[i].label, ps * 1e3, ms * 1e3);
        }
        if (off < (int)sizeof c->report)
            off += snprintf(c->report + off, sizeof c->report - (size_t)off, "  %-14s predicted %9.3f ms  measured %9.3f ms\n",
                            "total", tp * 1e3, tm * 1e3);
    }
    free(meas);
    return c->report;
}
