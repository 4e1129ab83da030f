/* hllm plan: how the planner would place a model on CPU + GPU for a VRAM budget, with the
 * predicted decode and prefill times of the chosen plan and of the alternatives it rejected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "model/graph.h"
#include "model/model.h"
#include "plan/profile.h"
#include "plan/solve.h"
#ifdef HLLM_HAVE_CUDA
#include "proc/cuda/cuda_proc.h"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm plan -m FILE [options]\n"
            "\n"
            "  -m, --model FILE     GGUF model\n"
            "      --gpu-mem X      VRAM for weights: 50%% (of the weights), 6G, 512M (default: no limit)\n"
            "      --profile FILE   profile from `hllm profile` (default: built-in estimates of the device host)\n"
            "      --split MODE     auto | none | layer | tensor (default auto: the best of all;\n"
            "                       the others force that kind of plan, for experiments)\n"
            "  -p, --n-prompt N     prompt length for the prefill prediction (default 512)\n");
}

int hllm_cmd_plan(int argc, char **argv) {
    const char *model_path = NULL, *gpu_mem = NULL, *prof_path = NULL;
    hllm_split split = HLLM_SPLIT_AUTO;
    int n_prompt = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = arg_value("plan", argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            model_path = v;
        } else if (!strcmp(a, "--gpu-mem")) {
            VAL();
            gpu_mem = v;
        } else if (!strcmp(a, "--profile")) {
            VAL();
            prof_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            VAL();
            if (!arg_int("plan", a, v, 1, 1 << 20, &n_prompt)) return 2;
        } else if (!strcmp(a, "--split")) {
            VAL();
            static const char *const names[] = {"none", "layer", "tensor", "auto"};
            int k;
            if (!arg_choice("plan", a, v, names, 4, &k)) return 2;
            split = k == 0 ? HLLM_SPLIT_NONE : k == 1 ? HLLM_SPLIT_LAYER : k == 2 ? HLLM_SPLIT_TENSOR : HLLM_SPLIT_AUTO;
        } else {
            fprintf(stderr, "hllm plan: unknown option '%s' (see hllm plan --help)\n", a);
            return 2;
        }
#undef VAL
    }
    if (!model_path) {
        fprintf(stderr, "hllm plan: no model given (-m FILE)\n");
        return 2;
    }
    hllm_gguf_file *f = hllm_gguf_open(model_path);
    hllm_model_s *m = f ? hllm_model_from_gguf(f) : NULL;
    if (!m) {
        if (f) hllm_gguf_close(f);
        fprintf(stderr, "hllm: %s\n", hllm_error());
        return 1;
    }
    hllm_graph g;
    hllm_profile *pf = NULL;
    int rc = 1;
    if (hllm_graph_build(m, &g)) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        hllm_model_destroy(m);
        return 1;
    }
    if (prof_path) pf = hllm_profile_load(prof_path);
    else pf = hllm_profile_builtin();
    if (!pf) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        goto done;
    }
    double weights = 0;
    for (int i = 0; i < g.n_steps; i++)
        if (g.steps[i].kind == HLLM_OP_MATMUL) weights += (double)g.steps[i].w->row_bytes * (double)g.steps[i].w->rows;
    const char *names[2] = {"cpu", "cuda"};
    hllm_solve_opts so = {.split = split, .gpu_mem = -1, .n_prompt = n_prompt, .cpu = 0, .gpu = 1, .names = names, .explain = stdout};
    if (gpu_mem && (so.gpu_mem = hllm_parse_mem(gpu_mem, weights)) < 0) {
        fprintf(stderr, "hllm plan: bad value '%s' for --gpu-mem (e.g. 50%%, 6G, 512M)\n", gpu_mem);
        rc = 2;
        goto done;
    }
    int has_gpu = 0;
#ifdef HLLM_HAVE_CUDA
    has_gpu = hllm_cuda_device_count(NULL) > 0;
#endif
    printf("model: %s, matmul weights %.2f GiB; VRAM budget %s; profile: %s%s\n", m->desc, weights / 1073741824.0,
           so.gpu_mem < 0 ? "unlimited" : gpu_mem, pf->machine[0] ? pf->machine : "?",
           has_gpu ? "" : " (no GPU on this machine: the plan is for CPU + GPU as profiled)");
    hllm_prediction pr;
    hllm_plan *p = hllm_solve(&g, pf, &so, &pr);
    if (!p) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        goto done;
    }
    printf("\n");
    hllm_plan_print(stdout, p, &g, names);
    hllm_plan_free(p);
    rc = 0;
done:
    hllm_profile_free(pf);
    hllm_graph_free(&g);
    hllm_model_destroy(m);
    return rc;
}
