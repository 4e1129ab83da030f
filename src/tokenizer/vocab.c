/* Vocabulary loading: token table, special tokens, EOG set and attributes, following llama.cpp's
 * llama_vocab::impl::load so that the same GGUF yields the same tokenizer. */
#include "tokenizer/vocab.h"
#include "tokenizer/unicode.h"
#include "core/error.h"
#include "core/hash.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- string hash map ---- */

typedef void (*key_fn)(const void *owner, uint32_t idx, const char **s, size_t *n);

static int map_init(hllm_strmap *m, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    if (cap > (1ull << 31)) return hllm_fail("tokenizer: vocabulary too large");
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) return hllm_fail("tokenizer: out of memory");
    m->mask = (uint32_t)(cap - 1);
    return 0;
}

/* Returns the stored index, or -1; *slot receives the slot where s is or would go. */
static int64_t map_lookup(const hllm_strmap *m, const void *owner, key_fn key, const char *s, size_t n,
                          uint32_t *slot) {
    uint32_t i = (uint32_t)hllm_hash_bytes(s, n) & m->mask;
    for (;;) {
        uint32_t v = m->slots[i];
        if (!v) {
            if (slot) *slot = i;
            return -1;
        }
        const char *ks;
        size_t kn;
        key(owner, v - 1, &ks, &kn);
        if (kn == n && memcmp(ks, s, n) == 0) {
            if (slot) *slot = i;
            return v - 1;
        }
        i = (i + 1) & m->mask;
    }
}

static void tok_key(const void *owner, uint32_t idx, const char **s, size_t *n) {
    const hllm_tokenizer *t = owner;
    *s = t->text + t->tok[idx].off;
    *n = t->tok[idx].len;
}

static void merge_key(const void *owner, uint32_t idx, const char **s, size_t *n) {
    const hllm_tokenizer *t = owner;
    *s = t->merge_text + t->merge_off[idx];
    *n = t->merge_len[idx];
}

int32_t hllm_vocab_find(const hllm_tokenizer *t, const char *s, size_t n) {
    return (int32_t)map_lookup(&t->tok_map, t, tok_key, s, n, NULL);
}

int hllm_vocab_merge_rank(const hllm_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn) {
    if (!t->n_merges) return -1;
    char stackbuf[256];
    size_t n = ln + 1 + rn;
    char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf) return -1;
    memcpy(buf, l, ln);
    buf[ln] = ' ';
    memcpy(buf + ln + 1, r, rn);
    int64_t idx = map_lookup(&t->merge_map, t, merge_key, buf, n, NULL);
    if (buf != stackbuf) free(buf);
    return (int)idx; /* merges are stored in rank order, so the index is the rank */
}

int hllm_ids_push(hllm_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return hllm_fail("tokenizer: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return 0;
}

/* ---- construction ---- */

void hllm_vocab_desc_init(hllm_vocab_desc *d) {
    memset(d, 0, sizeof *d);
    for (int i = 0; i < HLLM_SP_COUNT; i++) d->special[i] = HLLM_VOCAB_ABSENT;
    d->add_bos = d->add_eos = d->add_space_prefix = HLLM_VOCAB_ABSENT;
}

void hllm_tokenizer_free(hllm_tokenizer *t) {
    if (!t) return;
    free(t->tok);
    free(t->text);
    free(t->pieces);
    free(t->tok_map.slots);
    free(t->merge_off);
    free(t->merge_len);
    free(t->merge_text);
    free(t->merge_map.slots);
    free(t->is_eog);
    free(t->special_cache);
    free(t);
}

static bool streq_any(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcmp(s, *list) == 0) return true;
    return false;
}

/* Byte-level BPE pre-tokenizer names llama.cpp knows, restricted to the regex families we
 * implement. Flags set what llama.cpp sets for that name. */
static int select_pre(hllm_tokenizer *t, const char *pre) {
    static const char *const llama3[] = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                         "midm-2.0", "lfm2", "jina-v5-nano", NULL};
    static const char *const llama3_plain[] = {"dbrx", "smaug-bpe", NULL};
    static const char *const glm[] = {"glm4", "chatglm-bpe", NULL};
    static const char *const gpt2[] = {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
                                       "a.x-4.0", "mellum", "modern-bert", "exaone4", "mpt", "olmo", "jais",
                                       "jina-v1-en", "jina-v2-code", "roberta-bpe", NULL};
    static const char *const gpt2_noclean[] = {"trillion", "granite-docling", NULL};
    static const char *const qwen2_noclean[] = {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan",
                                                "solar-open", "grok-2", NULL};
    static const char *const qwen2[] = {"megrez", "stablelm2", NULL};

    t->add_space_prefix = false;
    t->clean_spaces = true;
    if (!pre || !*pre || strcmp(pre, "default") == 0) {
        t->pre_type = HLLM_PRE_DEFAULT;
    } else if (streq_any(pre, llama3)) {
        t->pre_type = HLLM_PRE_LLAMA3;
        t->ignore_merges = true;
        t->add_bos = true;
    } else if (streq_any(pre, llama3_plain)) {
        t->pre_type = HLLM_PRE_LLAMA3;
    } else if (streq_any(pre, glm)) {
        t->pre_type = HLLM_PRE_LLAMA3;
        t->special[HLLM_SP_BOS] = -1;
    } else if (streq_any(pre, gpt2)) {
        t->pre_type = HLLM_PRE_GPT2;
    } else if (streq_any(pre, gpt2_noclean)) {
        t->pre_type = HLLM_PRE_GPT2;
        t->clean_spaces = false;
    } else if (streq_any(pre, qwen2_noclean)) {
        t->pre_type = HLLM_PRE_QWEN2;
        t->clean_spaces = false;
    } else if (streq_any(pre, qwen2)) {
        t->pre_type = HLLM_PRE_QWEN2;
    } else {
        return hllm_fail("tokenizer: unknown or unsupported pre-tokenizer type '%s'", pre);
    }
    return 0;
}

static int load_tokens(hllm_tokenizer *t, const hllm_vocab_desc *d) {
    int32_t n = t->n_tokens;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!d->tokens[i].s && d->tokens[i].n) return hllm_fail("tokenizer: token %d has no text", i);
        if (d->tokens[i].n > UINT32_MAX / 2) return hllm_fail("tokenizer: token %d is too long", i);
        total += (d->tokens[i].n ? d->tokens[i].n : 24) + 1;
        if (total > UINT32_MAX) return hllm_fail("tokenizer: token texts exceed 4 GiB");
    }
    t->tok = calloc((size_t)n, sizeof *t->tok);
    t->text = malloc(total ? total : 1);
    if (!t->tok || !t->text) return hllm_fail("tokenizer: out of memory");
    if (map_init(&t->tok_map, (uint64_t)n) < 0) return -1;

    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        hllm_token *tk = &t->tok[i];
        char *dst = t->text + off;
        size_t len = d->tokens[i].n;
        if (len == 0) {
            /* llama.cpp renames empty tokens so that they stay unique and printable */
            len = (size_t)snprintf(dst, 24, "[EMPTY_%d]", (int)i);
        } else {
            memcpy(dst, d->tokens[i].s, len);
        }
        dst[len] = 0;
        tk->off = (uint32_t)off;
        tk->len = (uint32_t)len;
        off += len + 1;

        uint32_t slot;
        int64_t prev = map_lookup(&t->tok_map, t, tok_key, dst, len, &slot);
        if (prev >= 0)
            return hllm_fail("tokenizer: duplicate token in vocabulary: '%.64s' has ids %d and %d", dst,
                             (int)prev, (int)i);
        t->tok_map.slots[slot] = (uint32_t)i + 1;

        tk->score = d->scores ? d->scores[i] : 0.0f;
        tk->attr = HLLM_ATTR_NORMAL;
        if (d->types) {
            switch (d->types[i]) {
            case HLLM_TOKTYPE_UNKNOWN: tk->attr = HLLM_ATTR_UNKNOWN; break;
            case HLLM_TOKTYPE_UNUSED: tk->attr = HLLM_ATTR_UNUSED; break;
            case HLLM_TOKTYPE_NORMAL: tk->attr = HLLM_ATTR_NORMAL; break;
            case HLLM_TOKTYPE_CONTROL: tk->attr = HLLM_ATTR_CONTROL; break;
            case HLLM_TOKTYPE_USER_DEFINED: tk->attr = HLLM_ATTR_USER_DEFINED; break;
            case HLLM_TOKTYPE_BYTE: tk->attr = HLLM_ATTR_BYTE; break;
            default: tk->attr = HLLM_ATTR_UNDEFINED; break;
            }
        }
    }
    return 0;
}

static int load_merges(hllm_tokenizer *t, const hllm_vocab_desc *d) {
    if (!d->merges || d->n_merges <= 0) return hllm_fail("tokenizer: gpt2 vocabulary without tokenizer.ggml.merges");
    if (d->n_merges > INT32_MAX / 2) return hllm_fail("tokenizer: too many merges (%lld)", (long long)d->n_merges);
    size_t total = 0;
    for (int64_t i = 0; i < d->n_merges; i++) {
        total += d->merges[i].n;
        if (total > UINT32_MAX) return hllm_fail("tokenizer: merges exceed 4 GiB");
    }
    t->merge_off = malloc((size_t)d->n_merges * sizeof *t->merge_off);
    t->merge_len = malloc((size_t)d->n_merges * sizeof *t->merge_len);
    t->merge_text = malloc(total ? total : 1);
    if (!t->merge_off || !t->merge_len || !t->merge_text) return hllm_fail("tokenizer: out of memory");
    if (map_init(&t->merge_map, (uint64_t)d->n_merges) < 0) return -1;

    size_t off = 0;
    int64_t kept = 0;
    for (int64_t i = 0; i < d->n_merges; i++) {
        const char *s = d->merges[i].s;
        size_t n = d->merges[i].n;
        /* llama.cpp splits at the first space after the first byte */
        const char *sp = (s && n > 1) ? memchr(s + 1, ' ', n - 1) : NULL;
        if (!sp || sp + 1 == s + n)
            return hllm_fail("tokenizer: bad merge %lld: '%.*s' is not \"left right\"", (long long)i,
                             s ? (int)(n < 64 ? n : 64) : 0, s ? s : ""); /* hllm_str: not NUL-terminated */
        memcpy(t->merge_text + off, s, n);
        uint32_t slot;
        int64_t prev = map_lookup(&t->merge_map, t, merge_key, s, n, &slot);
        t->merge_off[i] = (uint32_t)off;
        t->merge_len[i] = (uint32_t)n;
        off += n;
        /* duplicates: the first (lowest) rank wins, as with llama.cpp's emplace */
        if (prev < 0) t->merge_map.slots[slot] = (uint32_t)i + 1;
        kept++;
    }
    t->n_merges = kept;
    return 0;
}

static bool name_contains(const char *lower_name, const char *sub) {
    return lower_name && strstr(lower_name, sub) != NULL;
}

static void set_attr_by_text(hllm_tokenizer *t, const char *text, uint16_t attr, bool on) {
    int32_t id = hllm_vocab_find(t, text, strlen(text));
    if (id < 0) return;
    if (on) t->tok[id].attr |= attr;
    else t->tok[id].attr &= (uint16_t)~attr;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const hllm_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->tok[x].len != t->tok[y].len) return t->tok[x].len > t->tok[y].len ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Small insertion-free merge sort (qsort has no context argument in C11). */
static void sort_special(hllm_tokenizer *t, int32_t *v, int32_t n, int32_t *tmp) {
    if (n < 2) return;
    int32_t h = n / 2;
    sort_special(t, v, h, tmp);
    sort_special(t, v + h, n - h, tmp);
    int32_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp_special(&v[j], &v[i], t) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, (size_t)n * sizeof *v);
}

/* Every text that detect_specials looks for starts with one of these bytes; a cheap filter for
 * 100K+ vocabularies. */
static bool maybe_special(const char *s) {
    return s[0] == '<' || s[0] == '[' || s[0] == '_' || (unsigned char)s[0] == 0xE2;
}

static void detect_specials(hllm_tokenizer *t) {
    /* llama.cpp finds these by text when the metadata does not give them. It walks an unordered
     * map, so with several candidates its pick is arbitrary; we take the lowest id. */
    static const char *const eot_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                            "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                            "<end_of_utterance>", NULL};
    static const char *const eom_texts[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                          "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
                                          "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const fim_suf[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                          "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>",
                                          "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const fim_mid[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                          "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
                                          "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
    static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
    static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
    static const char *const fim_sep[] = {"<|file_sep|>", NULL};
    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                            "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>",
                                            "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
                                            "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
                                            "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                            "[e~[", NULL};
    struct {
        int slot;
        const char *const *texts;
    } finds[] = {{HLLM_SP_EOT, eot_texts},     {HLLM_SP_EOM, eom_texts},     {HLLM_SP_FIM_PRE, fim_pre},
                 {HLLM_SP_FIM_SUF, fim_suf},   {HLLM_SP_FIM_MID, fim_mid},   {HLLM_SP_FIM_PAD, fim_pad},
                 {HLLM_SP_FIM_REP, fim_rep},   {HLLM_SP_FIM_SEP, fim_sep}};
    for (size_t f = 0; f < sizeof finds / sizeof finds[0]; f++) {
        if (t->special[finds[f].slot] >= 0) continue;
        for (int32_t id = 0; id < t->n_tokens; id++) {
            if (maybe_special(hllm_tok_text(t, id)) && streq_any(hllm_tok_text(t, id), finds[f].texts)) {
                t->special[finds[f].slot] = id;
                t->tok[id].attr |= HLLM_ATTR_CONTROL;
                break;
            }
        }
    }
    /* control tokens named "unused" */
    for (int32_t id = 0; id < t->n_tokens; id++)
        if ((t->tok[id].attr & HLLM_ATTR_CONTROL) && strstr(hllm_tok_text(t, id), "unused"))
            t->tok[id].attr |= HLLM_ATTR_UNUSED;

    /* end-of-generation set */
    const int eog_slots[] = {HLLM_SP_FIM_PAD, HLLM_SP_FIM_REP, HLLM_SP_FIM_SEP, HLLM_SP_EOS, HLLM_SP_EOT, HLLM_SP_EOM};
    for (size_t i = 0; i < sizeof eog_slots / sizeof eog_slots[0]; i++)
        if (t->special[eog_slots[i]] >= 0) t->is_eog[t->special[eog_slots[i]]] = 1;
    for (int32_t id = 0; id < t->n_tokens; id++) {
        if (maybe_special(hllm_tok_text(t, id)) && streq_any(hllm_tok_text(t, id), eog_texts)) {
            t->is_eog[id] = 1;
            t->tok[id].attr |= HLLM_ATTR_CONTROL;
        }
    }
    /* gpt-oss: these are always rendered */
    static const char *const gptoss[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
    for (int32_t id = 0; id < t->n_tokens; id++)
        if (maybe_special(hllm_tok_text(t, id)) && streq_any(hllm_tok_text(t, id), gptoss))
            t->tok[id].attr = HLLM_ATTR_USER_DEFINED;

    /* o200k_harmony / solar-open: "<|end|>" is not EOG when "<|return|>"+"<|call|>" (or
     * "<|calls|>"+"<|flush|>") are */
    int32_t end_id = -1;
    bool has_return = false, has_call = false, has_flush = false;
    int32_t s_id = -1;
    bool has_tool_response = false;
    for (int32_t id = 0; id < t->n_tokens; id++) {
        if (!t->is_eog[id]) continue;
        const char *s = hllm_tok_text(t, id);
        if (!strcmp(s, "<|return|>")) has_return = true;
        else if (!strcmp(s, "<|call|>") || !strcmp(s, "<|calls|>")) has_call = true;
        else if (!strcmp(s, "<|flush|>")) has_flush = true;
        else if (!strcmp(s, "<|end|>")) end_id = id;
        else if (!strcmp(s, "<|tool_response>")) has_tool_response = true;
        else if (!strcmp(s, "</s>")) s_id = id;
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
        t->is_eog[end_id] = 0;
        t->tok[end_id].attr = HLLM_ATTR_USER_DEFINED;
    }
    /* gemma4 / paddleocr: "</s>" is not EOG next to "<|tool_response>" */
    if (has_tool_response && s_id >= 0) {
        t->is_eog[s_id] = 0;
        t->tok[s_id].attr = HLLM_ATTR_NORMAL;
    }
}

static void apply_name_rules(hllm_tokenizer *t, const char *name, const char *pre) {
    char lower[256] = "";
    if (name) {
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof lower; i++)
            lower[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] + 32) : name[i];
        lower[i] = 0;
    }
    if (pre && (strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code"))) {
        set_attr_by_text(t, "<mask>", HLLM_ATTR_LSTRIP, true);
    } else if (name_contains(lower, "phi-3") || name_contains(lower, "phi3")) {
        for (int32_t i = 0; i < t->n_special_cache; i++) t->tok[t->special_cache[i]].attr |= HLLM_ATTR_RSTRIP;
        set_attr_by_text(t, "</s>", HLLM_ATTR_RSTRIP, true);
        set_attr_by_text(t, "<unk>", HLLM_ATTR_RSTRIP, false);
        set_attr_by_text(t, "<s>", HLLM_ATTR_RSTRIP, false);
        set_attr_by_text(t, "<|endoftext|>", HLLM_ATTR_RSTRIP, false);
    } else if (name_contains(lower, "modern-bert")) {
        set_attr_by_text(t, "[MASK]", HLLM_ATTR_LSTRIP, true);
    }
}

hllm_tokenizer *hllm_tokenizer_new(const hllm_vocab_desc *d) {
    if (!d || !d->model) {
        hllm_fail("tokenizer: tokenizer.ggml.model is missing");
        return NULL;
    }
    if (!d->tokens || d->n_tokens <= 0) {
        hllm_fail("tokenizer: tokenizer.ggml.tokens is missing or empty");
        return NULL;
    }
    if (d->n_tokens > INT32_MAX / 2) {
        hllm_fail("tokenizer: too many tokens (%lld)", (long long)d->n_tokens);
        return NULL;
    }
    hllm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        hllm_fail("tokenizer: out of memory");
        return NULL;
    }
    t->n_tokens = (int32_t)d->n_tokens;
    for (int i = 0; i < HLLM_SP_COUNT; i++) t->special[i] = -1;
    snprintf(t->model, sizeof t->model, "%s", d->model);
    snprintf(t->pre, sizeof t->pre, "%s", d->pre ? d->pre : "");

    if (strcmp(d->model, "llama") == 0) {
        t->type = HLLM_VOCAB_SPM;
        t->special[HLLM_SP_BOS] = 1;
        t->special[HLLM_SP_EOS] = 2;
        t->special[HLLM_SP_UNK] = 0;
        t->add_space_prefix = true;
        t->add_bos = true;
    } else if (strcmp(d->model, "gpt2") == 0) {
        t->type = HLLM_VOCAB_BPE;
        t->special[HLLM_SP_BOS] = 11;
        t->special[HLLM_SP_EOS] = 11;
        if (select_pre(t, d->pre) < 0) goto fail;
    } else {
        hllm_fail("tokenizer: unsupported tokenizer model '%.64s' (need \"llama\" or \"gpt2\")", d->model);
        goto fail;
    }
    if (d->add_space_prefix != HLLM_VOCAB_ABSENT) t->add_space_prefix = d->add_space_prefix != 0;

    if (load_tokens(t, d) < 0) goto fail;
    if (t->type == HLLM_VOCAB_BPE && load_merges(t, d) < 0) goto fail;

    /* special ids: a default outside the vocab is dropped; a metadata id outside it is ignored */
    for (int i = 0; i < HLLM_SP_COUNT; i++) {
        if (t->special[i] >= t->n_tokens) t->special[i] = -1;
        int64_t v = d->special[i];
        if (v != HLLM_VOCAB_ABSENT && v >= 0 && v < t->n_tokens) t->special[i] = (int32_t)v;
    }
    if (d->add_bos != HLLM_VOCAB_ABSENT) t->add_bos = d->add_bos != 0;
    if (d->add_eos != HLLM_VOCAB_ABSENT) t->add_eos = d->add_eos != 0;
    if (t->add_bos && t->special[HLLM_SP_BOS] < 0) {
        hllm_fail("tokenizer: tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
        goto fail;
    }
    if (t->add_eos && t->special[HLLM_SP_EOS] < 0) {
        hllm_fail("tokenizer: tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
        goto fail;
    }

    t->is_eog = calloc((size_t)t->n_tokens, 1);
    if (!t->is_eog) {
        hllm_fail("tokenizer: out of memory");
        goto fail;
    }
    detect_specials(t);

    /* texts that are split out before tokenizing: control, user-defined and unknown tokens */
    t->special_cache = malloc((size_t)t->n_tokens * sizeof *t->special_cache);
    int32_t *tmp = malloc((size_t)t->n_tokens * sizeof *tmp);
    if (!t->special_cache || !tmp) {
        free(tmp);
        hllm_fail("tokenizer: out of memory");
        goto fail;
    }
    for (int32_t id = 0; id < t->n_tokens; id++)
        if (t->tok[id].attr & (HLLM_ATTR_CONTROL | HLLM_ATTR_USER_DEFINED | HLLM_ATTR_UNKNOWN))
            t->special_cache[t->n_special_cache++] = id;
    sort_special(t, t->special_cache, t->n_special_cache, tmp);
    free(tmp);

    for (int b = 0; b < 256; b++) {
        char buf[8];
        t->byte_utf8_len[b] = (uint8_t)hllm_utf8_encode(hllm_gpt2_byte_to_cp((uint8_t)b), buf);
        memcpy(t->byte_utf8[b], buf, t->byte_utf8_len[b]);
        /* SPM byte fallback: "<0xXX>", else the raw byte as a one-byte token */
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        int32_t id = hllm_vocab_find(t, buf, 6);
        if (id < 0) {
            char c = (char)b;
            id = hllm_vocab_find(t, &c, 1);
        }
        t->byte_token[b] = id;
    }

    if (hllm_build_pieces(t) < 0) goto fail;
    apply_name_rules(t, d->name, d->pre);
    return t;
fail:
    hllm_tokenizer_free(t);
    return NULL;
}

/* ---- getters ---- */

int32_t hllm_tokenizer_n_vocab(const hllm_tokenizer *t) { return t ? t->n_tokens : 0; }
int32_t hllm_tokenizer_bos(const hllm_tokenizer *t) { return t ? t->special[HLLM_SP_BOS] : -1; }
int32_t hllm_tokenizer_eos(const hllm_tokenizer *t) { return t ? t->special[HLLM_SP_EOS] : -1; }
int32_t hllm_tokenizer_eot(const hllm_tokenizer *t) { return t ? t->special[HLLM_SP_EOT] : -1; }
int32_t hllm_tokenizer_unk(const hllm_tokenizer *t) { return t ? t->special[HLLM_SP_UNK] : -1; }
bool hllm_tokenizer_add_bos(const hllm_tokenizer *t) { return t && t->add_bos; }
bool hllm_tokenizer_add_eos(const hllm_tokenizer *t) { return t && t->add_eos; }
const char *hllm_tokenizer_model(const hllm_tokenizer *t) { return t ? t->model : ""; }
const char *hllm_tokenizer_pre(const hllm_tokenizer *t) { return t ? t->pre : ""; }

bool hllm_tokenizer_is_eog(const hllm_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_tokens && t->is_eog[id];
}

const char *hllm_tokenizer_token_text(const hllm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_tokens) return NULL;
    return hllm_tok_text(t, id);
}

int hllm_tokenizer_token_type(const hllm_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_tokens) return -1;
    uint16_t a = t->tok[id].attr;
    if (a & HLLM_ATTR_CONTROL) return HLLM_TOKTYPE_CONTROL;
    if (a & HLLM_ATTR_USER_DEFINED) return HLLM_TOKTYPE_USER_DEFINED;
    if (a & HLLM_ATTR_UNKNOWN) return HLLM_TOKTYPE_UNKNOWN;
    if (a & HLLM_ATTR_BYTE) return HLLM_TOKTYPE_BYTE;
    if (a & HLLM_ATTR_UNUSED) return HLLM_TOKTYPE_UNUSED;
    if (a & HLLM_ATTR_NORMAL) return HLLM_TOKTYPE_NORMAL;
    return HLLM_TOKTYPE_UNDEFINED;
}
