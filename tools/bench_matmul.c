/* Single-thread CPU matmul benchmark: decode (1 token) weight-streaming GB/s on a
 * rows x cols matrix, hot (one matrix, may sit in cache) and cold (cycling through copies
 * totalling >= 2 GiB so every call streams from DRAM), and prefill GFLOP/s at n_tok tokens.
 * Usage: bench_matmul [-r rows] [-c cols] [-n n_tok] [-t type,...] [-i isa,...] [-s seconds]
 *                     [-k float column chunk] [-g rows per call] [-R best of N] [-H 1: hot only]
 * -g splits each decode call into row ranges of that many rows, the way the CPU processor
 * hands a matrix to its threads in chunks (HLLM_PREFETCH=bytes sets the kernels' prefetch
 * distance, as for hllm). */
#include "core/quant.h"
#include "proc/cpu/cpu_matmul.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* BENCH_CPUTIME=1: thread CPU time instead of wall time (steadier on a shared machine). */
static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("BENCH_CPUTIME") != NULL;
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int in_list(const char *list, const char *name) {
    if (!list) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, ",%s,", list);
    char key[64];
    snprintf(key, sizeof key, ",%s,", name);
    return strstr(buf, key) != NULL;
}

static int64_t g_chunk; /* rows per matmul call (-g); 0 = the whole matrix */

static void call(const hllm_cpu_mat *m, const void *xq, int n_tok, float *y) {
    const int64_t c = g_chunk > 0 ? g_chunk : m->rows;
    for (int64_t r = 0; r < m->rows; r += c)
        hllm_cpu_matmul_rows(m, r, m->rows - r < c ? m->rows : r + c, xq, n_tok, y, m->rows);
}

/* Seconds per call: calls fn over the matrices in turn until `secs` elapsed (at least 2 calls). */
static double time_calls_once(hllm_cpu_mat *mats, int nmat, const void *xq, int n_tok, float *y, double secs) {
    call(&mats[0], xq, n_tok, y); /* warm-up */
    /* the clock is read once per batch: a thread-CPU-time read is a system call */
    int calls = 0, batch = 1;
    const double t0 = now();
    double t;
    do {
        for (int i = 0; i < batch; i++, calls++) call(&mats[calls % nmat], xq, n_tok, y);
        t = now() - t0;
        if (t < 1e-3) batch *= 2;
    } while (t < secs || calls < 2);
    return t / calls;
}

static int g_reps = 1; /* -R: best of this many timings (a shared machine is noisy) */

static double time_calls(hllm_cpu_mat *mats, int nmat, const void *xq, int n_tok, float *y, double secs) {
    double best = time_calls_once(mats, nmat, xq, n_tok, y, secs);
    for (int i = 1; i < g_reps; i++) {
        const double t = time_calls_once(mats, nmat, xq, n_tok, y, secs);
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    int64_t rows = 4096, cols = 4096;
    int n_tok = 64;
    double secs = 0.5;
    const char *types = NULL, *isas = NULL;
    int hot_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-r")) rows = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-c")) cols = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) n_tok = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t")) types = argv[i + 1];
        else if (!strcmp(argv[i], "-i")) isas = argv[i + 1];
        else if (!strcmp(argv[i], "-s")) secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "-k")) hllm_cpu_matmul_set_blocking(0, atoi(argv[i + 1]));
        else if (!strcmp(argv[i], "-g")) g_chunk = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "-H")) hot_only = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-R")) g_reps = atoi(argv[i + 1]) > 0 ? atoi(argv[i + 1]) : 1;
    }
    static const int all_types[] = {HLLM_TYPE_F32, HLLM_TYPE_F16, HLLM_TYPE_BF16, HLLM_TYPE_Q8_0,
                                    HLLM_TYPE_Q6_K, HLLM_TYPE_Q4_K, HLLM_TYPE_Q4_0};
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    float *x = malloc(sizeof(float) * (size_t)(n_tok * cols));
    float *y = malloc(sizeof(float) * (size_t)(n_tok * rows));
    srand(1);
    for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int64_t i = 0; i < n_tok * cols; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    if (!hot_only) {
        /* Baseline: plain streaming read of 2 GiB, the single-core DRAM bandwidth to compare with. */
        const size_t n = (size_t)1 << 28;
        uint64_t *buf = malloc(n * sizeof *buf), s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        memset(buf, 1, n * sizeof *buf);
        double best = 0;
        for (int rep = 0; rep < 3; rep++) {
            const double t0 = now();
            for (size_t i = 0; i < n; i += 4) s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
            const double gbs = (double)(n * sizeof *buf) / (now() - t0) / 1e9;
            if (gbs > best) best = gbs;
        }
        printf("memory read baseline: %.1f GB/s (checksum %llu)\n", best, (unsigned long long)(s0 + s1 + s2 + s3));
        free(buf);
    }
    printf("%lld x %lld, single thread; decode = 1 token (GB/s of weights), prefill = %d tokens (GFLOP/s)\n",
           (long long)rows, (long long)cols, n_tok);
    if (g_chunk > 0) printf("decode calls cover %lld rows each\n", (long long)g_chunk);
    printf("%-6s %-7s %10s %12s %12s %14s\n", "type", "isa", "MB", "decode hot", "decode cold", "prefill");
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        const int type = all_types[ti];
        if (!in_list(types, hllm_type_name(type))) continue;
        const size_t rb = hllm_row_bytes(type, cols), bytes = rb * (size_t)rows;
        int ncopy = hot_only ? 1 : (int)(((size_t)2 << 30) / bytes) + 1;
        uint8_t *data = malloc(bytes * (size_t)ncopy);
        for (int64_t r = 0; r < rows; r++) hllm_quantize_row(type, w + r * cols, data + (size_t)r * rb, cols);
        for (int c = 1; c < ncopy; c++) memcpy(data + (size_t)c * bytes, data, bytes);
        for (int isa = HLLM_ISA_SCALAR; isa <= HLLM_ISA_AVX512; isa++) {
            if (!in_list(isas, hllm_isa_name((hllm_isa)isa)) || hllm_cpu_set_isa((hllm_isa)isa) != 0) continue;
            const int nc = isa == HLLM_ISA_SCALAR ? 1 : ncopy; /* scalar is compute-bound anyway */
            hllm_cpu_mat *mats = calloc((size_t)nc, sizeof *mats);
            for (int c = 0; c < nc; c++)
                if (hllm_cpu_mat_init(&mats[c], type, rows, cols, data + (size_t)c * bytes)) return 1;
            const size_t xs = hllm_cpu_act_row_bytes(&mats[0]);
            uint8_t *xq = aligned_alloc(64, xs * (size_t)n_tok);
            for (int t = 0; t < n_tok; t++) hllm_cpu_quantize_act(&mats[0], x + t * cols, xq + (size_t)t * xs);
            const double hot = time_calls(mats, 1, xq, 1, y, secs);
            const double cold = nc > 1 ? time_calls(mats, nc, xq, 1, y, secs) : hot;
            const double pf = time_calls(mats, 1, xq, n_tok, y, isa == HLLM_ISA_SCALAR || n_tok == 1 ? 0 : secs);
            printf("%-6s %-7s %10.1f %9.1f GB/s %7.1f GB/s %8.1f GFLOP/s\n", hllm_type_name(type),
                   hllm_isa_name((hllm_isa)isa), bytes / 1e6, bytes / hot / 1e9, bytes / cold / 1e9,
                   2.0 * (double)rows * (double)cols * n_tok / pf / 1e9);
            fflush(stdout);
            for (int c = 0; c < nc; c++) hllm_cpu_mat_free(&mats[c]);
            free(mats);
            free(xq);
        }
        free(data);
    }
    free(w);
    free(x);
    free(y);
    return 0;
}
