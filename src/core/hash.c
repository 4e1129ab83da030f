#include "core/hash.h"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

#define SIPROUND                                                        \
    do {                                                                \
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);      \
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                          \
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                          \
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);       \
    } while (0)

static inline uint64_t load_le(const unsigned char *p, size_t n) { /* n <= 8 bytes, little-endian */
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) m |= (uint64_t)p[i] << (8 * i);
    return m;
}

uint64_t hllm_siphash(const void *s, size_t n, uint64_t k0, uint64_t k1, int c, int d) {
    const unsigned char *p = s;
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    const size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        const uint64_t m = load_le(p + i, 8);
        v3 ^= m;
        for (int r = 0; r < c; r++) SIPROUND;
        v0 ^= m;
    }
    const uint64_t b = ((uint64_t)n << 56) | load_le(p + whole, n - whole);
    v3 ^= b;
    for (int r = 0; r < c; r++) SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    for (int r = 0; r < d; r++) SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t g_k0, g_k1;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The key: from the system's random source, else from the clock and this process's addresses. */
static void pick_key(void) {
    uint64_t k[2] = {0, 0};
    FILE *f = fopen("/dev/urandom", "rb");
    const size_t got = f ? fread(k, sizeof k[0], 2, f) : 0;
    if (f) fclose(f);
    if (got != 2) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
        k[1] ^= (uint64_t)(uintptr_t)&ts ^ (uint64_t)(uintptr_t)&g_k0 * 0xbf58476d1ce4e5b9ull;
    }
    g_k0 = k[0];
    g_k1 = k[1];
}

uint64_t hllm_hash_bytes(const void *s, size_t n) {
    pthread_once(&g_once, pick_key);
    return hllm_siphash(s, n, g_k0, g_k1, 1, 3);
}
