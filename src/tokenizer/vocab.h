/* Internal tokenizer state and the in-memory constructor (used by hllm_tokenizer_from_gguf and
 * by unit tests that build small vocabularies without a file). Internal to src/tokenizer,
 * except hllm_vocab_desc / hllm_tokenizer_new, which tests and tools may use. */
#ifndef HLLM_TOKENIZER_VOCAB_H
#define HLLM_TOKENIZER_VOCAB_H
#include "tokenizer/tokenizer.h"

/* Token types as stored in tokenizer.ggml.token_type (llama.cpp's llama_token_type). */
enum {
    HLLM_TOKTYPE_UNDEFINED = 0,
    HLLM_TOKTYPE_NORMAL = 1,
    HLLM_TOKTYPE_UNKNOWN = 2,
    HLLM_TOKTYPE_CONTROL = 3,
    HLLM_TOKTYPE_USER_DEFINED = 4,
    HLLM_TOKTYPE_UNUSED = 5,
    HLLM_TOKTYPE_BYTE = 6,
};

/* Token attributes (llama.cpp's llama_token_attr bits). */
enum {
    HLLM_ATTR_UNDEFINED = 0,
    HLLM_ATTR_UNKNOWN = 1 << 0,
    HLLM_ATTR_UNUSED = 1 << 1,
    HLLM_ATTR_NORMAL = 1 << 2,
    HLLM_ATTR_CONTROL = 1 << 3,
    HLLM_ATTR_USER_DEFINED = 1 << 4,
    HLLM_ATTR_BYTE = 1 << 5,
    HLLM_ATTR_LSTRIP = 1 << 7,
    HLLM_ATTR_RSTRIP = 1 << 8,
};

/* Special-token slots read from tokenizer.ggml.<name>_token_id. */
enum {
    HLLM_SP_BOS, HLLM_SP_EOS, HLLM_SP_EOT, HLLM_SP_EOM, HLLM_SP_UNK, HLLM_SP_SEP, HLLM_SP_PAD,
    HLLM_SP_MASK, HLLM_SP_FIM_PRE, HLLM_SP_FIM_SUF, HLLM_SP_FIM_MID, HLLM_SP_FIM_PAD,
    HLLM_SP_FIM_REP, HLLM_SP_FIM_SEP, HLLM_SP_COUNT
};

#define HLLM_VOCAB_ABSENT (-1) /* a special id / flag that the metadata does not set */

/* Everything the tokenizer reads from tokenizer.ggml.*, in memory. Arrays are copied. */
typedef struct {
    const char *model;           /* tokenizer.ggml.model: "llama" or "gpt2" (required) */
    const char *pre;             /* tokenizer.ggml.pre; NULL or "" = missing */
    const char *name;            /* general.name (only a few model names change attributes); may be NULL */
    int64_t n_tokens;
    const hllm_str *tokens;      /* n_tokens strings (required) */
    const float *scores;         /* n_tokens scores, or NULL (all 0) */
    const int32_t *types;        /* n_tokens token types, or NULL (all normal) */
    int64_t n_merges;
    const hllm_str *merges;      /* "left right" strings (required for gpt2) */
    int64_t special[HLLM_SP_COUNT]; /* ids from the metadata, HLLM_VOCAB_ABSENT if not set;
                                     * an id >= n_tokens is ignored (the default stays) */
    int add_bos, add_eos, add_space_prefix; /* 0/1, or HLLM_VOCAB_ABSENT */
} hllm_vocab_desc;

/* A desc with every optional field absent. */
void hllm_vocab_desc_init(hllm_vocab_desc *d);
/* Builds a tokenizer; NULL + hllm_fail() on a malformed vocabulary. */
hllm_tokenizer *hllm_tokenizer_new(const hllm_vocab_desc *d);

/* ---- internals ---- */

typedef enum { HLLM_VOCAB_SPM, HLLM_VOCAB_BPE } hllm_vocab_type;

/* Pre-tokenizer regex families that llama.cpp implements for byte-level BPE. */
typedef enum {
    HLLM_PRE_DEFAULT, /* llama.cpp's "default": 4 regexes in sequence (see pretok.c) */
    HLLM_PRE_GPT2,    /* GPT-2's pattern */
    HLLM_PRE_LLAMA3,  /* Llama 3 (\p{N}{1,3}) */
    HLLM_PRE_QWEN2,   /* Llama 3 with single digits */
} hllm_pre_type;

typedef struct {
    uint32_t off, len;  /* token text in t->text */
    uint32_t poff, plen; /* its piece (token_to_piece with special = true) in t->pieces */
    float score;
    uint16_t attr;
} hllm_token;

/* Open-addressing hash table of byte strings -> int (ids or ranks). */
typedef struct {
    uint32_t *slots; /* index + 1 into the owner's key list; 0 = empty */
    uint32_t mask;
} hllm_strmap;

struct hllm_tokenizer {
    hllm_vocab_type type;
    hllm_pre_type pre_type;
    char model[16];
    char pre[64];
    int32_t n_tokens;
    hllm_token *tok;
    char *text;          /* all token texts, each NUL-terminated */
    char *pieces;        /* all cached pieces */
    hllm_strmap tok_map; /* text -> id */

    /* BPE merges: "left right" -> rank */
    int64_t n_merges;
    uint32_t *merge_off, *merge_len; /* into merge_text */
    char *merge_text;
    hllm_strmap merge_map;

    int32_t special[HLLM_SP_COUNT];
    bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;

    uint8_t *is_eog;            /* n_tokens flags */
    int32_t *special_cache;     /* control/user-defined/unknown ids, longest text first */
    int32_t n_special_cache;

    /* GPT-2 byte mapping: UTF-8 of each byte's code point */
    char byte_utf8[256][3];
    uint8_t byte_utf8_len[256];
    int32_t byte_token[256];    /* SPM: the <0xXX> (or raw byte) token of each byte, -1 if none */
};

static inline const char *hllm_tok_text(const hllm_tokenizer *t, int32_t id) { return t->text + t->tok[id].off; }

/* Text -> id, or -1. */
int32_t hllm_vocab_find(const hllm_tokenizer *t, const char *s, size_t n);
/* Merge rank of (left, right), or -1. */
int hllm_vocab_merge_rank(const hllm_tokenizer *t, const char *l, size_t ln, const char *r, size_t rn);

/* A growable token list. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} hllm_ids;
int hllm_ids_push(hllm_ids *a, int32_t id); /* 0, or -1 (out of memory, hllm_fail) */

/* The tokenizer sessions: tokenize one raw-text fragment, appending to out. 0 or -1. */
int hllm_spm_tokenize(const hllm_tokenizer *t, const char *text, size_t len, hllm_ids *out);
int hllm_bpe_tokenize(const hllm_tokenizer *t, const char *text, size_t len, hllm_ids *out);

/* Pre-tokenizer: splits text into words, each returned as its code point range. The words are
 * emitted through cb(user, cps, n) with the decoded code points. 0 or -1. */
typedef int (*hllm_word_fn)(void *user, const uint32_t *cps, size_t n);
int hllm_pretokenize(hllm_pre_type pre, const char *text, size_t len, hllm_word_fn cb, void *user);

/* Builds the piece cache (detok.c). 0 or -1. */
int hllm_build_pieces(hllm_tokenizer *t);

#endif
