/* The CUDA processor against the CPU processor (and, for matmuls, a double-precision reference)
 * on random inputs, op by op, through the processor interface. Without a CUDA build or device
 * it prints "SKIP: <reason>" and passes.
 *
 * Error measure: relative L2 error ||a - b|| / ||b|| over all checked outputs (NaN fails).
 * Tolerances are stated where they are checked, with the reason. */
#include "proc/proc.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef HLLM_HAVE_CUDA
#include "proc/cuda/cuda_proc.h"
#endif

#ifdef HLLM_HAVE_CUDA
static unsigned g_seed = 4242;
static float frand(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)(g_seed >> 8) / (float)(1u << 23) - 1.0f;
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * frand();
}

static hllm_proc *G, *C; /* GPU, CPU */
static const float SENT = 12345.0f;

static float *dev_up(const float *h, size_t n) {
    float *d = G->ops->alloc(G, n * sizeof(float), HLLM_MEM_DEVICE);
    if (d) G->ops->copy_in(G, d, h, n * sizeof(float));
    return d;
}
static void dev_down(float *h, const float *d, size_t n) {
    G->ops->copy_out(G, h, d, n * sizeof(float));
    CHECKF(G->ops->finish(G) == 0, "finish: %s", hllm_error());
}

/* ||a - b|| / ||b|| over n floats; +inf on NaN */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static hllm_pweight *load_vec(hllm_proc *p, const float *v, int64_t n) {
    hllm_tensor t = {.name = "vec", .type = HLLM_TYPE_F32, .rows = 1, .cols = n, .data = v, .row_bytes = (size_t)n * 4};
    return p->ops->weight_load(p, &t, 0, 1, HLLM_MEM_DEVICE);
}

/* ---------------- MATMUL ---------------- */

static void test_matmul_case(int type, int64_t rows, int64_t cols, int n_tok, int with_bias, int sub, int pad_x,
                             hllm_mem_kind mem) {
    const size_t rb = hllm_row_bytes(type, cols);
    float *wf = malloc((size_t)(rows * cols) * 4), *deq = malloc((size_t)(rows * cols) * 4);
    void *wq = malloc((size_t)rows * rb);
    fill(wf, (size_t)(rows * cols), 1.0f);
    for (int64_t r = 0; r < rows; r++) {
        hllm_quantize_row(type, wf + r * cols, (char *)wq + r * rb, cols);
        hllm_dequantize_row(type, (char *)wq + r * rb, deq + r * cols, cols);
    }
    float *bias = malloc((size_t)rows * 4);
    fill(bias, (size_t)rows, 0.5f);
    hllm_tensor t = {.name = "w", .type = type, .rows = rows, .cols = cols, .data = wq, .row_bytes = rb};
    hllm_tensor tb = {.name = "b", .type = HLLM_TYPE_F32, .rows = 1, .cols = rows, .data = bias, .row_bytes = (size_t)rows * 4};
    /* the processors hold rows [w0, w1); the op computes rows [r0, r1) inside them */
    const int64_t w0 = sub ? 3 : 0, w1 = sub ? rows - 2 : rows;
    const int64_t r0 = sub ? w0 + 2 : 0, r1 = sub ? w1 - 3 : rows;
    hllm_pweight *gw = G->ops->weight_load(G, &t, w0, w1, mem), *cw = C->ops->weight_load(C, &t, w0, w1, HLLM_MEM_DEVICE);
    hllm_pweight *gb = with_bias ? G->ops->weight_load(G, &tb, 0, 1, HLLM_MEM_DEVICE) : NULL;
    hllm_pweight *cb = with_bias ? C->ops->weight_load(C, &tb, 0, 1, HLLM_MEM_DEVICE) : NULL;
    CHECKF(gw && cw, "weight_load %s: %s", hllm_type_name(type), hllm_error());
    const int64_t ldx = cols + (pad_x ? 3 : 0), ldy = rows + 5;
    float *x = malloc((size_t)(n_tok * ldx) * 4), *yc = malloc((size_t)(n_tok * ldy) * 4), *yg = malloc((size_t)(n_tok * ldy) * 4);
    fill(x, (size_t)(n_tok * ldx), 1.0f);
    for (int64_t i = 0; i < n_tok * ldy; i++) yc[i] = yg[i] = SENT;
    float *dx = dev_up(x, (size_t)(n_tok * ldx)), *dy = dev_up(yg, (size_t)(n_tok * ldy));
    hllm_op op = {.kind = HLLM_OP_MATMUL, .n_tok = n_tok, .dst = yc, .src = x, .ld_dst = ldy, .ld_src = ldx, .w = cw,
                  .bias = cb, .r0 = r0, .r1 = r1};
    CHECK(C->ops->run(C, &op) == 0);
    op.dst = dy;
    op.src = dx;
    op.w = gw;
    op.bias = gb;
    int rc = G->ops->run(G, &op);
    CHECKF(rc == 0, "gpu matmul: %s", hllm_error());
    dev_down(yg, dy, (size_t)(n_tok * ldy));
    /* double reference from the dequantized weights and the f32 activations */
    const int64_t nr = r1 - r0;
    float *ref = malloc((size_t)(n_tok * nr) * 4), *gv = malloc((size_t)(n_tok * nr) * 4), *cv = malloc((size_t)(n_tok * nr) * 4);
    int untouched = 1;
    for (int tk = 0; tk < n_tok; tk++) {
        for (int64_t r = 0; r < rows + 5; r++) {
            const float v = yg[tk * ldy + r];
            if (r >= r0 && r < r1) {
                double s = with_bias ? bias[r] : 0.0;
                for (int64_t k = 0; k < cols; k++) s += (double)deq[r * cols + k] * x[tk * ldx + k];
                ref[tk * nr + r - r0] = (float)s;
                gv[tk * nr + r - r0] = v;
                cv[tk * nr + r - r0] = yc[tk * ldy + r];
            } else if (v != SENT) {
                untouched = 0;
            }
        }
    }
    const int gemv = n_tok <= 8;
    const int quant = type == HLLM_TYPE_Q4_0 || type == HLLM_TYPE_Q8_0 || type == HLLM_TYPE_Q4_K || type == HLLM_TYPE_Q6_K;
    /* Tolerances against the exact product of the stored weights:
     *  - f32 activations (GEMV of F32/F16/BF16, SGEMM of F32): only f32 summation order, 1e-5;
     *  - activations rounded to f16 for the tensor-core GEMM: 2^-11 relative per element,
     *    random signs make the product's relative error ~that: 3e-3; bf16 (2^-8): 2e-2;
     *  - activations quantized to int8 per 32 (GEMV of quantized types): step amax/127 on
     *    uniform [-1,1) data is ~0.5% of the rms value per element, and so of the dot: 2e-2.
     * GPU vs CPU: the CPU quantizes activations too (q8_0 / q8_K), independently: 3e-2. */
    double tol = 1e-5;
    if (!gemv && type != HLLM_TYPE_F32) tol = type == HLLM_TYPE_BF16 ? 2e-2 : 3e-3;
    if (gemv && quant) tol = 2e-2;
    const double eg = rel_err(gv, ref, (size_t)(n_tok * nr)), ec = rel_err(gv, cv, (size_t)(n_tok * nr));
    CHECKF(eg <= tol, "matmul %s rows %lld cols %lld n_tok %d bias %d sub %d: gpu vs ref %.3g > %.3g",
           hllm_type_name(type), (long long)rows, (long long)cols, n_tok, with_bias, sub, eg, tol);
    CHECKF(ec <= (quant ? 3e-2 : tol * 2 + 1e-5), "matmul %s rows %lld cols %lld n_tok %d: gpu vs cpu %.3g",
           hllm_type_name(type), (long long)rows, (long long)cols, n_tok, ec);
    CHECKF(untouched, "matmul %s n_tok %d wrote outside rows [%lld, %lld)", hllm_type_name(type), n_tok, (long long)r0,
           (long long)r1);
    G->ops->free(G, dx);
    G->ops->free(G, dy);
    G->ops->weight_free(G, gw);
    C->ops->weight_free(C, cw);
    if (gb) G->ops->weight_free(G, gb);
    if (cb) C->ops->weight_free(C, cb);
    free(wf), free(deq), free(wq), free(bias), free(x), free(yc), free(yg), free(ref), free(gv), free(cv);
}

static void test_matmul(void) {
    const int types[] = {HLLM_TYPE_F32, HLLM_TYPE_F16, HLLM_TYPE_BF16, HLLM_TYPE_Q4_0, HLLM_TYPE_Q8_0, HLLM_TYPE_Q4_K,
                         HLLM_TYPE_Q6_K};
    const int toks[] = {1, 3, 8, 17, 64};
    const int f0 = g_test_fail;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti];
        const int blk = hllm_type_info(type)->block_size;
        int64_t cols_list[3];
        int nc = 0;
        if (blk == 1) { /* float types: vector path (multiple of 8) and scalar path (odd) */
            cols_list[nc++] = 256;
            cols_list[nc++] = 200;
            cols_list[nc++] = 50;
        } else {
            cols_list[nc++] = blk;
            cols_list[nc++] = blk == 32 ? 32 * 37 : 256 * 3;
            /* long rows: 2-4 warps a row, and lanes whose units before the PDL wait (the
             * one-token preload) run past the row's end */
            if (blk == 32) cols_list[nc++] = 32 * 200;
        }
        for (int ci = 0; ci < nc; ci++)
            for (size_t k = 0; k < sizeof toks / sizeof *toks; k++) {
                const int n_tok = toks[k];
                test_matmul_case(type, 37, cols_list[ci], n_tok, (int)(k & 1), 0, 0, HLLM_MEM_DEVICE);
                test_matmul_case(type, 133, cols_list[ci], n_tok, 1, 1, (int)(k & 1), HLLM_MEM_DEVICE);
            }
        /* weights left in pinned host memory, read by the GPU over PCIe (one token), or
         * copied tile by tile into VRAM slots (prompts) */
        test_matmul_case(type, 70, cols_list[0], 1, 1, 1, 0, HLLM_MEM_HOST);
        test_matmul_case(type, 70, cols_list[nc - 1], 33, 1, 1, 0, HLLM_MEM_HOST);
    }
    /* prompts over host rows in many small tiles: every staging slot reused several times, the
     * copy of a tile overlapping the GEMM of the one before */
    hllm_cuda_set_prompt_tile(64 * 768);
    const int staged[] = {HLLM_TYPE_Q4_0, HLLM_TYPE_Q8_0, HLLM_TYPE_Q4_K, HLLM_TYPE_Q6_K, HLLM_TYPE_F16, HLLM_TYPE_BF16};
    for (size_t ti = 0; ti < sizeof staged / sizeof *staged; ti++) {
        test_matmul_case(staged[ti], 515, 768, 40, 1, 1, 0, HLLM_MEM_HOST);
        test_matmul_case(staged[ti], 515, 768, 40, 0, 0, 1, HLLM_MEM_DEVICE);
    }
    hllm_cuda_set_prompt_tile(0);
    /* a taller matrix: many blocks of the grid, every row tile */
    test_matmul_case(HLLM_TYPE_Q4_0, 1029, 1024, 1, 1, 0, 0, HLLM_MEM_DEVICE);
    test_matmul_case(HLLM_TYPE_Q4_K, 515, 2048, 2, 0, 1, 0, HLLM_MEM_DEVICE);
    test_matmul_case(HLLM_TYPE_Q6_K, 515, 1024, 33, 0, 1, 0, HLLM_MEM_DEVICE);
    printf("matmul: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* The GEMV quantizes an activation once and reuses it for the next matmuls of the same input;
 * a matmul writing into that input (here in place) must end the reuse. */
static void test_act_cache(void) {
    const int f0 = g_test_fail;
    const int64_t n = 64;
    const size_t rb = hllm_row_bytes(HLLM_TYPE_Q8_0, n);
    float *wf = malloc((size_t)(n * n) * 4), *x = malloc((size_t)n * 4);
    void *wq = malloc((size_t)n * rb);
    fill(wf, (size_t)(n * n), 1.0f);
    fill(x, (size_t)n, 1.0f);
    for (int64_t r = 0; r < n; r++) hllm_quantize_row(HLLM_TYPE_Q8_0, wf + r * n, (char *)wq + r * rb, n);
    hllm_tensor t = {.name = "w", .type = HLLM_TYPE_Q8_0, .rows = n, .cols = n, .data = wq, .row_bytes = rb};
    hllm_pweight *gw = G->ops->weight_load(G, &t, 0, n, HLLM_MEM_DEVICE), *cw = C->ops->weight_load(C, &t, 0, n, HLLM_MEM_DEVICE);
    float yc[3][64], yg[3][64], xc[64];
    memcpy(xc, x, sizeof xc);
    float *dx = dev_up(x, (size_t)n), *dy = dev_up(x, (size_t)n), *dz = dev_up(x, (size_t)n);
    float *cdst[3] = {yc[0], xc, yc[2]}, *gdst[3] = {dy, dx, dz};
    for (int i = 0; i < 3; i++) {
        hllm_op op = {.kind = HLLM_OP_MATMUL, .n_tok = 1, .dst = cdst[i], .src = xc, .ld_dst = n, .ld_src = n, .w = cw,
                      .r0 = 0, .r1 = n};
        CHECK(C->ops->run(C, &op) == 0);
        op.dst = gdst[i], op.src = dx, op.w = gw;
        CHECK(G->ops->run(G, &op) == 0);
    }
    memcpy(yc[1], xc, sizeof xc);
    dev_down(yg[0], dy, (size_t)n);
    dev_down(yg[1], dx, (size_t)n);
    dev_down(yg[2], dz, (size_t)n);
    for (int i = 0; i < 3; i++) {
        const double e = rel_err(yg[i], yc[i], (size_t)n);
        CHECKF(e <= 3e-2, "activation cache step %d: %.3g", i, e); /* int8 activations on both: see test_matmul */
    }
    G->ops->free(G, dx), G->ops->free(G, dy), G->ops->free(G, dz);
    G->ops->weight_free(G, gw), C->ops->weight_free(C, cw);
    free(wf), free(x), free(wq);
    printf("activation cache: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* ---------------- EMBED ---------------- */

static void test_embed(void) {
    const int types[] = {HLLM_TYPE_F32, HLLM_TYPE_F16, HLLM_TYPE_BF16, HLLM_TYPE_Q4_0, HLLM_TYPE_Q8_0, HLLM_TYPE_Q4_K,
                         HLLM_TYPE_Q6_K};
    const int f0 = g_test_fail;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti];
        const int64_t rows = 50, cols = hllm_type_info(type)->block_size == 1 ? 72 : 512;
        const size_t rb = hllm_row_bytes(type, cols);
        float *wf = malloc((size_t)(rows * cols) * 4);
        void *wq = malloc((size_t)rows * rb);
        fill(wf, (size_t)(rows * cols), 2.0f);
        for (int64_t r = 0; r < rows; r++) hllm_quantize_row(type, wf + r * cols, (char *)wq + r * rb, cols);
        hllm_tensor t = {.name = "tok_embd", .type = type, .rows = rows, .cols = cols, .data = wq, .row_bytes = rb};
        for (int host = 0; host < 2; host++) {
            hllm_pweight *gw = G->ops->weight_load(G, &t, 0, rows, host ? HLLM_MEM_HOST : HLLM_MEM_DEVICE);
            hllm_pweight *cw = C->ops->weight_load(C, &t, 0, rows, HLLM_MEM_DEVICE);
            const int32_t tokens[] = {0, 7, 49, 3, 3, 11, 12, 13, 14, 15, 16, 48};
            const int n = host ? 12 : 5; /* ids as kernel arguments (<= 8) and through memory */
            const int64_t ld = cols + 4;
            float *yc = calloc((size_t)(n * ld), 4), *yg = calloc((size_t)(n * ld), 4);
            float *dy = dev_up(yg, (size_t)(n * ld));
            hllm_op op = {.kind = HLLM_OP_EMBED, .n_tok = n, .dst = yc, .ld_dst = ld, .w = cw, .tokens = tokens};
            CHECK(C->ops->run(C, &op) == 0);
            op.dst = dy;
            op.w = gw;
            CHECKF(G->ops->run(G, &op) == 0, "embed: %s", hllm_error());
            dev_down(yg, dy, (size_t)(n * ld));
            /* the same formulas in f32: equal up to one rounding of a product (1e-6) */
            const double e = rel_err(yg, yc, (size_t)(n * ld));
            CHECKF(e <= 1e-6, "embed %s host %d: %.3g", hllm_type_name(type), host, e);
            G->ops->free(G, dy);
            G->ops->weight_free(G, gw);
            C->ops->weight_free(C, cw);
            free(yc), free(yg);
        }
        free(wf), free(wq);
    }
    printf("embed: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* ---------------- RMSNORM ---------------- */

static void test_rmsnorm(void) {
    const int f0 = g_test_fail;
    const int64_t dims[] = {7, 64, 1000, 4096};
    const int toks[] = {1, 3, 17};
    for (size_t di = 0; di < 4; di++)
        for (size_t k = 0; k < 3; k++) {
            const int64_t dim = dims[di], ld = dim + 3;
            const int n_tok = toks[k];
            float *x = malloc((size_t)(n_tok * ld) * 4), *w = malloc((size_t)dim * 4);
            float *yc = malloc((size_t)(n_tok * ld) * 4), *yg = malloc((size_t)(n_tok * ld) * 4);
            fill(x, (size_t)(n_tok * ld), 3.0f);
            fill(w, (size_t)dim, 1.0f);
            memcpy(yc, x, (size_t)(n_tok * ld) * 4);
            hllm_pweight *gw = load_vec(G, w, dim), *cw = load_vec(C, w, dim);
            float *dx = dev_up(x, (size_t)(n_tok * ld)), *dy = dev_up(x, (size_t)(n_tok * ld));
            hllm_op op = {.kind = HLLM_OP_RMSNORM, .n_tok = n_tok, .dst = yc, .src = x, .ld_dst = ld, .ld_src = ld,
                          .w = cw, .dim = dim, .n_rows = n_tok, .eps = 1e-5f};
            CHECK(C->ops->run(C, &op) == 0);
            op.dst = dy, op.src = dx, op.w = gw;
            CHECK(G->ops->run(G, &op) == 0);
            dev_down(yg, dy, (size_t)(n_tok * ld));
            /* float partial sums (<= 4096 terms, tree-reduced) vs the CPU's double sum: 3e-6 */
            const double e = rel_err(yg, yc, (size_t)(n_tok * ld));
            CHECKF(e <= 3e-6, "rmsnorm dim %lld n_tok %d: %.3g", (long long)dim, n_tok, e);
            G->ops->free(G, dx), G->ops->free(G, dy);
            G->ops->weight_free(G, gw), C->ops->weight_free(C, cw);
            free(x), free(w), free(yc), free(yg);
        }
    /* per-head, in place: n_head heads of head_dim in rows of ld (a padded q/k activation) */
    const int hds[] = {8, 64, 128};
    for (int hi = 0; hi < 3; hi++)
        for (size_t k = 0; k < 3; k++) {
            const int hd = hds[hi], nh = 6, n_tok = toks[k];
            const int64_t ld = (int64_t)nh * hd + 16;
            float *x = malloc((size_t)(n_tok * ld) * 4), *w = malloc((size_t)hd * 4), *yg = malloc((size_t)(n_tok * ld) * 4);
            fill(x, (size_t)(n_tok * ld), 2.0f);
            fill(w, (size_t)hd, 1.0f);
            hllm_pweight *gw = load_vec(G, w, hd), *cw = load_vec(C, w, hd);
            float *dx = dev_up(x, (size_t)(n_tok * ld));
            hllm_op op = {.kind = HLLM_OP_RMSNORM, .n_tok = n_tok, .dst = x, .src = x, .ld_dst = ld, .ld_src = ld,
                          .w = cw, .dim = hd, .n_rows = (int64_t)n_tok * nh, .eps = 1e-6f};
            CHECK(C->ops->run(C, &op) == 0);
            op.dst = dx, op.src = dx, op.w = gw;
            CHECK(G->ops->run(G, &op) == 0);
            dev_down(yg, dx, (size_t)(n_tok * ld));
            const double e = rel_err(yg, x, (size_t)(n_tok * ld));
            CHECKF(e <= 3e-6, "per-head rmsnorm hd %d n_tok %d: %.3g", hd, n_tok, e);
            G->ops->free(G, dx);
            G->ops->weight_free(G, gw), C->ops->weight_free(C, cw);
            free(x), free(w), free(yg);
        }
    printf("rmsnorm: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* ---------------- ROPE ---------------- */

static void test_rope(void) {
    const int f0 = g_test_fail;
    const int pos0s[] = {0, 17, 1000, 30000};
    const int toks[] = {1, 3, 17};
    for (int type = 0; type < 2; type++)
        for (int ffi = 0; ffi < 2; ffi++)
            for (int ri = 0; ri < 2; ri++)
                for (int pi = 0; pi < 4; pi++)
                    for (int k = 0; k < 3; k++) {
                        const int nh = 4, nkv = 2, hd = 64, n_rot = ri ? 32 : 64, n_tok = toks[k];
                        const int64_t ldq = nh * hd + 8, ldk = nkv * hd;
                        float *q = malloc((size_t)(n_tok * ldq) * 4), *kk = malloc((size_t)(n_tok * ldk) * 4);
                        float *qg = malloc((size_t)(n_tok * ldq) * 4), *kg = malloc((size_t)(n_tok * ldk) * 4);
                        fill(q, (size_t)(n_tok * ldq), 2.0f);
                        fill(kk, (size_t)(n_tok * ldk), 2.0f);
                        float ff[32];
                        for (int i = 0; i < 32; i++) ff[i] = 1.0f + 7.0f * (float)i / 31.0f;
                        hllm_pweight *gf = ffi ? load_vec(G, ff, n_rot / 2) : NULL, *cf = ffi ? load_vec(C, ff, n_rot / 2) : NULL;
                        float *dq = dev_up(q, (size_t)(n_tok * ldq)), *dk = dev_up(kk, (size_t)(n_tok * ldk));
                        hllm_op op = {.kind = HLLM_OP_ROPE, .n_tok = n_tok, .dst = q, .src2 = kk, .ld_dst = ldq,
                                      .ld_src2 = ldk, .pos0 = pos0s[pi], .n_head = nh, .n_head_kv = nkv, .head_dim = hd,
                                      .n_rot = n_rot, .rope_type = type ? HLLM_ROPE_NEOX : HLLM_ROPE_NORM,
                                      .freq_base = 500000.0f, .freq_scale = ffi ? 0.25f : 1.0f, .freq_factors = cf};
                        CHECK(C->ops->run(C, &op) == 0);
                        op.dst = dq, op.src2 = dk, op.freq_factors = gf;
                        CHECK(G->ops->run(G, &op) == 0);
                        dev_down(qg, dq, (size_t)(n_tok * ldq));
                        dev_down(kg, dk, (size_t)(n_tok * ldk));
                        /* same angles (same float products); sin/cos and FMA contraction differ
                         * by an ulp or two, times angles up to 3e4 rad: 1e-5 */
                        const double e1 = rel_err(qg, q, (size_t)(n_tok * ldq)), e2 = rel_err(kg, kk, (size_t)(n_tok * ldk));
                        CHECKF(e1 <= 1e-5 && e2 <= 1e-5, "rope type %d ff %d n_rot %d pos0 %d n_tok %d: q %.3g k %.3g",
                               type, ffi, n_rot, pos0s[pi], n_tok, e1, e2);
                        G->ops->free(G, dq), G->ops->free(G, dk);
                        if (gf) G->ops->weight_free(G, gf), C->ops->weight_free(C, cf);
                        free(q), free(kk), free(qg), free(kg);
                    }
    printf("rope: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* ---------------- KV_STORE + ATTENTION ---------------- */

static void attention_case(int kv_type, int nh, int nkv, int hd, int pos0, int n_tok, int h0, int h1, int path) {
    const int n_ctx = 512;
    const int64_t kvd = (int64_t)nkv * hd, ldq = (int64_t)nh * hd + 4, ldo = (int64_t)nh * hd + 2;
    const size_t elt = kv_type == HLLM_TYPE_F16 ? 2 : 4;
    const int n_all = pos0 + n_tok;
    /* the cache on each processor */
    void *ck = calloc((size_t)n_ctx * kvd, elt), *cv = calloc((size_t)n_ctx * kvd, elt);
    void *gk = G->ops->alloc(G, (size_t)n_ctx * kvd * elt, HLLM_MEM_DEVICE), *gv = G->ops->alloc(G, (size_t)n_ctx * kvd * elt, HLLM_MEM_DEVICE);
    hllm_kv kc = {.k = ck, .v = cv, .type = kv_type, .n_ctx = n_ctx}, kg = {.k = gk, .v = gv, .type = kv_type, .n_ctx = n_ctx};
    float *K = malloc((size_t)(n_all * kvd) * 4), *V = malloc((size_t)(n_all * kvd) * 4);
    fill(K, (size_t)(n_all * kvd), 2.0f);
    fill(V, (size_t)(n_all * kvd), 1.0f);
    float *dK = dev_up(K, (size_t)(n_all * kvd)), *dV = dev_up(V, (size_t)(n_all * kvd));
    /* store the history, then the new tokens (two KV_STORE calls, as decode does) */
    for (int part = 0; part < 2; part++) {
        const int p0 = part ? pos0 : 0, n = part ? n_tok : pos0;
        if (n == 0) continue;
        hllm_op st = {.kind = HLLM_OP_KV_STORE, .n_tok = n, .src = K + p0 * kvd, .src2 = V + p0 * kvd, .ld_src = kvd,
                      .ld_src2 = kvd, .pos0 = p0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .kv = &kc};
        CHECK(C->ops->run(C, &st) == 0);
        st.src = dK + p0 * kvd, st.src2 = dV + p0 * kvd, st.kv = &kg;
        CHECK(G->ops->run(G, &st) == 0);
    }
    /* the caches must be bit-identical (both round to f16 to nearest even) */
    void *hk = malloc((size_t)n_all * kvd * elt), *hv = malloc((size_t)n_all * kvd * elt);
    G->ops->copy_out(G, hk, gk, (size_t)n_all * kvd * elt);
    G->ops->copy_out(G, hv, gv, (size_t)n_all * kvd * elt);
    CHECK(G->ops->finish(G) == 0);
    CHECKF(!memcmp(hk, ck, (size_t)n_all * kvd * elt) && !memcmp(hv, cv, (size_t)n_all * kvd * elt),
           "kv_store %s pos0 %d n_tok %d: caches differ", hllm_type_name(kv_type), pos0, n_tok);
    float *q = malloc((size_t)(n_tok * ldq) * 4), *oc = malloc((size_t)(n_tok * ldo) * 4), *og = malloc((size_t)(n_tok * ldo) * 4);
    fill(q, (size_t)(n_tok * ldq), 1.0f);
    for (int64_t i = 0; i < n_tok * ldo; i++) oc[i] = og[i] = SENT;
    float *dq = dev_up(q, (size_t)(n_tok * ldq)), *dout = dev_up(og, (size_t)(n_tok * ldo));
    hllm_op op = {.kind = HLLM_OP_ATTENTION, .n_tok = n_tok, .dst = oc, .src = q, .ld_dst = ldo, .ld_src = ldq,
                  .pos0 = pos0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .h0 = h0, .h1 = h1,
                  .attn_scale = 1.0f / sqrtf((float)hd), .kv = &kc};
    CHECK(C->ops->run(C, &op) == 0);
    if (path == 1) hllm_cuda_set_paths(-1, 1 << 30); /* split-KV for every n_tok */
    if (path >= 2) hllm_cuda_set_paths(-1, 0);       /* flash for every n_tok */
    hllm_cuda_set_attn_mma(path == 3);               /* 2: the scalar flash kernel; 3: tensor cores */
    op.dst = dout, op.src = dq, op.kv = &kg;
    CHECKF(G->ops->run(G, &op) == 0, "attention: %s", hllm_error());
    hllm_cuda_set_paths(-1, 8);
    hllm_cuda_set_attn_mma(1);
    dev_down(og, dout, (size_t)(n_tok * ldo));
    /* f32 arithmetic on identical (f16-rounded) inputs, different summation order and
     * exp/division placement: 1e-5 relative; and heads outside [h0, h1) untouched. The tensor-core
     * path also rounds the softmax weights to f16 (2^-11 relative each): 2e-3. */
    const double e = rel_err(og, oc, (size_t)(n_tok * ldo));
    CHECKF(e <= (path == 3 ? 2e-3 : 1e-5), "attention %s nh %d nkv %d hd %d pos0 %d n_tok %d heads [%d,%d) path %d: %.3g",
           hllm_type_name(kv_type), nh, nkv, hd, pos0, n_tok, h0, h1, path, e);
    G->ops->free(G, gk), G->ops->free(G, gv), G->ops->free(G, dK), G->ops->free(G, dV);
    G->ops->free(G, dq), G->ops->free(G, dout);
    free(ck), free(cv), free(K), free(V), free(hk), free(hv), free(q), free(oc), free(og);
}

static void test_attention(void) {
    const int f0 = g_test_fail;
    const int cases[][2] = {{0, 1}, {5, 1}, {300, 1}, {0, 3}, {10, 3}, {0, 17}, {40, 17}, {0, 64}, {100, 64}, {33, 100}};
    const int shapes[][3] = {{8, 2, 64}, {4, 4, 128}, {8, 4, 8}, {6, 3, 80}, {2, 1, 256}};
    for (int kt = 0; kt < 2; kt++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
                for (int path = 0; path < 4; path++) {
                    const int nh = shapes[s][0];
                    const int h0 = (c & 1) ? 1 : 0, h1 = (c & 1) ? nh - 1 : nh;
                    attention_case(kt ? HLLM_TYPE_F32 : HLLM_TYPE_F16, nh, shapes[s][1], shapes[s][2], cases[c][0],
                                   cases[c][1], h0, h1, path);
                }
    /* a long context: many split-KV chunks */
    attention_case(HLLM_TYPE_F16, 8, 2, 64, 480, 1, 0, 8, 0);
    attention_case(HLLM_TYPE_F16, 8, 2, 64, 400, 5, 0, 8, 1);
    /* prompts over several 64-query blocks and 64-key tiles, on both prefill kernels */
    for (int path = 2; path < 4; path++) {
        attention_case(HLLM_TYPE_F16, 4, 2, 128, 0, 300, 0, 4, path);
        attention_case(HLLM_TYPE_F16, 4, 1, 64, 77, 200, 1, 3, path);
        attention_case(HLLM_TYPE_F16, 2, 2, 96, 130, 129, 0, 2, path);
    }
    printf("attention + kv_store: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* ---------------- SWIGLU, ADD ---------------- */

static void test_elementwise(void) {
    const int f0 = g_test_fail;
    const int64_t dims[] = {7, 1000};
    const int toks[] = {1, 3, 17};
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 3; k++)
            for (int kind = 0; kind < 2; kind++) {
                const int64_t dim = dims[di], ld = dim + 5;
                const int n_tok = toks[k];
                const size_t n = (size_t)(n_tok * ld);
                float *a = malloc(n * 4), *b = malloc(n * 4), *yc = malloc(n * 4), *yg = malloc(n * 4);
                fill(a, n, 6.0f);
                fill(b, n, 2.0f);
                fill(yc, n, 1.0f);
                float *da = dev_up(a, n), *db = dev_up(b, n), *dy = dev_up(yc, n);
                hllm_op op = {.kind = kind ? HLLM_OP_ADD : HLLM_OP_SWIGLU, .n_tok = n_tok, .dst = yc, .src = a,
                              .src2 = b, .ld_dst = ld, .ld_src = ld, .ld_src2 = ld, .dim = dim};
                CHECK(C->ops->run(C, &op) == 0);
                op.dst = dy, op.src = da, op.src2 = db;
                CHECK(G->ops->run(G, &op) == 0);
                dev_down(yg, dy, n);
                /* the same float formula; expf differs by an ulp at most: 1e-6 */
                const double e = rel_err(yg, yc, n);
                CHECKF(e <= 1e-6, "%s dim %lld n_tok %d: %.3g", kind ? "add" : "swiglu", (long long)dim, n_tok, e);
                G->ops->free(G, da), G->ops->free(G, db), G->ops->free(G, dy);
                free(a), free(b), free(yc), free(yg);
            }
    printf("swiglu + add: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}

/* ---------------- signal / wait, errors ---------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sync_case(volatile uint32_t *go, volatile uint32_t *done) {
    *go = 0;
    *done = 0;
    const int64_t n = 1 << 16;
    float *a = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    fill(a, (size_t)n, 1.0f);
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f;
    float *da = dev_up(a, (size_t)n), *dy = dev_up(y, (size_t)n);
    G->ops->wait(G, go, 1);
    hllm_op op = {.kind = HLLM_OP_ADD, .n_tok = 1, .dst = dy, .src = da, .ld_dst = n, .ld_src = n, .dim = n};
    CHECK(G->ops->run(G, &op) == 0);
    G->ops->signal(G, done, 7);
    const double t0 = now_s();
    int early = 0;
    while (now_s() - t0 < 0.05) early |= __atomic_load_n(done, __ATOMIC_ACQUIRE) != 0;
    CHECKF(!early, "work ran before its wait");
    __atomic_store_n(go, 1, __ATOMIC_RELEASE);
    const double t1 = now_s();
    while (__atomic_load_n(done, __ATOMIC_ACQUIRE) != 7 && now_s() - t1 < 5.0) {
    }
    CHECKF(*done == 7, "signal did not arrive");
    G->ops->copy_out(G, y, dy, (size_t)n * 4);
    CHECK(G->ops->finish(G) == 0);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= y[i] == 1.0f + a[i];
    CHECK(ok);
    G->ops->free(G, da), G->ops->free(G, dy);
    free(a), free(y);
}

static void test_sync_and_errors(void) {
    const int f0 = g_test_fail;
    /* flags in pinned mapped memory (the stream memory operations) and in ordinary heap
     * memory (the host-callback fallback) */
    uint32_t *flags = G->ops->alloc(G, 64, HLLM_MEM_HOST);
    CHECK(flags != NULL);
    if (flags) sync_case(flags, flags + 8);
    uint32_t *hf = calloc(16, 4);
    sync_case(hf, hf + 8);
    free(hf);
    if (flags) G->ops->free(G, flags);
    /* out of memory is an error message, not an abort, and the processor still works */
    void *huge = G->ops->alloc(G, (size_t)1 << 50, HLLM_MEM_DEVICE);
    CHECK(huge == NULL);
    CHECKF(strstr(hllm_error(), "out of device memory") != NULL, "message: %s", hllm_error());
    printf("oom message: %s\n", hllm_error());
    hllm_proc *bad = hllm_proc_cuda_new(999);
    CHECK(bad == NULL);
    printf("bad device message: %s\n", hllm_error());
    test_matmul_case(HLLM_TYPE_Q8_0, 40, 64, 1, 1, 0, 0, HLLM_MEM_DEVICE);
    printf("sync + errors: %s\n", g_test_fail == f0 ? "ok" : "FAILED");
}
/* ---------------- captured decode steps (step_begin / step_end) ---------------- */

/* A two-layer llama-shaped model driven op by op as the executor does. Its steps run without
 * the hooks, with them (graph capture and replay: results must be bit-identical), with them on
 * a second set of buffers (same shapes, other pointers: the captured graphs must not be
 * replayed), and on the CPU (a sanity bound). Positions cross the attention's chunk boundaries
 * (every 64 keys early on, and the chunk size's growth past 17 * 64 keys with 32 heads). */
enum { MM_EMBD = 512, MM_NH = 32, MM_NKV = 8, MM_HD = 64, MM_FF = 1024, MM_VOCAB = 1000, MM_LAYERS = 2, MM_CTX = 2048,
       MM_BATCH = 1000 };
#define MM_QD (MM_NH * MM_HD)
#define MM_KVD (MM_NKV * MM_HD)

typedef struct {
    hllm_pweight *embd, *out, *onorm;
    hllm_pweight *an[MM_LAYERS], *wq[MM_LAYERS], *wk[MM_LAYERS], *wv[MM_LAYERS], *wo[MM_LAYERS], *fn[MM_LAYERS],
        *wg[MM_LAYERS], *wu[MM_LAYERS], *wd[MM_LAYERS];
} mm_weights;

typedef struct {
    float *x, *xn, *q, *k, *v, *att, *gate, *up, *logits;
    hllm_kv kv[MM_LAYERS];
} mm_acts;

typedef struct { /* host data of the weights (kept until the end) */
    void *data[64];
    int n;
} mm_host;

static hllm_pweight *mm_mat(hllm_proc *p, mm_host *h, int idx, int type, int64_t rows, int64_t cols) {
    if (idx >= h->n) { /* first processor: make the data */
        const size_t rb = hllm_row_bytes(type, cols);
        float *f = malloc((size_t)cols * 4);
        char *q = malloc((size_t)rows * rb);
        const float sc = 1.7f / sqrtf((float)cols);
        for (int64_t r = 0; r < rows; r++) {
            fill(f, (size_t)cols, sc);
            hllm_quantize_row(type, f, q + r * rb, cols);
        }
        free(f);
        h->data[h->n++] = q;
    }
    hllm_tensor t = {.name = "w", .type = type, .rows = rows, .cols = cols, .data = h->data[idx],
                     .row_bytes = hllm_row_bytes(type, cols)};
    return p->ops->weight_load(p, &t, 0, rows, HLLM_MEM_DEVICE);
}

static hllm_pweight *mm_vec(hllm_proc *p, mm_host *h, int idx, int64_t n) {
    if (idx >= h->n) {
        float *v = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) v[i] = 1.0f + 0.3f * frand();
        h->data[h->n++] = v;
    }
    return load_vec(p, h->data[idx], n);
}

static void mm_load(hllm_proc *p, mm_host *h, int type, mm_weights *w) {
    int i = 0;
    w->embd = mm_mat(p, h, i++, type, MM_VOCAB, MM_EMBD);
    for (int l = 0; l < MM_LAYERS; l++) {
        w->an[l] = mm_vec(p, h, i++, MM_EMBD);
        w->wq[l] = mm_mat(p, h, i++, type, MM_QD, MM_EMBD);
        w->wk[l] = mm_mat(p, h, i++, type, MM_KVD, MM_EMBD);
        w->wv[l] = mm_mat(p, h, i++, type, MM_KVD, MM_EMBD);
        w->wo[l] = mm_mat(p, h, i++, type, MM_EMBD, MM_QD);
        w->fn[l] = mm_vec(p, h, i++, MM_EMBD);
        w->wg[l] = mm_mat(p, h, i++, type, MM_FF, MM_EMBD);
        w->wu[l] = mm_mat(p, h, i++, type, MM_FF, MM_EMBD);
        w->wd[l] = mm_mat(p, h, i++, type, MM_EMBD, MM_FF);
    }
    w->onorm = mm_vec(p, h, i++, MM_EMBD);
    w->out = mm_mat(p, h, i++, type, MM_VOCAB, MM_EMBD);
}

static void mm_free_weights(hllm_proc *p, mm_weights *w) {
    hllm_pweight **all = (hllm_pweight **)w;
    for (size_t i = 0; i < sizeof *w / sizeof(hllm_pweight *); i++)
        if (all[i]) p->ops->weight_free(p, all[i]);
}

static void mm_alloc(hllm_proc *p, mm_acts *a) {
    const int64_t widths[9] = {MM_EMBD, MM_QD, MM_QD, MM_KVD, MM_KVD, MM_QD, MM_FF, MM_FF, MM_VOCAB};
    float **bufs[9] = {&a->x, &a->xn, &a->q, &a->k, &a->v, &a->att, &a->gate, &a->up, &a->logits};
    for (int i = 0; i < 9; i++) {
        *bufs[i] = p->ops->alloc(p, (size_t)MM_BATCH * widths[i] * 4, HLLM_MEM_DEVICE);
        CHECK(*bufs[i] != NULL);
    }
    for (int l = 0; l < MM_LAYERS; l++) {
        a->kv[l] = (hllm_kv){.type = HLLM_TYPE_F16, .n_ctx = MM_CTX};
        a->kv[l].k = p->ops->alloc(p, (size_t)MM_CTX * MM_KVD * 2, HLLM_MEM_DEVICE);
        a->kv[l].v = p->ops->alloc(p, (size_t)MM_CTX * MM_KVD * 2, HLLM_MEM_DEVICE);
    }
}

static void mm_free_acts(hllm_proc *p, mm_acts *a) {
    float *bufs[9] = {a->x, a->xn, a->q, a->k, a->v, a->att, a->gate, a->up, a->logits};
    for (int i = 0; i < 9; i++) p->ops->free(p, bufs[i]);
    for (int l = 0; l < MM_LAYERS; l++) p->ops->free(p, a->kv[l].k), p->ops->free(p, a->kv[l].v);
}

static int mm_run(hllm_proc *p, hllm_op op) {
    const int rc = p->ops->run(p, &op);
    CHECKF(rc == 0, "%s op %d: %s", p->name, (int)op.kind, hllm_error());
    return rc;
}

/* One evaluation of n tokens at pos0; the last token's logits into out. */
static void mm_eval(hllm_proc *p, const mm_weights *w, mm_acts *a, const int32_t *tok, int n, int pos0, int hooks,
                    float *out) {
    if (hooks) CHECKF(p->ops->step_begin(p, (uint64_t)n, pos0, tok, n) >= 0, "step_begin: %s", hllm_error());
    mm_run(p, (hllm_op){.kind = HLLM_OP_EMBED, .n_tok = n, .dst = a->x, .ld_dst = MM_EMBD, .w = w->embd, .tokens = tok});
    for (int l = 0; l < MM_LAYERS; l++) {
        const hllm_op base = {.n_tok = n, .pos0 = pos0, .n_head = MM_NH, .n_head_kv = MM_NKV, .head_dim = MM_HD,
                              .eps = 1e-5f};
        hllm_op o = base;
#define MM_MM(D, LD, S, LS, W, R)                                                                                   \
    o = base, o.kind = HLLM_OP_MATMUL, o.dst = D, o.ld_dst = LD, o.src = S, o.ld_src = LS, o.w = W, o.r0 = 0,      \
    o.r1 = R, mm_run(p, o)
        o.kind = HLLM_OP_RMSNORM, o.dst = a->xn, o.ld_dst = MM_QD, o.src = a->x, o.ld_src = MM_EMBD, o.w = w->an[l];
        o.dim = MM_EMBD, o.n_rows = n;
        mm_run(p, o);
        MM_MM(a->q, MM_QD, a->xn, MM_QD, w->wq[l], MM_QD);
        MM_MM(a->k, MM_KVD, a->xn, MM_QD, w->wk[l], MM_KVD);
        MM_MM(a->v, MM_KVD, a->xn, MM_QD, w->wv[l], MM_KVD);
        o = base, o.kind = HLLM_OP_ROPE, o.dst = a->q, o.ld_dst = MM_QD, o.src2 = a->k, o.ld_src2 = MM_KVD;
        o.n_rot = MM_HD, o.rope_type = HLLM_ROPE_NORM, o.freq_base = 500000.0f, o.freq_scale = 1.0f;
        mm_run(p, o);
        o = base, o.kind = HLLM_OP_KV_STORE, o.src = a->k, o.ld_src = MM_KVD, o.src2 = a->v, o.ld_src2 = MM_KVD;
        o.kv = &a->kv[l];
        mm_run(p, o);
        o = base, o.kind = HLLM_OP_ATTENTION, o.dst = a->att, o.ld_dst = MM_QD, o.src = a->q, o.ld_src = MM_QD;
        o.kv = &a->kv[l], o.h0 = 0, o.h1 = MM_NH, o.attn_scale = 1.0f / sqrtf((float)MM_HD);
        mm_run(p, o);
        MM_MM(a->xn, MM_QD, a->att, MM_QD, w->wo[l], MM_EMBD);
        o = base, o.kind = HLLM_OP_ADD, o.dst = a->x, o.ld_dst = MM_EMBD, o.src = a->xn, o.ld_src = MM_QD, o.dim = MM_EMBD;
        mm_run(p, o);
        o = base, o.kind = HLLM_OP_RMSNORM, o.dst = a->xn, o.ld_dst = MM_QD, o.src = a->x, o.ld_src = MM_EMBD;
        o.w = w->fn[l], o.dim = MM_EMBD, o.n_rows = n;
        mm_run(p, o);
        MM_MM(a->gate, MM_FF, a->xn, MM_QD, w->wg[l], MM_FF);
        MM_MM(a->up, MM_FF, a->xn, MM_QD, w->wu[l], MM_FF);
        o = base, o.kind = HLLM_OP_SWIGLU, o.dst = a->gate, o.ld_dst = MM_FF, o.src = a->gate, o.ld_src = MM_FF;
        o.src2 = a->up, o.ld_src2 = MM_FF, o.dim = MM_FF;
        mm_run(p, o);
        MM_MM(a->xn, MM_QD, a->gate, MM_FF, w->wd[l], MM_EMBD);
        o = base, o.kind = HLLM_OP_ADD, o.dst = a->x, o.ld_dst = MM_EMBD, o.src = a->xn, o.ld_src = MM_QD, o.dim = MM_EMBD;
        mm_run(p, o);
#undef MM_MM
    }
    mm_run(p, (hllm_op){.kind = HLLM_OP_RMSNORM, .n_tok = 1, .dst = a->xn, .ld_dst = MM_QD,
                        .src = a->x + (int64_t)(n - 1) * MM_EMBD, .ld_src = MM_EMBD, .w = w->onorm, .dim = MM_EMBD,
                        .n_rows = 1, .eps = 1e-5f});
    mm_run(p, (hllm_op){.kind = HLLM_OP_MATMUL, .n_tok = 1, .dst = a->logits, .ld_dst = MM_VOCAB, .src = a->xn,
                        .ld_src = MM_QD, .w = w->out, .r0 = 0, .r1 = MM_VOCAB});
    if (hooks) CHECKF(p->ops->step_end(p) == 0, "step_end: %s", hllm_error());
    p->ops->copy_out(p, out, a->logits, MM_VOCAB * 4);
    CHECKF(p->ops->finish(p) == 0, "finish: %s", hllm_error());
}

/* The steps: (pos0, n_tok) */
static int mm_steps(int (*st)[2]) {
    int k = 0, pos = 0;
#define MM_STEP(N) (st[k][0] = pos, st[k][1] = (N), k++, pos += (N))
    MM_STEP(5);
    while (pos < 200) MM_STEP(1); /* active chunks change every 64 keys */
    MM_STEP(3);
    MM_STEP(3);
    for (int i = 0; i < 4; i++) MM_STEP(1);
    MM_STEP(1080 - pos); /* prefill (uncaptured), then decode across 1088 keys */
    while (pos < 1100) MM_STEP(1);
    MM_STEP(2);
#undef MM_STEP
    return k;
}

static void test_graph_type(int type) {
    const int f0 = g_test_fail;
    static int steps[512][2];
    const int n_steps = mm_steps(steps);
    int32_t *tok = malloc(MM_CTX * sizeof(int32_t));
    for (int i = 0; i < MM_CTX; i++) tok[i] = (int32_t)((i * 7919u + 13u) % MM_VOCAB);
    mm_host host = {.n = 0};
    mm_weights gw, cw;
    mm_load(G, &host, type, &gw);
    mm_load(C, &host, type, &cw);
    mm_acts ga, gb, ca;
    mm_alloc(G, &ga);
    mm_alloc(G, &gb);
    mm_alloc(C, &ca);
    float *ref = malloc((size_t)n_steps * MM_VOCAB * 4), *lg = malloc(MM_VOCAB * 4), *lc = malloc(MM_VOCAB * 4);
    long cap0, rep0, mis0, cap1, rep1, mis1;
    hllm_cuda_graph_stats(G, &cap0, &rep0, &mis0);
    /* A: without the hooks (every op as issued), and the CPU beside it */
    double worst = 0;
    for (int i = 0; i < n_steps; i++) {
        mm_eval(G, &gw, &ga, tok + steps[i][0], steps[i][1], steps[i][0], 0, ref + (size_t)i * MM_VOCAB);
        mm_eval(C, &cw, &ca, tok + steps[i][0], steps[i][1], steps[i][0], 0, lc);
        const double e = rel_err(ref + (size_t)i * MM_VOCAB, lc, MM_VOCAB);
        worst = test_max_err(worst, e);
    }
    /* int8 activations on both sides (independently quantized) through two layers; f16 weights:
     * f32 activations on the GPU against the CPU's f16-rounded ones */
    CHECKF(worst <= 5e-2, "graph model %s: gpu vs cpu logits %.3g", hllm_type_name(type), worst);
    hllm_cuda_graph_stats(G, &cap1, &rep1, &mis1);
    CHECKF(cap1 == cap0 && rep1 == rep0, "graphs used without the hooks");
    /* B: with the hooks, the same buffers; C: with the hooks, other buffers (twice, so the
     * second round replays graphs captured on them). Captured steps fuse ops (q/k/v, gate/up,
     * matmul + residual add, rope + kv store) and must still match the op-by-op run bit for bit. */
    const long fused0 = hllm_cuda_fused_ops(G);
    for (int pass = 0; pass < 3; pass++) {
        mm_acts *a = pass == 0 ? &ga : &gb;
        int bad = -1;
        for (int i = 0; i < n_steps; i++) {
            mm_eval(G, &gw, a, tok + steps[i][0], steps[i][1], steps[i][0], 1, lg);
            if (bad < 0 && memcmp(lg, ref + (size_t)i * MM_VOCAB, MM_VOCAB * 4)) bad = i;
        }
        CHECKF(bad < 0, "graph model %s pass %d: step %d (pos0 %d n_tok %d) differs from the op-by-op run (%.3g)",
               hllm_type_name(type), pass, bad, bad >= 0 ? steps[bad][0] : 0, bad >= 0 ? steps[bad][1] : 0,
               bad >= 0 ? rel_err(lg, ref + (size_t)bad * MM_VOCAB, MM_VOCAB) : 0.0);
    }
    long cap2, rep2, mis2;
    hllm_cuda_graph_stats(G, &cap2, &rep2, &mis2);
    printf("graph model %s: gpu vs cpu %.3g; graphs captured %ld, replayed %ld, mismatched %ld\n", hllm_type_name(type),
           worst, cap2 - cap1, rep2 - rep1, mis2 - mis1);
    CHECKF(rep2 - rep1 >= 3 * (n_steps - 20), "graph model %s: only %ld replays", hllm_type_name(type), rep2 - rep1);
    CHECKF(mis2 - mis1 >= 1, "graph model %s: new buffers were not noticed", hllm_type_name(type));
    /* per layer and capture: 2 (q/k/v) + 1 (gate/up; 2 with the swiglu) + 2 (residual adds) +
     * 1 (kv store) */
    const long fused = hllm_cuda_fused_ops(G) - fused0;
    CHECKF(fused >= 6 * MM_LAYERS * (cap2 - cap1), "graph model %s: %ld ops fused in %ld captures",
           hllm_type_name(type), fused, cap2 - cap1);
    mm_free_acts(G, &ga), mm_free_acts(G, &gb), mm_free_acts(C, &ca);
    mm_free_weights(G, &gw), mm_free_weights(C, &cw);
    for (int i = 0; i < host.n; i++) free(host.data[i]);
    free(tok), free(ref), free(lg), free(lc);
    printf("graph steps %s: %s\n", hllm_type_name(type), g_test_fail == f0 ? "ok" : "FAILED");
}

static void test_graph(void) {
    test_graph_type(HLLM_TYPE_Q4_0);
    test_graph_type(HLLM_TYPE_F16);
}
#endif

int main(void) {
#ifndef HLLM_HAVE_CUDA
    printf("SKIP: the CUDA processor is not compiled into this build\n");
    return test_summary("test_cuda");
#else
    const char *why = NULL;
    if (hllm_cuda_device_count(&why) == 0) {
        printf("SKIP: %s\n", why ? why : "no CUDA device");
        return test_summary("test_cuda");
    }
    G = hllm_proc_cuda_new(0);
    C = hllm_proc_cpu_new(0);
    CHECKF(G != NULL, "hllm_proc_cuda_new: %s", hllm_error());
    CHECK(C != NULL);
    if (!G || !C) return test_summary("test_cuda");
    if (test_wanted("matmul")) test_matmul();
    if (test_wanted("act_cache")) test_act_cache();
    if (test_wanted("embed")) test_embed();
    if (test_wanted("rmsnorm")) test_rmsnorm();
    if (test_wanted("rope")) test_rope();
    if (test_wanted("attention")) test_attention();
    if (test_wanted("elementwise")) test_elementwise();
    if (test_wanted("sync_and_errors")) test_sync_and_errors();
    if (test_wanted("graph")) test_graph();
    hllm_proc_free(G);
    hllm_proc_free(C);
    return test_summary("test_cuda");
#endif
}
