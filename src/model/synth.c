/* Synthetic GGUF models: real shapes, metadata and vocabulary sizes, deterministic random weights.
 * Weights are produced row by row while the file is written (hllm_gguf_writer_add_tensor_fill), on
 * several threads, each row from its own seed, so the bytes do not depend on the thread count
 * and a multi-GB model never sits in memory. */
#include "model/synth.h"
#include "core/error.h"
#include "core/quant.h"
#include "gguf/gguf.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <math.h>

/* ---- presets ---- */

static const hllm_synth_preset k_presets[] = {
    /* name, arch, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx, rope_base, rms_eps,
     * tied, qkv_bias, qk_norm, rope_freqs. tiny: every feature of its arch, n_embd and n_ff multiples of 256 (K-quants). */
    {"tiny", "llama", 256, 2, 4, 2, 64, 512, 1000, 2048, 10000.0f, 1e-5f, false, false, false, true},
    {"tiny", "qwen2", 256, 2, 4, 2, 64, 512, 1000, 2048, 1000000.0f, 1e-6f, true, true, false, false},
    {"tiny", "qwen3", 256, 2, 4, 2, 128, 768, 1000, 2048, 1000000.0f, 1e-6f, false, false, true, false},
    {"llama3.2-1b", "llama", 2048, 16, 32, 8, 64, 8192, 128256, 131072, 500000.0f, 1e-5f, true, false, false, true},
    {"llama3-8b", "llama", 4096, 32, 32, 8, 128, 14336, 128256, 8192, 500000.0f, 1e-5f, false, false, false, false},
    {"qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 64, 4864, 151936, 32768, 1000000.0f, 1e-6f, true, true, false, false},
    {"qwen2.5-1.5b", "qwen2", 1536, 28, 12, 2, 128, 8960, 151936, 32768, 1000000.0f, 1e-6f, true, true, false, false},
    {"qwen3-0.6b", "qwen3", 1024, 28, 16, 8, 128, 3072, 151936, 40960, 1000000.0f, 1e-6f, true, false, true, false},
};
#define N_PRESETS ((int)(sizeof k_presets / sizeof k_presets[0]))

const hllm_synth_preset *hllm_synth_presets(int *n) {
    if (n) *n = N_PRESETS;
    return k_presets;
}

const hllm_synth_preset *hllm_synth_find_preset(const char *name, const char *arch) {
    if (!name) {
        hllm_fail("synth: no preset given");
        return NULL;
    }
    if (arch && strcmp(arch, "llama") && strcmp(arch, "qwen2") && strcmp(arch, "qwen3")) {
        hllm_fail("synth: unknown architecture '%s' (llama, qwen2 or qwen3)", arch);
        return NULL;
    }
    const hllm_synth_preset *named = NULL;
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(k_presets[i].name, name)) continue;
        if (!named) named = &k_presets[i];
        if (!arch || !strcmp(k_presets[i].arch, arch)) return &k_presets[i];
    }
    if (named)
        hllm_fail("synth: preset '%s' is a %s model, not %s", name, named->arch, arch);
    else
        hllm_fail("synth: unknown preset '%s' (tiny, llama3.2-1b, llama3-8b, qwen2.5-0.5b, qwen2.5-1.5b, qwen3-0.6b)",
                  name);
    return NULL;
}

/* ---- tensor types ---- */

int hllm_synth_file_type(int type) {
    switch (type) { /* llama.cpp's llama_ftype numbers */
    case HLLM_TYPE_F32: return 0;
    case HLLM_TYPE_F16: return 1;
    case HLLM_TYPE_Q4_0: return 2;
    case HLLM_TYPE_Q8_0: return 7;
    case HLLM_TYPE_Q4_K: return 15; /* Q4_K_M */
    case HLLM_TYPE_Q6_K: return 18;
    case HLLM_TYPE_BF16: return 32;
    default: return -1;
    }
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* llama.cpp's rule for which layers of a Q4_K_M file get Q6_K attn_v / ffn_down. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int hllm_synth_tensor_type(const hllm_synth_preset *p, int type, const char *name, int64_t row_len) {
    if (ends_with(name, "_norm.weight") || ends_with(name, ".bias") || !strcmp(name, "rope_freqs.weight"))
        return HLLM_TYPE_F32; /* vectors stay F32 */
    int t = type;
    if (type == HLLM_TYPE_Q4_K) {
        int layer = -1;
        if (!strncmp(name, "blk.", 4)) layer = atoi(name + 4);
        if (!strcmp(name, "output.weight") || (p->tied && !strcmp(name, "token_embd.weight"))) t = HLLM_TYPE_Q6_K;
        else if ((ends_with(name, "attn_v.weight") || ends_with(name, "ffn_down.weight")) && layer >= 0 &&
                 use_more_bits(layer, p->n_layer))
            t = HLLM_TYPE_Q6_K;
    }
    /* Rows that K-quants cannot block (qwen2.5-0.5b's 896): the nearest 32-block type heterollm
     * computes with (llama.cpp would pick Q5_0 for Q4_K; Q8_0 for Q6_K as it does). */
    if (row_len % hllm_type_info(t)->block_size) {
        if (t == HLLM_TYPE_Q4_K) t = HLLM_TYPE_Q4_0;
        else if (t == HLLM_TYPE_Q6_K) t = HLLM_TYPE_Q8_0;
        if (row_len % hllm_type_info(t)->block_size) t = HLLM_TYPE_F16;
    }
    return t;
}

/* ---- random numbers ---- */

static inline uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Sum of four 16-bit uniforms (Irwin-Hall), scaled to unit variance: Gaussian enough, one draw. */
static inline float gauss(uint64_t *s) {
    uint64_t r = splitmix(s);
    float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) + (float)(r >> 48);
    return (sum * (1.0f / 65535.0f) - 2.0f) * 1.7320508f;
}

static uint64_t hash_name(const char *s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return splitmix(&h);
}

/* ---- weight filling ---- */

typedef struct synth_run synth_run;

typedef struct {
    synth_run *run;
    char name[64];
    int type;
    uint32_t n_dims;
    int64_t ne[2];
    float mean, std;
    uint64_t seed;
    size_t row_bytes, nbytes;
} synth_tensor;

struct synth_run {
    int n_threads;
    bool progress;
    size_t total, done;
    int last_pct, n_done, n_tensors;
};

typedef struct {
    const synth_tensor *t;
    uint8_t *dst;
    int64_t r0, r1;
    int rc;
} fill_job;

static void *fill_rows(void *arg) {
    fill_job *j = arg;
    const synth_tensor *t = j->t;
    const int64_t cols = t->ne[0];
    float *row = malloc((size_t)cols * sizeof(float));
    if (!row) {
        j->rc = -1;
        return NULL;
    }
    for (int64_t r = j->r0; r < j->r1; r++) {
        uint64_t s = t->seed ^ ((uint64_t)r * 0xD1B54A32D192ED03ull);
        splitmix(&s);
        for (int64_t c = 0; c < cols; c++) row[c] = t->mean + t->std * gauss(&s);
        hllm_quantize_row(t->type, row, j->dst + (size_t)r * t->row_bytes, cols);
    }
    free(row);
    return NULL;
}

static int fill_tensor(void *user, void *dst, size_t nbytes) {
    synth_tensor *t = user;
    synth_run *run = t->run;
    if (nbytes != t->nbytes) return hllm_fail("synth: tensor '%s': size mismatch", t->name);
    const int64_t rows = t->ne[1];
    int nth = run->n_threads;
    if ((int64_t)nth > rows) nth = (int)rows;
    if ((double)rows * (double)t->ne[0] < 65536.0) nth = 1; /* not worth a thread */
    fill_job jobs[64];
    pthread_t th[64];
    bool started[64] = {false};
    for (int i = 0; i < nth; i++)
        jobs[i] = (fill_job){t, dst, rows * i / nth, rows * (i + 1) / nth, 0};
    for (int i = 1; i < nth; i++) started[i] = pthread_create(&th[i], NULL, fill_rows, &jobs[i]) == 0;
    fill_rows(&jobs[0]);
    for (int i = 1; i < nth; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else fill_rows(&jobs[i]); /* could not start a thread: do its share here */
    }
    for (int i = 0; i < nth; i++)
        if (jobs[i].rc) return hllm_fail("synth: out of memory filling tensor '%s'", t->name);

    run->done += nbytes;
    run->n_done++;
    if (run->progress) {
        int pct = run->total ? (int)(100.0 * (double)run->done / (double)run->total) : 100;
        if (pct / 5 != run->last_pct / 5 || run->n_done == run->n_tensors) {
            fprintf(stderr, "synth: %3d%%  %4d/%d tensors  %8.1f / %.1f MiB  %s\n", pct, run->n_done, run->n_tensors,
                    (double)run->done / 1048576.0, (double)run->total / 1048576.0, t->name);
            run->last_pct = pct;
        }
    }
    return 0;
}

/* ---- vocabularies ---- */

typedef struct {
    hllm_str *tok;
    float *scores;
    int32_t *types;
    hllm_str *merges;
    char *pool; /* fixed slots: every token and merge here is short */
    int n, n_merges;
} vocab;

#define SLOT 32

static hllm_str slot_put(vocab *v, int slot, const char *a, const char *b) {
    char *s = v->pool + (size_t)slot * SLOT;
    int n = snprintf(s, SLOT, "%s%s", a, b ? b : "");
    return (hllm_str){s, (uint64_t)n};
}

/* The k-th string of `len` lowercase letters in alphabetical order. */
static void letters(char *out, int len, long k) {
    for (int i = len - 1; i >= 0; i--) {
        out[i] = (char)('a' + k % 26);
        k /= 26;
    }
    out[len] = 0;
}

static long pow26(int len) {
    long p = 1;
    while (len--) p *= 26;
    return p;
}

static void vocab_free(vocab *v) {
    free(v->tok);
    free(v->scores);
    free(v->types);
    free(v->merges);
    free(v->pool);
}

static int vocab_alloc(vocab *v, int n, bool merges) {
    memset(v, 0, sizeof *v);
    v->n = n;
    v->tok = calloc((size_t)n, sizeof *v->tok);
    v->scores = calloc((size_t)n, sizeof *v->scores);
    v->types = calloc((size_t)n, sizeof *v->types);
    v->merges = merges ? calloc((size_t)n, sizeof *v->merges) : NULL;
    v->pool = calloc((size_t)n * (merges ? 2 : 1), SLOT);
    if (!v->tok || !v->scores || !v->types || !v->pool || (merges && !v->merges)) {
        vocab_free(v);
        return hllm_fail("synth: out of memory for a vocabulary of %d tokens", n);
    }
    return 0;
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word boundary */

/* SentencePiece ("llama"): <unk> <s> </s>, 256 byte tokens, then "▁" and letter pieces by length
 * (plain, then ▁-prefixed), scores falling with the id so shorter pieces merge first. */
static int vocab_spm(vocab *v, int n) {
    if (n < 3 + 256 + 1) return hllm_fail("synth: a SentencePiece vocabulary needs at least 260 tokens");
    if (vocab_alloc(v, n, false)) return -1;
    v->tok[0] = slot_put(v, 0, "<unk>", NULL);
    v->types[0] = 2; /* unknown */
    v->tok[1] = slot_put(v, 1, "<s>", NULL);
    v->types[1] = 3; /* control */
    v->tok[2] = slot_put(v, 2, "</s>", NULL);
    v->types[2] = 3;
    int id = 3;
    for (int b = 0; b < 256; b++, id++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        v->tok[id] = slot_put(v, id, s, NULL);
        v->types[id] = 6; /* byte */
    }
    const int first = id;
    v->tok[id] = slot_put(v, id, SPM_SPACE, NULL);
    id++;
    char w[8];
    for (int len = 1; id < n && len <= 5; len++) {
        for (int pre = 0; pre < 2 && id < n; pre++) {
            for (long k = 0; k < pow26(len) && id < n; k++, id++) {
                letters(w, len, k);
                v->tok[id] = slot_put(v, id, pre ? SPM_SPACE : "", w);
            }
        }
    }
    for (int i = first; i < n; i++) {
        v->types[i] = 1;
        v->scores[i] = -(float)(i - first);
    }
    return 0;
}

/* GPT-2 byte-level unicode for the token with id i < 256: the printable bytes map to themselves
 * and come first, the other 68 bytes map to U+0100.. in byte order. */
static int gpt2_byte_token(int i, char *out) {
    int cp;
    if (i < 94) cp = '!' + i;                 /* '!'..'~' */
    else if (i < 94 + 12) cp = 0xA1 + i - 94; /* U+00A1..U+00AC */
    else if (i < 188) cp = 0xAE + i - 106;    /* U+00AE..U+00FF */
    else cp = 0x100 + (i - 188);
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
    return 2;
}

#define BPE_SPACE "\xc4\xa0" /* U+0120 'Ġ', byte-level BPE's space */

/* Byte-level BPE ("gpt2", qwen2 pre-tokenizer): 256 byte tokens, then merged tokens level by level
 * ("Ġ"+letters, letters), each made by exactly one merge "left right" whose parts are earlier
 * tokens; then <|endoftext|> <|im_start|> <|im_end|> and, for real sizes, [PADn] like the converter. */
static int vocab_bpe(vocab *v, int n, int *eot, int *im_start, int *im_end) {
    if (n < 256 + 3 + 1) return hllm_fail("synth: a byte-level BPE vocabulary needs at least 260 tokens");
    if (vocab_alloc(v, n, true)) return -1;
    const int n_regular = n > 151643 + 3 ? 151643 : n - 3;
    int id = 0;
    for (; id < 256; id++) {
        char s[4];
        gpt2_byte_token(id, s);
        v->tok[id] = slot_put(v, id, s, NULL);
    }
    char w[8], left[16], right[2] = {0, 0};
    for (int len = 2; id < n_regular && len <= 5; len++) {
        for (int pre = 1; pre >= 0 && id < n_regular; pre--) {
            int nl = pre ? len - 1 : len; /* letters after the optional Ġ */
            for (long k = 0; k < pow26(nl) && id < n_regular; k++, id++) {
                letters(w, nl, k);
                v->tok[id] = slot_put(v, id, pre ? BPE_SPACE : "", w);
                right[0] = w[nl - 1];
                w[nl - 1] = 0;
                snprintf(left, sizeof left, "%s%s", pre ? BPE_SPACE : "", w);
                char m[SLOT];
                snprintf(m, sizeof m, "%s %s", left, right);
                v->merges[v->n_merges] = slot_put(v, n + v->n_merges, m, NULL);
                v->n_merges++;
            }
        }
    }
    for (int i = 0; i < id; i++) v->types[i] = 1;
    *eot = id;
    v->tok[id] = slot_put(v, id, "<|endoftext|>", NULL);
    v->types[id++] = 3;
    *im_start = id;
    v->tok[id] = slot_put(v, id, "<|im_start|>", NULL);
    v->types[id++] = 3;
    *im_end = id;
    v->tok[id] = slot_put(v, id, "<|im_end|>", NULL);
    v->types[id++] = 3;
    for (; id < n; id++) {
        char s[24];
        snprintf(s, sizeof s, "[PAD%d]", id);
        v->tok[id] = slot_put(v, id, s, NULL);
        v->types[id] = 5; /* unused */
    }
    return 0;
}

/* ---- the file ---- */

static void set_arch_u32(hllm_gguf_writer *w, const char *arch, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    hllm_gguf_writer_set_u32(w, key, v);
}

static void set_arch_f32(hllm_gguf_writer *w, const char *arch, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    hllm_gguf_writer_set_f32(w, key, v);
}

static int add_vocab(hllm_gguf_writer *w, const hllm_synth_preset *p) {
    vocab v;
    if (!strcmp(p->arch, "llama")) {
        if (vocab_spm(&v, p->n_vocab)) return -1;
        hllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
        hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v.tok, (uint64_t)v.n);
        hllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.scores, (uint64_t)v.n);
        hllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types, (uint64_t)v.n);
        hllm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
        hllm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        hllm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
        hllm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
        hllm_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);
    } else {
        int eot = 0, im_start = 0, im_end = 0;
        if (vocab_bpe(&v, p->n_vocab, &eot, &im_start, &im_end)) return -1;
        hllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
        hllm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
        hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v.tok, (uint64_t)v.n);
        hllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types, (uint64_t)v.n);
        hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", v.merges, (uint64_t)v.n_merges);
        hllm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eot); /* as Qwen's GGUFs */
        hllm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)im_end);
        hllm_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)eot);
        hllm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
        (void)im_start;
    }
    vocab_free(&v);
    return 0;
}

int hllm_synth_write(const hllm_synth_opts *o, const char *path) {
    if (!o || !path) return hllm_fail("synth: no options or output path");
    const hllm_synth_preset *p = hllm_synth_find_preset(o->preset, o->arch);
    if (!p) return -1;
    const int ftype = hllm_synth_file_type(o->type);
    if (ftype < 0)
        return hllm_fail("synth: type %s is not offered (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)",
                         hllm_type_name(o->type));

    const int64_t E = p->n_embd, HD = p->head_dim, QD = (int64_t)p->n_head * HD, KVD = (int64_t)p->n_head_kv * HD;
    const int64_t F = p->n_ff, V = p->n_vocab;
    const int max_tensors = 4 + p->n_layer * 16;
    synth_tensor *ts = calloc((size_t)max_tensors, sizeof *ts);
    hllm_gguf_writer *w = hllm_gguf_writer_new();
    if (!ts || !w) {
        free(ts);
        hllm_gguf_writer_free(w);
        return hllm_fail("synth: out of memory");
    }
    synth_run run = {0};
    run.progress = o->progress;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    run.n_threads = o->n_threads > 0 ? o->n_threads : (int)(ncpu > 0 ? ncpu : 1);
    if (run.n_threads > 16) run.n_threads = 16;

    /* metadata */
    char name[96];
    snprintf(name, sizeof name, "synthetic %s (%s)", p->name, p->arch);
    hllm_gguf_writer_set_str(w, "general.architecture", p->arch);
    hllm_gguf_writer_set_str(w, "general.name", name);
    hllm_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype);
    set_arch_u32(w, p->arch, "context_length", (uint32_t)p->n_ctx);
    set_arch_u32(w, p->arch, "embedding_length", (uint32_t)p->n_embd);
    set_arch_u32(w, p->arch, "block_count", (uint32_t)p->n_layer);
    set_arch_u32(w, p->arch, "feed_forward_length", (uint32_t)p->n_ff);
    set_arch_u32(w, p->arch, "attention.head_count", (uint32_t)p->n_head);
    set_arch_u32(w, p->arch, "attention.head_count_kv", (uint32_t)p->n_head_kv);
    set_arch_f32(w, p->arch, "attention.layer_norm_rms_epsilon", p->rms_eps);
    set_arch_f32(w, p->arch, "rope.freq_base", p->rope_base);
    if (p->head_dim * p->n_head != p->n_embd || !strcmp(p->arch, "qwen3")) {
        set_arch_u32(w, p->arch, "attention.key_length", (uint32_t)p->head_dim);
        set_arch_u32(w, p->arch, "attention.value_length", (uint32_t)p->head_dim);
    }
    if (!strcmp(p->arch, "llama")) {
        set_arch_u32(w, p->arch, "rope.dimension_count", (uint32_t)p->head_dim);
        set_arch_u32(w, p->arch, "vocab_size", (uint32_t)p->n_vocab);
    }
    if (add_vocab(w, p)) {
        free(ts);
        hllm_gguf_writer_free(w);
        return -1;
    }

    /* tensors. Matrices get std 1/sqrt(fan-in) (0.016-0.033 at real widths, "~0.02"): every
     * projection keeps O(1) activations, attention scores have O(1) spread and logits std ~1, so
     * greedy decoding wanders instead of locking onto one token (measured: a flat 0.02 made the
     * tiny presets repeat one token). The embedding is 0.02 like real checkpoints. */
    int nt = 0;
    bool quantized = false;
#define ADD(nm, cols, rows, mean_, std_)                                                           \
    do {                                                                                           \
        synth_tensor *t = &ts[nt++];                                                               \
        snprintf(t->name, sizeof t->name, "%s", nm);                                               \
        t->run = &run;                                                                             \
        t->ne[0] = (cols);                                                                         \
        t->ne[1] = (rows);                                                                         \
        t->n_dims = (rows) == 1 ? 1 : 2;                                                           \
        t->type = hllm_synth_tensor_type(p, o->type, t->name, t->ne[0]);                           \
        t->mean = (mean_);                                                                         \
        t->std = (std_);                                                                           \
        t->seed = hash_name(t->name, o->seed);                                                     \
        t->row_bytes = hllm_row_bytes(t->type, t->ne[0]);                                          \
        t->nbytes = t->row_bytes * (size_t)t->ne[1];                                               \
        quantized |= hllm_type_info(t->type)->block_size > 1;                                      \
        run.total += t->nbytes;                                                                    \
        hllm_gguf_writer_add_tensor_fill(w, t->name, t->type, t->n_dims, t->ne, fill_tensor, t);        \
    } while (0)
#define MAT(nm, cols, rows) ADD(nm, cols, rows, 0.0f, (float)(1.0 / sqrt((double)(cols))))
    const float nstd = 0.05f, bstd = 0.02f;
    ADD("token_embd.weight", E, V, 0.0f, 0.02f);
    ADD("output_norm.weight", E, 1, 1.0f, nstd);
    if (!p->tied) MAT("output.weight", E, V);
    /* divisors of the rotation frequencies, 1..8 in llama 3.1's files: keep them in [2, 6] */
    if (p->rope_freqs) ADD("rope_freqs.weight", HD / 2, 1, 4.0f, 0.5f);
    char n[64];
    for (int l = 0; l < p->n_layer; l++) {
#define L(suffix) (snprintf(n, sizeof n, "blk.%d.%s", l, suffix), n)
        ADD(L("attn_norm.weight"), E, 1, 1.0f, nstd);
        MAT(L("attn_q.weight"), E, QD);
        if (p->qkv_bias) ADD(L("attn_q.bias"), QD, 1, 0.0f, bstd);
        MAT(L("attn_k.weight"), E, KVD);
        if (p->qkv_bias) ADD(L("attn_k.bias"), KVD, 1, 0.0f, bstd);
        MAT(L("attn_v.weight"), E, KVD);
        if (p->qkv_bias) ADD(L("attn_v.bias"), KVD, 1, 0.0f, bstd);
        MAT(L("attn_output.weight"), QD, E);
        if (p->qk_norm) {
            ADD(L("attn_q_norm.weight"), HD, 1, 1.0f, nstd);
            ADD(L("attn_k_norm.weight"), HD, 1, 1.0f, nstd);
        }
        ADD(L("ffn_norm.weight"), E, 1, 1.0f, nstd);
        MAT(L("ffn_gate.weight"), E, F);
        MAT(L("ffn_up.weight"), E, F);
        MAT(L("ffn_down.weight"), F, E);
#undef L
    }
#undef MAT
#undef ADD
    run.n_tensors = nt;
    if (quantized) hllm_gguf_writer_set_u32(w, "general.quantization_version", 2);
    if (run.progress)
        fprintf(stderr, "synth: %s %s, %s, %d tensors, %.1f MiB of weights -> %s\n", p->arch, p->name,
                o->type == HLLM_TYPE_Q4_K ? "q4_K_M mix" : hllm_type_name(o->type), nt,
                (double)run.total / 1048576.0, path);
    int rc = hllm_gguf_writer_write(w, path);
    hllm_gguf_writer_free(w);
    free(ts);
    return rc;
}
