/* The keyed hash of the lookup tables: SipHash-2-4 against the reference vectors of its paper
 * (Aumasson and Bernstein, key 00..0f), and the process's hash: the same value for the same
 * bytes, from any thread, different for other bytes. */
#include "testutil.h"
#include "core/hash.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static void test_siphash_vectors(void) {
    const uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
    unsigned char m[64];
    for (int i = 0; i < 64; i++) m[i] = (unsigned char)i;
    CHECK(hllm_siphash(m, 0, k0, k1, 2, 4) == 0x726fdb47dd0e0e31ull);
    CHECK(hllm_siphash(m, 1, k0, k1, 2, 4) == 0x74f839c593dc67fdull);
    CHECK(hllm_siphash(m, 8, k0, k1, 2, 4) == 0x93f5f5799a932462ull);
    CHECK(hllm_siphash(m, 15, k0, k1, 2, 4) == 0xa129ca6149be45e5ull); /* the paper's worked example */
    CHECK(hllm_siphash(m, 63, k0, k1, 2, 4) == 0x958a324ceb064572ull);
}

static uint64_t g_from_thread;

static void *hash_in_thread(void *arg) {
    (void)arg;
    g_from_thread = hllm_hash_bytes("blk.0.attn_q.weight", 19);
    return NULL;
}

static void test_process_hash(void) {
    pthread_t th;
    CHECK(pthread_create(&th, NULL, hash_in_thread, NULL) == 0);
    const uint64_t h = hllm_hash_bytes("blk.0.attn_q.weight", 19);
    pthread_join(th, NULL);
    CHECK(h == g_from_thread);
    CHECK(hllm_hash_bytes("blk.0.attn_q.weight", 19) == h);
    CHECK(hllm_hash_bytes("blk.0.attn_k.weight", 19) != h);
    CHECK(hllm_hash_bytes("", 0) == hllm_hash_bytes("x", 0));
}

int main(void) {
    test_siphash_vectors();
    test_process_hash();
    return test_summary("test_hash");
}
