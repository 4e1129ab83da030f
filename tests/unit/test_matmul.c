/* CPU matmul kernels: every weight type x every ISA this machine runs x awkward shapes,
 * token counts and row sub-ranges, against the scalar reference (tight: only float
 * summation order differs) and against float dot products of the dequantized weights
 * (looser: bounded by the activation quantization error). */
#include "core/quant.h"
#include "proc/cpu/cpu_hugemem.h"
#include "proc/cpu/cpu_matmul.h"
#include "proc/cpu/cpu_matmul_impl.h"
#include "testutil.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOK 33
#define SENTINEL 12345.0f

static uint32_t g_rng = 777;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)(g_rng >> 8) / (float)(1u << 23) - 1.0f;
}

typedef struct {
    int type;
    int64_t rows, cols;
    void *wq;         /* quantized weights, file layout */
    float *wd;        /* dequantized weights */
    float *x;         /* MAX_TOK activation rows */
    double *ref;      /* scalar reference dots [t][r] */
    double *mag;      /* sum |wd * xd| per [t][r] */
    double *fdot;     /* float dot wd . x per [t][r] */
    double *qerr;     /* sum |wd| * |x - xd| per [t][r] */
} problem;

static void problem_make(problem *p, int type, int64_t rows, int64_t cols) {
    memset(p, 0, sizeof *p);
    p->type = type;
    p->rows = rows;
    p->cols = cols;
    const size_t rb = hllm_row_bytes(type, cols);
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    p->wq = malloc(rb * (size_t)rows);
    p->wd = malloc(sizeof(float) * (size_t)(rows * cols));
    p->x = malloc(sizeof(float) * (size_t)(MAX_TOK * cols));
    for (int64_t i = 0; i < rows * cols; i++) w[i] = frand() * (1.0f + (float)(i % 13) * 0.1f);
    for (int64_t i = 0; i < MAX_TOK * cols; i++) p->x[i] = frand() * 2.0f + (i % 5 == 0 ? 0.5f : 0.0f);
    for (int64_t r = 0; r < rows; r++) {
        hllm_quantize_row(type, w + r * cols, (char *)p->wq + r * rb, cols);
        hllm_dequantize_row(type, (char *)p->wq + r * rb, p->wd + r * cols, cols);
    }
    free(w);
    /* Reference values with the activation quantized the plain way (vec_dot_type). */
    const int vt = hllm_vec_dot_type(type);
    const size_t xrb = hllm_row_bytes(vt, cols);
    void *xq = malloc(xrb);
    float *xd = malloc(sizeof(float) * (size_t)cols);
    const size_t n = (size_t)(MAX_TOK * rows);
    p->ref = malloc(n * sizeof(double));
    p->mag = malloc(n * sizeof(double));
    p->fdot = malloc(n * sizeof(double));
    p->qerr = malloc(n * sizeof(double));
    for (int t = 0; t < MAX_TOK; t++) {
        const float *xt = p->x + t * cols;
        hllm_quantize_row(vt, xt, xq, cols);
        hllm_dequantize_row(vt, xq, xd, cols);
        for (int64_t r = 0; r < rows; r++) {
            const float *wr = p->wd + r * cols;
            double mag = 0, fd = 0, qe = 0;
            for (int64_t k = 0; k < cols; k++) {
                mag += fabs((double)wr[k] * xd[k]);
                fd += (double)wr[k] * xt[k];
                qe += fabs((double)wr[k]) * fabs((double)xt[k] - xd[k]);
            }
            const size_t i = (size_t)(t * rows + r);
            p->ref[i] = hllm_vec_dot_ref(type, (char *)p->wq + r * rb, xq, cols);
            p->mag[i] = mag;
            p->fdot[i] = fd;
            p->qerr[i] = qe;
        }
    }
    free(xq);
    free(xd);
}

static void problem_free(problem *p) {
    free(p->wq);
    free(p->wd);
    free(p->x);
    free(p->ref);
    free(p->mag);
    free(p->fdot);
    free(p->qerr);
}

/* Runs one (ISA, n_tok, r0, r1) case and checks every output; returns failures seen. */
static int run_case(const problem *p, const hllm_cpu_mat *m, const void *xq, int n_tok, int64_t r0, int64_t r1) {
    const int64_t ldy = p->rows + 3;
    float *y = malloc(sizeof(float) * (size_t)(ldy * n_tok));
    for (int64_t i = 0; i < ldy * n_tok; i++) y[i] = SENTINEL;
    hllm_cpu_matmul_rows(m, r0, r1, xq, n_tok, y, ldy);
    int bad = 0;
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < ldy; r++) {
            const float v = y[t * ldy + r];
            if (r < r0 || r >= r1) {
                if (v != SENTINEL && bad++ < 3) fprintf(stderr, "  row %lld tok %d outside range written\n", (long long)r, t);
                continue;
            }
            const size_t i = (size_t)(t * p->rows + r);
            const double tol = 1e-5 * p->mag[i] + 1e-30;
            if (!(fabs(v - p->ref[i]) <= tol)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s %s rows %lld cols %lld n_tok %d [%lld,%lld) r %lld t %d: got %.9g ref %.9g tol %g\n",
                            hllm_type_name(p->type), hllm_isa_name(hllm_cpu_isa()), (long long)p->rows,
                            (long long)p->cols, n_tok, (long long)r0, (long long)r1, (long long)r, t, v, p->ref[i], tol);
            }
            if (!(fabs(v - p->fdot[i]) <= p->qerr[i] + 1e-5 * p->mag[i] + 1e-30)) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s vs float dot: r %lld t %d got %.9g float %.9g bound %g\n",
                            hllm_type_name(p->type), (long long)r, t, v, p->fdot[i], p->qerr[i]);
            }
        }
    free(y);
    return bad;
}

static void test_type_isa(const problem *p, hllm_isa isa) {
    hllm_cpu_mat m;
    CHECK(hllm_cpu_mat_init(&m, p->type, p->rows, p->cols, p->wq) == 0);
    /* every type must take the repacked SIMD path on the x86 SIMD ISAs */
    if (isa == HLLM_ISA_AVX2 || isa == HLLM_ISA_AVX512) CHECK(m.packed != NULL);
    const size_t xs = hllm_cpu_act_row_bytes(&m);
    CHECK(xs % 64 == 0);
    uint8_t *xq = aligned_alloc(64, xs * MAX_TOK);
    for (int t = 0; t < MAX_TOK; t++) hllm_cpu_quantize_act(&m, p->x + t * p->cols, xq + t * xs);
#if defined(__aarch64__)
    if (isa == HLLM_ISA_NEON) { /* every type has a NEON kernel: the comparisons below are not scalar vs scalar */
        float y0 = SENTINEL;
        CHECKF(hllm_matmul_neon(&m, 0, 1, xq, 1, &y0, 1) == 1 && y0 != SENTINEL, "%s has no NEON kernel",
               hllm_type_name(p->type));
    }
#endif
    static const int ntoks[] = {1, 2, 3, 7, 16, 33};
    int bad = 0;
    for (size_t i = 0; i < sizeof ntoks / sizeof ntoks[0]; i++) {
        const int n = ntoks[i];
        bad += run_case(p, &m, xq, n, 0, p->rows);
        /* tiny cache blocks: token chunks and float column chunks with ragged ends */
        hllm_cpu_matmul_set_blocking(5, 48);
        bad += run_case(p, &m, xq, n, 0, p->rows);
        hllm_cpu_matmul_set_blocking(0, 0);
        if (p->rows > 5) bad += run_case(p, &m, xq, n, 3, p->rows - 2);
        if (p->rows > 33) bad += run_case(p, &m, xq, n, 16, 33);
        if (p->rows > 18) bad += run_case(p, &m, xq, n, 17, 18);
    }
    CHECKF(bad == 0, "%s on %s, %lld x %lld: %d mismatches", hllm_type_name(p->type), hllm_isa_name(isa),
           (long long)p->rows, (long long)p->cols, bad);
    if (hllm_type_info(p->type)->block_size > 1) {
        /* quantized: the one-token (decode) kernels give the prefill tiles' bits exactly */
        const int64_t r0 = p->rows > 5 ? 3 : 0, r1 = p->rows > 5 ? p->rows - 2 : p->rows;
        float *y1 = malloc(sizeof(float) * (size_t)p->rows), *y2 = malloc(sizeof(float) * (size_t)(2 * p->rows));
        hllm_cpu_matmul_rows(&m, r0, r1, xq + xs, 1, y1, p->rows);
        hllm_cpu_matmul_rows(&m, r0, r1, xq, 2, y2, p->rows);
        int diff = 0;
        for (int64_t r = r0; r < r1; r++) diff += memcmp(&y1[r], &y2[p->rows + r], sizeof(float)) != 0;
        CHECKF(diff == 0, "%s on %s, %lld x %lld: one token differs from the tile in %d rows", hllm_type_name(p->type),
               hllm_isa_name(isa), (long long)p->rows, (long long)p->cols, diff);
        free(y1);
        free(y2);
    }
    free(xq);
    hllm_cpu_mat_free(&m);
}

/* One-token kernels over more row groups (tiles of 4, 2 and 1 groups in one call) and row
 * ranges that cut groups and decode chunks anywhere: against the scalar reference (run_case)
 * and bit for bit against the prefill tile (the second token of a 2-token call), also when
 * the rows are handed out in chunks that are not multiples of the 16-row group. */
static void test_one_token(const problem *p, hllm_isa isa) {
    hllm_cpu_mat m;
    CHECK(hllm_cpu_mat_init(&m, p->type, p->rows, p->cols, p->wq) == 0);
    const size_t xs = hllm_cpu_act_row_bytes(&m);
    uint8_t *xq = aligned_alloc(64, xs * 2);
    for (int t = 0; t < 2; t++) hllm_cpu_quantize_act(&m, p->x + t * p->cols, xq + t * xs);
    const int64_t R = p->rows;
    const int64_t ranges[][2] = {{0, R}, {1, R}, {0, R - 1}, {19, R - 5}, {33, 97 < R ? 97 : R}, {R / 2, R / 2 + 1},
                                 {15, 17}, {16, 80 < R ? 80 : R}, {R - 3, R}};
    float *y1 = malloc(sizeof(float) * (size_t)R), *y2 = malloc(sizeof(float) * (size_t)(2 * R));
    float *yc = malloc(sizeof(float) * (size_t)R);
    hllm_cpu_matmul_rows(&m, 0, R, xq, 2, y2, R);
    int bad = 0, diff = 0;
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        const int64_t r0 = ranges[i][0], r1 = ranges[i][1];
        if (r0 < 0 || r1 > R || r0 >= r1) continue;
        bad += run_case(p, &m, xq, 1, r0, r1);
        for (int64_t r = 0; r < R; r++) y1[r] = SENTINEL;
        hllm_cpu_matmul_rows(&m, r0, r1, xq + xs, 1, y1, R);
        for (int64_t r = 0; r < R; r++)
            diff += (r >= r0 && r < r1) ? memcmp(&y1[r], &y2[R + r], sizeof(float)) != 0 : y1[r] != SENTINEL;
    }
    static const int64_t chunks[] = {7, 24, 40, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        for (int64_t r = 0; r < R; r += chunks[i])
            hllm_cpu_matmul_rows(&m, r, R - r < chunks[i] ? R : r + chunks[i], xq + xs, 1, yc, R);
        for (int64_t r = 0; r < R; r++) diff += memcmp(&yc[r], &y2[R + r], sizeof(float)) != 0;
    }
    CHECKF(bad == 0 && diff == 0, "%s on %s, %lld x %lld one token: %d mismatches vs scalar, %d vs tile",
           hllm_type_name(p->type), hllm_isa_name(isa), (long long)R, (long long)p->cols, bad, diff);
    free(y1);
    free(y2);
    free(yc);
    free(xq);
    hllm_cpu_mat_free(&m);
}

/* The decode column split (hllm_cpu_gemv_partial) where this ISA has it: every NEON type, and
 * Q4_0 / Q8_0 / Q4_K on AVX-512. For odd row ranges: all blocks give the one-token product
 * bit for bit (the same integer sums and float steps in the same order),
 * and nothing outside the rows is written; any block range equals the scalar reference over
 * just those columns; the pieces of a cut row, added, give the whole product up to summation
 * order. Negative control: the pieces with their last block left out must fail that check. */
static void test_gemv_split(const problem *p, hllm_isa isa) {
    hllm_cpu_mat m;
    CHECK(hllm_cpu_mat_init(&m, p->type, p->rows, p->cols, p->wq) == 0);
    const int64_t kb = hllm_cpu_gemv_kblocks(&m), R = p->rows, K = p->cols;
    const int64_t blk = hllm_type_info(p->type)->block_size, fblk = blk > 1 ? blk : 32; /* columns a block */
    if (isa == HLLM_ISA_NEON)
        CHECKF(kb == (K + fblk - 1) / fblk, "%s: %lld column blocks on NEON for %lld columns", hllm_type_name(p->type),
               (long long)kb, (long long)K);
    if (kb == 0) {
        hllm_cpu_mat_free(&m);
        return;
    }
    const size_t xs = hllm_cpu_act_row_bytes(&m);
    uint8_t *xq = aligned_alloc(64, xs);
    hllm_cpu_quantize_act(&m, p->x, xq);
    const int vt = hllm_vec_dot_type(p->type);
    float *xd = malloc(sizeof(float) * (size_t)K); /* the activation as the kernels see it */
    hllm_dequantize_row(vt, xq, xd, K);
    float *full = malloc(sizeof(float) * (size_t)R), *y = malloc(sizeof(float) * (size_t)(R + 1));
    float *sum = malloc(sizeof(float) * (size_t)R), *drop = malloc(sizeof(float) * (size_t)R);
    hllm_cpu_matmul_rows(&m, 0, R, xq, 1, full, R);
    const int64_t ranges[][2] = {{0, R}, {3, R - 2}, {17, 18}, {R / 2, R / 2 + 1}, {15, 33}, {R - 1, R}};
    int bad = 0, exact = 0, outside = 0, caught = 0, ctl = 0;
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++) {
        const int64_t r0 = ranges[ri][0], r1 = ranges[ri][1];
        if (r0 < 0 || r1 > R || r0 >= r1) continue;
        /* all blocks */
        for (int64_t r = 0; r <= R; r++) y[r] = SENTINEL;
        hllm_cpu_gemv_partial(&m, r0, r1, 0, kb, xq, y);
        for (int64_t r = 0; r <= R; r++) {
            if (r < r0 || r >= r1) {
                outside += y[r] != SENTINEL;
                continue;
            }
            if (!(fabs(y[r] - full[r]) <= 1e-5 * p->mag[r] + 1e-30) && bad++ < 3)
                fprintf(stderr, "  %s %s split: rows [%lld,%lld) all blocks r %lld: got %.9g, one-token product %.9g\n",
                        hllm_type_name(p->type), hllm_isa_name(isa), (long long)r0, (long long)r1, (long long)r, y[r], full[r]);
            exact += memcmp(&y[r], &full[r], sizeof(float)) != 0;
        }
        /* block ranges that are not the whole row, against the scalar dot of those columns */
        const int64_t kbr[][2] = {{0, 1}, {1, kb}, {kb / 2, kb}, {kb / 3, kb - kb / 3}, {kb - 1, kb}};
        for (size_t ki = 0; ki < sizeof kbr / sizeof kbr[0]; ki++) {
            const int64_t kb0 = kbr[ki][0], kb1 = kbr[ki][1];
            if (kb0 >= kb1) continue;
            const int64_t c0 = kb0 * fblk, c1 = kb1 * fblk < K ? kb1 * fblk : K;
            for (int64_t r = 0; r <= R; r++) y[r] = SENTINEL;
            hllm_cpu_gemv_partial(&m, r0, r1, kb0, kb1, xq, y);
            for (int64_t r = 0; r <= R; r++) {
                if (r < r0 || r >= r1) {
                    outside += y[r] != SENTINEL;
                    continue;
                }
                const size_t wrb = hllm_row_bytes(p->type, K);
                const uint8_t *w = (const uint8_t *)p->wq + (size_t)r * wrb + hllm_row_bytes(p->type, c0);
                const double ref = hllm_vec_dot_ref(p->type, w, xq + hllm_row_bytes(vt, c0), c1 - c0);
                double mag = 0;
                for (int64_t k = c0; k < c1; k++) mag += fabs((double)p->wd[r * K + k] * xd[k]);
                if (!(fabs(y[r] - ref) <= 1e-5 * mag + 1e-30) && bad++ < 3)
                    fprintf(stderr, "  %s %s split: rows [%lld,%lld) blocks [%lld,%lld) r %lld: got %.9g, scalar %.9g\n",
                            hllm_type_name(p->type), hllm_isa_name(isa), (long long)r0, (long long)r1, (long long)kb0,
                            (long long)kb1, (long long)r, y[r], ref);
            }
        }
        /* a row cut into s pieces as the processor cuts it, added in order */
        for (int64_t s = 2; s <= 5 && s <= kb; s++) {
            for (int64_t r = r0; r < r1; r++) sum[r] = drop[r] = 0;
            for (int64_t j = 0; j < s; j++) {
                const int64_t kb0 = kb * j / s, kb1 = kb * (j + 1) / s;
                hllm_cpu_gemv_partial(&m, r0, r1, kb0, kb1, xq, y);
                for (int64_t r = r0; r < r1; r++) sum[r] += y[r];
                if (j == s - 1) hllm_cpu_gemv_partial(&m, r0, r1, kb0, kb1 - 1, xq, y); /* control: last block lost */
                for (int64_t r = r0; r < r1; r++) drop[r] += y[r];
            }
            for (int64_t r = r0; r < r1; r++) {
                const double tol = 1e-5 * p->mag[r] + 1e-30;
                if (!(fabs(sum[r] - p->ref[r]) <= tol) && bad++ < 3)
                    fprintf(stderr, "  %s %s split: rows [%lld,%lld) in %lld pieces r %lld: got %.9g, scalar %.9g\n",
                            hllm_type_name(p->type), hllm_isa_name(isa), (long long)r0, (long long)r1, (long long)s,
                            (long long)r, sum[r], p->ref[r]);
                ctl++;
                caught += !(fabs(drop[r] - p->ref[r]) <= tol);
            }
        }
    }
    CHECKF(bad == 0 && outside == 0 && exact == 0,
           "%s on %s, %lld x %lld, %lld blocks: %d mismatches, %d rows outside the range written, %d not the one-token bits",
           hllm_type_name(p->type), hllm_isa_name(isa), (long long)R, (long long)K, (long long)kb, bad, outside, exact);
    /* every piece's sum moves when a block is lost (nearly: a block's dot may happen to be tiny) */
    CHECKF(caught >= ctl * 9 / 10, "%s on %s split: a lost block went unnoticed in %d of %d rows", hllm_type_name(p->type),
           hllm_isa_name(isa), ctl - caught, ctl);
    free(xq), free(xd), free(full), free(y), free(sum), free(drop);
    hllm_cpu_mat_free(&m);
}

static void test_isa_api(void) {
    /* The environment override is read on first use. */
    setenv("HLLM_ISA", "scalar", 1);
    CHECK(hllm_cpu_isa() == HLLM_ISA_SCALAR);
    unsetenv("HLLM_ISA");
    const hllm_isa best = hllm_cpu_isa_detect();
    printf("detected ISA: %s\n", hllm_isa_name(best));
    CHECK(hllm_cpu_set_isa(HLLM_ISA_SCALAR) == 0 && hllm_cpu_isa() == HLLM_ISA_SCALAR);
    CHECK(hllm_cpu_set_isa(best) == 0 && hllm_cpu_isa() == best);
#if defined(__x86_64__)
    CHECK(hllm_cpu_set_isa(HLLM_ISA_NEON) == -1);
#endif
    CHECK(strcmp(hllm_isa_name(HLLM_ISA_AVX512), "avx512") == 0);
    hllm_cpu_mat m;
    static uint8_t dummy[1024];
    CHECK(hllm_cpu_mat_init(&m, HLLM_TYPE_Q5_K, 4, 256, dummy) != 0);
    CHECK(hllm_cpu_mat_init(&m, HLLM_TYPE_Q4_0, 4, 40, dummy) != 0);
}

/* Packed-weight memory: small sizes from malloc, 1 MiB and more on a 2 MiB-aligned mapping
 * of whole huge pages; every byte writable. */
static void test_huge_alloc(void) {
    static const size_t sizes[] = {100, (1u << 20) - 64, 1u << 20, (3u << 20) + 4096 + 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t map = 0;
        uint8_t *p = hllm_huge_alloc(sizes[i], &map);
        CHECK(p != NULL && (uintptr_t)p % 64 == 0);
        if (sizes[i] >= (1u << 20)) CHECK(map >= sizes[i] && map % (2u << 20) == 0 && (uintptr_t)p % (2u << 20) == 0);
        else CHECK(map == 0);
        memset(p, 0xA5, sizes[i]);
        CHECK(p[sizes[i] - 1] == 0xA5);
        hllm_huge_free(p, map);
    }
}

/* Activation rows quantized for Q4_K / Q6_K weights (Q8_K, with the kernels' extras): every
 * ISA's bytes equal the scalar path's, across ties of largest magnitude (+v before -v and the
 * reverse), halfway values, zero blocks and one-value blocks. */
static void test_quantize_act(const hllm_isa *isas, int n_isa) {
    enum { COLS = 256 * 8 };
    float *x = malloc(sizeof(float) * COLS);
    for (int i = 0; i < COLS; i++) x[i] = frand() * (i % 7 == 0 ? 3.0f : 1.0f);
    x[256 + 5] = 2.5f, x[256 + 200] = -2.5f;           /* block 1: tie, positive first */
    x[512 + 3] = -4.0f, x[512 + 100] = 4.0f;           /* block 2: tie, negative first */
    for (int i = 768; i < 1024; i++) x[i] = 0.0f;      /* block 3: zero */
    for (int i = 1024; i < 1280; i++) x[i] = (float)(i % 200 - 100) + 0.5f; /* block 4: iscale 1, */
    x[1024 + 9] = -127.0f;                                                  /* q exactly halfway */
    for (int i = 1280; i < 1536; i++) x[i] = i == 1400 ? -1e-3f : 0.0f; /* block 5: one value */
    static const int types[] = {HLLM_TYPE_Q4_K, HLLM_TYPE_Q6_K};
    for (int ti = 0; ti < 2; ti++) {
        hllm_cpu_mat m = {.type = types[ti], .cols = COLS};
        const size_t xs = hllm_cpu_act_row_bytes(&m);
        uint8_t *ref = calloc(1, xs), *got = calloc(1, xs);
        hllm_cpu_set_isa(HLLM_ISA_SCALAR);
        hllm_cpu_quantize_act(&m, x, ref);
        for (int i = 0; i < n_isa; i++) {
            hllm_cpu_set_isa(isas[i]);
            memset(got, 0, xs);
            hllm_cpu_quantize_act(&m, x, got);
            CHECKF(memcmp(ref, got, xs) == 0, "%s activations on %s differ from scalar", hllm_type_name(types[ti]),
                   hllm_isa_name(isas[i]));
        }
        free(ref);
        free(got);
    }
    free(x);
}

int main(void) {
    test_isa_api();
    test_huge_alloc();
    hllm_isa isas[4];
    int n_isa = 0;
    for (int i = HLLM_ISA_SCALAR; i <= HLLM_ISA_NEON; i++)
        if (hllm_cpu_set_isa((hllm_isa)i) == 0) isas[n_isa++] = (hllm_isa)i;
    const struct {
        int type;
        int64_t cols[3];
    } cases[] = {
        {HLLM_TYPE_F32, {1, 37, 600}}, {HLLM_TYPE_F16, {16, 37, 300}}, {HLLM_TYPE_BF16, {8, 37, 300}},
        {HLLM_TYPE_Q4_0, {32, 96, 320}}, {HLLM_TYPE_Q8_0, {32, 96, 320}}, {HLLM_TYPE_Q4_K, {256, 512, 768}},
        {HLLM_TYPE_Q6_K, {256, 512, 768}},
    };
    static const int64_t rows[] = {1, 5, 37, 67};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int ci = 0; ci < 3; ci++)
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
                /* keep it quick: the widest rows only with the middle column count */
                if (rows[ri] == 67 && ci != 1) continue;
                problem p;
                problem_make(&p, cases[c].type, rows[ri], cases[c].cols[ci]);
                for (int i = 0; i < n_isa; i++) {
                    hllm_cpu_set_isa(isas[i]);
                    test_type_isa(&p, isas[i]);
                    test_gemv_split(&p, isas[i]);
                }
                problem_free(&p);
            }
    /* one token, more groups: 100 rows = 7 groups (4 + 2 + 1), 131 = 9 (4 + 4 + 1) */
    static const int one_tok_types[] = {HLLM_TYPE_Q4_0, HLLM_TYPE_Q8_0, HLLM_TYPE_Q4_K, HLLM_TYPE_Q6_K};
    for (size_t c = 0; c < sizeof one_tok_types / sizeof one_tok_types[0]; c++) {
        const int ty = one_tok_types[c], blk = (int)hllm_type_info(ty)->block_size;
        static const int64_t orows[] = {100, 131};
        for (size_t ri = 0; ri < 2; ri++)
            for (int64_t nbk = 1; nbk <= 3; nbk++) {
                const int64_t cols = blk * (blk == 32 ? 5 * nbk - 2 : nbk); /* 32: 3, 8, 13 blocks */
                problem p;
                problem_make(&p, ty, orows[ri], cols);
                for (int i = 0; i < n_isa; i++) {
                    hllm_cpu_set_isa(isas[i]);
                    test_one_token(&p, isas[i]);
                    test_gemv_split(&p, isas[i]);
                }
                problem_free(&p);
            }
    }
    { /* a matrix on its own huge-page mapping (>= 1 MiB packed), 65 groups */
        problem p;
        problem_make(&p, HLLM_TYPE_Q8_0, 1040, 1024);
        for (int i = 0; i < n_isa; i++) {
            hllm_cpu_set_isa(isas[i]);
            test_one_token(&p, isas[i]);
        }
        problem_free(&p);
    }
    test_quantize_act(isas, n_isa);
    hllm_cpu_set_isa(hllm_cpu_isa_detect());
    return test_summary("test_matmul");
}
