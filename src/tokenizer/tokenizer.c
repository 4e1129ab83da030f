/* hllm_tokenize: special-token partition and per-fragment dispatch (llama.cpp's
 * llama_vocab::impl::tokenize), and the GGUF front end. */
#include "tokenizer/vocab.h"
#include "core/error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t token;     /* >= 0: a special token; -1: raw text */
    size_t off, len;   /* raw text range */
} frag;

typedef struct {
    frag *v;
    size_t n, cap;
} frags;

static int frag_push(frags *a, frag f) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        frag *v = realloc(a->v, cap * sizeof *v);
        if (!v) return hllm_fail("tokenizer: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = f;
    return 0;
}

static bool c_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static const char *find_bytes(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn > hn) return NULL;
    return memmem(h, hn, n, nn);
}

/* Splits raw-text fragments at every occurrence of each special token's text, longest tokens
 * first (llama.cpp's tokenizer_st_partition). Control and unknown tokens only with
 * parse_special; user-defined tokens always. */
static int partition(const hllm_tokenizer *t, const char *text, size_t len, bool parse_special, frags *fr) {
    frags next = {0};
    for (int32_t k = 0; k < t->n_special_cache; k++) {
        int32_t id = t->special_cache[k];
        const hllm_token *tk = &t->tok[id];
        if (!parse_special && (tk->attr & (HLLM_ATTR_CONTROL | HLLM_ATTR_UNKNOWN))) continue;
        const char *st = hllm_tok_text(t, id);
        size_t sl = tk->len;
        if (sl == 0 || !find_bytes(text, len, st, sl)) continue; /* cheap skip */

        next.n = 0;
        for (size_t i = 0; i < fr->n; i++) {
            frag f = fr->v[i];
            if (f.token >= 0) {
                if (frag_push(&next, f) < 0) goto fail;
                continue;
            }
            size_t o = f.off, l = f.len;
            for (;;) {
                const char *m = find_bytes(text + o, l, st, sl);
                if (!m) {
                    if (l > 0 && frag_push(&next, (frag){-1, o, l}) < 0) goto fail;
                    break;
                }
                size_t mo = (size_t)(m - text);
                size_t ll = mo - o;
                if (tk->attr & HLLM_ATTR_LSTRIP)
                    while (ll > 0 && c_isspace(text[o + ll - 1])) ll--;
                if (ll > 0 && frag_push(&next, (frag){-1, o, ll}) < 0) goto fail;
                if (frag_push(&next, (frag){id, 0, 0}) < 0) goto fail;
                size_t ro = mo + sl, rl = o + l - ro;
                if (tk->attr & HLLM_ATTR_RSTRIP)
                    while (rl > 0 && c_isspace(text[ro])) ro++, rl--;
                o = ro;
                l = rl;
                if (l == 0) break;
            }
        }
        frags tmp = *fr;
        *fr = next;
        next = tmp;
    }
    free(next.v);
    return 0;
fail:
    free(next.v);
    return -1;
}

static int tokenize_spm_fragment(const hllm_tokenizer *t, const char *s, size_t n, bool prefix, hllm_ids *out) {
    /* spaces become U+2581 (3 bytes) */
    size_t spaces = prefix;
    for (size_t i = 0; i < n; i++) spaces += s[i] == ' ';
    size_t cap = n + prefix + 2 * spaces;
    char *buf = malloc(cap ? cap : 1);
    if (!buf) return hllm_fail("tokenizer: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n + prefix; i++) {
        char c = (prefix && i == 0) ? ' ' : s[i - prefix];
        if (c == ' ') {
            memcpy(buf + k, "\xe2\x96\x81", 3);
            k += 3;
        } else {
            buf[k++] = c;
        }
    }
    int rc = hllm_spm_tokenize(t, buf, k, out);
    free(buf);
    return rc;
}

int hllm_tokenize(const hllm_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                  int32_t *out, int max) {
    if (!t || (!text && len) || (!out && max > 0)) {
        hllm_fail("hllm_tokenize: no tokenizer, text or output");
        return INT_MIN;
    }
    if (len > (size_t)INT_MAX / 4) { /* symbol indices are ints; escaping can triple spaces */
        hllm_fail("hllm_tokenize: text of %zu bytes is too long", len);
        return INT_MIN;
    }
    hllm_ids ids = {0};
    frags fr = {0};
    int rc = INT_MIN;
    if (len > 0) {
        if (frag_push(&fr, (frag){-1, 0, len}) < 0) goto done;
        if (partition(t, text, len, parse_special, &fr) < 0) goto done;
    }
    if (t->type == HLLM_VOCAB_SPM) {
        bool prev_special = true; /* the first text fragment gets the space prefix */
        if (add_special && t->add_bos && hllm_ids_push(&ids, t->special[HLLM_SP_BOS]) < 0) goto done;
        for (size_t i = 0; i < fr.n; i++) {
            if (fr.v[i].token >= 0) {
                if (hllm_ids_push(&ids, fr.v[i].token) < 0) goto done;
                prev_special = true;
            } else {
                if (tokenize_spm_fragment(t, text + fr.v[i].off, fr.v[i].len, t->add_space_prefix && prev_special,
                                          &ids) < 0)
                    goto done;
                prev_special = false;
            }
        }
    } else {
        if (add_special && t->add_bos && hllm_ids_push(&ids, t->special[HLLM_SP_BOS]) < 0) goto done;
        for (size_t i = 0; i < fr.n; i++) {
            if (fr.v[i].token >= 0) {
                if (hllm_ids_push(&ids, fr.v[i].token) < 0) goto done;
            } else if (hllm_bpe_tokenize(t, text + fr.v[i].off, fr.v[i].len, &ids) < 0) {
                goto done;
            }
        }
    }
    if (add_special && t->add_eos && hllm_ids_push(&ids, t->special[HLLM_SP_EOS]) < 0) goto done;

    if (ids.n >= (size_t)INT_MAX) {
        hllm_fail("hllm_tokenize: %zu tokens is too many", ids.n);
        goto done;
    }
    if ((int)ids.n > max) {
        rc = -(int)ids.n;
        goto done;
    }
    if (ids.n) memcpy(out, ids.v, ids.n * sizeof *out);
    rc = (int)ids.n;
done:
    free(ids.v);
    free(fr.v);
    return rc;
}

/* ---- GGUF ---- */

static int get_str(const hllm_gguf_file *f, const char *key, const char **out, char *buf, size_t cap) {
    hllm_str s;
    int r = hllm_gguf_get_str(f, key, &s);
    if (r < 0) return -1;
    if (r > 0) return 1;
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(buf, s.s, n);
    buf[n] = 0;
    *out = buf;
    return 0;
}

/* Special ids: any integer type; a negative or too large value is "bad" (ignored, as llama.cpp
 * warns and keeps the default). */
static int get_special(const hllm_gguf_file *f, const char *key, int64_t *out) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        *out = kv->v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)kv->v.u64;
        return 0;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        *out = kv->v.i64 < 0 ? INT64_MAX : kv->v.i64;
        return 0;
    default:
        return hllm_fail("tokenizer: %s has type %s, expected an integer", key, hllm_gguf_vtype_name(kv->type));
    }
}

static int get_flag(const hllm_gguf_file *f, const char *key, int *out) {
    bool b;
    int r = hllm_gguf_get_bool(f, key, &b);
    if (r < 0) return -1;
    if (r == 0) *out = b;
    return 0;
}

hllm_tokenizer *hllm_tokenizer_from_gguf(const hllm_gguf_file *f) {
    if (!f) {
        hllm_fail("tokenizer: no file");
        return NULL;
    }
    hllm_vocab_desc d;
    hllm_vocab_desc_init(&d);
    char model[64], pre[64], name[256];
    float *scores = NULL;
    int32_t *types = NULL;
    hllm_tokenizer *t = NULL;

    int r = get_str(f, "tokenizer.ggml.model", &d.model, model, sizeof model);
    if (r != 0) {
        if (r > 0) hllm_fail("tokenizer: %s has no tokenizer.ggml.model", hllm_gguf_path(f));
        return NULL;
    }
    if (get_str(f, "tokenizer.ggml.pre", &d.pre, pre, sizeof pre) < 0) return NULL;
    if (get_str(f, "general.name", &d.name, name, sizeof name) < 0) return NULL;

    uint64_t n = 0;
    r = hllm_gguf_get_arr_str(f, "tokenizer.ggml.tokens", &d.tokens, &n);
    if (r != 0) {
        if (r > 0) hllm_fail("tokenizer: %s has no tokenizer.ggml.tokens", hllm_gguf_path(f));
        return NULL;
    }
    d.n_tokens = (int64_t)(n > (uint64_t)INT64_MAX ? INT64_MAX : n);
    if (n == 0 || n > (uint64_t)INT32_MAX / 2) {
        hllm_fail("tokenizer: %s: tokenizer.ggml.tokens has %llu entries", hllm_gguf_path(f), (unsigned long long)n);
        return NULL;
    }

    hllm_gguf_vtype et;
    const void *data;
    uint64_t m;
    r = hllm_gguf_get_arr(f, "tokenizer.ggml.scores", &et, &data, &m);
    if (r < 0) return NULL;
    if (r == 0) {
        if ((et != GGUF_TYPE_FLOAT32 && et != GGUF_TYPE_INT32) || m < n) {
            hllm_fail("tokenizer: %s: tokenizer.ggml.scores must be f32/i32 with %llu entries (has %s x %llu)",
                      hllm_gguf_path(f), (unsigned long long)n, hllm_gguf_vtype_name(et), (unsigned long long)m);
            return NULL;
        }
        scores = malloc(n * sizeof *scores);
        if (!scores) goto oom;
        for (uint64_t i = 0; i < n; i++) {
            if (et == GGUF_TYPE_FLOAT32) {
                memcpy(&scores[i], (const char *)data + 4 * i, 4); /* metadata is not aligned */
            } else {
                int32_t v;
                memcpy(&v, (const char *)data + 4 * i, 4);
                scores[i] = (float)v;
            }
        }
        d.scores = scores;
    }
    r = hllm_gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &data, &m);
    if (r < 0) goto fail;
    if (r == 0) {
        if (et != GGUF_TYPE_INT32 || m < n) {
            hllm_fail("tokenizer: %s: tokenizer.ggml.token_type must be i32 with %llu entries (has %s x %llu)",
                      hllm_gguf_path(f), (unsigned long long)n, hllm_gguf_vtype_name(et), (unsigned long long)m);
            goto fail;
        }
        types = malloc(n * sizeof *types);
        if (!types) goto oom;
        memcpy(types, data, n * sizeof *types);
        d.types = types;
    }
    r = hllm_gguf_get_arr_str(f, "tokenizer.ggml.merges", &d.merges, &m);
    if (r < 0) goto fail;
    if (r == 0) d.n_merges = (int64_t)(m > (uint64_t)INT64_MAX ? INT64_MAX : m);

    static const struct {
        int slot;
        const char *key;
    } keys[] = {
        {HLLM_SP_BOS, "tokenizer.ggml.bos_token_id"},         {HLLM_SP_EOS, "tokenizer.ggml.eos_token_id"},
        {HLLM_SP_EOT, "tokenizer.ggml.eot_token_id"},         {HLLM_SP_EOM, "tokenizer.ggml.eom_token_id"},
        {HLLM_SP_UNK, "tokenizer.ggml.unknown_token_id"},     {HLLM_SP_SEP, "tokenizer.ggml.seperator_token_id"},
        {HLLM_SP_PAD, "tokenizer.ggml.padding_token_id"},     {HLLM_SP_MASK, "tokenizer.ggml.mask_token_id"},
        {HLLM_SP_FIM_PRE, "tokenizer.ggml.fim_pre_token_id"}, {HLLM_SP_FIM_SUF, "tokenizer.ggml.fim_suf_token_id"},
        {HLLM_SP_FIM_MID, "tokenizer.ggml.fim_mid_token_id"}, {HLLM_SP_FIM_PAD, "tokenizer.ggml.fim_pad_token_id"},
        {HLLM_SP_FIM_REP, "tokenizer.ggml.fim_rep_token_id"}, {HLLM_SP_FIM_SEP, "tokenizer.ggml.fim_sep_token_id"},
        /* deprecated names, read after the new ones as llama.cpp does */
        {HLLM_SP_FIM_PRE, "tokenizer.ggml.prefix_token_id"},  {HLLM_SP_FIM_SUF, "tokenizer.ggml.suffix_token_id"},
        {HLLM_SP_FIM_MID, "tokenizer.ggml.middle_token_id"},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t v = HLLM_VOCAB_ABSENT;
        if (get_special(f, keys[i].key, &v) < 0) goto fail;
        /* a bad id never replaces a good one */
        if (v != HLLM_VOCAB_ABSENT && (v < (int64_t)n || d.special[keys[i].slot] == HLLM_VOCAB_ABSENT))
            d.special[keys[i].slot] = v;
    }
    if (get_flag(f, "tokenizer.ggml.add_bos_token", &d.add_bos) < 0) goto fail;
    if (get_flag(f, "tokenizer.ggml.add_eos_token", &d.add_eos) < 0) goto fail;
    if (get_flag(f, "tokenizer.ggml.add_space_prefix", &d.add_space_prefix) < 0) goto fail;

    t = hllm_tokenizer_new(&d);
    goto done;
oom:
    hllm_fail("tokenizer: out of memory");
fail:
done:
    free(scores);
    free(types);
    return t;
}
