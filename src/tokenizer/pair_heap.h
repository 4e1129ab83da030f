/* A binary min-heap of candidate merges (adjacent symbol pairs), shared by the SentencePiece
 * and BPE tokenizers: the pair with the lowest key pops first, ties go to the leftmost pair.
 * SPM keys are -score, BPE keys are merge ranks (exact in a float below 2^24). */
#ifndef HLLM_TOKENIZER_PAIR_HEAP_H
#define HLLM_TOKENIZER_PAIR_HEAP_H
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int left, right;   /* symbol indices */
    float key;
    size_t ln, rn;     /* sizes of both sides when queued, to detect stale entries */
} hllm_pair;

typedef struct {
    hllm_pair *v;
    size_t n, cap;
} hllm_pair_heap;

int hllm_pair_heap_push(hllm_pair_heap *h, hllm_pair p); /* 0, or -1 + hllm_fail on OOM */
hllm_pair hllm_pair_heap_pop(hllm_pair_heap *h);         /* h->n must be > 0 */
void hllm_pair_heap_free(hllm_pair_heap *h);

#endif
