/* Byte-level BPE as llama.cpp's llm_tokenizer_bpe_session does it: pre-tokenize into words,
 * map each word's bytes to GPT-2's printable code points, then repeatedly merge the adjacent
 * pair with the lowest merge rank (ties: leftmost) and look the symbols up in the vocab. */
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
    int left, right;
    int rank;
    size_t ln, rn; /* sizes of both sides when queued, to detect stale entries */
} bigram;

typedef struct {
    bigram *v;
    size_t n, cap;
} heap;

static bool above(const bigram *a, const bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(heap *h, bigram b) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) return hllm_fail("tokenizer: out of memory");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!above(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return 0;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && above(&h->v[c + 1], &h->v[c])) c++;
        if (!above(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct {
    const hllm_tokenizer *t;
    hllm_ids *out;
    char *word; /* byte-encoded word */
    size_t word_cap;
    sym *syms;
    size_t syms_cap;
    heap h;
} bpe_ctx;

static int add_bigram(bpe_ctx *c, int l, int r) {
    if (l < 0 || r < 0) return 0;
    const sym *s = c->syms;
    int rank = hllm_vocab_merge_rank(c->t, c->word + s[l].off, s[l].n, c->word + s[r].off, s[r].n);
    if (rank < 0) return 0;
    bigram b = {l, r, rank, s[l].n, s[r].n};
    return heap_push(&c->h, b);
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
        bigram b = heap_pop(&c->h);
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
    free(c.h.v);
    return rc;
}
