/* llama-ref: command line front end of llama_ref (llama.cpp, prebuilt CPU build).
 *
 *   llama-ref tokenize -m MODEL -p TEXT [--no-bos] [--parse-special] [--pieces]
 *   llama-ref generate -m MODEL -p TEXT -n N [--kv f32|f16] [--fa 0|1|auto] [-t T]
 *                      [--no-bos] [--stop-eog] [--logits-out FILE] [--logits-format bin|txt]
 *                      [--all-logits] [--text] [-c N_CTX]
 *   llama-ref bench -m MODEL [-p 512] [-n 128] [-t T] [-r 5] [--kv f16|f32] [--fa auto|0|1]
 *                   [-b 2048] [-ub 512] [-o md|json] [--no-warmup]
 *   llama-ref info -m MODEL
 * Common: -v (llama.cpp warnings), -vv (all llama.cpp logs), --lib DIR. */
#define _POSIX_C_SOURCE 200809L
#include "llama_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    fputs("usage:\n"
          "  llama-ref tokenize -m MODEL -p TEXT [--no-bos] [--parse-special] [--pieces]\n"
          "  llama-ref generate -m MODEL -p TEXT -n N [--kv f32|f16] [--fa 0|1|auto] [-t T] [-c N_CTX]\n"
          "                     [--no-bos] [--stop-eog] [--text] [--logits-out FILE]\n"
          "                     [--logits-format bin|txt] [--all-logits]\n"
          "  llama-ref bench -m MODEL [-p 512] [-n 128] [-t T[,T...]] [-r 5] [--kv f16|f32]\n"
          "                  [--fa auto|0|1] [-b 2048] [-ub 512] [-o md|json] [--no-warmup]\n"
          "  llama-ref info -m MODEL\n"
          "common: -v / -vv (llama.cpp logs), --lib DIR (dir of libllama.v0.4.0.so)\n"
          "generate prints the generated ids on stdout (one line), with --text also the text\n"
          "on a second line; --logits-out writes the first-step logits (n_vocab float32 LE,\n"
          "or %.9g text lines), with --all-logits every step's logits (n rows).\n",
          stderr);
}

typedef struct {
    const char *cmd, *model, *prompt, *logits_out, *lib, *threads;
    int n, n_ctx, no_bos, parse_special, pieces, stop_eog, text, all_logits, logits_txt;
    int kv, fa, reps, n_batch, n_ubatch, json, warmup, verbose;
} opts;

static int parse_fa(const char *s) {
    if (!strcmp(s, "auto") || !strcmp(s, "-1")) return -1;
    return atoi(s) ? 1 : 0;
}

static int parse_args(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->n = -1;
    o->kv = -1;
    o->fa = -2;
    o->reps = 5;
    o->warmup = 1;
    if (argc < 2) return -1;
    o->cmd = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                  \
    do {                                                         \
        if (!v) {                                                \
            fprintf(stderr, "llama-ref: %s needs a value\n", a); \
            return -1;                                           \
        }                                                        \
        i++;                                                     \
    } while (0)
        if (!strcmp(a, "-m")) { NEEDV(); o->model = v; }
        else if (!strcmp(a, "-p")) { NEEDV(); o->prompt = v; }
        else if (!strcmp(a, "-n")) { NEEDV(); o->n = atoi(v); }
        else if (!strcmp(a, "-c")) { NEEDV(); o->n_ctx = atoi(v); }
        else if (!strcmp(a, "-t")) { NEEDV(); o->threads = v; }
        else if (!strcmp(a, "-r")) { NEEDV(); o->reps = atoi(v); }
        else if (!strcmp(a, "-b")) { NEEDV(); o->n_batch = atoi(v); }
        else if (!strcmp(a, "-ub")) { NEEDV(); o->n_ubatch = atoi(v); }
        else if (!strcmp(a, "-o")) { NEEDV(); o->json = !strcmp(v, "json"); }
        else if (!strcmp(a, "--kv")) {
            NEEDV();
            if (!strcmp(v, "f32")) o->kv = LLAMA_REF_KV_F32;
            else if (!strcmp(v, "f16")) o->kv = LLAMA_REF_KV_F16;
            else { fprintf(stderr, "llama-ref: --kv f32|f16\n"); return -1; }
        }
        else if (!strcmp(a, "--fa")) { NEEDV(); o->fa = parse_fa(v); }
        else if (!strcmp(a, "--logits-out")) { NEEDV(); o->logits_out = v; }
        else if (!strcmp(a, "--logits-format")) { NEEDV(); o->logits_txt = !strcmp(v, "txt"); }
        else if (!strcmp(a, "--lib")) { NEEDV(); o->lib = v; }
        else if (!strcmp(a, "--no-bos")) o->no_bos = 1;
        else if (!strcmp(a, "--parse-special")) o->parse_special = 1;
        else if (!strcmp(a, "--pieces")) o->pieces = 1;
        else if (!strcmp(a, "--stop-eog")) o->stop_eog = 1;
        else if (!strcmp(a, "--text")) o->text = 1;
        else if (!strcmp(a, "--all-logits")) o->all_logits = 1;
        else if (!strcmp(a, "--no-warmup")) o->warmup = 0;
        else if (!strcmp(a, "-v")) o->verbose = 1;
        else if (!strcmp(a, "-vv")) o->verbose = 2;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) return -1;
        else { fprintf(stderr, "llama-ref: unknown argument %s\n", a); return -1; }
#undef NEEDV
    }
    if (!o->model) {
        fprintf(stderr, "llama-ref: -m MODEL is required\n");
        return -1;
    }
    return 0;
}

static llama_ref *open_ref(const opts *o, int n_ctx, int threads, int kv, int fa, int nb, int nub) {
    llama_ref_params p;
    llama_ref_default_params(&p);
    if (n_ctx > 0) p.n_ctx = n_ctx;
    p.n_threads = threads > 0 ? threads : 1;
    p.kv_type = kv;
    p.flash_attn = fa;
    p.n_batch = nb;
    p.n_ubatch = nub;
    p.verbose = o->verbose;
    p.lib_dir = o->lib;
    llama_ref *r = llama_ref_open(o->model, &p);
    if (!r) fprintf(stderr, "%s\n", llama_ref_last_error());
    return r;
}

static void print_piece(llama_ref *r, int32_t t, int special, FILE *f) {
    char buf[256];
    int k = llama_ref_token_to_piece(r, t, buf, sizeof buf, special);
    if (k > 0) fwrite(buf, 1, (size_t)k, f);
}

static int cmd_tokenize(const opts *o) {
    if (!o->prompt) { fprintf(stderr, "llama-ref: -p TEXT is required\n"); return 2; }
    llama_ref *r = open_ref(o, 0, 1, LLAMA_REF_KV_F32, 0, 0, 0);
    if (!r) return 1;
    int32_t *ids = NULL;
    int n = llama_ref_tokenize_alloc(r, o->prompt, -1, !o->no_bos, o->parse_special, &ids);
    if (n < 0) { fprintf(stderr, "llama-ref: tokenize failed\n"); llama_ref_close(r); return 1; }
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    if (o->pieces) {
        for (int i = 0; i < n; i++) {
            printf("%d\t'", ids[i]);
            print_piece(r, ids[i], 1, stdout);
            printf("'\n");
        }
    }
    free(ids);
    llama_ref_close(r);
    return 0;
}

static int write_logits(const opts *o, const float *x, size_t n) {
    FILE *f = fopen(o->logits_out, o->logits_txt ? "w" : "wb");
    if (!f) { perror(o->logits_out); return -1; }
    if (o->logits_txt) {
        for (size_t i = 0; i < n; i++) fprintf(f, "%.9g\n", (double)x[i]);
    } else if (fwrite(x, sizeof(float), n, f) != n) {
        perror(o->logits_out);
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int cmd_generate(const opts *o) {
    if (!o->prompt) { fprintf(stderr, "llama-ref: -p TEXT is required\n"); return 2; }
    int n_gen = o->n < 0 ? 16 : o->n;
    int threads = o->threads ? atoi(o->threads) : 1;
    /* size the context from the request: tokens <= bytes + 1 for SentencePiece */
    int n_ctx = o->n_ctx > 0 ? o->n_ctx : (int)strlen(o->prompt) + 2 + n_gen;
    if (n_ctx < 64) n_ctx = 64;
    llama_ref *r = open_ref(o, n_ctx, threads, o->kv < 0 ? LLAMA_REF_KV_F32 : o->kv,
                            o->fa == -2 ? 0 : o->fa, 0, 0);
    if (!r) return 1;
    int rc = 1;
    int32_t *ids = NULL, *out = NULL;
    float *first = NULL, *steps = NULL;
    int n = llama_ref_tokenize_alloc(r, o->prompt, -1, !o->no_bos, o->parse_special, &ids);
    if (n <= 0) { fprintf(stderr, "llama-ref: empty prompt after tokenization\n"); goto out; }
    int nv = llama_ref_n_vocab(r);
    out = calloc((size_t)(n_gen > 0 ? n_gen : 1), sizeof *out);
    first = malloc((size_t)nv * sizeof(float));
    if (o->all_logits && n_gen > 0) steps = malloc((size_t)n_gen * (size_t)nv * sizeof(float));
    if (!out || !first || (o->all_logits && n_gen > 0 && !steps)) { fprintf(stderr, "llama-ref: out of memory\n"); goto out; }
    int k = llama_ref_generate_greedy(r, ids, n, n_gen, o->stop_eog ? LLAMA_REF_GEN_STOP_AT_EOG : 0,
                                      out, first, steps);
    if (k < 0) { fprintf(stderr, "%s\n", llama_ref_last_error()); goto out; }
    for (int i = 0; i < k; i++) printf(i ? " %d" : "%d", out[i]);
    printf("\n");
    if (o->text) {
        for (int i = 0; i < k; i++) print_piece(r, out[i], 0, stdout);
        printf("\n");
    }
    if (o->logits_out) {
        if (steps ? write_logits(o, steps, (size_t)k * (size_t)nv) : write_logits(o, first, (size_t)nv)) goto out;
    }
    rc = 0;
out:
    free(ids); free(out); free(first); free(steps);
    llama_ref_close(r);
    return rc;
}

typedef struct { double mean, sd; } stat2;

static stat2 stats(const double *x, int n) {
    stat2 s = {0, 0};
    for (int i = 0; i < n; i++) s.mean += x[i];
    s.mean /= n;
    if (n > 1) {
        for (int i = 0; i < n; i++) s.sd += (x[i] - s.mean) * (x[i] - s.mean);
        s.sd = sqrt(s.sd / (n - 1));
    }
    return s;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
        else putchar(*s);
    }
    putchar('"');
}

static int cmd_bench(const opts *o) {
    int pp = o->prompt ? atoi(o->prompt) : 512;
    int tg = o->n < 0 ? 128 : o->n;
    int reps = o->reps > 0 ? o->reps : 1;
    int kv = o->kv < 0 ? LLAMA_REF_KV_F16 : o->kv; /* llama-bench defaults */
    int fa = o->fa == -2 ? -1 : o->fa;
    int nb = o->n_batch > 0 ? o->n_batch : 2048, nub = o->n_ubatch > 0 ? o->n_ubatch : 512;
    int n_ctx = pp + tg;
    if (nb > n_ctx) nb = n_ctx;
    if (nub > nb) nub = nb;
    /* thread list: -t 1,2 */
    int tl[16], nt = 0;
    {
        const char *s = o->threads ? o->threads : "1";
        while (*s && nt < 16) {
            tl[nt++] = atoi(s);
            const char *c = strchr(s, ',');
            if (!c) break;
            s = c + 1;
        }
    }
    llama_ref *r = open_ref(o, n_ctx, tl[0], kv, fa, nb, nub);
    if (!r) return 1;
    char desc[256] = "";
    llama_ref_model_desc(r, desc, sizeof desc);
    double *tp = calloc((size_t)reps, sizeof(double)), *tt = calloc((size_t)reps, sizeof(double));
    if (!tp || !tt) { llama_ref_close(r); free(tp); free(tt); return 1; }
    if (o->json) {
        printf("{\n  \"engine\": \"llama.cpp\", \"package\": \"node-llama-cpp@3.21.1\", \"llama_version\": ");
        json_str(llama_ref_llama_version());
        printf(",\n  \"backend\": ");
        json_str(llama_ref_backend_desc(r));
        printf(",\n  \"model\": ");
        json_str(o->model);
        printf(", \"model_desc\": ");
        json_str(desc);
        printf(",\n  \"type_kv\": \"%s\", \"flash_attn\": \"%s\", \"n_batch\": %d, \"n_ubatch\": %d, \"reps\": %d,\n",
               kv == LLAMA_REF_KV_F16 ? "f16" : "f32", fa < 0 ? "auto" : fa ? "on" : "off", nb, nub, reps);
        printf("  \"results\": [");
    } else {
        printf("llama.cpp %s (node-llama-cpp 3.21.1), %s\n", llama_ref_llama_version(), llama_ref_backend_desc(r));
        printf("model %s (%s), kv %s, fa %s, b %d, ub %d, reps %d\n\n", o->model, desc,
               kv == LLAMA_REF_KV_F16 ? "f16" : "f32", fa < 0 ? "auto" : fa ? "on" : "off", nb, nub, reps);
        printf("| threads | test   |            t/s |\n| ------: | :----- | -------------: |\n");
    }
    int first = 1, rc = 0;
    for (int ti = 0; ti < nt; ti++) {
        llama_ref_set_threads(r, tl[ti]);
        for (int kind = 0; kind < 2; kind++) {
            int n = kind == 0 ? pp : tg;
            if (n <= 0) continue;
            if (o->warmup) {
                double w = kind == 0 ? llama_ref_time_pp(r, n < nb ? n : nb, 1) : llama_ref_time_tg(r, 1, 1);
                if (w < 0) { fprintf(stderr, "%s\n", llama_ref_last_error()); rc = 1; goto done; }
            }
            double *ts = kind == 0 ? tp : tt;
            double *sec = calloc((size_t)reps, sizeof(double));
            if (!sec) { rc = 1; goto done; }
            for (int i = 0; i < reps; i++) {
                double t = kind == 0 ? llama_ref_time_pp(r, n, 1234u + (uint32_t)i) : llama_ref_time_tg(r, n, 1234u + (uint32_t)i);
                if (t < 0) { fprintf(stderr, "%s\n", llama_ref_last_error()); free(sec); rc = 1; goto done; }
                sec[i] = t;
                ts[i] = n / t;
            }
            stat2 s = stats(ts, reps), ss = stats(sec, reps);
            char name[32];
            snprintf(name, sizeof name, "%s%d", kind == 0 ? "pp" : "tg", n);
            if (o->json) {
                printf("%s\n    {\"test\": \"%s\", \"n_prompt\": %d, \"n_gen\": %d, \"threads\": %d, "
                       "\"avg_ts\": %.3f, \"stddev_ts\": %.3f, \"avg_s\": %.6e, \"samples_ts\": [",
                       first ? "" : ",", name, kind == 0 ? n : 0, kind == 1 ? n : 0, tl[ti], s.mean, s.sd, ss.mean);
                for (int i = 0; i < reps; i++) printf(i ? ", %.3f" : "%.3f", ts[i]);
                printf("]}");
            } else {
                printf("| %7d | %-6s | %8.2f ± %4.2f |\n", tl[ti], name, s.mean, s.sd);
            }
            first = 0;
            free(sec);
            fflush(stdout);
        }
    }
done:
    if (o->json) printf("\n  ]\n}\n");
    free(tp);
    free(tt);
    llama_ref_close(r);
    return rc;
}

static int cmd_info(const opts *o) {
    llama_ref *r = open_ref(o, 0, 1, LLAMA_REF_KV_F32, 0, 0, 0);
    if (!r) return 1;
    char desc[256] = "";
    llama_ref_model_desc(r, desc, sizeof desc);
    printf("lib_dir       %s\nllama_version %s\nbackend       %s\nsystem_info   %s\n",
           llama_ref_lib_dir(), llama_ref_llama_version(), llama_ref_backend_desc(r), llama_ref_system_info());
    printf("model         %s (%s)\nn_vocab       %d\nbos %d eos %d add_bos %d\n", o->model, desc,
           llama_ref_n_vocab(r), llama_ref_bos(r), llama_ref_eos(r), llama_ref_add_bos(r));
    llama_ref_close(r);
    return 0;
}

int main(int argc, char **argv) {
    opts o;
    if (parse_args(argc, argv, &o) != 0) { usage(); return 2; }
    if (!strcmp(o.cmd, "tokenize")) return cmd_tokenize(&o);
    if (!strcmp(o.cmd, "generate")) return cmd_generate(&o);
    if (!strcmp(o.cmd, "bench")) return cmd_bench(&o);
    if (!strcmp(o.cmd, "info")) return cmd_info(&o);
    fprintf(stderr, "llama-ref: unknown command %s\n", o.cmd);
    usage();
    return 2;
}
