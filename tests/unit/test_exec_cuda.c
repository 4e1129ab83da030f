/* The executor on CPU + CUDA plans (skips with a printed reason without a CUDA build or
 * device): matmuls cut three ways (CPU rows, VRAM rows, rows the GPU reads from pinned host
 * memory), other steps alternating by layer, with and without a separate plan for prompts.
 * The model is teacher-forced with the CPU's greedy tokens: every evaluation's logits must be
 * within tolerance of the CPU alone, and the run with captured decode steps (graphs holding the
 * flag waits and copies of a split step) bit-identical to the run issued op by op. */
#include "testutil.h"
#include "core/error.h"
#include "exec/exec.h"
#include "gguf/gguf.h"
#include "model/graph.h"
#include "model/model.h"
#include "model/synth.h"
#include "plan/plan.h"
#include "split_plans.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HLLM_HAVE_CUDA
#include "proc/cuda/cuda_proc.h"

#define N_PROMPT 7
#define N_GEN 24
#define N_EVAL (2 + N_GEN) /* prompt in batches of 4 + 3, then one token at a time */
#define N_CTX 64

static hllm_proc *P[2]; /* CPU, GPU */

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Runs the prompt and N_GEN tokens; tokens[] is filled (teach == 0) or followed (teach == 1). */
static int run(const hllm_model_s *m, const hllm_graph *g, const hllm_plan *plan, int32_t *tokens, int teach, float *logits) {
    printf("run: %s\n", plan->why);
    fflush(stdout);
    hllm_exec_params ep = {.n_ctx = N_CTX, .n_batch = 4, .kv_type = HLLM_TYPE_F16};
    hllm_exec *e = hllm_exec_new(m, g, plan, P, 2, &ep);
    CHECKF(e != NULL, "exec_new (%s): %s", plan->why, hllm_error());
    if (!e) return -1;
    const int nv = m->hp.n_vocab;
    int pos = 0, ev = 0, rc = 0;
    while (pos < N_PROMPT && !rc) {
        int k = N_PROMPT - pos < 4 ? N_PROMPT - pos : 4;
        rc = hllm_exec_eval(e, tokens + pos, k, pos, logits + (size_t)ev++ * nv);
        pos += k;
    }
    for (int i = 0; i < N_GEN && !rc; i++) {
        if (!teach) tokens[N_PROMPT + i] = argmax(logits + (size_t)(ev - 1) * nv, nv);
        rc = hllm_exec_eval(e, tokens + pos, 1, pos, logits + (size_t)ev++ * nv);
        pos++;
    }
    CHECKF(rc == 0, "eval (%s): %s", plan->why, hllm_error());
    hllm_exec_free(e);
    return rc;
}

/* ||a - b|| / ||b|| over n floats; +inf on NaN (a NaN would otherwise pass every `<=` check) */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static hllm_plan *split_plan(const hllm_graph *g, int nl, bool with_prompt_plan) {
    int lp[64];
    for (int l = 0; l < nl; l++) lp[l] = l % 2;
    hllm_plan *p = hllm_plan_layers(g, lp, 0, 1, 2, "three-way row-cut");
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].kind == HLLM_OP_MATMUL) {
            int procs[3] = {0, 1, 1}, mems[3] = {HLLM_MEM_DEVICE, HLLM_MEM_DEVICE, HLLM_MEM_HOST};
            double fr[3] = {0.3, 0.4, 0.3};
            CHECK(hllm_plan_cut(p, g, i, 3, procs, fr, mems, 1) == 0);
        }
    if (with_prompt_plan) {
        p->prefill = hllm_plan_clone(p);
        for (int i = 0; i < g->n_steps; i++)
            for (int k = 0; k < p->prefill->steps[i].n_parts; k++) {
                hllm_part *pt = &p->prefill->steps[i].parts[k];
                if (g->steps[i].kind == HLLM_OP_MATMUL && pt->proc == 0) pt->proc = 1, pt->mem = HLLM_MEM_HOST;
            }
        p->prefill_min = 2;
    }
    return p;
}

/* The GPU runs the first half of the layers and the output head, the CPU the rest: the GPU's
 * step waits for the CPU once, after its own layers. */
static hllm_plan *gpu_first_plan(const hllm_graph *g, int nl) {
    int lp[64];
    for (int l = 0; l < nl; l++) lp[l] = l < (nl + 1) / 2 ? 1 : 0;
    return hllm_plan_layers(g, lp, 1, 1, 2, "GPU first layers and head, CPU the rest");
}

/* The split by heads and FFN columns: the GPU's share from VRAM and from host memory, the CPU's
 * (all_heads: every query head on the GPU, as the solver's attention-in-VRAM fills choose, the
 * CPU's share then only FFN columns); with a prompt plan, prompts run the attention whole on
 * the GPU (reading the CPU's slice of the KV cache from pinned host memory) and the CPU's
 * matmul parts from host memory on the GPU. */
static hllm_plan *heads_plan(const hllm_graph *g, int64_t n_ff, bool with_prompt_plan, bool all_heads) {
    const int grp = g->n_head / g->n_head_kv, mems[2] = {HLLM_MEM_DEVICE, HLLM_MEM_HOST};
    hllm_plan *p = test_plan_heads(g, all_heads ? g->n_head : g->n_head / 2 / grp * grp, n_ff / 2, 1, 0, 2, mems,
                                   all_heads ? "every head on the GPU, FFN columns" : "heads and FFN columns");
    if (with_prompt_plan) {
        p->prefill = hllm_plan_clone(p);
        for (int i = 0; i < g->n_steps; i++) {
            hllm_step_plan *sp = &p->prefill->steps[i];
            const hllm_op_kind k = g->steps[i].kind;
            if (k == HLLM_OP_MATMUL)
                for (int j = 0; j < sp->n_parts; j++) {
                    if (sp->parts[j].proc == 0) sp->parts[j].proc = 1, sp->parts[j].mem = HLLM_MEM_HOST;
                }
            else if (k != HLLM_OP_EMBED)
                *sp = (hllm_step_plan){.n_parts = 1, .parts = {{.proc = 1, .r1 = g->steps[i].rows}}};
        }
        p->prefill_min = 2;
        CHECKF(hllm_plan_validate(p, g) == 0, "heads prompt plan: %s", hllm_error());
    }
    return p;
}

static void test_model(const char *arch, int type, double tol) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/hllm_test_exec_cuda_%s_%d_%d.gguf", arch, type, (int)getpid());
    hllm_synth_opts o = {.arch = arch, .preset = "tiny", .type = type, .seed = 11, .n_threads = 2};
    CHECKF(hllm_synth_write(&o, path) == 0, "synth: %s", hllm_error());
    hllm_gguf_file *f = hllm_gguf_open(path);
    hllm_model_s *m = f ? hllm_model_from_gguf(f) : NULL;
    CHECKF(m != NULL, "model: %s", hllm_error());
    if (!m) {
        if (f) hllm_gguf_close(f);
        unlink(path);
        return;
    }
    hllm_graph g;
    CHECK(hllm_graph_build(m, &g) == 0);
    const int nv = m->hp.n_vocab;
    const size_t n_log = (size_t)N_EVAL * nv;
    float *ref = malloc(n_log * sizeof(float)), *on = malloc(n_log * sizeof(float)), *off = malloc(n_log * sizeof(float));
    int32_t tokens[N_PROMPT + N_GEN];
    for (int i = 0; i < N_PROMPT; i++) tokens[i] = (int32_t)((i * 37 + 11) % nv);
    hllm_plan *pc = hllm_plan_single(&g, 0, 2, "CPU only");
    CHECK(run(m, &g, pc, tokens, 0, ref) == 0);
    hllm_plan_free(pc);
    for (int pp = 0; pp < 6; pp++) {
        hllm_plan *p = pp < 2   ? split_plan(&g, m->hp.n_layer, pp == 1)
                       : pp < 4 ? heads_plan(&g, m->hp.n_ff, pp == 3, false)
                       : pp == 5 ? heads_plan(&g, m->hp.n_ff, false, true)
                                : gpu_first_plan(&g, m->hp.n_layer);
        long cap0, rep0, mis0, cap1, rep1, mis1;
        hllm_cuda_graph_stats(P[1], &cap0, &rep0, &mis0);
        const long early0 = hllm_cuda_early_launches(P[1]);
        hllm_cuda_set_graphs(1);
        hllm_cuda_set_early(1);
        hllm_exec_set_host_first(1);
        int rc = run(m, &g, p, tokens, 1, on);
        const long early = hllm_cuda_early_launches(P[1]) - early0;
        hllm_cuda_graph_stats(P[1], &cap1, &rep1, &mis1);
        hllm_cuda_set_graphs(0);
        rc |= run(m, &g, p, tokens, 1, off);
        hllm_cuda_set_graphs(1);
        if (!rc) {
            double worst = 0;
            int bad = -1;
            for (int ev = 0; ev < N_EVAL; ev++) {
                double e = rel_err(on + (size_t)ev * nv, ref + (size_t)ev * nv, (size_t)nv);
                worst = test_max_err(worst, e);
                if (bad < 0 && memcmp(on + (size_t)ev * nv, off + (size_t)ev * nv, (size_t)nv * sizeof(float))) bad = ev;
            }
            printf("%s %s %s: logits vs CPU %.3g; graphs captured %ld, replayed %ld (%ld started at their first wait)\n",
                   arch, hllm_type_name(type), p->why, worst, cap1 - cap0, rep1 - rep0, early);
            /* a plan whose GPU runs layers before it first waits for the CPU launches them
             * before the rest of the step is issued: the same bits as one graph */
            if (pp == 4)
                CHECKF(early >= N_GEN - 2, "%s %s %s: only %ld of %d decode steps launched their first part early", arch,
                       hllm_type_name(type), p->why, early, N_GEN);
            hllm_cuda_set_early(0);
            hllm_exec_set_host_first(0);
            int re = run(m, &g, p, tokens, 1, off);
            hllm_cuda_set_early(1);
            hllm_exec_set_host_first(1);
            CHECK(hllm_cuda_early_launches(P[1]) == early0 + early); /* none while off */
            CHECKF(re == 0 && memcmp(on, off, n_log * sizeof(float)) == 0, "%s %s %s: one graph a step (devices issued first) differs from two (the host first)",
                   arch, hllm_type_name(type), p->why);
            CHECKF(worst <= tol, "%s %s %s: logits vs the CPU %.3g (tolerance %.3g)", arch, hllm_type_name(type), p->why,
                   worst, tol);
            CHECKF(bad < 0, "%s %s %s: evaluation %d differs between captured and uncaptured steps", arch,
                   hllm_type_name(type), p->why, bad);
            CHECKF(rep1 - rep0 >= N_GEN - 2, "%s %s split: only %ld of %d decode steps replayed a graph", arch,
                   hllm_type_name(type), rep1 - rep0, N_GEN);
            /* the handoffs by the copy engine and stream memory operations, or copy kernels
             * without the flag folded in: the same bits as the default (fused handoff kernels) */
            for (int mode = 0; mode < 2 && (pp == 2 || pp == 3); mode++) {
                hllm_cuda_set_handoff(mode);
                int rm = run(m, &g, p, tokens, 1, off);
                hllm_cuda_set_handoff(2);
                CHECKF(rm == 0 && memcmp(on, off, n_log * sizeof(float)) == 0,
                       "%s %s split%s by heads: handoff mode %d differs from fused handoffs", arch, hllm_type_name(type),
                       pp % 2 ? " + prompt plan" : "", mode);
            }
        }
        hllm_plan_free(p);
    }
    free(ref), free(on), free(off);
    hllm_graph_free(&g);
    hllm_model_destroy(m);
    unlink(path);
}
#endif

int main(void) {
#ifndef HLLM_HAVE_CUDA
    printf("SKIP: the CUDA processor is not compiled into this build\n");
    return test_summary("test_exec_cuda");
#else
    const char *why = NULL;
    if (hllm_cuda_device_count(&why) == 0) {
        printf("SKIP: %s\n", why ? why : "no CUDA device");
        return test_summary("test_exec_cuda");
    }
    P[0] = hllm_proc_cpu_new(2);
    P[1] = hllm_proc_cuda_new(0);
    CHECKF(P[0] && P[1], "processors: %s", hllm_error());
    if (P[0] && P[1]) {
        /* tolerances (relative L2 over the logits): f32 weights, the GPU's f32 activations vs the
         * CPU's; int8 activations quantized independently on each side (as in test_cuda) */
        test_model("llama", HLLM_TYPE_F32, 1e-3);
        test_model("qwen3", HLLM_TYPE_F16, 1e-2);
        test_model("llama", HLLM_TYPE_Q4_0, 5e-2);
        test_model("qwen2", HLLM_TYPE_Q8_0, 5e-2);
    }
    hllm_proc_free(P[1]);
    hllm_proc_free(P[0]);
    return test_summary("test_exec_cuda");
#endif
}
