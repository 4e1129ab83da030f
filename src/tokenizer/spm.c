/* SentencePiece-style BPE as llama.cpp's llm_tokenizer_spm_session does it: start from UTF-8
 * characters, repeatedly merge the adjacent pair whose concatenation is the highest-scoring
 * token (ties: leftmost), then emit each remaining symbol as its token or as byte tokens. */
#include "tokenizer/pair_heap.h"
#include "tokenizer/vocab.h"
#include "tokenizer/unicode.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int prev, next;
    size_t off, n; /* byte range in the text; n == 0 once merged away */
} sym;

static int try_add(const hllm_tokenizer *t, const char *text, const sym *s, int l, int r, hllm_pair_heap *h) {
    if (l < 0 || r < 0) return 0;
    size_t n = s[l].n + s[r].n; /* adjacent symbols are contiguous in the text */
    int32_t id = hllm_vocab_find(t, text + s[l].off, n);
    if (id < 0) return 0;
    hllm_pair b = {l, r, -t->tok[id].score, s[l].n, s[r].n}; /* best score first */
    return hllm_pair_heap_push(h, b);
}

int hllm_spm_tokenize(const hllm_tokenizer *t, const char *text, size_t len, hllm_ids *out) {
    if (len == 0) return 0;
    sym *s = malloc(len * sizeof *s);
    hllm_pair_heap h = {0};
    int rc = -1;
    if (!s) {
        hllm_fail("tokenizer: out of memory");
        goto done;
    }
    int ns = 0;
    for (size_t off = 0; off < len;) {
        size_t n = hllm_utf8_len((unsigned char)text[off]);
        if (n > len - off) n = len - off;
        s[ns].off = off;
        s[ns].n = n;
        s[ns].prev = ns - 1;
        off += n;
        s[ns].next = off == len ? -1 : ns + 1;
        ns++;
    }
    for (int i = 1; i < ns; i++)
        if (try_add(t, text, s, i - 1, i, &h) < 0) goto done;

    while (h.n) {
        hllm_pair b = hllm_pair_heap_pop(&h);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n != b.ln || r->n != b.rn) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        if (try_add(t, text, s, l->prev, b.left, &h) < 0) goto done;
        if (try_add(t, text, s, b.left, l->next, &h) < 0) goto done;
    }

    for (int i = 0; i != -1; i = s[i].next) {
        int32_t id = hllm_vocab_find(t, text + s[i].off, s[i].n);
        if (id >= 0) {
            if (hllm_ids_push(out, id) < 0) goto done;
            continue;
        }
        /* byte fallback (llama.cpp would throw without a byte token; we use <unk>) */
        for (size_t j = 0; j < s[i].n; j++) {
            int32_t bid = t->byte_token[(unsigned char)text[s[i].off + j]];
            if (bid < 0) bid = t->special[HLLM_SP_UNK];
            if (bid < 0) {
                hllm_fail("tokenizer: byte 0x%02X has no token and the vocabulary has no <unk>",
                          (unsigned char)text[s[i].off + j]);
                goto done;
            }
            if (hllm_ids_push(out, bid) < 0) goto done;
        }
    }
    rc = 0;
done:
    free(s);
    hllm_pair_heap_free(&h);
    return rc;
}
