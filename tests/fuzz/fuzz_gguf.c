/* Fuzz target: the bytes are a GGUF file. If it opens, every KV is read through every getter,
 * every tensor info is checked against the file, the vocabulary is built and used, and the
 * model's hyperparameters and tensor table are bound (hllm_model_from_gguf) and its step graph
 * built. Whatever fails must fail with one error line, leak nothing and touch nothing outside
 * the file.
 *
 * Tensor data does not matter to any of this, so an input that is only a header (a real file
 * cut at its data section) would be refused for its missing data and never reach the loader.
 * Such an input is tried a second time as the header followed by PAD zero bytes (untouched
 * pages of one mapping, free), the file ending at a guard page.
 *
 * Built with libFuzzer (make fuzz) and, without it, by tests/fuzz/replay.c for ctest. */
#include "fuzz_util.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "model/graph.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAD ((size_t)16 << 20)     /* covers every tiny synth model, f32 included */
#define PADDED_MAX ((size_t)1 << 20) /* largest input tried with padding */

static volatile uint64_t g_sink; /* keeps the reads of the walk */

static void touch(const void *p, size_t n) {
    const unsigned char *c = p;
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * 31 + c[i];
    g_sink += h;
}

static void walk_kvs(const hllm_gguf_file *f) {
    for (int64_t i = 0; i < hllm_gguf_n_kv(f); i++) {
        const hllm_gguf_kv *kv = hllm_gguf_kv_at(f, i);
        FUZZ_CHECK(kv && kv->key.s && kv->key.n > 0 && kv->key.s[kv->key.n] == 0 && strlen(kv->key.s) == kv->key.n);
        FUZZ_CHECK(hllm_gguf_find_kv(f, kv->key.s) == kv);
        const char *k = kv->key.s;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        float f32;
        bool b;
        hllm_str s;
        hllm_gguf_vtype et;
        const void *data;
        const hllm_str *strs;
        uint64_t n;
        hllm_error_clear();
        FUZZ_CHECK_RC(hllm_gguf_get_u32(f, k, &u32));
        FUZZ_CHECK_RC(hllm_gguf_get_i32(f, k, &i32));
        FUZZ_CHECK_RC(hllm_gguf_get_u64(f, k, &u64));
        FUZZ_CHECK_RC(hllm_gguf_get_f32(f, k, &f32));
        FUZZ_CHECK_RC(hllm_gguf_get_bool(f, k, &b));
        if (FUZZ_CHECK_RC(hllm_gguf_get_str(f, k, &s)) == 0) {
            FUZZ_CHECK(s.s && s.s[s.n] == 0);
            touch(s.s, s.n);
        }
        if (FUZZ_CHECK_RC(hllm_gguf_get_arr(f, k, &et, &data, &n)) == 0) {
            FUZZ_CHECK(et == kv->arr_type && n == kv->arr_n && et != GGUF_TYPE_ARRAY && et < GGUF_TYPE_COUNT);
            if (et != GGUF_TYPE_STRING) touch(data, (size_t)n * hllm_gguf_vtype_size(et));
        }
        if (FUZZ_CHECK_RC(hllm_gguf_get_arr_str(f, k, &strs, &n)) == 0) {
            for (uint64_t j = 0; j < n; j++) {
                FUZZ_CHECK(strs[j].s && strs[j].s[strs[j].n] == 0);
                touch(strs[j].s, strs[j].n);
            }
        }
    }
}

static void walk_tensors(const hllm_gguf_file *f, const uint8_t *base, size_t size) {
    const uint8_t *end = base + size;
    FUZZ_CHECK(hllm_gguf_data_offset(f) % hllm_gguf_alignment(f) == 0);
    for (int64_t i = 0; i < hllm_gguf_n_tensors(f); i++) {
        const hllm_gguf_tensor *t = hllm_gguf_tensor_at(f, i);
        FUZZ_CHECK(t && t->name.n > 0 && t->name.s[t->name.n] == 0 && strlen(t->name.s) == t->name.n);
        FUZZ_CHECK(hllm_gguf_find_tensor(f, t->name.s) == t);
        FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= 4);
        const uint8_t *d = t->data;
        FUZZ_CHECK(d >= base + hllm_gguf_data_offset(f) && d <= end && t->nbytes <= (size_t)(end - d));
        if (t->nbytes) touch(d, 1), touch(d + t->nbytes - 1, 1);
        g_sink += (uint64_t)hllm_type_name(t->type)[0];
    }
}

/* Uses a vocabulary built from the file: tokenizes fixed texts and renders every token. */
static void use_tokenizer(hllm_tokenizer *t) {
    static const char *const texts[] = {
        "Hello world! It's 12345 apples, isn't it?  \n\n\tdone",
        "<s></s><unk><|endoftext|><|im_start|>user\n<|im_end|>[PAD0]<0x41>",
        "\xe2\x96\x81 \xc4\xa0x \xef\xbf\xbd\xff\xfe\x80 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
        "",
    };
    int32_t ids[512];
    char out[4096];
    int32_t *big_ids = NULL;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (int mode = 0; mode < 4; mode++) {
            hllm_error_clear();
            int32_t *v = ids;
            int n = hllm_tokenize(t, texts[i], strlen(texts[i]), mode & 1, mode & 2, v, 512);
            if (n == INT_MIN) {
                fuzz_check_error();
                continue;
            }
            if (n < 0) { /* more than 512 tokens */
                big_ids = v = malloc((size_t)-n * sizeof *v);
                FUZZ_CHECK(v && hllm_tokenize(t, texts[i], strlen(texts[i]), mode & 1, mode & 2, v, -n) == -n);
                n = -n;
            }
            for (int j = 0; j < n; j++) FUZZ_CHECK(v[j] >= 0 && v[j] < hllm_tokenizer_n_vocab(t));
            int m = hllm_detokenize(t, v, n, out, sizeof out, mode & 1, mode & 2);
            FUZZ_CHECK(m != INT_MIN && m <= (int)sizeof out);
            if (m < 0) {
                char *big = malloc((size_t)-m);
                FUZZ_CHECK(big && hllm_detokenize(t, v, n, big, -m, mode & 1, mode & 2) == -m);
                free(big);
            }
            hllm_detok_stream st = {0};
            for (int j = 0; j < n; j++) {
                int r = hllm_detok_push_ex(t, &st, v[j], mode & 2, out, sizeof out);
                FUZZ_CHECK(r != INT_MIN);
            }
            FUZZ_CHECK(hllm_detok_flush(&st, out, sizeof out) >= 0);
            free(big_ids);
            big_ids = NULL;
        }
    }
    int32_t nv = hllm_tokenizer_n_vocab(t);
    int32_t lim = nv < 4096 ? nv : 4096;
    for (int32_t id = -1; id <= lim; id++) {
        int r = hllm_token_to_piece(t, id, out, sizeof out, true);
        FUZZ_CHECK(r != INT_MIN);
        FUZZ_CHECK(hllm_tokenizer_token_type(t, id) >= (id >= 0 && id < nv ? 0 : -1));
        const char *txt = hllm_tokenizer_token_text(t, id);
        FUZZ_CHECK((txt != NULL) == (id >= 0 && id < nv));
        g_sink += hllm_tokenizer_is_eog(t, id);
    }
    g_sink += (uint64_t)hllm_tokenizer_bos(t) + (uint64_t)hllm_tokenizer_eos(t) + (uint64_t)hllm_tokenizer_eot(t);
}

static void check_tensor(const hllm_tensor *t, const uint8_t *base, size_t size, bool required) {
    if (!t->data) {
        FUZZ_CHECK(!required);
        return;
    }
    const uint8_t *d = t->data;
    FUZZ_CHECK(t->rows > 0 && t->cols > 0 && t->row_bytes > 0);
    FUZZ_CHECK(d >= base && d <= base + size);
    FUZZ_CHECK((uint64_t)t->rows <= (uint64_t)(base + size - d) / t->row_bytes);
}

/* Returns true when the file did not open. */
static bool load(const uint8_t *data, size_t size) {
    hllm_error_clear();
    hllm_gguf_file *f = hllm_gguf_open_memory(data, size, "fuzz.gguf");
    if (!f) {
        fuzz_check_error();
        return true;
    }
    FUZZ_CHECK(hllm_gguf_file_size(f) == size);
    walk_kvs(f);
    walk_tensors(f, data, size);

    hllm_error_clear();
    hllm_tokenizer *tok = hllm_tokenizer_from_gguf(f);
    if (tok) use_tokenizer(tok);
    else fuzz_check_error();
    hllm_tokenizer_free(tok);

    hllm_error_clear();
    hllm_model_s *m = hllm_model_from_gguf(f);
    if (!m) {
        fuzz_check_error();
        hllm_gguf_close(f);
        return false;
    }
    const hllm_hparams *hp = &m->hp;
    FUZZ_CHECK(hp->n_vocab > 0 && hp->n_embd > 0 && hp->n_layer > 0 && hp->n_ctx_train > 0);
    FUZZ_CHECK(hllm_tokenizer_n_vocab(m->tok) <= hp->n_vocab);
    FUZZ_CHECK(memchr(m->desc, 0, sizeof m->desc) != NULL);
    check_tensor(&m->tok_embd, data, size, true);
    check_tensor(&m->output_norm, data, size, true);
    check_tensor(&m->output, data, size, true);
    check_tensor(&m->rope_freqs, data, size, false);
    for (int l = 0; l < hp->n_layer; l++) {
        const hllm_layer_tensors *L = &m->layers[l];
        const hllm_tensor *req[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo,
                                    &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) check_tensor(req[i], data, size, true);
        const hllm_tensor *opt[] = {&L->bq, &L->bk, &L->bv, &L->q_norm, &L->k_norm};
        for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) check_tensor(opt[i], data, size, false);
    }
    hllm_graph g = {0};
    if (hllm_graph_build(m, &g) == 0) hllm_graph_free(&g);
    hllm_model_destroy(m); /* closes f */
    return false;
}

/* One mapping: [PADDED_MAX + PAD bytes][guard page]. The padded file is placed to end at the
 * guard page; only the bytes the last input dirtied are cleared again. */
static uint8_t *g_region;
static size_t g_region_size, g_dirty_off, g_dirty_n;

static const uint8_t *padded(const uint8_t *data, size_t size) {
    if (!g_region) {
        size_t pg = (size_t)sysconf(_SC_PAGESIZE);
        g_region_size = (PADDED_MAX + PAD + pg - 1) / pg * pg;
        void *p = mmap(NULL, g_region_size + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
        FUZZ_CHECK(p != MAP_FAILED);
        FUZZ_CHECK(mprotect((uint8_t *)p + g_region_size, pg, PROT_NONE) == 0);
        g_region = p;
    }
    memset(g_region + g_dirty_off, 0, g_dirty_n);
    size_t off = g_region_size - size - PAD;
    memcpy(g_region + off, data, size);
    g_dirty_off = off;
    g_dirty_n = size;
    return g_region + off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A header whose tensor data is missing: again with the data section there (zeros). */
    if (load(data, size) && size <= PADDED_MAX && strstr(hllm_error(), "lies past the end of the file"))
        load(padded(data, size), size + PAD);
    return 0;
}
