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
        }
        for (int ci = 0; ci < nc; ci++)
            for (size_t k = 0; k < sizeof toks / sizeof *toks; k++) {
                const int n_tok = toks[k];
                test_matmul_case(type, 37, cols_list[ci], n_tok, (int)(k & 1), 0, 0, HLLM_MEM_DEVICE);
                test_matmul_case(type, 133, cols_list[ci], n_tok, 1, 1, (int)(k & 1), HLLM_MEM_DEVICE);
            }
        /* weights left in pinned host memory, read by the GPU over PCIe */
        test_matmul_case(type, 70, cols_list[0], 1, 1, 1, 0, HLLM_MEM_HOST);
    }
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
    if (path == 2) hllm_cuda_set_paths(-1, 0);       /* flash for every n_tok */
    op.dst = dout, op.src = dq, op.kv = &kg;
    CHECKF(G->ops->run(G, &op) == 0, "attention: %s", hllm_error());
    hllm_cuda_set_paths(-1, 8);
    dev_down(og, dout, (size_t)(n_tok * ldo));
    /* f32 arithmetic on identical (f16-rounded) inputs, different summation order and
     * exp/division placement: 1e-5 relative; and heads outside [h0, h1) untouched */
    const double e = rel_err(og, oc, (size_t)(n_tok * ldo));
    CHECKF(e <= 1e-5, "attention %s nh %d nkv %d hd %d pos0 %d n_tok %d heads [%d,%d) path %d: %.3g",
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
                for (int path = 0; path < 3; path++) {
                    const int nh = shapes[s][0];
                    const int h0 = (c & 1) ? 1 : 0, h1 = (c & 1) ? nh - 1 : nh;
                    attention_case(kt ? HLLM_TYPE_F32 : HLLM_TYPE_F16, nh, shapes[s][1], shapes[s][2], cases[c][0],
                                   cases[c][1], h0, h1, path);
                }
    /* a long context: many split-KV chunks */
    attention_case(HLLM_TYPE_F16, 8, 2, 64, 480, 1, 0, 8, 0);
    attention_case(HLLM_TYPE_F16, 8, 2, 64, 400, 5, 0, 8, 1);
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
    test_matmul();
    test_act_cache();
    test_embed();
    test_rmsnorm();
    test_rope();
    test_attention();
    test_elementwise();
    test_sync_and_errors();
    hllm_proc_free(G);
    hllm_proc_free(C);
    return test_summary("test_cuda");
#endif
}
