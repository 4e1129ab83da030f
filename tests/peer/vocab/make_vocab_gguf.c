/* make_vocab_gguf: writes a vocabulary-only GGUF (general.architecture "llama", minimal llama.*
 * hyperparameters so that llama.cpp loads it with vocab_only, and tokenizer.ggml.*) from the
 * text format that export_vocab.js writes.
 *
 *   make_vocab_gguf IN.vocab.txt OUT.gguf
 *
 * Built by make_vocabs.sh against libhllm.a (it uses hllm_gguf_writer from src/gguf/gguf.h). */
#include "gguf/gguf.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *msg, const char *arg) {
    fprintf(stderr, "make_vocab_gguf: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 1;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes a hex word ("-" = empty) into a malloc'd NUL-terminated string. */
static char *unhex(const char *h, uint64_t *n) {
    size_t len = strlen(h);
    if (strcmp(h, "-") == 0) len = 0;
    if (len % 2) return NULL;
    char *s = malloc(len / 2 + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < len / 2; i++) {
        int a = hexval((unsigned char)h[2 * i]), b = hexval((unsigned char)h[2 * i + 1]);
        if (a < 0 || b < 0) {
            free(s);
            return NULL;
        }
        s[i] = (char)(a * 16 + b);
    }
    s[len / 2] = 0;
    *n = len / 2;
    return s;
}

static hllm_str *read_strs(FILE *f, uint64_t n, int with_type, int32_t *types, float *scores) {
    hllm_str *v = calloc(n ? n : 1, sizeof *v);
    char *line = NULL;
    size_t cap = 0;
    if (!v) return NULL;
    for (uint64_t i = 0; i < n; i++) {
        if (getline(&line, &cap, f) < 0) goto fail;
        line[strcspn(line, "\n")] = 0;
        char *h = line;
        if (with_type) {
            char *end;
            types[i] = (int32_t)strtol(line, &end, 10);
            scores[i] = strtof(end, &end);
            h = end + strspn(end, " ");
        }
        uint64_t len;
        char *s = unhex(h, &len);
        if (!s) goto fail;
        v[i].s = s;
        v[i].n = len;
    }
    free(line);
    return v;
fail:
    free(line);
    for (uint64_t i = 0; i < n; i++) free((char *)v[i].s);
    free(v);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) return die("usage: make_vocab_gguf IN.vocab.txt OUT.gguf", NULL);
    FILE *f = fopen(argv[1], "r");
    if (!f) return die("cannot open", argv[1]);
    char key[64], val[256];
    if (fscanf(f, "%63s %255s", key, val) != 2 || strcmp(key, "hllm-vocab") != 0 || strcmp(val, "1") != 0)
        return die("not an hllm-vocab 1 file", argv[1]);

    hllm_gguf_writer *w = hllm_gguf_writer_new();
    hllm_gguf_writer_set_str(w, "general.architecture", "llama");
    /* minimal llama hparams: llama.cpp reads them even with vocab_only */
    hllm_gguf_writer_set_u32(w, "llama.context_length", 4096);
    hllm_gguf_writer_set_u32(w, "llama.embedding_length", 64);
    hllm_gguf_writer_set_u32(w, "llama.block_count", 1);
    hllm_gguf_writer_set_u32(w, "llama.feed_forward_length", 128);
    hllm_gguf_writer_set_u32(w, "llama.attention.head_count", 8);
    hllm_gguf_writer_set_u32(w, "llama.attention.head_count_kv", 8);
    hllm_gguf_writer_set_u32(w, "llama.rope.dimension_count", 8);
    hllm_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);

    uint64_t n_tok = 0, n_merge = 0;
    hllm_str *toks = NULL, *merges = NULL;
    int32_t *types = NULL;
    float *scores = NULL;
    int rc = 1;
    while (fscanf(f, "%63s", key) == 1) {
        if (strcmp(key, "tokens") == 0 || strcmp(key, "merges") == 0) {
            unsigned long long n;
            if (fscanf(f, "%llu", &n) != 1 || fgetc(f) != '\n') {
                die("bad count after", key);
                goto done;
            }
            if (key[0] == 't') {
                n_tok = n;
                types = malloc((n ? n : 1) * sizeof *types);
                scores = malloc((n ? n : 1) * sizeof *scores);
                if (!types || !scores || !(toks = read_strs(f, n, 1, types, scores))) {
                    die("bad token list in", argv[1]);
                    goto done;
                }
            } else {
                n_merge = n;
                if (!(merges = read_strs(f, n, 0, NULL, NULL))) {
                    die("bad merge list in", argv[1]);
                    goto done;
                }
            }
            continue;
        }
        if (fscanf(f, "%255s", val) != 1) {
            die("missing value for", key);
            goto done;
        }
        char k[128];
        if (strcmp(key, "model") == 0 || strcmp(key, "pre") == 0) {
            snprintf(k, sizeof k, "tokenizer.ggml.%s", key);
            if (strcmp(val, "-") != 0) hllm_gguf_writer_set_str(w, k, val);
        } else if (strcmp(key, "name") == 0) {
            hllm_gguf_writer_set_str(w, "general.name", val);
        } else if (strcmp(key, "add_bos") == 0 || strcmp(key, "add_eos") == 0) {
            snprintf(k, sizeof k, "tokenizer.ggml.%s_token", key);
            hllm_gguf_writer_set_bool(w, k, atoi(val) != 0);
        } else if (strcmp(key, "unk") == 0) {
            hllm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)strtoul(val, NULL, 10));
        } else if (strcmp(key, "bos") == 0 || strcmp(key, "eos") == 0 || strcmp(key, "eot") == 0) {
            snprintf(k, sizeof k, "tokenizer.ggml.%s_token_id", key);
            hllm_gguf_writer_set_u32(w, k, (uint32_t)strtoul(val, NULL, 10));
        } else {
            die("unknown key", key);
            goto done;
        }
    }
    if (!n_tok) {
        die("no tokens in", argv[1]);
        goto done;
    }
    hllm_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)n_tok);
    hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, n_tok);
    hllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n_tok);
    hllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n_tok);
    if (n_merge) hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, n_merge);
    if (hllm_gguf_writer_write(w, argv[2]) < 0) {
        die(hllm_error(), NULL);
        goto done;
    }
    rc = 0;
done:
    fclose(f);
    hllm_gguf_writer_free(w);
    for (uint64_t i = 0; toks && i < n_tok; i++) free((char *)toks[i].s);
    for (uint64_t i = 0; merges && i < n_merge; i++) free((char *)merges[i].s);
    free(toks);
    free(merges);
    free(types);
    free(scores);
    return rc;
}
