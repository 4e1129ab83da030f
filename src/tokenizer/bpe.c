/* Byte-level BPE as llama.cpp's llm_tokenizer_bpe_session does it: pre-tokenize into words,
 * map each word's bytes to GPT-2's printable code points, then repeatedly merge the adjacent
 * pair with the lowest merge rank (ties: leftmost) and look the symbols up in the vocab. */
#include "tokenizer/pair_heap.h"
#include "tokenizer/vocab.h"
#include "tokenizer/unicode.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int prev, next;
    size_t off, n;
} sym;

typedef struct {
    const hllm_tokenizer *t;
    hllm_ids *out;
    char *word; /* byte-encoded word */
    size_t word_cap;
    sym *syms;
    size_t syms_cap;
    hllm_pair_heap h;
} bpe_ctx;

static int add_bigram(bpe_ctx *c, int l, int r) {
    if (l < 0 || r < 0) return 0;
    const sym *s = c->syms;
    int rank = hllm_vocab_merge_rank(c->t, c->word + s[l].off, s[l].n, c->word + s[r].off, s[r].n);
    if (rank < 0) return 0;
    hllm_pair b = {l, r, (float)rank, s[l].n, s[r].n};
    return hllm_pair_heap_push(&c->h, b);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return hllm_fail("tokenizer: out of memory");
    *p = q;
    *cap = n;
    return 0;
}

static int emit_symbol(bpe_ctx *c, const char *s, size_t n) {
    int32_t id = hllm_vocab_find(c->t, s, n);
    if (id >= 0) return hllm_ids_push(c->out, id);
    /* llama.cpp: look each byte up as a one-byte token; bytes without one are dropped */
    for (size_t j = 0; j < n; j++) {
        int32_t b = hllm_vocab_find(c->t, s + j, 1);
        if (b >= 0 && hllm_ids_push(c->out, b) < 0) return -1;
    }
    return 0;
}

static int on_word(void *user, const uint32_t *cps, size_t ncp) {
    bpe_ctx *c = user;
    const hllm_tokenizer *t = c->t;
    /* UTF-8 of the word (at most 4 bytes per code point), each byte as GPT-2 code point (<= 2) */
    if (grow((void **)&c->word, &c->word_cap, ncp * 8 + 1, 1) < 0) return -1;
    size_t wn = 0;
    for (size_t i = 0; i < ncp; i++) {
        char u[4];
        int k = hllm_utf8_encode(cps[i], u);
        for (int j = 0; j < k; j++) {
            unsigned char b = (unsigned char)u[j];
            memcpy(c->word + wn, t->byte_utf8[b], t->byte_utf8_len[b]);
            wn += t->byte_utf8_len[b];
        }
    }
    if (wn == 0) return 0;
    if (t->ignore_merges) {
        int32_t id = hllm_vocab_find(t, c->word, wn);
        if (id >= 0) return hllm_ids_push(c->out, id);
    }
    if (grow((void **)&c->syms, &c->syms_cap, wn, sizeof *c->syms) < 0) return -1;
    sym *s = c->syms;
    int ns = 0;
    for (size_t off = 0; off < wn;) {
        size_t n = hllm_utf8_len((unsigned char)c->word[off]);
        if (n > wn - off) n = wn - off;
        s[ns].off = off;
        s[ns].n = n;
        s[ns].prev = ns - 1;
        off += n;
        s[ns].next = off == wn ? -1 : ns + 1;
        ns++;
    }
    c->h.n = 0;
    for (int i = 1; i < ns; i++)
        if (add_bigram(c, i - 1, i) < 0) return -1;
    while (c->h.n) {
        hllm_pair b = hllm_pair_heap_pop(&c->h);
        sym *l = &c->syms[b.left], *r = &c->syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n != b.ln || r->n != b.rn) continue; /* outdated */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) c->syms[r->next].prev = b.left;
        if (add_bigram(c, l->prev, b.left) < 0) return -1;
        if (add_bigram(c, b.left, l->next) < 0) return -1;
    }
    for (int i = 0; i != -1; i = c->syms[i].next)
        if (c->syms[i].n && emit_symbol(c, c->word + c->syms[i].off, c->syms[i].n) < 0) return -1;
    return 0;
}

int hllm_bpe_tokenize(const hllm_tokenizer *t, const char *text, size_t len, hllm_ids *out) {
    bpe_ctx c = {.t = t, .out = out};
    int rc = hllm_pretokenize(t->pre_type, text, len, on_word, &c);
    free(c.word);
    free(c.syms);
    hllm_pair_heap_free(&c.h);
    return rc;
}
