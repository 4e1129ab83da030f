/* hllm bench: llama-bench-style prompt processing (pp) and generation (tg) speed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "args.h"
#include "cli.h"
#include "hllm.h"

#define MAX_LIST 8

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm bench -m FILE [options]\n"
            "\n"
            "  -m, --model FILE      GGUF model (repeatable)\n"
            "  -p, --n-prompt N,..   prompt lengths to test (default 512; 0 = skip)\n"
            "  -n, --n-gen N,..      generation lengths to test (default 128; 0 = skip)\n"
            "  -t, --threads N,..    CPU thread counts (default: physical cores)\n"
            "  -r, --repetitions N   runs per test (default 3)\n"
            "  -b, --batch-size N    prompt batch size (default 512)\n"
            "      --proc NAME       processor: cpu or cuda (default cpu)\n"
            "      --kv-type T       f16 (default) or f32\n"
            "  -o, --output FMT      md (default) or json (llama-bench's JSON shape)\n"
            "      --gpu-mem X       CPU + GPU with at most X of weights in VRAM (50%%, 6G, 512M)\n"
            "      --split MODE      auto | none | layer | tensor (default auto when --gpu-mem is given:\n"
            "                        the best of all; the others force that kind, for experiments)\n"
            "      --profile FILE    measured profile from `hllm profile`\n"
            "      --show-plan       print each context's plan on stderr\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One timed test: n_prompt tokens in batches, or n_gen single-token evaluations. */
static int run_once(hllm_context *ctx, const hllm_model *m, int n_prompt, int n_gen, int n_batch, double *secs) {
    const int nv = hllm_model_n_vocab(m);
    hllm_token *toks = malloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof *toks);
    if (!toks) return -1;
    unsigned seed = 1234;
    for (int i = 0; i < n_prompt; i++) toks[i] = (hllm_token)((seed = seed * 1103515245u + 12345u) >> 8) % nv;
    hllm_context_reset(ctx);
    double t0 = now_s();
    int rc = 0;
    for (int done = 0; done < n_prompt && !rc; done += n_batch) {
        int k = n_prompt - done < n_batch ? n_prompt - done : n_batch;
        rc = hllm_eval(ctx, toks + done, k);
    }
    hllm_token t = hllm_model_token_bos(m) >= 0 ? hllm_model_token_bos(m) : 0;
    for (int i = 0; i < n_gen && !rc; i++) rc = hllm_eval(ctx, &t, 1);
    *secs = now_s() - t0;
    free(toks);
    return rc;
}

static void fmt_size(char *buf, size_t n, double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else snprintf(buf, n, "%.2f MiB", bytes / (1024.0 * 1024));
}

int hllm_cmd_bench(int argc, char **argv) {
    const char *models[MAX_LIST];
    int n_models = 0, pp[MAX_LIST] = {512}, tg[MAX_LIST] = {128}, th[MAX_LIST] = {0};
    int n_pp = 1, n_tg = 1, n_th = 1, reps = 3, n_batch = 512, json = 0;
    const char *proc = "cpu", *gpu_mem = NULL, *profile = NULL;
    int split = 0, show_plan = 0;
    hllm_kv_type kv = HLLM_KV_F16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = arg_value("bench", argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            if (n_models == MAX_LIST) {
                fprintf(stderr, "hllm bench: too many models (at most %d)\n", MAX_LIST);
                return 2;
            }
            models[n_models++] = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            VAL();
            if ((n_pp = arg_int_list("bench", a, v, 0, 1 << 20, pp, MAX_LIST)) < 0) return 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            VAL();
            if ((n_tg = arg_int_list("bench", a, v, 0, 1 << 20, tg, MAX_LIST)) < 0) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL();
            if ((n_th = arg_int_list("bench", a, v, 1, 1024, th, MAX_LIST)) < 0) return 2;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            VAL();
            if (!arg_int("bench", a, v, 1, 1000, &reps)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            VAL();
            if (!arg_int("bench", a, v, 1, 1 << 16, &n_batch)) return 2;
        } else if (!strcmp(a, "--proc")) {
            VAL();
            proc = v;
        } else if (!strcmp(a, "--gpu-mem")) {
            VAL();
            gpu_mem = v;
        } else if (!strcmp(a, "--profile")) {
            VAL();
            profile = v;
        } else if (!strcmp(a, "--show-plan")) {
            show_plan = 1;
        } else if (!strcmp(a, "--split")) {
            VAL();
            static const char *const names[] = {"none", "layer", "tensor", "auto"};
            int k;
            if (!arg_choice("bench", a, v, names, 4, &k)) return 2;
            split = k == 0 ? HLLM_SPLIT_MODE_NONE : k == 1 ? HLLM_SPLIT_MODE_LAYER : k == 2 ? HLLM_SPLIT_MODE_TENSOR : HLLM_SPLIT_MODE_AUTO;
        } else if (!strcmp(a, "--kv-type")) {
            VAL();
            static const char *const kv_names[] = {"f16", "f32"};
            int k;
            if (!arg_choice("bench", a, v, kv_names, 2, &k)) return 2;
            kv = k ? HLLM_KV_F32 : HLLM_KV_F16;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            VAL();
            static const char *const fmt_names[] = {"md", "json"};
            if (!arg_choice("bench", a, v, fmt_names, 2, &json)) return 2;
        } else {
            fprintf(stderr, "hllm bench: unknown option '%s' (see hllm bench --help)\n", a);
            return 2;
        }
#undef VAL
    }
    if (!n_models) {
        fprintf(stderr, "hllm bench: no model given (-m FILE)\n");
        return 2;
    }
    if (json) printf("[\n");
    else {
        printf("| %-30s | %10s | %10s | %-10s | %7s | %15s | %20s |\n", "model", "size", "params", "backend", "threads",
               "test", "t/s");
        printf("| ------------------------------ | ---------: | ---------: | ---------- | ------: | --------------: | -------------------: |\n");
    }
    int first = 1, rc = 0;
    for (int mi = 0; mi < n_models && !rc; mi++) {
        hllm_model *m = hllm_model_load(models[mi], NULL);
        if (!m) {
            fprintf(stderr, "hllm: %s\n", hllm_last_error());
            rc = 1;
            break;
        }
        for (int ti = 0; ti < n_th && !rc; ti++) {
            /* each test: (n_prompt, 0) for pp, (0, n_gen) for tg */
            int tests[2 * MAX_LIST][2], n_tests = 0;
            for (int i = 0; i < n_pp; i++)
                if (pp[i] > 0) tests[n_tests][0] = pp[i], tests[n_tests++][1] = 0;
            for (int i = 0; i < n_tg; i++)
                if (tg[i] > 0) tests[n_tests][0] = 0, tests[n_tests++][1] = tg[i];
            int max_ctx = 16;
            for (int k = 0; k < n_tests; k++)
                if (tests[k][0] + tests[k][1] > max_ctx) max_ctx = tests[k][0] + tests[k][1];
            hllm_context_params cp = hllm_context_default_params();
            cp.n_ctx = max_ctx;
            cp.n_batch = n_batch;
            cp.n_threads = th[ti];
            cp.kv_type = kv;
            cp.proc = proc;
            cp.gpu_mem = gpu_mem;
            cp.split = split;
            cp.profile = profile;
            hllm_context *ctx = hllm_context_new(m, &cp);
            if (!ctx) {
                fprintf(stderr, "hllm: %s\n", hllm_last_error());
                rc = 1;
                break;
            }
            if (show_plan) fprintf(stderr, "%s", hllm_context_plan(ctx));
            for (int k = 0; k < n_tests && !rc; k++) {
                const int np = tests[k][0], ng = tests[k][1];
                double warm, samples[1000], sum = 0, sq = 0;
                /* one warm-up run, as llama-bench does */
                if (run_once(ctx, m, np ? (np < n_batch ? np : n_batch) : 0, ng ? 1 : 0, n_batch, &warm)) rc = 1;
                for (int r = 0; r < reps && !rc; r++) {
                    double s;
                    if (run_once(ctx, m, np, ng, n_batch, &s)) rc = 1;
                    samples[r] = (np + ng) / s;
                    sum += samples[r];
                }
                if (rc) {
                    fprintf(stderr, "hllm: %s\n", hllm_last_error());
                    break;
                }
                double avg = sum / reps;
                for (int r = 0; r < reps; r++) sq += (samples[r] - avg) * (samples[r] - avg);
                double sd = reps > 1 ? sqrt(sq / (reps - 1)) : 0.0;
                char test[32], size[32], params[32], ts[48];
                snprintf(test, sizeof test, "%s%d", np ? "pp" : "tg", np ? np : ng);
                fmt_size(size, sizeof size, (double)hllm_model_size(m));
                snprintf(params, sizeof params, "%.2f %s",
                         hllm_model_n_params(m) >= 1e9 ? hllm_model_n_params(m) / 1e9 : hllm_model_n_params(m) / 1e6,
                         hllm_model_n_params(m) >= 1e9 ? "B" : "M");
                if (json) {
                    printf("%s  {\"model_filename\": \"%s\", \"model_type\": \"%s\", \"model_size\": %llu, "
                           "\"model_n_params\": %llu, \"backends\": \"%s\", \"n_batch\": %d, \"n_threads\": %d, "
                           "\"type_k\": \"%s\", \"type\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, "
                           "\"avg_ns\": %.0f, \"avg_ts\": %.6f, \"stddev_ts\": %.6f}",
                           first ? "" : ",\n", models[mi], hllm_model_desc(m), (unsigned long long)hllm_model_size(m),
                           (unsigned long long)hllm_model_n_params(m), hllm_context_proc(ctx), n_batch,
                           hllm_context_n_threads(ctx), kv == HLLM_KV_F16 ? "f16" : "f32", np ? "pp" : "tg", np, ng,
                           1e9 * (np + ng) / avg, avg, sd);
                    first = 0;
                } else {
                    snprintf(ts, sizeof ts, "%.2f ± %.2f", avg, sd);
                    printf("| %-30s | %10s | %10s | %-10s | %7d | %15s | %20s |\n", hllm_model_desc(m), size, params,
                           hllm_context_proc(ctx), hllm_context_n_threads(ctx), test, ts);
                }
                fflush(stdout);
            }
            hllm_context_free(ctx);
        }
        hllm_model_free(m);
    }
    if (json) printf("\n]\n");
    return rc;
}
