/* hllm profile: measures this machine's processors (matmul speed for the model's shapes and
 * types by batch size, memory and copy bandwidths, sync latency) and saves a key = value
 * profile that `hllm plan`, `hllm run --profile` and `hllm bench --profile` read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "args.h"
#include "cli.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "plan/profile.h"
#include "plan/solve.h"
#include "proc/proc.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm profile [-m FILE] [-o FILE] [options]\n"
            "\n"
            "  -m, --model FILE    measure this model's matrix shapes and types (default: llama3-8b q4_0 shapes)\n"
            "  -o, --output FILE   where to save the profile (default hllm.profile)\n"
            "  -t, --threads N     CPU threads (default: physical cores)\n"
            "      --quick         batches 1 and 512 only (decode and prompts)\n"
            "      --working-set N weight bytes per shape measured (default 1G: beyond the CPU caches)\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double g_t0;
static void progress(const char *line, void *user) {
    (void)user;
    fprintf(stderr, "[%6.1fs] %s\n", now_s() - g_t0, line);
}

int hllm_cmd_profile(int argc, char **argv) {
    const char *model_path = NULL, *out_path = "hllm.profile";
    int n_threads = 0, quick = 0;
    double ws = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = arg_value("profile", argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            model_path = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            VAL();
            out_path = v;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL();
            if (!arg_int("profile", a, v, 1, 1024, &n_threads)) return 2;
        } else if (!strcmp(a, "--working-set")) {
            VAL();
            if ((ws = hllm_parse_mem(v, 0)) <= 0) {
                fprintf(stderr, "hllm profile: bad value '%s' for --working-set (e.g. 1G, 64M)\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else {
            fprintf(stderr, "hllm profile: unknown option '%s' (see hllm profile --help)\n", a);
            return 2;
        }
#undef VAL
    }
    g_t0 = now_s();
    hllm_model_s *m = NULL;
    if (model_path) {
        hllm_gguf_file *f = hllm_gguf_open(model_path);
        if (!f || !(m = hllm_model_from_gguf(f))) {
            if (f) hllm_gguf_close(f);
            fprintf(stderr, "hllm: %s\n", hllm_error());
            return 1;
        }
    }
    hllm_proc *procs[2];
    int n = 0;
    procs[n] = hllm_proc_new("cpu", n_threads);
    if (!procs[n]) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        hllm_model_destroy(m);
        return 1;
    }
    n++;
    procs[n] = hllm_proc_new("cuda", 0);
    if (procs[n]) n++;
    else fprintf(stderr, "profile: no GPU (%s): measuring the CPU only\n", hllm_error());
    hllm_profile *pf = hllm_profile_new();
    hllm_profile_opts o = {.quick = quick, .progress = progress, .working_set = (size_t)ws};
    int rc = pf ? hllm_profile_measure(m, procs, n, &o, pf) : -1;
    if (rc) fprintf(stderr, "hllm: %s\n", hllm_error());
    else if (hllm_profile_save(pf, out_path)) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        rc = -1;
    } else fprintf(stderr, "profile: saved %d values to %s in %.1f s\n", pf->n, out_path, now_s() - g_t0);
    hllm_profile_free(pf);
    for (int i = 0; i < n; i++) hllm_proc_free(procs[i]);
    hllm_model_destroy(m);
    return rc ? 1 : 0;
}
