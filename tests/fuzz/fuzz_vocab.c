/* Fuzz target: an arbitrary vocabulary (hllm_tokenizer_new, what tokenizer.ggml.* becomes once
 * read from a GGUF) and a text to tokenize with it, without the GGUF encoding in the way.
 * Input: 5 bytes of settings, then lines ('\n'): tokens (first byte: its type, the rest: its
 * text) up to an empty line, merges up to the next empty line, and the rest is the text.
 *   byte 0: bit 0 gpt2 (else llama), bits 1-3 the pre-tokenizer, bit 4 add_special,
 *           bit 5 parse_special, bit 6 render special tokens, bit 7 general.name "Phi-3"
 *   bytes 1-3: bos, eos, unk ids (0xff: absent); byte 4: add_bos, add_eos, add_space_prefix
 *           (2 bits each: absent, false, true)
 * The vocabulary may be refused (with one error line); a vocabulary that loads must tokenize
 * any text into ids it has, and turn any ids back into text, without a fault. */
#include "fuzz_util.h"
#include "tokenizer/vocab.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENS 4096

static const char *const k_pre[8] = {"", "llama3", "dbrx", "glm4", "gpt-2", "trillion", "qwen2", "megrez"};

/* Next line of [*p, end) (without its '\n'); false at the end. */
static bool next_line(const char **p, const char *end, hllm_str *line) {
    if (*p >= end) return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *e = nl ? nl : end;
    line->s = *p;
    line->n = (uint64_t)(e - *p);
    *p = nl ? nl + 1 : end;
    return true;
}

static int tri(int v) { return v == 0 ? HLLM_VOCAB_ABSENT : v == 1 ? 0 : 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 5) return 0;
    const uint8_t fl = data[0];
    const char *p = (const char *)data + 5, *end = (const char *)data + size;

    hllm_str *toks = malloc(MAX_TOKENS * sizeof *toks), *merges = malloc(MAX_TOKENS * sizeof *merges);
    int32_t *types = malloc(MAX_TOKENS * sizeof *types);
    float *scores = malloc(MAX_TOKENS * sizeof *scores);
    FUZZ_CHECK(toks && merges && types && scores);
    int64_t nt = 0, nm = 0;
    hllm_str line;
    while (nt < MAX_TOKENS && next_line(&p, end, &line) && line.n > 0) {
        types[nt] = (int32_t)((unsigned char)line.s[0] % 8);
        scores[nt] = (float)((unsigned char)line.s[0] >> 3) - (float)nt;
        toks[nt].s = line.s + 1;
        toks[nt].n = line.n - 1;
        nt++;
    }
    while (nm < MAX_TOKENS && next_line(&p, end, &line) && line.n > 0) merges[nm++] = line;
    const char *text = p;
    const size_t len = (size_t)(end - p);

    hllm_vocab_desc d;
    hllm_vocab_desc_init(&d);
    d.model = fl & 1 ? "gpt2" : "llama";
    d.pre = k_pre[(fl >> 1) & 7];
    d.name = fl & 128 ? "Phi-3 mini" : "fuzz";
    d.n_tokens = nt;
    d.tokens = nt ? toks : NULL;
    d.scores = scores;
    d.types = types;
    d.n_merges = nm;
    d.merges = nm ? merges : NULL;
    if (data[1] != 0xff) d.special[HLLM_SP_BOS] = data[1];
    if (data[2] != 0xff) d.special[HLLM_SP_EOS] = data[2];
    if (data[3] != 0xff) d.special[HLLM_SP_UNK] = data[3];
    d.add_bos = tri(data[4] & 3);
    d.add_eos = tri((data[4] >> 2) & 3);
    d.add_space_prefix = tri((data[4] >> 4) & 3);

    hllm_error_clear();
    hllm_tokenizer *t = hllm_tokenizer_new(&d);
    free(toks);
    free(merges);
    free(types);
    free(scores);
    if (!t) {
        fuzz_check_error();
        return 0;
    }
    const bool add_special = fl & 16, parse_special = fl & 32, special = fl & 64;
    const int32_t nv = hllm_tokenizer_n_vocab(t);
    hllm_error_clear();
    int n = hllm_tokenize(t, text, len, add_special, parse_special, NULL, 0);
    if (n == INT_MIN) {
        fuzz_check_error(); /* a byte with no token and no <unk> */
    } else {
        if (n < 0) n = -n;
        int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
        FUZZ_CHECK(ids);
        FUZZ_CHECK(hllm_tokenize(t, text, len, add_special, parse_special, ids, n) == n);
        for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
        int need = hllm_detokenize(t, ids, n, NULL, 0, add_special, special);
        FUZZ_CHECK(need != INT_MIN);
        if (need < 0) need = -need;
        char *out = malloc((size_t)need + 1);
        FUZZ_CHECK(out && hllm_detokenize(t, ids, n, out, need, add_special, special) == need);
        free(out);
        hllm_detok_stream st = {0};
        char buf[256];
        for (int i = 0; i < n; i++) {
            int r = hllm_detok_push_ex(t, &st, ids[i], special, buf, sizeof buf);
            FUZZ_CHECK(r != INT_MIN);
            if (r < 0) { /* too long for buf: the state is unchanged; drop the token */
                FUZZ_CHECK(-r > (int)sizeof buf);
            }
        }
        FUZZ_CHECK(hllm_detok_flush(&st, buf, sizeof buf) >= 0);
        free(ids);
    }
    char piece[64];
    for (int32_t id = 0; id < nv; id++) {
        int r = hllm_token_to_piece(t, id, piece, sizeof piece, special);
        FUZZ_CHECK(r != INT_MIN && r <= (int)sizeof piece);
        FUZZ_CHECK(hllm_tokenizer_token_text(t, id) && hllm_tokenizer_token_type(t, id) >= 0);
    }
    hllm_tokenizer_free(t);
    return 0;
}
