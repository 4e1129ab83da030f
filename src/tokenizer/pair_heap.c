#include "tokenizer/pair_heap.h"
#include "core/error.h"
#include <stdlib.h>

static bool above(const hllm_pair *a, const hllm_pair *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int hllm_pair_heap_push(hllm_pair_heap *h, hllm_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        hllm_pair *v = realloc(h->v, cap * sizeof *v);
        if (!v) return hllm_fail("tokenizer: out of memory");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!above(&p, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = p;
    return 0;
}

hllm_pair hllm_pair_heap_pop(hllm_pair_heap *h) {
    hllm_pair top = h->v[0], last = h->v[--h->n];
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

void hllm_pair_heap_free(hllm_pair_heap *h) {
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
