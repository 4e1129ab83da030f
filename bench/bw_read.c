/* STREAM-style DRAM read bandwidth: T threads each sum their part of a buffer much larger
 * than the caches; best of several passes, in GB/s. Used to express decode speed as a
 * fraction of what the memory can deliver. Usage: bw_read [threads] [MiB] */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct {
    const uint8_t *p;
    size_t n;
    double sink;
    pthread_barrier_t *bar;
    double secs;
} part;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *reader(void *arg) {
    part *w = arg;
    pthread_barrier_wait(w->bar);
    double t0 = now_s();
#if defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= w->n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(w->p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(w->p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(w->p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(w->p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    w->sink = (double)_mm256_extract_epi64(a0, 0);
#else
    uint64_t s0 = 0, s1 = 0;
    const uint64_t *q = (const uint64_t *)w->p;
    for (size_t i = 0; i + 2 <= w->n / 8; i += 2) s0 ^= q[i], s1 ^= q[i + 1];
    w->sink = (double)(s0 ^ s1);
#endif
    w->secs = now_s() - t0;
    return NULL;
}

int main(int argc, char **argv) {
    int nt = argc > 1 ? atoi(argv[1]) : 1;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    if (nt < 1 || nt > 1024 || mib < 16) {
        fprintf(stderr, "usage: bw_read [threads] [MiB >= 16]\n");
        return 2;
    }
    size_t n = mib << 20;
    uint8_t *buf = aligned_alloc(4096, n);
    if (!buf) {
        fprintf(stderr, "bw_read: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    memset(buf, 1, n);
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t th[1024];
        part w[1024];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)nt);
        size_t chunk = n / (size_t)nt / 128 * 128;
        double t0 = now_s();
        for (int i = 0; i < nt; i++) {
            w[i] = (part){buf + (size_t)i * chunk, chunk, 0, &bar, 0};
            pthread_create(&th[i], NULL, reader, &w[i]);
        }
        double slowest = 0;
        for (int i = 0; i < nt; i++) {
            pthread_join(th[i], NULL);
            if (w[i].secs > slowest) slowest = w[i].secs;
        }
        (void)t0;
        pthread_barrier_destroy(&bar);
        double gbs = (double)chunk * nt / slowest / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%.2f\n", best);
    free(buf);
    return 0;
}
