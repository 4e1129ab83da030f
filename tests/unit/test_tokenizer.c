/* Tokenizer tests: stories260K's SentencePiece vocab (ids checked against llama.cpp), small
 * in-memory SPM and byte-level BPE vocabularies (expected ids derived by hand from their merge
 * rules), pre-tokenizer splits, round trips, special tokens, streaming detokenization, and
 * malformed vocabularies. */
#include "testutil.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"
#include "tokenizer/unicode.h"
#include "core/error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define MAXT 4096

static int tok(const hllm_tokenizer *t, const char *s, bool add, bool parse, int32_t *out) {
    return hllm_tokenize(t, s, strlen(s), add, parse, out, MAXT);
}

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na <= 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

#define CHECK_IDS(t, s, add, parse, ...)                                                              \
    do {                                                                                              \
        static const int32_t exp_[] = {__VA_ARGS__};                                                  \
        int32_t got_[MAXT];                                                                           \
        int n_ = tok(t, s, add, parse, got_);                                                         \
        CHECKF(ids_eq(got_, n_, exp_, (int)(sizeof exp_ / sizeof exp_[0])), "tokenize(\"%s\") gave %d ids", \
               s, n_);                                                                                \
    } while (0)

/* detokenize(tokenize(s)) == s without special tokens */
static bool round_trip(const hllm_tokenizer *t, const char *s, size_t n) {
    int32_t ids[MAXT];
    char buf[4 * MAXT];
    int k = hllm_tokenize(t, s, n, false, false, ids, MAXT);
    if (k < 0) return false;
    int m = hllm_detokenize(t, ids, k, buf, sizeof buf, false, false);
    return m == (int)n && memcmp(buf, s, n) == 0;
}

static const char *k_texts[] = {
    "Hello world", " leading space", "trailing space ", "  two  spaces  ", "\n", "a\nb\n\nc\r\n", "\ttab\t",
    "numbers 1234567890", "it's don't WE'LL", "punct!?... (x) [y] {z}", "caf\xc3\xa9 na\xc3\xafve",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xe4\xb8\xad\xe6\x96\x87", "\xf0\x9f\x98\x80 emoji \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 zwj", "\xc2\xa0nbsp \xe3\x80\x80ideo",
    "e\xcc\x81 combining", "x", "   ", "<s> not special </s>",
};

/* ---------------- stories260K (SentencePiece, ids from llama.cpp) ---------------- */

static void test_stories(void) {
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        printf("test_tokenizer: stories260K.gguf not found, skipping its tests\n");
        return;
    }
    hllm_gguf_file *f = hllm_gguf_open(path);
    CHECKF(f != NULL, "hllm_gguf_open: %s", hllm_error());
    if (!f) return;
    hllm_tokenizer *t = hllm_tokenizer_from_gguf(f);
    CHECKF(t != NULL, "from_gguf: %s", hllm_error());
    if (!t) {
        hllm_gguf_close(f);
        return;
    }
    CHECK(hllm_tokenizer_n_vocab(t) == 512);
    CHECK(strcmp(hllm_tokenizer_model(t), "llama") == 0);
    CHECK(hllm_tokenizer_bos(t) == 1 && hllm_tokenizer_eos(t) == 2 && hllm_tokenizer_eot(t) == -1);
    CHECK(hllm_tokenizer_unk(t) == 0);
    CHECK(hllm_tokenizer_add_bos(t) && !hllm_tokenizer_add_eos(t));
    CHECK(hllm_tokenizer_is_eog(t, 2) && !hllm_tokenizer_is_eog(t, 1) && !hllm_tokenizer_is_eog(t, 403));
    CHECK(!hllm_tokenizer_is_eog(t, -1) && !hllm_tokenizer_is_eog(t, 512));

    /* all of these equal llama.cpp's llama_tokenize on this file */
    CHECK_IDS(t, "Once upon a time", true, false, 1, 403, 407, 261, 378);
    CHECK_IDS(t, "Once upon a time", false, false, 403, 407, 261, 378);
    CHECK_IDS(t, "Hello world", true, false, 1, 346, 306, 414, 263, 304, 341);
    CHECK_IDS(t, "  two  spaces", true, false, 1, 410, 410, 259, 424, 414, 410, 262, 427, 412, 331, 419);
    CHECK_IDS(t, "Lily's dog", true, false, 1, 317, 439, 419, 400, 428);
    CHECK_IDS(t, "\n", true, false, 1, 410, 13);
    /* byte fallback: U+1F600 is not in the vocab -> <0xF0><0x9F><0x98><0x80> (ids 3 + byte) */
    CHECK_IDS(t, "emoji \xf0\x9f\x98\x80 \xc3\xa9", true, false, 1, 344, 423, 414, 449, 417, 410, 243, 162, 155, 131,
              410, 485);
    /* special tokens: split out only with parse_special; a space prefix follows a special token */
    CHECK_IDS(t, "<s>x</s>", true, true, 1, 1, 410, 444, 2);
    CHECK_IDS(t, "<s>x</s>", true, false, 1, 410, 504, 419, 505, 444, 504, 492, 419, 505);
    CHECK_IDS(t, "", true, false, 1);
    int32_t ids[MAXT];
    CHECK(tok(t, "", false, false, ids) == 0);

    /* too small an output: -(needed), as llama_tokenize */
    CHECK(hllm_tokenize(t, "Once upon a time", 16, true, false, ids, 3) == -5);

    /* pieces */
    char buf[64];
    CHECK(hllm_token_to_piece(t, 403, buf, sizeof buf, false) == 5 && memcmp(buf, " Once", 5) == 0);
    CHECK(hllm_token_to_piece(t, 13, buf, sizeof buf, false) == 1 && buf[0] == '\n');
    CHECK(hllm_token_to_piece(t, 1, buf, sizeof buf, false) == 0);
    CHECK(hllm_token_to_piece(t, 1, buf, sizeof buf, true) == 3 && memcmp(buf, "<s>", 3) == 0);
    CHECK(hllm_token_to_piece(t, 403, buf, 2, false) == -5);
    CHECK(hllm_token_to_piece(t, 512, buf, sizeof buf, true) == 0);
    CHECK(hllm_token_to_piece(t, -7, buf, sizeof buf, true) == 0);
    CHECK(strcmp(hllm_tokenizer_token_text(t, 403), "\xe2\x96\x81Once") == 0);
    CHECK(hllm_tokenizer_token_text(t, 512) == NULL);
    CHECK(hllm_tokenizer_token_type(t, 1) == HLLM_TOKTYPE_CONTROL && hllm_tokenizer_token_type(t, 3) == HLLM_TOKTYPE_BYTE);

    /* detokenize: llama.cpp keeps the prefix space after a removed BOS, strips it otherwise */
    const int32_t once[] = {1, 403, 407, 261, 378};
    char text[256];
    int m = hllm_detokenize(t, once, 5, text, sizeof text, true, false);
    CHECK(m == 17 && memcmp(text, " Once upon a time", 17) == 0);
    m = hllm_detokenize(t, once + 1, 4, text, sizeof text, false, false);
    CHECK(m == 16 && memcmp(text, "Once upon a time", 16) == 0);
    m = hllm_detokenize(t, once, 5, text, sizeof text, false, true);
    CHECK(m == 20 && memcmp(text, "<s> Once upon a time", 20) == 0);
    CHECK(hllm_detokenize(t, once, 5, text, 4, false, false) == -17);
    const int32_t bad[] = {403, 99999, -1, 407};
    m = hllm_detokenize(t, bad, 4, text, sizeof text, false, false);
    CHECK(m == 9 && memcmp(text, "Once upon", 9) == 0);

    /* round trips (byte fallback covers everything) */
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++)
        CHECKF(round_trip(t, k_texts[i], strlen(k_texts[i])), "SPM round trip of \"%s\"", k_texts[i]);
    /* invalid UTF-8 too: SPM falls back to the raw bytes (a space right after a bad lead byte
     * would be swallowed into its byte tokens and come back as U+2581, as in llama.cpp) */
    CHECK(round_trip(t, "\xff\xfe\x80", 3));
    CHECK(round_trip(t, "a\xe2\x82" "b\x80 c", 7));

    /* streaming: the emoji arrives as four byte tokens and is printed whole */
    hllm_detok_stream st = {{0}, 0};
    const int32_t emoji[] = {3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80};
    char out[128];
    CHECK(hllm_detok_push(t, &st, 403, out, sizeof out) == 5);
    CHECK(hllm_detok_push(t, &st, emoji[0], out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, emoji[1], out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, emoji[2], out, sizeof out) == 0);
    int w = hllm_detok_push(t, &st, emoji[3], out, sizeof out);
    CHECK(w == 4 && memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
    CHECK(hllm_detok_flush(&st, out, sizeof out) == 0);
    /* control tokens print nothing unless asked */
    CHECK(hllm_detok_push(t, &st, 2, out, sizeof out) == 0);
    w = hllm_detok_push_ex(t, &st, 2, true, out, sizeof out);
    CHECK(w == 4 && memcmp(out, "</s>", 4) == 0);
    /* an incomplete sequence left at the end becomes U+FFFD */
    CHECK(hllm_detok_push(t, &st, emoji[0], out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, emoji[1], out, sizeof out) == 0);
    w = hllm_detok_flush(&st, out, sizeof out);
    CHECK(w == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0);
    CHECK(st.n_pending == 0);
    /* a broken sequence in the middle: U+FFFD, then the next character as it is */
    CHECK(hllm_detok_push(t, &st, emoji[0], out, sizeof out) == 0);
    w = hllm_detok_push(t, &st, 403, out, sizeof out);
    CHECK(w == 8 && memcmp(out, "\xef\xbf\xbd Once", 8) == 0);
    /* a too small buffer changes nothing */
    CHECK(hllm_detok_push(t, &st, emoji[0], out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, 403, out, 2) < 0 && st.n_pending == 1);

    hllm_tokenizer_free(t);
    hllm_gguf_close(f);
}

/* ---------------- a small in-memory SentencePiece vocab ---------------- */

typedef struct {
    hllm_str tok[300];
    float score[300];
    int32_t type[300];
    char text[300][16];
    int n;
} vocab_buf;

static int add_tok(vocab_buf *v, const char *s, float score, int type) {
    snprintf(v->text[v->n], sizeof v->text[0], "%s", s);
    v->tok[v->n].s = v->text[v->n];
    v->tok[v->n].n = strlen(s);
    v->score[v->n] = score;
    v->type[v->n] = type;
    return v->n++;
}

static hllm_tokenizer *spm_vocab(vocab_buf *v, bool bytes, float s_sp_a, float s_ab) {
    memset(v, 0, sizeof *v);
    add_tok(v, "<unk>", 0, HLLM_TOKTYPE_UNKNOWN);
    add_tok(v, "<s>", 0, HLLM_TOKTYPE_CONTROL);
    add_tok(v, "</s>", 0, HLLM_TOKTYPE_CONTROL);
    if (bytes) {
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            add_tok(v, name, 0, HLLM_TOKTYPE_BYTE);
        }
    }
    add_tok(v, "\xe2\x96\x81", -5, HLLM_TOKTYPE_NORMAL); /* ▁ */
    add_tok(v, "a", -6, HLLM_TOKTYPE_NORMAL);
    add_tok(v, "b", -7, HLLM_TOKTYPE_NORMAL);
    add_tok(v, "\xe2\x96\x81" "a", s_sp_a, HLLM_TOKTYPE_NORMAL);
    add_tok(v, "ab", s_ab, HLLM_TOKTYPE_NORMAL);
    hllm_vocab_desc d;
    hllm_vocab_desc_init(&d);
    d.model = "llama";
    d.n_tokens = v->n;
    d.tokens = v->tok;
    d.scores = v->score;
    d.types = v->type;
    return hllm_tokenizer_new(&d);
}

static void test_spm_memory(void) {
    vocab_buf v;
    /* "ab" -> "▁ab" -> symbols ▁ a b. The higher-scoring pair merges first. */
    hllm_tokenizer *t = spm_vocab(&v, true, -1.0f, -2.0f); /* ▁a wins: [▁a, b] */
    CHECKF(t != NULL, "%s", hllm_error());
    if (!t) return;
    const int sp = 259, a = 260, b = 261, sp_a = 262, ab = 263;
    CHECK_IDS(t, "ab", false, false, sp_a, b);
    CHECK_IDS(t, "ab", true, false, 1, sp_a, b);
    /* a letter outside the vocab falls back to its byte token */
    CHECK_IDS(t, "ac", false, false, sp_a, 3 + 'c');
    CHECK_IDS(t, "b a", false, false, sp, b, sp_a);
    (void)a;
    hllm_tokenizer_free(t);

    t = spm_vocab(&v, true, -2.0f, -1.0f); /* ab wins: [▁, ab] */
    CHECK_IDS(t, "ab", false, false, sp, ab);
    /* equal scores: the leftmost pair merges first */
    hllm_tokenizer_free(t);
    t = spm_vocab(&v, true, -1.0f, -1.0f);
    CHECK_IDS(t, "ab", false, false, sp_a, b);
    hllm_tokenizer_free(t);

    /* no byte tokens: unknown characters become <unk> (llama.cpp would throw) */
    t = spm_vocab(&v, false, -1.0f, -2.0f);
    CHECK_IDS(t, "ac", false, false, 6, 0);
    hllm_tokenizer_free(t);
}

/* ---------------- a small in-memory byte-level BPE vocab ---------------- */

typedef struct {
    hllm_str tok[300], merge[16];
    char text[300][24];
    int32_t type[300];
    int n;
} bpe_buf;

static hllm_tokenizer *bpe_vocab(bpe_buf *v, const char *pre, const char *const *merges, int n_merges) {
    memset(v, 0, sizeof *v);
    /* ids 0..255: every byte, as GPT-2's code point for it (so id == byte value) */
    for (int b = 0; b < 256; b++) {
        int k = hllm_utf8_encode(hllm_gpt2_byte_to_cp((uint8_t)b), v->text[b]);
        v->tok[b].s = v->text[b];
        v->tok[b].n = (uint64_t)k;
        v->type[b] = HLLM_TOKTYPE_NORMAL;
    }
    static const struct {
        const char *s;
        int type;
    } extra[] = {{"he", 1},           {"ll", 1},          {"hell", 1},         {"hello", 1},
                 {"\xc4\xa0w", 1},    {"or", 1},          {"\xc4\xa0wor", 1},  {"ld", 1},
                 {"\xc4\xa0world", 1}, {"<|endoftext|>", 3}, {"<|eot_id|>", 1}, {"<tool>", 4},
                 {"<|begin_of_text|>", 3}};
    v->n = 256;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        snprintf(v->text[v->n], sizeof v->text[0], "%s", extra[i].s);
        v->tok[v->n].s = v->text[v->n];
        v->tok[v->n].n = strlen(extra[i].s);
        v->type[v->n] = extra[i].type;
        v->n++;
    }
    for (int i = 0; i < n_merges; i++) {
        v->merge[i].s = merges[i];
        v->merge[i].n = strlen(merges[i]);
    }
    hllm_vocab_desc d;
    hllm_vocab_desc_init(&d);
    d.model = "gpt2";
    d.pre = pre;
    d.n_tokens = v->n;
    d.tokens = v->tok;
    d.types = v->type;
    d.n_merges = n_merges;
    d.merges = v->merge;
    d.special[HLLM_SP_BOS] = 268;
    d.special[HLLM_SP_EOS] = 265;
    return hllm_tokenizer_new(&d);
}

static const char *const k_merges[] = {"h e",          "l l",  "he ll",           "hell o", "\xc4\xa0 w",
                                       "o r",          "\xc4\xa0w or", "l d", "\xc4\xa0wor ld"};
enum { HE = 256, LL, HELL, HELLO, SP_W, OR, SP_WOR, LD, SP_WORLD, EOT_TEXT, EOT_ID, TOOL, BOT };

static void test_bpe_memory(void) {
    bpe_buf v;
    hllm_tokenizer *t = bpe_vocab(&v, "qwen2", k_merges, 9);
    CHECKF(t != NULL, "%s", hllm_error());
    if (!t) return;
    CHECK(strcmp(hllm_tokenizer_model(t), "gpt2") == 0 && strcmp(hllm_tokenizer_pre(t), "qwen2") == 0);
    CHECK(!hllm_tokenizer_add_bos(t)); /* qwen2 does not add BOS unless the metadata says so */
    /* words "hello" and " world"; merges by rank: he, ll, hell, hello / Ġw, or, Ġwor, ld, Ġworld */
    CHECK_IDS(t, "hello world", true, false, HELLO, SP_WORLD);
    CHECK_IDS(t, "help", false, false, HE, 'l', 'p');
    CHECK_IDS(t, "x!", false, false, 'x', '!');
    /* a space before a digit stays alone; qwen2 splits digits one by one */
    CHECK_IDS(t, " 12", false, false, ' ', '1', '2');
    /* invalid UTF-8 becomes U+FFFD before byte-level encoding, as in llama.cpp */
    CHECK_IDS(t, "\xff", false, false, 0xEF, 0xBF, 0xBD);

    /* special tokens: control ones only with parse_special, user-defined ones always */
    CHECK_IDS(t, "a<|endoftext|>b", false, true, 'a', EOT_TEXT, 'b');
    int32_t ids[MAXT];
    int n = tok(t, "a<|endoftext|>b", false, false, ids);
    bool has = false;
    for (int i = 0; i < n; i++) has |= ids[i] == EOT_TEXT;
    CHECK(n == 15 && !has);
    CHECK_IDS(t, "x<tool>y", false, false, 'x', TOOL, 'y');
    CHECK_IDS(t, "<|begin_of_text|>hello", false, true, BOT, HELLO);
    /* EOG: eos, and tokens recognised by their text (which also become control tokens) */
    CHECK(hllm_tokenizer_is_eog(t, EOT_TEXT) && hllm_tokenizer_is_eog(t, EOT_ID) && !hllm_tokenizer_is_eog(t, TOOL));
    /* both texts are EOT candidates; llama.cpp's pick among several is arbitrary */
    CHECK(hllm_tokenizer_eot(t) == EOT_TEXT || hllm_tokenizer_eot(t) == EOT_ID);
    CHECK(hllm_tokenizer_token_type(t, EOT_ID) == HLLM_TOKTYPE_CONTROL);
    CHECK(hllm_tokenizer_eos(t) == EOT_TEXT && hllm_tokenizer_bos(t) == BOT);

    /* pieces: byte-level code points back to bytes */
    char buf[64];
    CHECK(hllm_token_to_piece(t, SP_WORLD, buf, sizeof buf, false) == 6 && memcmp(buf, " world", 6) == 0);
    CHECK(hllm_token_to_piece(t, '\n', buf, sizeof buf, false) == 1 && buf[0] == '\n');
    CHECK(hllm_token_to_piece(t, 0xF0, buf, sizeof buf, false) == 1 && (unsigned char)buf[0] == 0xF0);
    CHECK(hllm_token_to_piece(t, TOOL, buf, sizeof buf, false) == 6);
    CHECK(hllm_token_to_piece(t, EOT_TEXT, buf, sizeof buf, false) == 0);
    CHECK(hllm_token_to_piece(t, EOT_TEXT, buf, sizeof buf, true) == 13);

    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++)
        CHECKF(round_trip(t, k_texts[i], strlen(k_texts[i])), "BPE round trip of \"%s\"", k_texts[i]);
    /* qwen2 keeps " ." as it is */
    const int32_t dot[] = {'a', ' ', '.'};
    char text[64];
    CHECK(hllm_detokenize(t, dot, 3, text, sizeof text, false, false) == 3);

    /* streaming over byte tokens: a 4-byte emoji split in four */
    hllm_detok_stream st = {{0}, 0};
    char out[128];
    CHECK(hllm_detok_push(t, &st, 0xF0, out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, 0x9F, out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, 0x98, out, sizeof out) == 0);
    CHECK(hllm_detok_push(t, &st, 0x80, out, sizeof out) == 4 && memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
    hllm_tokenizer_free(t);

    /* llama3: BOS by default, and whole words found in the vocab skip the merges */
    t = bpe_vocab(&v, "llama-bpe", k_merges, 3); /* no "hell o" merge */
    CHECKF(t != NULL, "%s", hllm_error());
    if (!t) return;
    CHECK(hllm_tokenizer_add_bos(t));
    CHECK_IDS(t, "hello", true, false, BOT, HELLO);
    CHECK(hllm_detokenize(t, dot, 3, text, sizeof text, false, false) == 2 && memcmp(text, "a.", 2) == 0);
    hllm_tokenizer_free(t);
    t = bpe_vocab(&v, "qwen2", k_merges, 3);
    CHECK_IDS(t, "hello", false, false, HELL, 'o');
    hllm_tokenizer_free(t);
}

/* ---------------- pre-tokenizer splits ---------------- */

typedef struct {
    char words[32][32];
    int n;
} word_list;

static int collect(void *user, const uint32_t *cps, size_t n) {
    word_list *w = user;
    if (w->n >= 32) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < sizeof w->words[0]; i++) k += (size_t)hllm_utf8_encode(cps[i], w->words[w->n] + k);
    w->words[w->n][k] = 0;
    w->n++;
    return 0;
}

static void check_split(hllm_pre_type pre, const char *text, const char *const *expect, int n_expect) {
    word_list w = {.n = 0};
    CHECK(hllm_pretokenize(pre, text, strlen(text), collect, &w) == 0);
    bool ok = w.n == n_expect;
    for (int i = 0; ok && i < n_expect; i++) ok = strcmp(w.words[i], expect[i]) == 0;
    CHECKF(ok, "pre-tokenizer %d on \"%s\": %d words", (int)pre, text, w.n);
}

static void test_pretokenizers(void) {
    const char *text = "Hello world's 12345  \n\n  x";
    static const char *const l3[] = {"Hello", " world", "'s", " ", "123", "45", "  \n\n", " ", " x"};
    static const char *const q2[] = {"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", "  \n\n", " ", " x"};
    static const char *const g2[] = {"Hello", " world", "'s", " 12345", "  \n\n ", " x"};
    static const char *const df[] = {"Hello", " world", "'", "s", " ", "123", "45", "  \n\n ", " x"};
    check_split(HLLM_PRE_LLAMA3, text, l3, 9);
    check_split(HLLM_PRE_QWEN2, text, q2, 12);
    check_split(HLLM_PRE_GPT2, text, g2, 6);
    check_split(HLLM_PRE_DEFAULT, text, df, 9);
    /* contractions: case-insensitive for llama3 only */
    static const char *const l3c[] = {"WE", "'LL", " go"};
    static const char *const g2c[] = {"WE", "'", "LL", " go"};
    check_split(HLLM_PRE_LLAMA3, "WE'LL go", l3c, 3);
    check_split(HLLM_PRE_GPT2, "WE'LL go", g2c, 4);
    /* punctuation takes trailing newlines; one non-letter may lead a word, but a space before
     * punctuation goes with the punctuation */
    static const char *const l3p[] = {"x", ".\n\n", "y", " $", "abc", "$abc", "\xe3\x80\x80" "abc"};
    check_split(HLLM_PRE_LLAMA3, "x.\n\ny $abc$abc\xe3\x80\x80" "abc", l3p, 7);
}

/* ---------------- malformed vocabularies ---------------- */

static void expect_refused(const hllm_vocab_desc *d, const char *needle) {
    hllm_error_clear();
    hllm_tokenizer *t = hllm_tokenizer_new(d);
    CHECKF(t == NULL && strstr(hllm_error(), needle) != NULL, "expected a refusal with \"%s\", got \"%s\"", needle,
           hllm_error());
    hllm_tokenizer_free(t);
}

static void test_malformed(void) {
    hllm_str toks[3] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}};
    hllm_vocab_desc d;
    hllm_vocab_desc_init(&d);
    expect_refused(NULL, "model");
    expect_refused(&d, "model");
    d.model = "bert";
    d.tokens = toks;
    d.n_tokens = 3;
    expect_refused(&d, "unsupported");
    d.model = "llama";
    d.n_tokens = 0;
    expect_refused(&d, "tokens");
    d.tokens = NULL;
    d.n_tokens = 3;
    expect_refused(&d, "tokens");
    d.tokens = toks;

    /* a good one, with an out-of-range special id that is ignored (llama.cpp only warns) */
    d.special[HLLM_SP_BOS] = 4294967295LL;
    hllm_tokenizer *t = hllm_tokenizer_new(&d);
    CHECKF(t != NULL, "%s", hllm_error());
    CHECK(hllm_tokenizer_bos(t) == 1);
    /* no byte tokens: each byte of "\u2581a" becomes <unk> */
    int32_t ids[8];
    CHECK(tok(t, "a", false, false, ids) == 4 && ids[0] == 0 && ids[3] == 0);
    hllm_tokenizer_free(t);

    hllm_str dup[3] = {{"<unk>", 5}, {"<s>", 3}, {"<s>", 3}};
    d.tokens = dup;
    expect_refused(&d, "duplicate");
    hllm_str holes[3] = {{"<unk>", 5}, {NULL, 3}, {"</s>", 4}};
    d.tokens = holes;
    expect_refused(&d, "no text");
    d.tokens = toks;
    d.n_tokens = 1; /* BOS 1 does not exist, but add_bos defaults to true */
    d.special[HLLM_SP_BOS] = HLLM_VOCAB_ABSENT;
    expect_refused(&d, "add_bos_token");
    d.add_bos = 0;
    t = hllm_tokenizer_new(&d);
    CHECK(t != NULL && hllm_tokenizer_bos(t) == -1);
    hllm_tokenizer_free(t);

    /* BPE: merges required and well formed, known pre-tokenizer */
    bpe_buf v;
    t = bpe_vocab(&v, "qwen2", k_merges, 0);
    CHECK(t == NULL && strstr(hllm_error(), "merges"));
    static const char *const bad1[] = {"h e", "hello"};
    t = bpe_vocab(&v, "qwen2", bad1, 2);
    CHECK(t == NULL && strstr(hllm_error(), "bad merge"));
    static const char *const bad2[] = {" h"};
    t = bpe_vocab(&v, "qwen2", bad2, 1);
    CHECK(t == NULL && strstr(hllm_error(), "bad merge"));
    static const char *const bad3[] = {"h "};
    t = bpe_vocab(&v, "qwen2", bad3, 1);
    CHECK(t == NULL && strstr(hllm_error(), "bad merge"));
    t = bpe_vocab(&v, "no-such-pre", k_merges, 9);
    CHECK(t == NULL && strstr(hllm_error(), "pre-tokenizer"));
    /* duplicate merges: the first rank counts */
    static const char *const dupm[] = {"h e", "l l", "h e"};
    t = bpe_vocab(&v, "qwen2", dupm, 3);
    CHECKF(t != NULL, "%s", hllm_error());
    CHECK_IDS(t, "hell", false, false, HE, LL);
    hllm_tokenizer_free(t);

    /* bad arguments */
    CHECK(hllm_tokenize(NULL, "x", 1, false, false, ids, 8) == INT_MIN);
    CHECK(hllm_tokenizer_n_vocab(NULL) == 0 && hllm_tokenizer_bos(NULL) == -1);
}

/* ---------------- GGUF front end ---------------- */

static hllm_tokenizer *from_writer(hllm_gguf_writer *w) {
    void *data = NULL;
    size_t size = 0;
    hllm_tokenizer *t = NULL;
    if (hllm_gguf_writer_write_memory(w, &data, &size) == 0) {
        hllm_gguf_file *f = hllm_gguf_open_memory(data, size, "test.gguf");
        if (f) {
            t = hllm_tokenizer_from_gguf(f);
            hllm_gguf_close(f);
        }
    }
    free(data);
    hllm_gguf_writer_free(w);
    return t;
}

static hllm_gguf_writer *base_writer(void) {
    static const hllm_str toks[6] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"a", 1}, {"b", 1}, {"ab", 2}};
    static const float scores[6] = {0, 0, 0, -1, -2, -3};
    static const int32_t types[6] = {2, 3, 3, 1, 1, 1};
    hllm_gguf_writer *w = hllm_gguf_writer_new();
    hllm_gguf_writer_set_str(w, "general.architecture", "llama");
    hllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 6);
    hllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 6);
    hllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 6);
    return w;
}

static void test_gguf(void) {
    hllm_gguf_writer *w = base_writer();
    hllm_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
    hllm_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", true);
    hllm_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0xFFFFFFFFu);
    hllm_tokenizer *t = from_writer(w);
    CHECKF(t != NULL, "%s", hllm_error());
    if (t) {
        CHECK(hllm_tokenizer_add_eos(t));
        CHECK_IDS(t, "ab", true, false, 1, 5, 2); /* no space prefix; BOS and EOS added */
        hllm_tokenizer_free(t);
    }

    w = base_writer();
    hllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "");
    hllm_gguf_writer_set_str(w, "general.name", "x");
    t = from_writer(w);
    CHECK(t == NULL && strstr(hllm_error(), "unsupported"));

    static const float short_scores[3] = {0, 0, 0};
    w = base_writer();
    hllm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, short_scores, 3);
    t = from_writer(w);
    CHECK(t == NULL && strstr(hllm_error(), "scores"));

    w = base_writer();
    hllm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_FLOAT32, short_scores, 3);
    t = from_writer(w);
    CHECK(t == NULL && strstr(hllm_error(), "token_type"));

    w = base_writer();
    hllm_gguf_writer_set_str(w, "tokenizer.ggml.bos_token_id", "1");
    t = from_writer(w);
    CHECK(t == NULL && strstr(hllm_error(), "bos_token_id"));

    w = base_writer();
    hllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"); /* no merges */
    t = from_writer(w);
    CHECK(t == NULL && strstr(hllm_error(), "merges"));

    w = hllm_gguf_writer_new();
    hllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    t = from_writer(w);
    CHECK(t == NULL && strstr(hllm_error(), "tokenizer.ggml.tokens"));

    CHECK(hllm_tokenizer_from_gguf(NULL) == NULL);
}

int main(void) {
    test_stories();
    test_spm_memory();
    test_bpe_memory();
    test_pretokenizers();
    test_malformed();
    test_gguf();
    return test_summary("test_tokenizer");
}
