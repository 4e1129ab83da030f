/* Hashing of names and vocabulary strings for the lookup tables of the GGUF reader and the
 * tokenizer. Keyed (SipHash-1-3 with a key chosen once per process), so that a file cannot be
 * crafted whose names all land in one chain of a table (a load that takes hours); lookups only,
 * so nothing depends on the key. */
#ifndef HLLM_CORE_HASH_H
#define HLLM_CORE_HASH_H
#include <stddef.h>
#include <stdint.h>

uint64_t hllm_hash_bytes(const void *s, size_t n);

/* SipHash-c-d of n bytes under the 128-bit key (k0, k1): the reference for tests. */
uint64_t hllm_siphash(const void *s, size_t n, uint64_t k0, uint64_t k1, int c, int d);

#endif
