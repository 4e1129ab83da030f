/* Where a short parallel read region's time goes on the engine's thread pool: the CPU's decode
 * matmuls of a split plan are regions of 0.5-10 MB each, and the profile's slice timings give
 * them a fixed cost of 10-25 us beyond their bytes on the device host. For each region size this
 * reads fresh memory (a 1 GiB ring, far beyond the caches) back to back, and reports the time per
 * region, the bytes' rate, and per region the latest thread start, the earliest and latest
 * thread finish (from the caller's dispatch), so dispatch, imbalance and ramp can be told apart.
 * Each size runs with a static contiguous share per thread and with 16, 64 and 256 KiB chunks
 * taken from a counter, on transparent huge pages and on 4 KiB pages.
 * Build: cc -O3 -march=native -pthread -Isrc bench/cpu_region.c src/core/threadpool.c src/core/error.c
 * Usage: cpu_region [threads] */
#include "core/threadpool.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define RING (1ull << 30)
#define MAXT 256

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

typedef struct {
    const uint8_t *base;
    size_t bytes;
    size_t chunk; /* 0: a static share per thread */
    atomic_size_t next;
    double t_start[MAXT], t_end[MAXT];
    volatile uint64_t sink[MAXT * 8];
} region;

static uint64_t read_range(const uint8_t *p, size_t n) {
#if defined(__AVX2__)
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a0, 0) ^ (uint64_t)_mm256_extract_epi64(a0, 3);
#else
    uint64_t s = 0;
    for (size_t i = 0; i + 8 <= n; i += 64) s ^= *(const uint64_t *)(p + i);
    return s;
#endif
}

static void region_fn(void *arg, int ith, int nth) {
    region *r = arg;
    r->t_start[ith] = now_us();
    uint64_t s = 0;
    if (r->chunk) {
        for (;;) {
            size_t c = atomic_fetch_add_explicit(&r->next, r->chunk, memory_order_relaxed);
            if (c >= r->bytes) break;
            s ^= read_range(r->base + c, r->bytes - c < r->chunk ? r->bytes - c : r->chunk);
        }
    } else {
        size_t per = (r->bytes / (size_t)nth + 127) / 128 * 128, a = per * (size_t)ith;
        if (a < r->bytes) s ^= read_range(r->base + a, r->bytes - a < per ? r->bytes - a : per);
    }
    r->sink[ith * 8] = s;
    r->t_end[ith] = now_us();
}

static void measure(hllm_pool *pool, int nth, const uint8_t *ring, size_t bytes, size_t chunk, const char *pages) {
    static region r;
    const int n = bytes ? (int)(RING / bytes) : 2000;
    double tot = 0, start_max = 0, end_min = 0, end_max = 0;
    size_t off = 0;
    for (int i = -8; i < n; i++) { /* 8 warm-up regions */
        r.base = ring + off;
        r.bytes = bytes;
        r.chunk = chunk;
        atomic_store(&r.next, 0);
        const double t0 = now_us();
        hllm_pool_run(pool, region_fn, &r);
        const double t1 = now_us();
        off = off + 2 * bytes > RING ? 0 : off + bytes;
        if (i < 0) continue;
        double smax = 0, emin = 1e30, emax = 0;
        for (int t = 0; t < nth; t++) {
            smax = r.t_start[t] - t0 > smax ? r.t_start[t] - t0 : smax;
            emin = r.t_end[t] - t0 < emin ? r.t_end[t] - t0 : emin;
            emax = r.t_end[t] - t0 > emax ? r.t_end[t] - t0 : emax;
        }
        tot += t1 - t0, start_max += smax, end_min += emin, end_max += emax;
    }
    const double us = tot / n;
    char how[16];
    if (chunk) snprintf(how, sizeof how, "%zuK", chunk >> 10);
    else snprintf(how, sizeof how, "static");
    printf("%-5s %-7s %8.2f MiB %9.2f us %7.1f GB/s | last start %6.2f us, first finish %8.2f, last %8.2f\n", pages, how, bytes / 1048576.0, us, us > 0 ? bytes / us / 1e3 : 0, start_max / n,
           end_min / n, end_max / n);
}

int main(int argc, char **argv) {
    const int nth = argc > 1 ? atoi(argv[1]) : 16;
    if (nth < 1 || nth > MAXT) return fprintf(stderr, "cpu_region: threads 1..%d\n", MAXT), 1;
    hllm_pool *pool = hllm_pool_new(nth);
    if (!pool) return fprintf(stderr, "cpu_region: no thread pool\n"), 1;
    const size_t sizes[] = {0, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 32 << 20, 128 << 20};
    for (int huge = 1; huge >= 0; huge--) {
        uint8_t *ring = mmap(NULL, RING, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ring == MAP_FAILED) return fprintf(stderr, "cpu_region: cannot map 1 GiB\n"), 1;
        madvise(ring, RING, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        memset(ring, 1, RING);
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
            for (int c = 0; c < 4; c++) measure(pool, nth, ring, sizes[i], c ? (size_t)16 << (2 * c + 8) : 0, huge ? "huge" : "4k");
        munmap(ring, RING);
    }
    hllm_pool_free(pool);
    return 0;
}
