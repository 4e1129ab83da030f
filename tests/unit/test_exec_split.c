/* The executor on multi-processor plans: layer-level placement, row-cut matmuls at several
 * ratios and odd row counts, three-part cuts, batched prompts with per-token slice gathers and
 * logits for every token. Processor 1 is first a second CPU processor (two thread pools), then a
 * queued processor that behaves like a GPU (its work runs on another thread after it is issued,
 * so the executor issues all its work first and the host's second), then the same with random
 * delays before each of its actions (a stress test of the flag synchronization: a lost or early
 * wake-up gives wrong numbers or a hang). Every plan must give the single-processor run's greedy
 * tokens and logits (the same kernels compute the same dot products per row, so the results are
 * expected bit-identical, but for the decode column split: see g_tol). */
#include "testutil.h"
#include "queue_proc.h"
#include "split_plans.h"
#include "core/error.h"
#include "core/types.h"
#include "exec/exec.h"
#include "gguf/gguf.h"
#include "model/graph.h"
#include "model/model.h"
#include "model/synth.h"
#include "plan/plan.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_PROMPT 7
#define N_GEN 5
#define N_CTX 32

static hllm_proc *P[2];

typedef struct {
    int toks[N_GEN];
    float *logits; /* (1 + N_GEN) evaluations x n_vocab */
} run_out;

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Prompt (in batches of n_batch), then greedy generation. */
static int run(const hllm_model_s *m, const hllm_graph *g, const hllm_plan *plan, int n_batch, bool logits_all,
               run_out *out) {
    hllm_exec_params ep = {.n_ctx = N_CTX, .n_batch = n_batch, .kv_type = HLLM_TYPE_F16, .logits_all = logits_all};
    hllm_exec *e = hllm_exec_new(m, g, plan, P, 2, &ep);
    CHECKF(e != NULL, "exec_new (%s): %s", plan->why, hllm_error());
    if (!e) return -1;
    const int nv = m->hp.n_vocab;
    float *buf = malloc((size_t)nv * (size_t)n_batch * sizeof(float));
    int32_t prompt[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++) prompt[i] = (int32_t)((i * 37 + 11) % nv);
    int pos = 0, rc = 0;
    while (pos < N_PROMPT && !rc) {
        int k = N_PROMPT - pos < n_batch ? N_PROMPT - pos : n_batch;
        rc = hllm_exec_eval(e, prompt + pos, k, pos, buf);
        pos += k;
        if (!rc) {
            int last = logits_all ? k - 1 : 0;
            if (pos == N_PROMPT) memcpy(out->logits, buf + (size_t)last * nv, (size_t)nv * sizeof(float));
        }
    }
    for (int i = 0; i < N_GEN && !rc; i++) {
        int32_t t = argmax(out->logits + (size_t)i * nv, nv);
        out->toks[i] = t;
        rc = hllm_exec_eval(e, &t, 1, pos++, buf);
        if (!rc) memcpy(out->logits + (size_t)(i + 1) * nv, buf, (size_t)nv * sizeof(float));
    }
    CHECKF(rc == 0, "eval (%s): %s", plan->why, hllm_error());
    free(buf);
    hllm_exec_free(e);
    return rc;
}

static void compare_tol(const run_out *ref, const run_out *got, int nv, const char *what, double tol) {
    int same = 1;
    for (int i = 0; i < N_GEN; i++) same &= ref->toks[i] == got->toks[i];
    CHECKF(same, "%s: greedy tokens differ", what);
    double md = 0;
    for (size_t i = 0; i < (size_t)(N_GEN + 1) * nv; i++) {
        double d = fabs((double)ref->logits[i] - got->logits[i]);
        if (!(d <= md)) md = d; /* NaN propagates */
    }
    CHECKF(md <= tol, "%s: max logit difference %g", what, md);
}

/* compare's tolerance. A CPU's decode slice of a few row stripes may be cut by columns too
 * (partial sums added: another summation order than the whole matrix on one processor). With
 * quantized weights the activations' quantization before each matmul kept that within 1e-5 in every
 * plan here; float activations carry it to the logits (up to 7e-5 seen with F16 on NEON, which
 * splits float matrices), far below what a lost or early wake-up gives. */
static double g_tol;

static void compare(const run_out *ref, const run_out *got, int nv, const char *what) { compare_tol(ref, got, nv, what, g_tol); }

/* The executor refuses the plan, saying `why`. */
static void refused(const hllm_model_s *m, const hllm_graph *g, const hllm_plan *p, const char *why) {
    hllm_exec_params ep = {.n_ctx = N_CTX, .n_batch = 4, .kv_type = HLLM_TYPE_F16};
    hllm_exec *e = hllm_exec_new(m, g, p, P, 2, &ep);
    CHECKF(e == NULL && strstr(hllm_error(), why), "%s: not refused for '%s' (%s)", p->why, why, e ? "built" : hllm_error());
    hllm_exec_free(e);
}

/* Every matmul cut at `frac` of its rows between processors a and b; other steps alternate by layer. */
static hllm_plan *plan_cut_all(const hllm_graph *g, int nl, double frac, int a, int b, const char *why) {
    int lp[64];
    for (int l = 0; l < nl; l++) lp[l] = l % 2;
    hllm_plan *p = hllm_plan_layers(g, lp, 1, 0, 2, why);
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].kind == HLLM_OP_MATMUL) {
            int procs[2] = {a, b};
            double fr[2] = {frac, 1 - frac};
            CHECK(hllm_plan_cut(p, g, i, 2, procs, fr, NULL, 1) == 0);
        }
    return p;
}

static void test_model(const char *arch, int type) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/hllm_test_exec_split_%s_%d_%d.gguf", arch, type, (int)getpid());
    hllm_synth_opts o = {.arch = arch, .preset = "tiny", .type = type, .seed = 7, .n_threads = 2};
    CHECKF(hllm_synth_write(&o, path) == 0, "synth: %s", hllm_error());
    hllm_gguf_file *f = hllm_gguf_open(path);
    CHECKF(f != NULL, "open: %s", hllm_error());
    if (!f) return;
    hllm_model_s *m = hllm_model_from_gguf(f);
    CHECKF(m != NULL, "model: %s", hllm_error());
    if (!m) {
        hllm_gguf_close(f);
        unlink(path);
        return;
    }
    hllm_graph g;
    CHECK(hllm_graph_build(m, &g) == 0);
    g_tol = hllm_type_info(type)->block_size > 1 ? 1e-5 : 5e-4;
    const int nv = m->hp.n_vocab, nl = m->hp.n_layer;
    /* references per prompt batch size: batched and token-by-token prompts may round differently */
    run_out ref = {.logits = malloc((size_t)(N_GEN + 1) * nv * sizeof(float))};
    run_out ref1 = {.logits = malloc((size_t)(N_GEN + 1) * nv * sizeof(float))};
    run_out ref8 = {.logits = malloc((size_t)(N_GEN + 1) * nv * sizeof(float))};
    run_out got = {.logits = malloc((size_t)(N_GEN + 1) * nv * sizeof(float))};
    char what[160];

    hllm_plan *p0 = hllm_plan_single(&g, 0, 2, "all on proc 0");
    CHECK(run(m, &g, p0, 4, false, &ref) == 0);
    CHECK(run(m, &g, p0, 1, false, &ref1) == 0);
    CHECK(run(m, &g, p0, 8, true, &ref8) == 0);
    hllm_plan_free(p0);

    /* all on proc 1 (other pool size) */
    hllm_plan *p = hllm_plan_single(&g, 1, 2, "all on proc 1");
    if (run(m, &g, p, 4, false, &got) == 0) compare(&ref, &got, nv, "all on proc 1");
    hllm_plan_free(p);

    /* layer-level: alternate layers, embed on 1, head on 0; and the reverse */
    for (int flip = 0; flip < 2; flip++) {
        int lp[64];
        for (int l = 0; l < nl; l++) lp[l] = (l + flip) % 2;
        p = hllm_plan_layers(&g, lp, 1 - flip, flip, 2, "layers alternate");
        snprintf(what, sizeof what, "%s layer-level flip %d", arch, flip);
        if (run(m, &g, p, 4, false, &got) == 0) compare(&ref, &got, nv, what);
        hllm_plan_free(p);
    }

    /* row-cut at ratios, batch 4 (prompt gathers slices token by token) and batch 1 */
    const double ratios[] = {0.5, 0.1, 0.9, 1.0 / 3.0};
    for (size_t r = 0; r < sizeof ratios / sizeof ratios[0]; r++)
        for (int nb = 1; nb <= 4; nb += 3) {
            snprintf(what, sizeof what, "%s row-cut %.3f batch %d", arch, ratios[r], nb);
            p = plan_cut_all(&g, nl, ratios[r], r % 2, 1 - (int)(r % 2), what);
            if (run(m, &g, p, nb, false, &got) == 0) compare(nb == 1 ? &ref1 : &ref, &got, nv, what);
            hllm_plan_free(p);
        }

    /* the SwiGLU replicated on both processors (each computes it whole from both's gate/up
     * rows), in either order, decode and prompt batches */
    for (int order = 0; order < 2; order++)
        for (int nb = 1; nb <= 4; nb += 3) {
            snprintf(what, sizeof what, "%s row-cut, SwiGLU on both (order %d) batch %d", arch, order, nb);
            p = plan_cut_all(&g, nl, 0.4, order, 1 - order, what);
            int n_rep = 0;
            for (int i = 0; i < g.n_steps; i++)
                if (g.steps[i].kind == HLLM_OP_SWIGLU) {
                    const int procs[2] = {order, 1 - order};
                    CHECK(hllm_plan_replicate(p, &g, i, 2, procs) == 0);
                    n_rep++;
                }
            CHECK(n_rep == nl && hllm_plan_validate(p, &g) == 0);
            if (run(m, &g, p, nb, false, &got) == 0) compare(nb == 1 ? &ref1 : &ref, &got, nv, what);
            hllm_plan_free(p);
        }
    /* replicated twice on one processor, or a replicated step that is not a SwiGLU: refused */
    p = hllm_plan_single(&g, 0, 2, "bad replica");
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_SWIGLU) {
            const int same[2] = {0, 0};
            CHECK(hllm_plan_replicate(p, &g, i, 2, same) == 0);
            CHECK(hllm_plan_validate(p, &g) != 0 && strstr(hllm_error(), "replicated twice"));
            break;
        }
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_ROPE) {
            const int two[2] = {0, 1};
            CHECK(hllm_plan_replicate(p, &g, i, 2, two) != 0);
            break;
        }
    hllm_plan_free(p);

    /* split by heads and FFN columns (partial sums added by the residual ADDs on both
     * processors, so logits round differently from one processor's: a tolerance), either
     * order, uneven, three parts, decode and prompt batches */
    const int64_t hq = m->hp.n_head / 2 / (m->hp.n_head / m->hp.n_head_kv) * (m->hp.n_head / m->hp.n_head_kv);
    for (int v = 0; v < 4; v++)
        for (int nb = 1; nb <= 4; nb += 3) {
            const int a = v % 2, b = 1 - a;
            const bool three = v >= 2;
            const int64_t f = v == 1 ? m->hp.n_ff / 4 : m->hp.n_ff / 2;
            snprintf(what, sizeof what, "%s heads/columns v%d batch %d", arch, v, nb);
            p = test_plan_heads(&g, v == 3 ? m->hp.n_head : hq, f, a, b, three ? 2 : 1, NULL, what);
            if (run(m, &g, p, nb, false, &got) == 0) compare_tol(nb == 1 ? &ref1 : &ref, &got, nv, what, 2e-3);
            hllm_plan_free(p);
        }
    /* the residual ADDs (and the norms) on one processor: it gathers the other's partial sums,
     * and the next layer's parts on the other processor get the residual stream moved back */
    for (int one = 0; one < 2; one++) {
        snprintf(what, sizeof what, "%s heads/columns, sums on processor %d", arch, one);
        p = test_plan_heads(&g, hq, m->hp.n_ff / 2, 0, 1, 1, NULL, what);
        for (int i = 0; i < g.n_steps; i++)
            if (g.steps[i].layer >= 0 && (g.steps[i].kind == HLLM_OP_ADD || g.steps[i].kind == HLLM_OP_RMSNORM))
                p->steps[i] = (hllm_step_plan){.n_parts = 1, .parts = {{.proc = one, .r1 = g.steps[i].rows}}};
        CHECKF(hllm_plan_validate(p, &g) == 0, "%s: %s", what, hllm_error());
        for (int nb = 1; nb <= 4; nb += 3)
            if (run(m, &g, p, nb, false, &got) == 0) compare_tol(nb == 1 ? &ref1 : &ref, &got, nv, what, 2e-3);
        hllm_plan_free(p);
    }
    /* prompts run the sliced attention whole on the device, reading the CPU's KV slice in place */
    {
        snprintf(what, sizeof what, "%s heads/columns, prompts' attention on the device", arch);
        p = test_plan_heads(&g, hq, m->hp.n_ff / 2, 0, 1, 1, NULL, what);
        p->prefill = hllm_plan_clone(p);
        p->prefill_min = 2;
        for (int i = 0; i < g.n_steps; i++)
            if (g.steps[i].kind == HLLM_OP_KV_STORE || g.steps[i].kind == HLLM_OP_ATTENTION)
                p->prefill->steps[i] = (hllm_step_plan){.n_parts = 1, .parts = {{.proc = 1}}};
        CHECKF(hllm_plan_validate(p, &g) == 0, "%s: %s", what, hllm_error());
        if (P[1]->n_threads == 0) {
            if (run(m, &g, p, 4, false, &got) == 0) compare_tol(&ref, &got, nv, what, 2e-3);
        } else /* a CPU cannot read another processor's slice: refused */
            refused(m, &g, p, "KV cache");
        hllm_plan_free(p);
    }
    /* a column cut not followed by the ADD that sums it is refused */
    p = hllm_plan_single(&g, 0, 2, "bad cols");
    for (int i = 0; i < g.n_steps; i++)
        if (!strcmp(g.steps[i].label, "ffn_gate")) {
            test_cut2(p, &g, i, HLLM_CUT_COLS, 256, 0, 1, 1, NULL);
            CHECK(hllm_plan_validate(p, &g) != 0 && strstr(hllm_error(), "ADD"));
            break;
        }
    hllm_plan_free(p);
    /* a head slice that splits a GQA group is refused */
    p = hllm_plan_single(&g, 0, 2, "bad slice");
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_ROPE) {
            const int procs[2] = {0, 1};
            const int64_t cuts[2] = {1, m->hp.n_head};
            CHECK(hllm_plan_slice(p, &g, i, 2, procs, cuts) == 0);
            CHECK(hllm_plan_validate(p, &g) != 0 && strstr(hllm_error(), "group"));
            break;
        }
    hllm_plan_free(p);

    /* odd cuts: 1 row, rows - 1 rows; three parts 0 | 1 | 0 */
    for (int mode = 0; mode < 3; mode++) {
        p = hllm_plan_single(&g, 0, 2, "odd cuts");
        for (int i = 0; i < g.n_steps; i++) {
            if (g.steps[i].kind != HLLM_OP_MATMUL) continue;
            int64_t rows = g.steps[i].rows;
            if (mode < 2) {
                int procs[2] = {1, 0};
                int64_t cuts[2] = {mode == 0 ? 1 : rows - 1, rows};
                CHECK(hllm_plan_cut_rows(p, &g, i, 2, procs, cuts, NULL) == 0);
            } else {
                int procs[3] = {0, 1, 0};
                int64_t cuts[3] = {rows / 3 + 1, rows - 17, rows};
                CHECK(hllm_plan_cut_rows(p, &g, i, 3, procs, cuts, NULL) == 0);
            }
        }
        snprintf(what, sizeof what, "%s odd cut mode %d", arch, mode);
        if (run(m, &g, p, 4, false, &got) == 0) compare(&ref, &got, nv, what);
        hllm_plan_free(p);
    }

    /* logits for every token, whole prompt in one batch, cut output head */
    snprintf(what, sizeof what, "%s logits_all row-cut", arch);
    p = plan_cut_all(&g, nl, 0.5, 1, 0, what);
    if (run(m, &g, p, 8, true, &got) == 0) compare(&ref8, &got, nv, what);
    hllm_plan_free(p);

    /* a separate plan for prompts: decode row-cut, prompts layer-level (same KV placement) */
    for (int pmin = 2; pmin <= 5; pmin += 3) {
        snprintf(what, sizeof what, "%s prefill plan from %d tokens", arch, pmin);
        p = plan_cut_all(&g, nl, 0.4, 0, 1, what);
        int lp[64];
        for (int l = 0; l < nl; l++) lp[l] = l % 2;
        p->prefill = hllm_plan_layers(&g, lp, 1, 0, 2, "prompts");
        p->prefill_min = pmin;
        if (run(m, &g, p, 4, false, &got) == 0) compare(&ref, &got, nv, what);
        hllm_plan_free(p);
    }
    /* prompts run by another processor: a device reads a CPU's KV cache in (pinned) host memory;
     * a CPU cannot read another processor's: refused */
    p = hllm_plan_single(&g, 0, 2, "decode");
    p->prefill = hllm_plan_single(&g, 1, 2, "prompts elsewhere");
    p->prefill_min = 2;
    CHECK(hllm_plan_validate(p, &g) == 0);
    if (P[1]->n_threads == 0) {
        snprintf(what, sizeof what, "%s prompts on the device, KV cache on the CPU", arch);
        if (run(m, &g, p, 4, false, &got) == 0) compare(&ref, &got, nv, what);
    }
    hllm_plan_free(p);
    p = hllm_plan_single(&g, 1, 2, "decode");
    p->prefill = hllm_plan_single(&g, 0, 2, "prompts on a CPU");
    p->prefill_min = 2;
    refused(m, &g, p, "KV cache");
    hllm_plan_free(p);
    /* a prefill plan that splits the cache differently is refused */
    p = hllm_plan_single(&g, 0, 2, "decode");
    p->prefill = hllm_plan_clone(p);
    p->prefill_min = 2;
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_KV_STORE || g.steps[i].kind == HLLM_OP_ATTENTION) {
            const int procs[2] = {0, 1};
            const int64_t cuts[2] = {m->hp.n_head_kv > 1 ? m->hp.n_head / m->hp.n_head_kv : m->hp.n_head, m->hp.n_head};
            CHECK(hllm_plan_slice(p->prefill, &g, i, 2, procs, cuts) == 0);
        }
    CHECK(hllm_plan_validate(p, &g) != 0 && strstr(hllm_error(), "KV cache"));
    hllm_plan_free(p);

    /* a plan the executor must refuse: attention and kv_store apart */
    p = hllm_plan_single(&g, 0, 2, "bad");
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_ATTENTION) p->steps[i].parts[0].proc = 1;
    refused(m, &g, p, "attention");
    hllm_plan_free(p);

    free(ref.logits);
    free(ref1.logits);
    free(ref8.logits);
    free(got.logits);
    hllm_graph_free(&g);
    hllm_model_destroy(m);
    unlink(path);
}

static void test_all(void) {
    test_model("llama", HLLM_TYPE_Q4_0);
    test_model("qwen2", HLLM_TYPE_Q8_0);
    test_model("qwen3", HLLM_TYPE_F16);
    test_model("llama", HLLM_TYPE_Q4_K);
}

int main(void) {
    P[0] = hllm_proc_cpu_new(1);
    P[1] = hllm_proc_cpu_new(2);
    CHECK(P[0] && P[1]);
    if (!P[0] || !P[1]) return test_summary("test_exec_split");
    test_all();
    const int delays[2] = {0, 30};
    /* HLLM_TEST_QUICK=1 (set for the aarch64 build's tests under qemu, ~5x slower): the queued
     * processor with random delays only */
    const char *quick = getenv("HLLM_TEST_QUICK");
    for (int d = quick && quick[0] == '1' ? 1 : 0; d < 2; d++) {
        hllm_proc_free(P[1]);
        P[1] = test_queue_proc_new(delays[d], 1234u + (unsigned)d);
        CHECK(P[1] != NULL);
        if (!P[1]) break;
        fprintf(stderr, "queued processor, delays up to %d us\n", delays[d]);
        test_all();
    }
    /* the queued processor holding each step until its end, as a GPU replaying captured graphs
     * does (the executor then issues all of the devices' work first), and launching the part
     * before its first wait early with the host's own first steps run before the devices' */
    for (int mode = 1; mode <= 2 && !(quick && quick[0] == '1') && P[1]; mode++) {
        test_queue_proc_set_held(P[1], mode);
        hllm_exec_set_host_first(mode == 2);
        fprintf(stderr, "queued processor holding its steps%s\n", mode == 2 ? ", early launches, the host first" : "");
        long e0, e1;
        const long h0 = test_queue_proc_held_steps(P[1], &e0);
        test_all();
        const long h1 = test_queue_proc_held_steps(P[1], &e1);
        fprintf(stderr, "  %ld steps held, %ld launched early\n", h1 - h0, e1 - e0);
        CHECKF(h1 - h0 >= 100, "only %ld steps held", h1 - h0);
        CHECKF(mode == 1 ? e1 == e0 : e1 - e0 >= 50, "%ld steps launched early in mode %d", e1 - e0, mode);
        test_queue_proc_set_held(P[1], 0);
        hllm_exec_set_host_first(0);
    }
    hllm_proc_free(P[0]);
    hllm_proc_free(P[1]);
    return test_summary("test_exec_split");
}
