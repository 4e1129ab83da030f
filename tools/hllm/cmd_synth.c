/* hllm synth: write a GGUF with a real model's shapes and deterministic random weights. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "args.h"
#include "cli.h"
#include "core/error.h"
#include "core/types.h"
#include "model/synth.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm synth --preset NAME [--arch ARCH] --type T -o FILE [--seed S]\n"
            "\n"
            "Writes a GGUF (llama.cpp-compatible) with a real model's shapes, metadata and vocabulary\n"
            "size and deterministic random weights.\n"
            "\n"
            "  --arch ARCH      llama, qwen2 or qwen3 (picks the 'tiny' variant; default: the preset's, tiny: llama)\n"
            "  --preset NAME    model shapes (see below)\n"
            "  --type T         f32, f16, bf16, q8_0, q4_0, q6_k, or q4_k = q4_k_m (a Q4_K_M mix: attn_v, ffn_down\n"
            "                   in some layers and the output Q6_K, the rest Q4_K); norms and biases stay f32\n"
            "  -o, --output FILE\n"
            "  --seed S         weight seed (default 1)\n"
            "  -t, --threads N  threads generating weights (default: all CPUs)\n"
            "  -q, --quiet      no progress on stderr\n"
            "\n"
            "presets:\n");
    int n;
    const hllm_synth_preset *p = hllm_synth_presets(&n);
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-13s %-6s n_embd %5d  n_layer %2d  heads %2d/%d  head_dim %3d  n_ff %5d  vocab %6d%s%s%s\n",
                p[i].name, p[i].arch, p[i].n_embd, p[i].n_layer, p[i].n_head, p[i].n_head_kv, p[i].head_dim,
                p[i].n_ff, p[i].n_vocab, p[i].tied ? "  tied" : "", p[i].qkv_bias ? "  qkv-bias" : "",
                p[i].qk_norm ? "  qk-norm" : "");
}

int hllm_cmd_synth(int argc, char **argv) {
    hllm_synth_opts o = {0};
    o.seed = 1;
    o.type = -1;
    o.progress = true;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = arg_value("synth", argc, argv, &i))) return 2
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--arch")) {
            VAL();
            if (strcmp(v, "llama") && strcmp(v, "qwen2") && strcmp(v, "qwen3")) {
                fprintf(stderr, "hllm synth: bad value '%s' for --arch (llama, qwen2 or qwen3)\n", v);
                return 2;
            }
            o.arch = v;
        } else if (!strcmp(a, "--preset")) {
            VAL();
            o.preset = v;
        } else if (!strcmp(a, "--type")) {
            VAL();
            /* q4_k is already llama.cpp's Q4_K_M mix; q4_k_m names it so */
            int t = !strcasecmp(v, "q4_k_m") ? HLLM_TYPE_Q4_K : hllm_type_from_name(v);
            if (t < 0 || hllm_synth_file_type(t) < 0) {
                fprintf(stderr, "hllm synth: bad value '%s' for --type (f32, f16, bf16, q8_0, q4_0, q4_k, q4_k_m, q6_k)\n", v);
                return 2;
            }
            o.type = t;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            VAL();
            out = v;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "-s")) {
            VAL();
            if (!arg_u64("synth", a, v, &o.seed)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL();
            if (!arg_int("synth", a, v, 1, 64, &o.n_threads)) return 2;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.progress = false;
        } else {
            fprintf(stderr, "hllm synth: unknown option '%s' (see hllm synth --help)\n", a);
            return 2;
        }
#undef VAL
    }
    if (!o.preset) {
        fprintf(stderr, "hllm synth: no preset given (--preset NAME; see hllm synth --help)\n");
        return 2;
    }
    if (o.type < 0) {
        fprintf(stderr, "hllm synth: no type given (--type T)\n");
        return 2;
    }
    if (!out) {
        fprintf(stderr, "hllm synth: no output file given (-o FILE)\n");
        return 2;
    }
    if (!hllm_synth_find_preset(o.preset, o.arch)) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        return 2;
    }
    if (hllm_synth_write(&o, out)) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        return 1;
    }
    return 0;
}
