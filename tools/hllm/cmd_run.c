/* hllm run: generate a continuation of a prompt. stdout holds only the generated text;
 * progress, the model summary and timings go to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "args.h"
#include "cli.h"
#include "hllm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm run -m FILE -p TEXT [options]\n"
            "\n"
            "  -m, --model FILE        GGUF model\n"
            "  -p, --prompt TEXT       prompt\n"
            "  -f, --file FILE         read the prompt from a file\n"
            "  -n, --n-predict N       tokens to generate (default 128, -1 = until EOS or the context is full)\n"
            "  -t, --threads N         CPU threads (default: physical cores)\n"
            "  -c, --ctx-size N        context size (default: the model's, at most 4096)\n"
            "  -b, --batch-size N      prompt tokens per evaluation (default 512)\n"
            "      --proc NAME         processor: cpu or cuda (default cpu)\n"
            "      --kv-type T         KV cache type: f16 (default) or f32\n"
            "      --temp X            temperature (default 0.8; 0 = greedy)\n"
            "      --top-k N           top-k (default 40; 0 = off)\n"
            "      --top-p X           top-p (default 0.95; 1 = off)\n"
            "      --min-p X           min-p (default 0.05; 0 = off)\n"
            "      --repeat-penalty X  repeat penalty (default 1.0 = off)\n"
            "      --repeat-last-n N   tokens the penalty looks back over (default 64)\n"
            "  -s, --seed N            sampling seed (default: random)\n"
            "      --no-bos            do not add the BOS token\n"
            "      --verbose           per-op timings and more detail on stderr\n"
            "      --gpu-mem X         place the model on CPU + GPU with at most X of weights in VRAM\n"
            "                          (50%% of the weights, 6G, 512M); CPU only without a GPU\n"
            "      --split MODE        auto | none | layer | tensor: the best plan of all (auto, the\n"
            "                          default) or one kind forced, for experiments\n"
            "      --profile FILE      measured profile from `hllm profile` (default: built-in estimates)\n");
}

/* Weight placement (repacking, uploads) is the long part of loading a large model. */
static void progress(float frac, void *user) {
    int *last = user, pct = (int)(frac * 100.0f);
    if (pct == *last || (!isatty(2) && pct % 25 && pct < 100)) return; /* logs get a few lines */
    *last = pct;
    fprintf(stderr, "\rloading weights: %3d%%", pct);
    if (pct >= 100) fputc('\n', stderr);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else buf = nb;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

int hllm_cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *proc = "cpu";
    int n_predict = 128, no_bos = 0, verbose = 0, seed_set = 0;
    hllm_context_params cp = hllm_context_default_params();
    hllm_sampler_params sp = hllm_sampler_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = arg_value("run", argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            VAL();
            model_path = v;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            VAL();
            prompt = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            VAL();
            prompt_file = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            VAL();
            if (!arg_int("run", a, v, -1, 1 << 24, &n_predict)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL();
            if (!arg_int("run", a, v, 1, 1024, &cp.n_threads)) return 2;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            VAL();
            if (!arg_int("run", a, v, 0, 1 << 20, &cp.n_ctx)) return 2;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            VAL();
            if (!arg_int("run", a, v, 1, 1 << 16, &cp.n_batch)) return 2;
        } else if (!strcmp(a, "--proc")) {
            VAL();
            proc = v;
        } else if (!strcmp(a, "--kv-type")) {
            VAL();
            static const char *const kv_names[] = {"f16", "f32"};
            int k;
            if (!arg_choice("run", a, v, kv_names, 2, &k)) return 2;
            cp.kv_type = k ? HLLM_KV_F32 : HLLM_KV_F16;
        } else if (!strcmp(a, "--temp")) {
            VAL();
            if (!arg_float("run", a, v, 0, 100, &sp.temp)) return 2;
        } else if (!strcmp(a, "--top-k")) {
            VAL();
            if (!arg_int("run", a, v, 0, 1 << 30, &sp.top_k)) return 2;
        } else if (!strcmp(a, "--top-p")) {
            VAL();
            if (!arg_float("run", a, v, 0, 1, &sp.top_p)) return 2;
        } else if (!strcmp(a, "--min-p")) {
            VAL();
            if (!arg_float("run", a, v, 0, 1, &sp.min_p)) return 2;
        } else if (!strcmp(a, "--repeat-penalty")) {
            VAL();
            if (!arg_float("run", a, v, 0.01, 100, &sp.repeat_penalty)) return 2;
        } else if (!strcmp(a, "--repeat-last-n")) {
            VAL();
            if (!arg_int("run", a, v, 0, 1 << 20, &sp.repeat_last_n)) return 2;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            VAL();
            if (!arg_u64("run", a, v, &sp.seed)) return 2;
            seed_set = 1;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = 1;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            verbose = 1;
        } else if (!strcmp(a, "--gpu-mem")) {
            VAL();
            cp.gpu_mem = v;
        } else if (!strcmp(a, "--profile")) {
            VAL();
            cp.profile = v;
        } else if (!strcmp(a, "--split")) {
            VAL();
            static const char *const names[] = {"none", "layer", "tensor", "auto"};
            int k;
            if (!arg_choice("run", a, v, names, 4, &k)) return 2;
            cp.split = k == 0 ? HLLM_SPLIT_MODE_NONE : k == 1 ? HLLM_SPLIT_MODE_LAYER : k == 2 ? HLLM_SPLIT_MODE_TENSOR : HLLM_SPLIT_MODE_AUTO;
        } else {
            fprintf(stderr, "hllm run: unknown option '%s' (see hllm run --help)\n", a);
            return 2;
        }
#undef VAL
    }
    if (!model_path) {
        fprintf(stderr, "hllm run: no model given (-m FILE)\n");
        return 2;
    }
    char *file_text = NULL;
    if (prompt_file) {
        if (!(file_text = read_file(prompt_file))) {
            fprintf(stderr, "hllm run: cannot read prompt file '%s'\n", prompt_file);
            return 1;
        }
        prompt = file_text;
    }
    if (!prompt) prompt = "";
    if (!seed_set) {
        FILE *ur = fopen("/dev/urandom", "rb");
        if (!ur || fread(&sp.seed, sizeof sp.seed, 1, ur) != 1) sp.seed = 42;
        if (ur) fclose(ur);
    }
    int rc = 1;
    hllm_model *model = NULL;
    hllm_context *ctx = NULL;
    hllm_sampler *smp = NULL;
    hllm_token *toks = NULL;
    hllm_model_params mp = hllm_model_default_params();
    int last_pct = -1;
    model = hllm_model_load(model_path, &mp);
    if (!model) {
        fprintf(stderr, "hllm: %s\n", hllm_last_error());
        goto done;
    }
    cp.proc = proc;
    cp.progress = progress;
    cp.progress_user = &last_pct;
    ctx = hllm_context_new(model, &cp);
    if (!ctx) {
        fprintf(stderr, "hllm: %s\n", hllm_last_error());
        goto done;
    }
    fprintf(stderr, "model: %s, %d layers, vocab %d, context %d, processor %s, %d threads\n", hllm_model_desc(model),
            hllm_model_n_layer(model), hllm_model_n_vocab(model), hllm_context_n_ctx(ctx), hllm_context_proc(ctx),
            hllm_context_n_threads(ctx));
    if (verbose && (cp.split || cp.gpu_mem)) fprintf(stderr, "%s", hllm_context_plan(ctx));
    const size_t plen = strlen(prompt);
    const int max_toks = (int)(plen + 8);
    toks = malloc((size_t)max_toks * sizeof *toks);
    if (!toks) {
        fprintf(stderr, "hllm: out of memory\n");
        goto done;
    }
    int n_prompt = hllm_model_tokenize(model, prompt, plen, !no_bos, false, toks, max_toks);
    if (n_prompt < 0) {
        fprintf(stderr, "hllm: tokenization failed: %s\n", hllm_last_error());
        goto done;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "hllm: the prompt is empty and the model adds no BOS token: nothing to continue\n");
        goto done;
    }
    if (n_prompt >= hllm_context_n_ctx(ctx)) {
        fprintf(stderr, "hllm: the prompt is too long: %d tokens, the context holds %d (raise -c)\n", n_prompt,
                hllm_context_n_ctx(ctx));
        goto done;
    }
    smp = hllm_sampler_new(&sp);
    if (!smp) goto done;
    for (int i = 0; i < n_prompt; i++) hllm_sampler_accept(smp, toks[i]);
    if (verbose) hllm_context_set_profiling(ctx, true);
    if (hllm_eval(ctx, toks, n_prompt)) {
        fprintf(stderr, "hllm: %s\n", hllm_last_error());
        goto done;
    }
    hllm_detok detok = {0};
    char out[1024];
    int n_gen = 0;
    const int n_vocab = hllm_model_n_vocab(model);
    while (n_predict < 0 || n_gen < n_predict) {
        hllm_token t = hllm_sampler_sample(smp, hllm_get_logits(ctx), n_vocab);
        if (hllm_model_token_is_eog(model, t)) break;
        hllm_sampler_accept(smp, t);
        int k = hllm_detok_piece(model, &detok, t, out, sizeof out);
        if (k > 0) {
            fwrite(out, 1, (size_t)k, stdout);
            fflush(stdout);
        }
        n_gen++;
        if (hllm_context_pos(ctx) >= hllm_context_n_ctx(ctx)) {
            fprintf(stderr, "\nhllm: the context is full (%d tokens)\n", hllm_context_n_ctx(ctx));
            break;
        }
        if (n_predict >= 0 && n_gen >= n_predict) break;
        if (hllm_eval(ctx, &t, 1)) {
            fprintf(stderr, "hllm: %s\n", hllm_last_error());
            goto done;
        }
    }
    int k = hllm_detok_finish(&detok, out, sizeof out);
    if (k > 0) fwrite(out, 1, (size_t)k, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    hllm_timings tm = hllm_get_timings(ctx);
    fprintf(stderr, "prompt: %d tokens in %.2f ms, %.2f tok/s\n", tm.n_prompt, tm.t_prompt_s * 1e3,
            tm.t_prompt_s > 0 ? tm.n_prompt / tm.t_prompt_s : 0.0);
    fprintf(stderr, "generation: %d tokens in %.2f ms, %.2f tok/s\n", tm.n_gen, tm.t_gen_s * 1e3,
            tm.t_gen_s > 0 ? tm.n_gen / tm.t_gen_s : 0.0);
    if (verbose) fputs(hllm_context_profile_report(ctx), stderr);
    rc = 0;
done:
    hllm_sampler_free(smp);
    free(toks);
    hllm_context_free(ctx);
    hllm_model_free(model);
    free(file_text);
    return rc;
}
