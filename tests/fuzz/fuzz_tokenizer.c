/* Fuzz target: tokenizes the input text with fixed vocabularies and detokenizes the ids back.
 * Byte 0 picks the vocabulary and the flags, the rest is the text. Checked:
 *  - ids are in the vocabulary; asking with too small a buffer gives -(needed);
 *  - byte-level BPE: the pieces of the ids concatenate to the text (when it is valid UTF-8,
 *    with special tokens parsed and rendered alike), and detokenize gives the same where the
 *    pre-tokenizer does not clean up spaces;
 *  - SentencePiece (byte fallback): the pieces give " " + text, detokenize gives the text
 *    (" " + text after removing a BOS, as llama.cpp; special tokens not parsed; texts without
 *    U+2581, which renders as a space, or a cut-short UTF-8 sequence before a space);
 *  - the streaming detokenizer gives the pieces whenever they are valid UTF-8.
 * Vocabularies: stories260K (../shared/models, when present), synth tiny llama (SentencePiece)
 * and synth tiny qwen2 (byte-level BPE) under several pre-tokenizers. */
#include "fuzz_util.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include "tokenizer/tokenizer.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_VOCABS = 8 };
static hllm_tokenizer *g_tok[N_VOCABS];
static const char *const g_names[N_VOCABS] = {"stories260K", "synth-llama", "qwen2", "llama3",
                                              "gpt-2", "default", "trillion", "megrez"};

/* Writes a synth tiny model to a temporary file and opens it. */
static hllm_gguf_file *open_synth(const char *arch) {
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/hllm-fuzz-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FUZZ_CHECK(fd >= 0);
    close(fd);
    hllm_synth_opts o = {.arch = arch, .preset = "tiny", .type = HLLM_TYPE_Q4_0, .seed = 1, .n_threads = 1};
    int rc = hllm_synth_write(&o, path);
    hllm_gguf_file *f = rc == 0 ? hllm_gguf_open(path) : NULL;
    unlink(path);
    if (!f) fprintf(stderr, "fuzz_tokenizer: synth %s: %s\n", arch, hllm_error());
    FUZZ_CHECK(f);
    return f;
}

/* The tokenizer of f with tokenizer.ggml.pre replaced (a metadata-only copy of the file). */
static hllm_tokenizer *with_pre(const hllm_gguf_file *f, const char *pre) {
    hllm_gguf_writer *w = hllm_gguf_writer_new();
    FUZZ_CHECK(w);
    for (int64_t i = 0; i < hllm_gguf_n_kv(f); i++) {
        const hllm_gguf_kv *kv = hllm_gguf_kv_at(f, i);
        const char *k = kv->key.s;
        if (!strncmp(k, "general.alignment", 17)) continue;
        switch (kv->type) {
        case GGUF_TYPE_STRING: hllm_gguf_writer_set_str(w, k, kv->v.str.s); break;
        case GGUF_TYPE_UINT32: hllm_gguf_writer_set_u32(w, k, (uint32_t)kv->v.u64); break;
        case GGUF_TYPE_INT32: hllm_gguf_writer_set_i32(w, k, (int32_t)kv->v.i64); break;
        case GGUF_TYPE_FLOAT32: hllm_gguf_writer_set_f32(w, k, (float)kv->v.f64); break;
        case GGUF_TYPE_BOOL: hllm_gguf_writer_set_bool(w, k, kv->v.b); break;
        case GGUF_TYPE_ARRAY:
            if (kv->arr_type == GGUF_TYPE_STRING) hllm_gguf_writer_set_arr_str(w, k, kv->v.arr_str, kv->arr_n);
            else hllm_gguf_writer_set_arr(w, k, kv->arr_type, kv->v.arr, kv->arr_n);
            break;
        default: break; /* synth writes no other types */
        }
    }
    hllm_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    void *buf = NULL;
    size_t n = 0;
    FUZZ_CHECK(hllm_gguf_writer_write_memory(w, &buf, &n) == 0);
    hllm_gguf_writer_free(w);
    hllm_gguf_file *g = hllm_gguf_open_memory(buf, n, pre);
    FUZZ_CHECK(g);
    hllm_tokenizer *t = hllm_tokenizer_from_gguf(g);
    if (!t) fprintf(stderr, "fuzz_tokenizer: pre %s: %s\n", pre, hllm_error());
    FUZZ_CHECK(t);
    hllm_gguf_close(g);
    free(buf);
    return t;
}

static void init(void) {
    const char *root = getenv("HLLM_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", root && *root ? root : "../shared");
    if (access(path, R_OK) == 0) {
        hllm_gguf_file *f = hllm_gguf_open(path);
        FUZZ_CHECK(f);
        g_tok[0] = hllm_tokenizer_from_gguf(f);
        FUZZ_CHECK(g_tok[0]);
        hllm_gguf_close(f);
    }
    hllm_gguf_file *f = open_synth("llama");
    g_tok[1] = hllm_tokenizer_from_gguf(f);
    FUZZ_CHECK(g_tok[1]);
    hllm_gguf_close(f);
    f = open_synth("qwen2");
    for (int i = 2; i < N_VOCABS; i++) g_tok[i] = with_pre(f, g_names[i]);
    hllm_gguf_close(f);
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static bool valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) len = 1;
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else return false;
        if (len > n - i) return false;
        for (size_t j = 1; j < len; j++) {
            if (s[i + j] < lo || s[i + j] > hi) return false;
            lo = 0x80, hi = 0xBF;
        }
        i += len;
    }
    return true;
}

/* SentencePiece splits the text into symbols by the length its first byte announces (as
 * llama.cpp), so a cut-short sequence swallows the next bytes: when those are a space (U+2581
 * by then), that space comes back as U+2581's bytes, as with llama.cpp. Such texts are not
 * expected to round-trip. */
static bool spm_spaces_whole(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = s[i] < 0xC0 ? 1 : s[i] < 0xE0 ? 2 : s[i] < 0xF0 ? 3 : 4;
        for (size_t j = 1; j < l && i + j < n; j++)
            if (s[i + j] == ' ') return false;
        i += l;
    }
    return true;
}

typedef struct {
    char *v;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->v = realloc(b->v, b->cap);
        FUZZ_CHECK(b->v);
    }
    if (n) memcpy(b->v + b->n, s, n);
    b->n += n;
}

static void piece(const hllm_tokenizer *t, int32_t id, bool special, sbuf *b) {
    char small[64];
    int r = hllm_token_to_piece(t, id, small, sizeof small, special);
    FUZZ_CHECK(r != INT_MIN);
    if (r >= 0) {
        sb_put(b, small, (size_t)r);
        return;
    }
    char *big = malloc((size_t)-r);
    FUZZ_CHECK(big && hllm_token_to_piece(t, id, big, -r, special) == -r);
    sb_put(b, big, (size_t)-r);
    free(big);
}

static bool eq(const char *a, size_t na, const char *b, size_t nb) { return na == nb && (na == 0 || !memcmp(a, b, na)); }
static bool same(const sbuf *b, const char *s, size_t n) { return eq(b->v, b->n, s, n); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool inited;
    if (!inited) {
        init();
        inited = true;
    }
    if (size < 1) return 0;
    const int which = data[0] & 7;
    const bool add_special = data[0] & 8, parse_special = data[0] & 16;
    const hllm_tokenizer *t = g_tok[which];
    if (!t) return 0;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    const bool spm = !strcmp(hllm_tokenizer_model(t), "llama");

    hllm_error_clear();
    int n = hllm_tokenize(t, text, len, add_special, parse_special, NULL, 0);
    if (n == INT_MIN) {
        fuzz_check_error();
        return 0;
    }
    if (n < 0) n = -n;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    FUZZ_CHECK(ids);
    FUZZ_CHECK(hllm_tokenize(t, text, len, add_special, parse_special, ids, n) == n);
    if (n > 0) FUZZ_CHECK(hllm_tokenize(t, text, len, add_special, parse_special, ids, n - 1) == -n);
    const int32_t nv = hllm_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);

    /* the pieces, without the BOS / EOS that add_special put there */
    int b0 = 0, b1 = n;
    if (add_special && hllm_tokenizer_add_bos(t)) {
        FUZZ_CHECK(n > 0 && ids[0] == hllm_tokenizer_bos(t));
        b0 = 1;
    }
    if (add_special && hllm_tokenizer_add_eos(t)) {
        FUZZ_CHECK(b1 > b0 && ids[n - 1] == hllm_tokenizer_eos(t));
        b1--;
    }
    sbuf pieces = {0};
    for (int i = b0; i < b1; i++) piece(t, ids[i], parse_special, &pieces);

    /* detokenize, exact and short buffers */
    int need = hllm_detokenize(t, ids, n, NULL, 0, add_special, parse_special);
    FUZZ_CHECK(need != INT_MIN);
    if (need < 0) need = -need;
    char *detok = malloc((size_t)need + 1);
    FUZZ_CHECK(detok);
    FUZZ_CHECK(hllm_detokenize(t, ids, n, detok, need, add_special, parse_special) == need);
    if (need > 0) FUZZ_CHECK(hllm_detokenize(t, ids, n, detok, need - 1, add_special, parse_special) == -need);

    if (spm) {
        const bool no_sep = !memmem(text, len, "\xe2\x96\x81", 3);
        if (!parse_special && no_sep && spm_spaces_whole((const unsigned char *)text, len)) {
            sbuf want = {0};
            if (len) sb_put(&want, " ", 1);
            sb_put(&want, text, len);
            /* detokenize drops the space prefix, unless it removed a BOS (as llama.cpp) */
            const bool keep = b0 == 1;
            if (!same(&pieces, want.v, want.n) ||
                (keep ? !eq(detok, (size_t)need, want.v, want.n) : !eq(detok, (size_t)need, text, len))) {
                fprintf(stderr, "fuzz_tokenizer: %s: text of %zu bytes does not round-trip (pieces %zu bytes, detokenize %d)\n",
                        g_names[which], len, pieces.n, need);
                abort();
            }
            free(want.v);
        }
    } else if (valid_utf8((const unsigned char *)text, len)) {
        if (!same(&pieces, text, len)) {
            fprintf(stderr, "fuzz_tokenizer: %s: text of %zu bytes does not round-trip (pieces %zu bytes)\n",
                    g_names[which], len, pieces.n);
            abort();
        }
        if (!strcmp(g_names[which], "qwen2") || !strcmp(g_names[which], "trillion"))
            FUZZ_CHECK(eq(detok, (size_t)need, text, len));
    }

    /* streaming: the pieces again, whenever they are valid UTF-8 */
    sbuf stream = {0};
    hllm_detok_stream st = {0};
    for (int i = b0; i < b1; i++) {
        char out[256];
        int r = hllm_detok_push_ex(t, &st, ids[i], parse_special, out, sizeof out);
        if (r < 0) { /* a long piece: the buffer must hold it */
            FUZZ_CHECK(r != INT_MIN);
            char *big = malloc((size_t)-r);
            FUZZ_CHECK(big);
            r = hllm_detok_push_ex(t, &st, ids[i], parse_special, big, -r);
            FUZZ_CHECK(r >= 0);
            sb_put(&stream, big, (size_t)r);
            free(big);
        } else {
            sb_put(&stream, out, (size_t)r);
        }
    }
    char tail[16];
    int r = hllm_detok_flush(&st, tail, sizeof tail);
    FUZZ_CHECK(r >= 0);
    sb_put(&stream, tail, (size_t)r);
    if (valid_utf8((const unsigned char *)pieces.v, pieces.n)) FUZZ_CHECK(same(&stream, pieces.v, pieces.n));

    free(stream.v);
    free(pieces.v);
    free(detok);
    free(ids);
    return 0;
}
