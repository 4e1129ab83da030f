/* Plans and the solver on hand-made profiles: equal processors split matmuls half/half; a GPU
 * 30x faster that holds everything takes everything; with half the weights' size of VRAM the
 * host-resident rows are split so CPU and GPU finish together; the heads split (attention heads
 * and FFN columns shared out, residual adds summing partials) in shape, cost and prompt plan.
 * Also: plan building blocks, memory-size parsing and the profile file round trip. */
#include "testutil.h"
#include "core/error.h"
#include "core/types.h"
#include "plan/plan.h"
#include "plan/profile.h"
#include "plan/solve.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dummy[16];

static void tensor(hllm_tensor *t, int64_t rows, int64_t cols, int type) {
    *t = (hllm_tensor){.name = "w", .type = type, .rows = rows, .cols = cols, .data = g_dummy,
                       .row_bytes = hllm_row_bytes(type, cols)};
}

/* A llama3-8b-shaped model (4 layers) with no weight data: enough to build a graph. */
static void fake_model(hllm_model_s *m, hllm_layer_tensors *L, int n_layer) {
    memset(m, 0, sizeof *m);
    hllm_hparams *hp = &m->hp;
    hp->n_vocab = 32000, hp->n_embd = 4096, hp->n_layer = n_layer, hp->n_head = 32, hp->n_head_kv = 8;
    hp->head_dim = 128, hp->n_ff = 14336, hp->n_rot = 128, hp->rms_eps = 1e-5f, hp->rope_base = 5e5f;
    tensor(&m->tok_embd, 32000, 4096, HLLM_TYPE_Q4_0);
    tensor(&m->output_norm, 1, 4096, HLLM_TYPE_F32);
    tensor(&m->output, 32000, 4096, HLLM_TYPE_Q4_0);
    for (int l = 0; l < n_layer; l++) {
        memset(&L[l], 0, sizeof L[l]);
        tensor(&L[l].attn_norm, 1, 4096, HLLM_TYPE_F32);
        tensor(&L[l].ffn_norm, 1, 4096, HLLM_TYPE_F32);
        tensor(&L[l].wq, 4096, 4096, HLLM_TYPE_Q4_0);
        tensor(&L[l].wk, 1024, 4096, HLLM_TYPE_Q4_0);
        tensor(&L[l].wv, 1024, 4096, HLLM_TYPE_Q4_0);
        tensor(&L[l].wo, 4096, 4096, HLLM_TYPE_Q4_0);
        tensor(&L[l].w_gate, 14336, 4096, HLLM_TYPE_Q4_0);
        tensor(&L[l].w_up, 14336, 4096, HLLM_TYPE_Q4_0);
        tensor(&L[l].w_down, 4096, 14336, HLLM_TYPE_Q4_0);
    }
    m->layers = L;
}

/* fake_model and its step graph; false when the graph does not build. */
static bool fake_graph(hllm_model_s *m, hllm_layer_tensors *L, int n_layer, hllm_graph *g) {
    fake_model(m, L, n_layer);
    return hllm_graph_build(m, g) == 0;
}

static hllm_profile *profile(double cpu, double gdev, double ghost, double conc_cpu, double conc_gpu, double sync_us) {
    hllm_profile *p = hllm_profile_new();
    const int bs[] = {1, 512};
    for (int i = 0; i < 2; i++) {
        char k[96];
        double scale = bs[i] == 1 ? 1 : 10; /* batches: compute per weight byte, whatever */
        snprintf(k, sizeof k, "cpu.matmul.dev.q4_0.b%d", bs[i]);
        hllm_profile_set(p, k, cpu * scale);
        snprintf(k, sizeof k, "cuda.matmul.dev.q4_0.b%d", bs[i]);
        hllm_profile_set(p, k, gdev * scale);
        snprintf(k, sizeof k, "cuda.matmul.host.q4_0.b%d", bs[i]);
        hllm_profile_set(p, k, ghost * scale);
    }
    hllm_profile_set(p, "cpu.read_gbs", cpu);
    hllm_profile_set(p, "cuda.read_gbs", gdev);
    hllm_profile_set(p, "cuda.host_read_gbs", ghost);
    hllm_profile_set(p, "cpu.concurrent_host_gbs", conc_cpu);
    hllm_profile_set(p, "cuda.concurrent_host_gbs", conc_gpu);
    hllm_profile_set(p, "sync.round_trip_us", sync_us);
    hllm_profile_set(p, "cpu.op_us", 0.5);
    hllm_profile_set(p, "cuda.op_us", 0.5);
    return p;
}

static const char *const k_names[] = {"cpu", "cuda"};

/* What a step's cut shares out: input columns for a column cut, else rows. */
static int64_t cut_units(const hllm_step_plan *sp, const hllm_step *s) {
    return sp->cut == HLLM_CUT_COLS ? s->w->cols : s->rows;
}

static double frac_on(const hllm_step_plan *sp, int proc, int mem, int64_t rows) {
    int64_t n = 0;
    for (int k = 0; k < sp->n_parts; k++)
        if (sp->parts[k].proc == proc && (mem < 0 || sp->parts[k].mem == mem)) n += sp->parts[k].r1 - sp->parts[k].r0;
    return (double)n / (double)rows;
}

static void test_solver(void) {
    hllm_model_s m;
    hllm_layer_tensors L[4];
    hllm_graph g;
    CHECK(fake_graph(&m, L, 4, &g));
    hllm_solve_opts o = {.split = HLLM_SPLIT_AUTO, .gpu_mem = -1, .cpu = 0, .gpu = 1, .names = k_names};

    /* equal processors, everything fits: half / half */
    hllm_profile *pf = profile(100, 100, 100, 100, 100, 1.0);
    hllm_prediction pr;
    hllm_plan *p = hllm_solve(&g, pf, &o, &pr);
    CHECKF(p != NULL, "%s", hllm_error());
    if (p) {
        CHECK(hllm_plan_validate(p, &g) == 0);
        for (int i = 0; i < g.n_steps; i++) {
            const hllm_step *s = &g.steps[i];
            if (s->kind != HLLM_OP_MATMUL || s->rows < 4096) continue;
            double fc = frac_on(&p->steps[i], 0, -1, cut_units(&p->steps[i], s));
            CHECKF(fabs(fc - 0.5) < 0.03, "equal: step %s CPU share %.3f", s->label, fc);
        }
        hllm_prediction cpu_only;
        hllm_plan *pc = hllm_plan_single(&g, 0, 2, "cpu");
        cpu_only = hllm_plan_predict(pc, &g, pf, &o);
        CHECKF(pr.decode_s < 0.6 * cpu_only.decode_s, "equal: split %.3f ms vs one processor %.3f ms", pr.decode_s * 1e3,
               cpu_only.decode_s * 1e3);
        hllm_plan_free(pc);
    }
    hllm_plan_free(p);
    hllm_profile_free(pf);

    /* GPU 30x faster, everything fits: GPU only */
    pf = profile(100, 3000, 50, 90, 45, 4.0);
    p = hllm_solve(&g, pf, &o, &pr);
    CHECK(p != NULL);
    if (p) {
        int off_gpu = 0;
        for (int i = 0; i < g.n_steps; i++)
            for (int k = 0; k < p->steps[i].n_parts; k++)
                off_gpu += p->steps[i].parts[k].proc != 1 || p->steps[i].parts[k].mem != HLLM_MEM_DEVICE;
        CHECKF(off_gpu == 0, "fast GPU: %d parts not on the GPU's memory (%s)", off_gpu, p->why);
    }
    hllm_plan_free(p);
    /* forced tensor-level: a row-cut plan all the same */
    {
        hllm_solve_opts ot = o;
        ot.split = HLLM_SPLIT_TENSOR;
        p = hllm_solve(&g, pf, &ot, NULL);
        CHECKF(p && strstr(p->why, "tensor-level"), "forced tensor: %s", p ? p->why : hllm_error());
        hllm_plan_free(p);
    }
    /* the GPU's host reads measured slower inside a cut (split.gpu_host_factor) than the plain
     * concurrent figure: a forced row-cut under a VRAM budget gives them fewer host bytes */
    {
        hllm_solve_opts ot = o;
        ot.split = HLLM_SPLIT_TENSOR;
        ot.gpu_mem = 4096.0 * 4096 * 0.5625; /* about one attention matrix: most rows in host memory */
        hllm_prediction p1, p2;
        hllm_profile *pc = profile(100, 3000, 50, 75, 45, 4.0);
        hllm_plan *a = hllm_solve(&g, pc, &ot, &p1);
        hllm_profile_set(pc, "split.gpu_host_factor", 0.5);
        hllm_plan *b = hllm_solve(&g, pc, &ot, &p2);
        CHECKF(a && b, "%s", hllm_error());
        if (a && b)
            CHECKF(p2.gpu_host_bytes < 0.8 * p1.gpu_host_bytes && p2.cpu_bytes > p1.cpu_bytes,
                   "gpu_host_factor 0.5: GPU host bytes %.3g -> %.3g, CPU %.3g -> %.3g", p1.gpu_host_bytes,
                   p2.gpu_host_bytes, p1.cpu_bytes, p2.cpu_bytes);
        hllm_plan_free(a);
        hllm_plan_free(b);
        hllm_profile_free(pc);
    }
    /* with a budget of two of the four layers, every row-cut candidate is weighed (uniform,
     * attention first, whole layers first) and each keeps to the budget */
    {
        double total = 0, layer0 = 0; /* matrices and the embedding table, as the prediction counts them */
        for (int i = 0; i < g.n_steps; i++)
            if (g.steps[i].kind == HLLM_OP_MATMUL || g.steps[i].kind == HLLM_OP_EMBED) {
                const double b = (double)g.steps[i].w->row_bytes * (double)g.steps[i].w->rows;
                total += b;
                if (g.steps[i].layer == 0) layer0 += b;
            }
        hllm_solve_opts ot = o;
        ot.split = HLLM_SPLIT_TENSOR;
        ot.gpu_mem = 2.2 * layer0;
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        ot.explain = f;
        p = hllm_solve(&g, pf, &ot, NULL);
        fclose(f);
        CHECK(p != NULL);
        const char *kinds[] = {"may sit in VRAM", "attention projections in VRAM", "row-cut of the host layers: layers 0-1 in VRAM"};
        for (int k = 0; k < 3; k++) {
            const char *at = buf ? strstr(buf, kinds[k]) : NULL;
            double ms = -1, gv = -1, gh = -1, gc = -1;
            if (at) {
                const char *d = strstr(at, "decode");
                const char *br = strchr(at, '[');
                if (d) sscanf(d, "decode %lf", &ms);
                if (br) sscanf(br, "[%lf / %lf / %lf]", &gv, &gh, &gc);
            }
            CHECKF(at && ms > 0 && gv >= 0 && gv <= ot.gpu_mem / 1073741824.0 + 0.006, /* printed to 0.01 GiB */
                   "candidate '%s': %.3f ms, %.3f GiB in VRAM (budget %.3f GiB)", kinds[k], ms, gv, ot.gpu_mem / 1073741824.0);
            CHECKF(at && fabs((gv + gh + gc) * 1073741824.0 - total) < 0.01 * total, "candidate '%s': %.3f + %.3f + %.3f GiB of %.3f",
                   kinds[k], gv, gh, gc, total / 1073741824.0);
        }
        free(buf);
        hllm_plan_free(p);
    }
    hllm_profile_free(pf);

    /* the device host's numbers, VRAM for half of the matmul weights */
    pf = profile(112, 3100, 50, 93, 42, 4.0);
    double total = 0;
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_MATMUL) total += (double)g.steps[i].w->row_bytes * (double)g.steps[i].rows;
    o.gpu_mem = 0.5 * total;
    /* the heads split is predicted about 1% faster here; the row-cut plans with the attention
     * projections in VRAM and the budget's rest spread are checked below (the attn-layers fill
     * after them) */
    {
        hllm_prediction ph;
        hllm_plan *ap = hllm_solve(&g, pf, &o, &ph);
        setenv("HLLM_SPLIT_HEADS", "0", 1);
        setenv("HLLM_VRAM_FILL", "attn", 1);
        p = hllm_solve(&g, pf, &o, &pr);
        unsetenv("HLLM_VRAM_FILL");
        unsetenv("HLLM_SPLIT_HEADS");
        CHECKF(ap && p && strstr(ap->why, "heads") && hllm_plan_validate(ap, &g) == 0 && ph.decode_s < pr.decode_s,
               "half VRAM: %s %.3f ms; row-cut %.3f ms", ap ? ap->why : hllm_error(), ap ? ph.decode_s * 1e3 : -1,
               p ? pr.decode_s * 1e3 : -1);
        hllm_plan_free(ap);
    }
    CHECK(p != NULL);
    if (p) {
        /* the attention projections (a fifth of the bytes, four of seven matrices a layer) sit
         * wholly in VRAM, so decode cuts two steps a layer instead of seven; the budget's rest
         * goes to the other matrices */
        CHECKF(strstr(p->why, "tensor") && strstr(p->why, "attention projections in VRAM"), "half VRAM: chose %s", p->why);
        CHECKF(pr.gpu_dev_bytes <= o.gpu_mem * 1.001, "half VRAM: %.0f bytes in VRAM over the budget %.0f", pr.gpu_dev_bytes, o.gpu_mem);
        double attn = 0;
        for (int i = 0; i < g.n_steps; i++)
            if (g.steps[i].kind == HLLM_OP_MATMUL && g.steps[i].layer >= 0 && !strncmp(g.steps[i].label, "attn_", 5))
                attn += (double)g.steps[i].w->row_bytes * (double)g.steps[i].rows;
        const double f_rest = (o.gpu_mem - attn) / (total - attn);
        for (int i = 0; i < g.n_steps; i++) {
            const hllm_step *s = &g.steps[i];
            if (s->kind != HLLM_OP_MATMUL) continue;
            double rb = (double)s->w->row_bytes * (double)s->rows;
            double fc = frac_on(&p->steps[i], 0, -1, s->rows), fd = frac_on(&p->steps[i], 1, HLLM_MEM_DEVICE, s->rows),
                   fh = frac_on(&p->steps[i], 1, HLLM_MEM_HOST, s->rows);
            if (s->layer >= 0 && !strncmp(s->label, "attn_", 5)) {
                CHECKF(fd == 1.0, "half VRAM: step %s vram %.3f (attention projections wholly in VRAM)", s->label, fd);
                continue;
            }
            CHECKF(fc > 0.1 && fd > f_rest - 0.02 && fd <= f_rest, "half VRAM: step %s cpu %.3f vram %.3f (budget %.3f) host %.3f",
                   s->label, fc, fd, f_rest, fh);
            double tc = fc * rb / (fh > 0 ? 93e9 : 112e9), tg = fd * rb / 3100e9 + fh * rb / 42e9;
            /* finish together, within a cut granule (64 rows) of the step */
            double tol = 64.0 / (double)s->rows * rb / 42e9 + 0.03 * (tc > tg ? tc : tg);
            CHECKF(fabs(tc - tg) <= tol, "half VRAM: step %s cpu %.1f us vs gpu %.1f us", s->label, tc * 1e6, tg * 1e6);
        }
        /* better than either processor alone and than layer-level */
        hllm_solve_opts ol = o;
        ol.split = HLLM_SPLIT_LAYER;
        hllm_prediction pl;
        hllm_plan *p2 = hllm_solve(&g, pf, &ol, &pl);
        CHECKF(p2 && pr.decode_s < pl.decode_s, "tensor %.3f ms vs layer %.3f ms", pr.decode_s * 1e3, pl.decode_s * 1e3);
        /* forced kinds: layer-level and one processor give those plans although slower */
        CHECKF(p2 && strstr(p2->why, "layer-level"), "forced layer: %s", p2 ? p2->why : hllm_error());
        hllm_plan_free(p2);
        ol.split = HLLM_SPLIT_NONE;
        p2 = hllm_solve(&g, pf, &ol, &pl);
        CHECKF(p2 && (strstr(p2->why, "GPU only") || strstr(p2->why, "CPU only")) && pl.decode_s > pr.decode_s,
               "forced none: %s", p2 ? p2->why : hllm_error());
        hllm_plan_free(p2);
        /* with those throughputs a prompt is faster on the GPU alone: no prompt plan */
        CHECKF(p->prefill == NULL || p->prefill_min >= 2, "half VRAM: prompt plan from %d tokens", p->prefill_min);
    }
    hllm_plan_free(p);
    /* the attention projections of every layer and then whole layers from the first on, no
     * further layer fitting; the budget's last bytes spread over the other matrices (the later
     * layers' FFNs, the head) */
    setenv("HLLM_VRAM_FILL", "attn-layers", 1);
    setenv("HLLM_SPLIT_HEADS", "0", 1);
    {
        hllm_solve_opts ot = o;
        ot.split = HLLM_SPLIT_TENSOR;
        p = hllm_solve(&g, pf, &ot, &pr);
        int n_whole = -1;
        const char *at = p ? strstr(p->why, "attention projections and ") : NULL;
        CHECKF(at && sscanf(at, "attention projections and %d whole layers", &n_whole) == 1 && n_whole >= 0 && n_whole < 4,
               "attn-layers fill: %s", p ? p->why : hllm_error());
        double attn = 0, ffn[4] = {0};
        for (int i = 0; i < g.n_steps; i++) {
            const hllm_step *s = &g.steps[i];
            if (s->kind != HLLM_OP_MATMUL || s->layer < 0) continue;
            const double rb = (double)s->w->row_bytes * (double)s->rows;
            if (!strncmp(s->label, "attn_", 5)) attn += rb;
            else ffn[s->layer] += rb;
        }
        double used = attn;
        for (int l = 0; l < n_whole; l++) used += ffn[l];
        const double f_rest = (o.gpu_mem - used) / (total - used);
        for (int i = 0; p && n_whole >= 0 && i < g.n_steps; i++) {
            const hllm_step *s = &g.steps[i];
            if (s->kind != HLLM_OP_MATMUL) continue;
            const double fd = frac_on(&p->steps[i], 1, HLLM_MEM_DEVICE, s->rows);
            const bool whole = s->layer >= 0 && (!strncmp(s->label, "attn_", 5) || s->layer < n_whole);
            /* the spread part: the fraction's rows, rounded down to the cut granule (64) */
            CHECKF(whole ? fd == 1.0 : fd <= f_rest && fd > f_rest - 64.0 / (double)s->rows,
                   "attn-layers fill (%d whole layers): layer %d %s in VRAM %.3f, want %s %.3f", n_whole, s->layer, s->label, fd,
                   whole ? "all:" : "the rest's fraction", whole ? 1.0 : f_rest);
        }
        CHECKF(p && pr.gpu_dev_bytes <= o.gpu_mem * 1.001 && used <= o.gpu_mem && (n_whole < 0 || used + ffn[n_whole] > o.gpu_mem),
               "attn-layers fill: %.0f bytes in VRAM (%.0f counted), budget %.0f, next layer's FFN %.0f", pr.gpu_dev_bytes, used,
               o.gpu_mem, n_whole >= 0 ? ffn[n_whole] : -1.0);
        hllm_plan_free(p);
    }
    unsetenv("HLLM_SPLIT_HEADS");
    unsetenv("HLLM_VRAM_FILL");
    /* with every candidate weighed, it wins here (as it measured at a 75% cap on the device) */
    {
        hllm_prediction pa;
        hllm_plan *pall = hllm_solve(&g, pf, &o, &pa);
        CHECKF(pall && strstr(pall->why, "attention projections and"), "default fill: %s", pall ? pall->why : hllm_error());
        hllm_plan_free(pall);
    }
    /* when cutting a matmul costs much more than its parts (a measured handoff of 5 ms), the
     * solver stops cutting: whole layers or the GPU alone */
    hllm_profile_set(pf, "split.handoff_us", 5000);
    p = hllm_solve(&g, pf, &o, &pr);
    CHECK(p != NULL);
    if (p) {
        int cut = 0;
        for (int i = 0; i < g.n_steps; i++) {
            bool cpu = false, gpu = false;
            for (int k = 0; k < p->steps[i].n_parts; k++) cpu |= p->steps[i].parts[k].proc == 0, gpu |= p->steps[i].parts[k].proc == 1;
            cut += cpu && gpu;
        }
        CHECKF(cut == 0, "costly handoff: %d steps still cut (%s)", cut, p->why);
    }
    hllm_plan_free(p);
    hllm_profile_set(pf, "split.handoff_us", 0);
    /* batch throughputs as measured there (weight GB/s at 512 tokens: CPU 1.5, GPU 160 from
     * VRAM, 40 from host memory): prompts get their own plan, the CPU's rows on the GPU */
    hllm_profile_set(pf, "cpu.matmul.dev.q4_0.b512", 1.5);
    hllm_profile_set(pf, "cuda.matmul.dev.q4_0.b512", 160);
    hllm_profile_set(pf, "cuda.matmul.host.q4_0.b512", 40);
    p = hllm_solve(&g, pf, &o, &pr);
    CHECK(p && p->prefill);
    if (p && p->prefill) {
        CHECKF(hllm_plan_validate(p, &g) == 0, "%s", hllm_error());
        CHECKF(p->prefill_min >= 2 && p->prefill_min <= 512, "prompt plan from %d tokens", p->prefill_min);
        int on_cpu = 0;
        double dev_dec = 0, dev_pf = 0;
        for (int i = 0; i < g.n_steps; i++) {
            const hllm_step *s = &g.steps[i];
            if (s->kind != HLLM_OP_MATMUL) continue;
            double rb = (double)s->w->row_bytes * (double)s->rows;
            on_cpu += frac_on(&p->prefill->steps[i], 0, -1, s->rows) > 0;
            dev_dec += rb * frac_on(&p->steps[i], 1, HLLM_MEM_DEVICE, s->rows);
            dev_pf += rb * frac_on(&p->prefill->steps[i], 1, HLLM_MEM_DEVICE, s->rows);
        }
        CHECKF(on_cpu == 0, "prompt plan: %d matmuls still on the CPU", on_cpu);
        CHECKF(dev_pf == dev_dec, "prompt plan: %.0f bytes in VRAM vs %.0f in the decode plan", dev_pf, dev_dec);
        hllm_solve_opts op = o;
        hllm_prediction a = hllm_plan_predict(p, &g, pf, &op), b = hllm_plan_predict(p->prefill, &g, pf, &op);
        CHECKF(b.prefill_s < 0.5 * a.prefill_s, "prompt: %.1f ms with its plan vs %.1f ms with the decode plan", b.prefill_s * 1e3,
               a.prefill_s * 1e3);
    }
    hllm_plan_free(p);
    /* HLLM_SPLIT_SWIGLU=1, equal processors: where the CPU holds ffn_down rows, the SwiGLU runs on
     * both (the prediction counts one handoff less); the prompt plan keeps it on the GPU */
    {
        hllm_profile *pe = profile(100, 100, 100, 100, 100, 1.0);
        hllm_solve_opts ot = o;
        ot.split = HLLM_SPLIT_TENSOR;
        hllm_prediction a, b;
        setenv("HLLM_SPLIT_HEADS", "0", 1); /* the row-cut plans */
        hllm_plan *one = hllm_solve(&g, pe, &ot, &a);
        setenv("HLLM_SPLIT_SWIGLU", "1", 1);
        hllm_plan *both = hllm_solve(&g, pe, &ot, &b);
        unsetenv("HLLM_SPLIT_SWIGLU");
        unsetenv("HLLM_SPLIT_HEADS");
        CHECK(one && both);
        if (one && both) {
            int rep = 0, rep_one = 0, rep_pf = 0;
            for (int i = 0; i < g.n_steps; i++) {
                if (g.steps[i].kind != HLLM_OP_SWIGLU) continue;
                rep += both->steps[i].n_parts == 2 && both->steps[i].parts[0].proc != both->steps[i].parts[1].proc;
                rep_one += one->steps[i].n_parts > 1;
                rep_pf += both->prefill && both->prefill->steps[i].n_parts > 1;
            }
            CHECKF(rep == 4 && rep_one == 0 && rep_pf == 0, "SwiGLU replicated in %d of 4 layers (%d without the option, %d in prompts)",
                   rep, rep_one, rep_pf);
            CHECKF(hllm_plan_validate(both, &g) == 0, "%s", hllm_error());
            CHECKF(b.decode_s < a.decode_s, "SwiGLU on both: %.4f ms vs %.4f ms", b.decode_s * 1e3, a.decode_s * 1e3);
        }
        hllm_plan_free(one);
        hllm_plan_free(both);
        hllm_profile_free(pe);
    }
    /* without a GPU: CPU only */
    o.gpu = -1;
    p = hllm_solve(&g, pf, &o, NULL);
    CHECK(p && p->steps[0].parts[0].proc == 0 && strstr(p->why, "CPU only"));
    hllm_plan_free(p);
    hllm_profile_free(pf);
    hllm_graph_free(&g);
}

static void test_blocks(void) {
    hllm_model_s m;
    hllm_layer_tensors L[2];
    hllm_graph g;
    CHECK(fake_graph(&m, L, 2, &g));
    hllm_plan *p = hllm_plan_single(&g, 0, 2, "test");
    int q = -1;
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_MATMUL && q < 0) q = i;
    int procs[3] = {0, 1, 0};
    double fr[3] = {0.25, 0.5, 0.25};
    CHECK(hllm_plan_cut(p, &g, q, 3, procs, fr, NULL, 64) == 0);
    CHECK(p->steps[q].n_parts == 3 && p->steps[q].parts[0].r1 == 1024 && p->steps[q].parts[1].r1 == 3072 &&
          p->steps[q].parts[2].r1 == 4096);
    CHECK(hllm_plan_validate(p, &g) == 0);
    p->steps[q].parts[1].r1 = 3000; /* a gap */
    CHECK(hllm_plan_validate(p, &g) != 0);
    CHECK(hllm_plan_cut(p, &g, 0, 2, procs, fr, NULL, 1) != 0); /* embedding is no matmul */
    hllm_plan_free(p);
    hllm_graph_free(&g);

    CHECK_NEAR(hllm_parse_mem("50%", 1000), 500, 1e-9);
    CHECK_NEAR(hllm_parse_mem("2G", 0), 2.0 * 1073741824.0, 1);
    CHECK_NEAR(hllm_parse_mem("512MiB", 0), 512.0 * 1048576.0, 1);
    CHECK_NEAR(hllm_parse_mem("12345", 0), 12345, 1e-9);
    CHECK(hllm_parse_mem("x", 0) < 0 && hllm_parse_mem("5Q", 0) < 0 && hllm_parse_mem("5%x", 0) < 0);

    /* profile file round trip and lookups */
    hllm_profile *pf = profile(100, 3000, 50, 90, 45, 4.0);
    snprintf(pf->machine, sizeof pf->machine, "testbox");
    char path[64];
    snprintf(path, sizeof path, "/tmp/hllm_test_plan_%d.profile", (int)getpid());
    CHECK(hllm_profile_save(pf, path) == 0);
    hllm_profile *back = hllm_profile_load(path);
    CHECKF(back != NULL, "%s", hllm_error());
    if (back) {
        CHECK(!strcmp(back->machine, "testbox"));
        CHECK(back->n == pf->n);
        CHECK_NEAR(hllm_profile_get(back, "sync.round_trip_us", 0), 4.0, 1e-9);
        CHECK_NEAR(hllm_profile_matmul_gbs(back, "cuda", HLLM_MEM_HOST, HLLM_TYPE_Q4_0, 1, 0), 50, 1e-9);
        CHECK_NEAR(hllm_profile_matmul_gbs(back, "cuda", HLLM_MEM_HOST, HLLM_TYPE_Q4_0, 300, 0), 500, 1e-9); /* nearest */
        CHECK_NEAR(hllm_profile_matmul_gbs(back, "cpu", HLLM_MEM_DEVICE, HLLM_TYPE_Q8_0, 1, 0), 100, 1e-9); /* other type */
        CHECK(hllm_profile_matmul_gbs(back, "npu", HLLM_MEM_DEVICE, HLLM_TYPE_Q8_0, 1, -7) == -7);
    }
    hllm_profile_free(back);
    FILE *f = fopen(path, "w");
    fprintf(f, "cpu.read_gbs = fast\n");
    fclose(f);
    CHECK(hllm_profile_load(path) == NULL && strstr(hllm_error(), "not a number"));
    unlink(path);
    hllm_profile_free(pf);
}

/* A slice of a matrix costs a fixed part plus a part per row, read off the profile's whole and
 * quarter timings; the solver gives the CPU thinner (or no) slices when the fixed part is large. */
static void test_slices(void) {
    hllm_profile *pf = profile(112, 3100, 50, 93, 42, 4.0);
    CHECK(hllm_profile_matmul_slice_s(pf, "cpu", HLLM_MEM_DEVICE, HLLM_TYPE_Q4_0, 4096, 4096, 2048) < 0); /* not profiled */
    hllm_profile_set(pf, "cpu.matmul.dev.q4_0.4096x4096.b1.us", 100);
    hllm_profile_set(pf, "cpu.matmul.dev.q4_0.4096x4096.b1.r1024.us", 60);
    const double t = hllm_profile_matmul_slice_s(pf, "cpu", HLLM_MEM_DEVICE, HLLM_TYPE_Q4_0, 4096, 4096, 2048);
    CHECK_NEAR(t * 1e6, 60.0 + 1024.0 * 40.0 / 3072.0, 1e-6); /* through (1024, 60) and (4096, 100) */
    CHECK_NEAR(hllm_profile_matmul_slice_s(pf, "cpu", HLLM_MEM_DEVICE, HLLM_TYPE_Q4_0, 4096, 4096, 4096) * 1e6, 100.0, 1e-6);

    hllm_model_s m;
    hllm_layer_tensors L[4];
    hllm_graph g;
    CHECK(fake_graph(&m, L, 4, &g));
    double total = 0;
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_MATMUL) total += (double)g.steps[i].w->row_bytes * (double)g.steps[i].rows;
    hllm_solve_opts o = {.split = HLLM_SPLIT_AUTO, .gpu_mem = 0.5 * total, .cpu = 0, .gpu = 1, .names = k_names};
    double share[2];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) /* every slice of every shape costs nearly the whole matrix */
            for (int i = 0; i < g.n_steps; i++) {
                const hllm_step *st = &g.steps[i];
                if (st->kind != HLLM_OP_MATMUL) continue;
                char k[128];
                double whole = (double)st->w->row_bytes * (double)st->rows / 112e9 * 1e6;
                snprintf(k, sizeof k, "cpu.matmul.dev.q4_0.%lldx%lld.b1.us", (long long)st->rows, (long long)st->w->cols);
                hllm_profile_set(pf, k, whole);
                snprintf(k, sizeof k, "cpu.matmul.dev.q4_0.%lldx%lld.b1.r%lld.us", (long long)st->rows, (long long)st->w->cols,
                         (long long)(st->rows / 4));
                hllm_profile_set(pf, k, 0.95 * whole);
            }
        hllm_plan *p = hllm_solve(&g, pf, &o, NULL);
        CHECK(p != NULL);
        double cpu_rows = 0, all_rows = 0;
        for (int i = 0; p && i < g.n_steps; i++) {
            if (g.steps[i].kind != HLLM_OP_MATMUL) continue;
            all_rows += (double)g.steps[i].rows;
            for (int k = 0; k < p->steps[i].n_parts; k++)
                if (p->steps[i].parts[k].proc == 0 && p->steps[i].n_parts > 1) cpu_rows += (double)(p->steps[i].parts[k].r1 - p->steps[i].parts[k].r0);
        }
        share[pass] = all_rows > 0 ? cpu_rows / all_rows : 0;
        hllm_plan_free(p);
    }
    CHECKF(share[0] > 0.1 && share[1] < 0.5 * share[0], "CPU share of cut matmuls: %.3f linear, %.3f with costly slices", share[0],
           share[1]);
    hllm_graph_free(&g);
    hllm_profile_free(pf);
}

/* Step `label` of layer l (-1 if none). */
static int step_at(const hllm_graph *g, int l, const char *label) {
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].layer == l && !strcmp(g->steps[i].label, label)) return i;
    return -1;
}

/* The cut of a step split as GPU parts over [0, cut), then one CPU part [cut, total) (none when
 * cut == total), or -1 when it is not split so. gpu_mem: the GPU parts' memory (-1: any). */
static int64_t gpu_then_cpu(const hllm_step_plan *sp, int64_t total, int gpu_mem) {
    const hllm_part *last = &sp->parts[sp->n_parts - 1];
    const int64_t cut = last->proc == 0 ? last->r0 : total;
    int64_t at = 0;
    for (int k = 0; k < sp->n_parts; k++) {
        const hllm_part *pt = &sp->parts[k];
        const bool cpu = k == sp->n_parts - 1 && pt->proc == 0;
        if (pt->r0 != at || (!cpu && (pt->proc != 1 || (gpu_mem >= 0 && pt->mem != gpu_mem)))) return -1;
        at = pt->r1;
    }
    return at == total ? cut : -1;
}

static bool on_both(const hllm_step_plan *sp) {
    return sp->n_parts == 2 && sp->cut == HLLM_CUT_ROWS && sp->parts[0].proc == 1 && sp->parts[1].proc == 0;
}

/* Weight bytes of the matrices and the embedding table, as the prediction counts them. */
static double weight_bytes(const hllm_graph *g) {
    double t = 0;
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].kind == HLLM_OP_MATMUL || g->steps[i].kind == HLLM_OP_EMBED)
            t += (double)g->steps[i].w->row_bytes * (double)g->steps[i].w->rows;
    return t;
}

/* One layer of a heads-split plan: the attention's heads cut at hg (whole groups of 4) for
 * q/k/v rows, rope/kv_store/attention slices and attn_output columns alike; the FFN cut at fg
 * for gate/up rows, the SwiGLU slice and ffn_down columns; norms and residuals on both. */
static void check_heads_layer(const hllm_plan *p, const hllm_graph *g, int l, int64_t *hg_out, int64_t *fg_out) {
    const hllm_step_plan *att = &p->steps[step_at(g, l, "attention")];
    CHECKF(att->cut == HLLM_CUT_SLICE && att->n_parts == 2 && att->parts[0].proc == 1 && att->parts[1].proc == 0,
           "layer %d: attention cut %d, %d parts", l, att->cut, att->n_parts);
    const int64_t hg = att->parts[0].r1;
    CHECKF(hg > 0 && hg < 32 && hg % 4 == 0 && att->parts[1].r0 == hg && att->parts[1].r1 == 32, "layer %d: GPU heads [0, %lld)", l,
           (long long)hg);
    const char *same[2] = {"rope", "kv_store"};
    for (int k = 0; k < 2; k++) {
        const hllm_step_plan *sp = &p->steps[step_at(g, l, same[k])];
        CHECKF(!memcmp(sp, att, sizeof *sp), "layer %d: %s sliced unlike the attention", l, same[k]);
    }
    const hllm_step_plan *q = &p->steps[step_at(g, l, "attn_q")], *o = &p->steps[step_at(g, l, "attn_output")];
    CHECKF(q->cut == HLLM_CUT_ROWS && gpu_then_cpu(q, 4096, HLLM_MEM_HOST) == hg * 128, "layer %d: attn_q not cut at row %lld", l,
           (long long)hg * 128);
    const char *kv[2] = {"attn_k", "attn_v"};
    for (int k = 0; k < 2; k++) {
        const hllm_step_plan *sp = &p->steps[step_at(g, l, kv[k])];
        CHECKF(sp->cut == HLLM_CUT_ROWS && gpu_then_cpu(sp, 1024, HLLM_MEM_HOST) == hg / 4 * 128, "layer %d: %s not cut at row %lld",
               l, kv[k], (long long)hg / 4 * 128);
    }
    CHECKF(o->cut == HLLM_CUT_COLS && gpu_then_cpu(o, 4096, HLLM_MEM_HOST) == hg * 128, "layer %d: attn_output not cut at column %lld",
           l, (long long)hg * 128);
    const hllm_step_plan *glu = &p->steps[step_at(g, l, "swiglu")], *down = &p->steps[step_at(g, l, "ffn_down")];
    const int64_t fg = glu->parts[0].r1;
    CHECKF(glu->cut == HLLM_CUT_SLICE && glu->n_parts == 2 && glu->parts[0].proc == 1 && glu->parts[1].proc == 0 && fg % 256 == 0 &&
               fg > 0 && fg < 14336,
           "layer %d: swiglu cut %d, GPU [0, %lld)", l, glu->cut, (long long)fg);
    const char *gu[2] = {"ffn_gate", "ffn_up"};
    for (int k = 0; k < 2; k++) {
        const hllm_step_plan *sp = &p->steps[step_at(g, l, gu[k])];
        CHECKF(sp->cut == HLLM_CUT_ROWS && gpu_then_cpu(sp, 14336, HLLM_MEM_HOST) == fg, "layer %d: %s not cut at row %lld", l, gu[k],
               (long long)fg);
    }
    CHECKF(down->cut == HLLM_CUT_COLS && gpu_then_cpu(down, 14336, HLLM_MEM_HOST) == fg, "layer %d: ffn_down not cut at column %lld",
           l, (long long)fg);
    const char *both[4] = {"attn_norm", "attn_residual", "ffn_norm", "ffn_residual"};
    for (int k = 0; k < 4; k++) CHECKF(on_both(&p->steps[step_at(g, l, both[k])]), "layer %d: %s not on both", l, both[k]);
    *hg_out = hg;
    *fg_out = fg;
}

/* The prompt plan of a heads split: every matmul part on the GPU (attn_output and ffn_down still
 * cut by columns), the sliced KV cache's steps and the rest whole on the GPU. */
static void check_heads_prefill(const hllm_plan *q, const hllm_graph *g) {
    int off_gpu = 0, not_whole = 0, cols = 0;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        const hllm_step_plan *sp = &q->steps[i];
        if (s->kind == HLLM_OP_EMBED) continue;
        for (int k = 0; k < sp->n_parts; k++) off_gpu += sp->parts[k].proc != 1;
        if (s->kind != HLLM_OP_MATMUL) not_whole += sp->n_parts != 1 || sp->cut != HLLM_CUT_ROWS;
        cols += sp->cut == HLLM_CUT_COLS;
    }
    CHECKF(off_gpu == 0 && not_whole == 0 && cols == 8, "prompt plan: %d parts off the GPU, %d steps not whole, %d column cuts", off_gpu,
           not_whole, cols);
}

/* CPU and GPU read host memory equally fast and the GPU has (almost) no VRAM: the heads split
 * shares each layer out about evenly and is preferred to the row-cut plans. */
static void test_heads_split(void) {
    hllm_model_s m;
    hllm_layer_tensors L[4];
    hllm_graph g;
    CHECK(fake_graph(&m, L, 4, &g));
    hllm_profile *pf = profile(100, 3000, 100, 100, 100, 1.0);
    hllm_profile_set(pf, "cpu.matmul.dev.q4_0.b512", 1.5); /* prompts: the GPU's */
    hllm_profile_set(pf, "cuda.matmul.host.q4_0.b512", 40);
    hllm_solve_opts o = {.split = HLLM_SPLIT_TENSOR, .gpu_mem = 1, .cpu = 0, .gpu = 1, .names = k_names};
    hllm_prediction pr, rows;
    hllm_plan *p = hllm_solve(&g, pf, &o, &pr);
    setenv("HLLM_SPLIT_HEADS", "0", 1);
    hllm_plan *r = hllm_solve(&g, pf, &o, &rows);
    unsetenv("HLLM_SPLIT_HEADS");
    CHECKF(p && strstr(p->why, "heads and FFN columns split"), "equal host reads: %s", p ? p->why : hllm_error());
    CHECKF(r && strstr(r->why, "row-cut") && pr.decode_s < rows.decode_s, "heads %.3f ms vs row-cut %.3f ms", pr.decode_s * 1e3,
           rows.decode_s * 1e3);
    if (p && strstr(p->why, "heads")) {
        CHECKF(hllm_plan_validate(p, &g) == 0, "%s", hllm_error());
        for (int l = 0; l < 4; l++) {
            int64_t hg = 0, fg = 0;
            check_heads_layer(p, &g, l, &hg, &fg);
            /* equal speeds: about half of each */
            CHECKF(hg >= 12 && hg <= 20 && fabs((double)fg / 14336 - 0.5) < 0.1, "layer %d: GPU %lld heads, %lld FFN columns", l,
                   (long long)hg, (long long)fg);
        }
        CHECK(p->steps[0].parts[0].proc == 0 && p->steps[0].n_parts == 1); /* the embedding on the CPU */
        CHECKF(p->prefill != NULL, "no prompt plan");
        if (p->prefill) {
            CHECKF(hllm_plan_validate(p->prefill, &g) == 0, "%s", hllm_error());
            check_heads_prefill(p->prefill, &g);
        }
        /* every weight byte counted once, none in VRAM */
        CHECK(pr.gpu_dev_bytes == 0);
        CHECK_NEAR(pr.cpu_bytes + pr.gpu_host_bytes, weight_bytes(&g), 1);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        hllm_plan_print(f, p, &g, k_names);
        fclose(f);
        CHECKF(buf && strstr(buf, "cuda(host) cols[0:") && strstr(buf, "cuda slice[0:") && strstr(buf, "cuda + cpu"), "%s", buf);
        free(buf);
    }
    hllm_plan_free(p);
    hllm_plan_free(r);
    hllm_profile_free(pf);
    hllm_graph_free(&g);
}

/* A GPU 30x faster that holds everything: the heads split is weighed, GPU only chosen. */
static void test_heads_fast_gpu(void) {
    hllm_model_s m;
    hllm_layer_tensors L[4];
    hllm_graph g;
    CHECK(fake_graph(&m, L, 4, &g));
    hllm_profile *pf = profile(100, 3000, 50, 90, 45, 4.0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    hllm_solve_opts o = {.split = HLLM_SPLIT_AUTO, .gpu_mem = -1, .cpu = 0, .gpu = 1, .names = k_names, .explain = f};
    hllm_plan *p = hllm_solve(&g, pf, &o, NULL);
    fclose(f);
    CHECKF(buf && strstr(buf, "heads and FFN columns split (GPU 32 of 32 heads"), "heads split not weighed:\n%s", buf);
    CHECKF(p && strstr(p->why, "GPU only"), "fast GPU: %s", p ? p->why : hllm_error());
    free(buf);
    hllm_plan_free(p);
    hllm_profile_free(pf);
    hllm_graph_free(&g);
}

/* A column cut's parts read their columns of every row: the prediction's bytes add up; the ADD
 * after it gets the partials held elsewhere (a flag, a copy and an op each) and adds each. */
static void test_cols_cost(void) {
    hllm_model_s m;
    hllm_layer_tensors L[2];
    hllm_graph g;
    CHECK(fake_graph(&m, L, 2, &g));
    hllm_profile *pf = profile(100, 3000, 50, 100, 100, 1.0);
    hllm_plan *p = hllm_plan_single(&g, 0, 2, "cols");
    const int down = step_at(&g, 0, "ffn_down"), res = down + 1;
    const int procs[3] = {1, 1, 0}, mems[3] = {HLLM_MEM_DEVICE, HLLM_MEM_HOST, HLLM_MEM_DEVICE}, both[2] = {1, 0};
    const int64_t cuts[3] = {1024, 4096, 14336};
    CHECK(hllm_plan_cut_cols(p, &g, down, 3, procs, cuts, mems) == 0);
    CHECK(hllm_plan_replicate(p, &g, res, 2, both) == 0);
    CHECKF(hllm_plan_validate(p, &g) == 0, "%s", hllm_error());
    hllm_solve_opts o = {.split = HLLM_SPLIT_AUTO, .gpu_mem = -1, .cpu = 0, .gpu = 1, .names = k_names};
    hllm_prediction pr = hllm_plan_predict(p, &g, pf, &o);
    CHECK_NEAR(pr.gpu_dev_bytes, 4096.0 * (double)hllm_row_bytes(HLLM_TYPE_Q4_0, 1024), 0);
    CHECK_NEAR(pr.gpu_host_bytes, 4096.0 * (double)hllm_row_bytes(HLLM_TYPE_Q4_0, 3072), 0);
    CHECK_NEAR(pr.cpu_bytes + pr.gpu_dev_bytes + pr.gpu_host_bytes, weight_bytes(&g), 0);
    double secs[64];
    CHECK(g.n_steps <= 64);
    hllm_plan_predict_steps(p, &g, pf, &o, 1, secs);
    /* defaults: copies at 20 GB/s; flags 1 us, ops 0.5 us. X moves to the GPU first (a copy); then
     * the CPU gets the GPU's two partials, the GPU the CPU's one; each adds three */
    const double mv = 1e-6 + 4096.0 * 4 / 20e9 + 0.5e-6;
    CHECK_NEAR(secs[res], mv + 2 * mv + 3 * 0.5e-6, 1e-12);
    hllm_plan_free(p);
    hllm_profile_free(pf);
    hllm_graph_free(&g);
}

/* No heads split for per-head q/k norms (qwen3) or query heads not in whole groups. */
static void test_heads_refused(void) {
    for (int pass = 0; pass < 2; pass++) {
        hllm_model_s m;
        hllm_layer_tensors L[2];
        fake_model(&m, L, 2);
        for (int l = 0; pass == 0 && l < 2; l++) {
            tensor(&L[l].q_norm, 1, 128, HLLM_TYPE_F32);
            tensor(&L[l].k_norm, 1, 128, HLLM_TYPE_F32);
        }
        if (pass == 1) m.hp.n_head_kv = 5;
        hllm_graph g;
        CHECK(hllm_graph_build(&m, &g) == 0);
        hllm_profile *pf = profile(100, 3000, 100, 100, 100, 1.0);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        hllm_solve_opts o = {.split = HLLM_SPLIT_TENSOR, .gpu_mem = 1, .cpu = 0, .gpu = 1, .names = k_names, .explain = f};
        hllm_plan *p = hllm_solve(&g, pf, &o, NULL);
        fclose(f);
        CHECKF(p && buf && strstr(buf, "row-cut") && !strstr(buf, "heads"), "pass %d: %s", pass, buf);
        free(buf);
        hllm_plan_free(p);
        hllm_profile_free(pf);
        hllm_graph_free(&g);
    }
}

int main(void) {
    test_blocks();
    test_solver();
    test_slices();
    test_heads_split();
    test_heads_fast_gpu();
    test_cols_cost();
    test_heads_refused();
    return test_summary("test_plan");
}
