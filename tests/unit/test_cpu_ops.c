/* The CPU processor's non-matmul ops against plain double-precision references written from
 * the definitions (not from the kernels), through the processor interface. */
#include "proc/proc.h"
#include "proc/cpu/cpu_matmul.h"
#include "proc/cpu/cpu_ops.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static unsigned g_seed = 12345;
static float frand(void) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}
static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = frand();
}

static hllm_pweight *vec(hllm_proc *p, const float *v, int64_t n) {
    hllm_tensor t = {.name = "vec", .type = HLLM_TYPE_F32, .rows = 1, .cols = n, .data = v, .row_bytes = (size_t)n * 4};
    return p->ops->weight_load(p, &t, 0, 1, HLLM_MEM_DEVICE);
}

static void test_rmsnorm(hllm_proc *p) {
    enum { T = 3, D = 48, H = 4, HD = 12 };
    float x[T * D], w[D], y[T * D];
    fill(x, T * D);
    fill(w, D);
    hllm_pweight *pw = vec(p, w, D);
    hllm_op op = {.kind = HLLM_OP_RMSNORM, .n_tok = T, .dst = y, .src = x, .ld_dst = D, .ld_src = D, .w = pw,
                  .dim = D, .n_rows = T, .eps = 1e-5f};
    CHECK(p->ops->run(p, &op) == 0);
    double err = 0;
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[t * D + i] * x[t * D + i];
        double s = 1.0 / sqrt(ss / D + 1e-5);
        for (int i = 0; i < D; i++) err = test_max_err(err, fabs(y[t * D + i] - x[t * D + i] * s * w[i]));
    }
    CHECKF(err < 1e-5, "rmsnorm error %g", err);
    p->ops->weight_free(p, pw);
    /* per-head: each head of HD normalized on its own with an HD-long weight */
    float wh[HD];
    fill(wh, HD);
    pw = vec(p, wh, HD);
    memcpy(y, x, sizeof x);
    op = (hllm_op){.kind = HLLM_OP_RMSNORM, .n_tok = T, .dst = y, .src = y, .ld_dst = D, .ld_src = D, .w = pw,
                   .dim = HD, .n_rows = T * H, .eps = 1e-6f};
    CHECK(p->ops->run(p, &op) == 0);
    err = 0;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *xs = x + t * D + h * HD;
            double ss = 0;
            for (int i = 0; i < HD; i++) ss += (double)xs[i] * xs[i];
            double s = 1.0 / sqrt(ss / HD + 1e-6);
            for (int i = 0; i < HD; i++) err = test_max_err(err, fabs(y[t * D + h * HD + i] - xs[i] * s * wh[i]));
        }
    CHECKF(err < 1e-5, "per-head rmsnorm error %g", err);
    p->ops->weight_free(p, pw);
}

static void test_rope(hllm_proc *p, hllm_rope_type type, bool factors) {
    enum { T = 5, NH = 4, NKV = 2, HD = 16, NROT = 12 };
    float q[T * NH * HD], k[T * NKV * HD], q0[T * NH * HD], k0[T * NKV * HD], ff[NROT / 2];
    fill(q, sizeof q / 4);
    fill(k, sizeof k / 4);
    for (int i = 0; i < NROT / 2; i++) ff[i] = 1.0f + (float)i;
    memcpy(q0, q, sizeof q);
    memcpy(k0, k, sizeof k);
    hllm_pweight *pf = factors ? vec(p, ff, NROT / 2) : NULL;
    const int pos0 = 7;
    const float base = 10000.0f, fscale = 0.5f;
    hllm_op op = {.kind = HLLM_OP_ROPE, .n_tok = T, .dst = q, .src2 = k, .ld_dst = NH * HD, .ld_src2 = NKV * HD,
                  .pos0 = pos0, .n_head = NH, .n_head_kv = NKV, .head_dim = HD, .n_rot = NROT, .rope_type = type,
                  .freq_base = base, .freq_scale = fscale, .freq_factors = pf};
    CHECK(p->ops->run(p, &op) == 0);
    double err = 0;
    for (int which = 0; which < 2; which++) {
        const int nh = which ? NKV : NH;
        const float *in = which ? k0 : q0, *out = which ? k : q;
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++) {
                const float *a = in + (t * nh + h) * HD, *b = out + (t * nh + h) * HD;
                for (int i = 0; i < NROT / 2; i++) {
                    double th = (pos0 + t) * fscale * pow(base, -2.0 * i / NROT) / (factors ? ff[i] : 1.0);
                    int i0 = type == HLLM_ROPE_NEOX ? i : 2 * i, i1 = type == HLLM_ROPE_NEOX ? i + NROT / 2 : 2 * i + 1;
                    double r0 = a[i0] * cos(th) - a[i1] * sin(th), r1 = a[i0] * sin(th) + a[i1] * cos(th);
                    err = test_max_err(test_max_err(err, fabs(b[i0] - r0)), fabs(b[i1] - r1));
                }
                for (int i = NROT; i < HD; i++) err = test_max_err(err, fabs(b[i] - a[i])); /* past n_rot: untouched */
            }
    }
    CHECKF(err < 1e-4, "rope type %d factors %d error %g", (int)type, factors, err);
    if (pf) p->ops->weight_free(p, pf);
}

/* nh query heads over nkv kv heads of hd, t tokens after pos0 cached ones; q scaled by qmul
 * (larger: peakier softmax, scores far apart, more max updates and exps deep in the tail). The
 * t tokens see pos0+1 .. pos0+t keys: with t >= 8 every remainder of an 8- or 16-key block. */
static void test_attention_case(hllm_proc *p, int kv_type, int nh, int nkv, int hd, int pos0, int t_n, float qmul) {
    const int kvd = nkv * hd, ctx = pos0 + t_n, rows = pos0 + t_n;
    const size_t elt = kv_type == HLLM_TYPE_F16 ? 2 : 4;
    hllm_kv kv = {.k = calloc((size_t)ctx * kvd, elt), .v = calloc((size_t)ctx * kvd, elt), .type = kv_type, .n_ctx = ctx};
    /* history rows 0..pos0-1 and this batch's rows, stored through KV_STORE */
    float *K = malloc((size_t)rows * kvd * 4), *V = malloc((size_t)rows * kvd * 4);
    float *q = malloc((size_t)t_n * nh * hd * 4), *out = malloc((size_t)t_n * nh * hd * 4);
    double *s = malloc((size_t)rows * sizeof(double));
    fill(K, (size_t)rows * kvd);
    fill(V, (size_t)rows * kvd);
    fill(q, (size_t)t_n * nh * hd);
    for (int i = 0; i < t_n * nh * hd; i++) q[i] *= qmul;
    if (kv_type == HLLM_TYPE_F16) /* the reference sees what the cache holds: q, K, V in f16 */
        for (int i = 0; i < t_n * nh * hd; i++) q[i] = hllm_fp16_to_f32(hllm_f32_to_fp16(q[i]));
    hllm_op st = {.kind = HLLM_OP_KV_STORE, .n_tok = rows, .src = K, .src2 = V, .ld_src = kvd, .ld_src2 = kvd,
                  .pos0 = 0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .kv = &kv};
    CHECK(p->ops->run(p, &st) == 0);
    if (kv_type == HLLM_TYPE_F16)
        for (int i = 0; i < rows * kvd; i++) {
            K[i] = hllm_fp16_to_f32(hllm_f32_to_fp16(K[i]));
            V[i] = hllm_fp16_to_f32(hllm_f32_to_fp16(V[i]));
        }
    hllm_op op = {.kind = HLLM_OP_ATTENTION, .n_tok = t_n, .dst = out, .src = q, .ld_dst = nh * hd, .ld_src = nh * hd,
                  .pos0 = pos0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .h0 = 0, .h1 = nh,
                  .attn_scale = 1.0f / sqrtf((float)hd), .kv = &kv};
    CHECK(p->ops->run(p, &op) == 0);
    double err = 0;
    for (int t = 0; t < t_n; t++)
        for (int h = 0; h < nh; h++) {
            const int g = h / (nh / nkv), n = pos0 + t + 1;
            double mx = -1e30, sum = 0;
            for (int j = 0; j < n; j++) {
                s[j] = 0;
                for (int i = 0; i < hd; i++) s[j] += (double)q[(t * nh + h) * hd + i] * K[j * kvd + g * hd + i];
                s[j] /= sqrt(hd);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int j = 0; j < n; j++) o += s[j] / sum * V[j * kvd + g * hd + i];
                err = test_max_err(err, fabs(out[(t * nh + h) * hd + i] - o));
            }
        }
    /* against a reference fed the same f16-rounded q, K, V, both cache types are only float
     * accumulation (and the SIMD exp) away: outputs are weighted means of values in [-1, 1] */
    const double tol = 1e-5;
    CHECKF(err < tol, "attention kv %s nh %d nkv %d hd %d pos0 %d t %d qmul %g: error %g (tol %g)",
           kv_type == HLLM_TYPE_F16 ? "f16" : "f32", nh, nkv, hd, pos0, t_n, qmul, err, tol);
    free(kv.k);
    free(kv.v);
    free(K);
    free(V);
    free(q);
    free(out);
    free(s);
}

static void test_attention(hllm_proc *p, int kv_type) {
    test_attention_case(p, kv_type, 4, 2, 8, 5, 6, 1.0f);       /* small: a partial block only */
    test_attention_case(p, kv_type, 8, 8, 64, 17, 9, 1.0f);     /* no GQA, all remainders of 8 */
    test_attention_case(p, kv_type, 32, 8, 64, 1091, 9, 1.0f);  /* llama3.2-1b shape, 1092..1100 keys */
    test_attention_case(p, kv_type, 12, 2, 128, 1030, 17, 1.0f); /* qwen2.5-1.5b shape, group 6 */
    test_attention_case(p, kv_type, 16, 1, 128, 300, 5, 8.0f);  /* group 16 (the fast path's max), peaky */
    test_attention_case(p, kv_type, 6, 2, 64, 2000, 3, 4.0f);   /* long and peaky: many max updates */
}

/* The SIMD attention kernel of this build (AVX2 on x86-64, NEON on aarch64) called directly
 * against the scalar hllm_cpu_attention_items on the same cache: head ranges [h0, h1) of whole
 * GQA groups, items split in two calls; heads outside the range stay untouched. Through the
 * processor (test_attention) a missing kernel would fall back to scalar vs scalar unseen. */
static void test_attention_simd_case(int kv_type, int nh, int nkv, int hd, int pos0, int t_n, int h0, int h1,
                                     float qmul) {
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__x86_64__)
    if (hllm_cpu_isa_detect() == HLLM_ISA_SCALAR) return; /* no AVX2 + FMA + F16C */
    void (*simd)(const hllm_op *, int64_t, int64_t) = hllm_cpu_attention_items_avx2;
#else
    void (*simd)(const hllm_op *, int64_t, int64_t) = hllm_cpu_attention_items_neon;
#endif
    const int kvd = nkv * hd, ctx = pos0 + t_n, group = nh / nkv, ld = nh * hd;
    const size_t elt = kv_type == HLLM_TYPE_F16 ? 2 : 4;
    hllm_kv kv = {.k = malloc((size_t)ctx * kvd * elt), .v = malloc((size_t)ctx * kvd * elt), .type = kv_type, .n_ctx = ctx};
    for (int64_t i = 0; i < (int64_t)ctx * kvd; i++) {
        const float k = frand(), v = frand();
        if (kv_type == HLLM_TYPE_F16) {
            ((uint16_t *)kv.k)[i] = hllm_f32_to_fp16(k);
            ((uint16_t *)kv.v)[i] = hllm_f32_to_fp16(v);
        } else {
            ((float *)kv.k)[i] = k;
            ((float *)kv.v)[i] = v;
        }
    }
    float *q = malloc((size_t)t_n * ld * 4), *ref = malloc((size_t)t_n * ld * 4), *out = malloc((size_t)t_n * ld * 4);
    float *scratch = malloc((size_t)ctx * 4);
    fill(q, (size_t)t_n * ld);
    for (int i = 0; i < t_n * ld; i++) q[i] *= qmul;
    for (int i = 0; i < t_n * ld; i++) ref[i] = out[i] = -1234.5f;
    hllm_op op = {.kind = HLLM_OP_ATTENTION, .n_tok = t_n, .dst = out, .src = q, .ld_dst = ld, .ld_src = ld,
                  .pos0 = pos0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .h0 = h0, .h1 = h1,
                  .attn_scale = 1.0f / sqrtf((float)hd), .kv = &kv};
    CHECK(hllm_cpu_attention_fast_ok(&op));
    const int64_t items = (int64_t)t_n * (h1 - h0) / group, mid = items / 3;
    simd(&op, 0, mid);
    simd(&op, mid, items);
    op.dst = ref;
    hllm_cpu_attention_items(&op, 0, (int64_t)t_n * (h1 - h0), scratch);
    double err = 0;
    int outside = 0;
    for (int t = 0; t < t_n; t++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd; i++) {
                const float a = out[t * ld + h * hd + i], b = ref[t * ld + h * hd + i];
                if (h < h0 || h >= h1) outside += a != -1234.5f;
                else err = test_max_err(err, fabs((double)a - b));
            }
    /* outputs are weighted means of values in [-1, 1]: float accumulation and exp's error (up to
     * ~2e-6 with qmul 8, where scores of ~20 carry their rounding into exp's argument) */
    CHECKF(err < 5e-6 && outside == 0, "SIMD attention kv %s nh %d nkv %d hd %d pos0 %d t %d heads %d..%d: "
           "error %g vs the scalar kernel, %d writes outside the heads", kv_type == HLLM_TYPE_F16 ? "f16" : "f32",
           nh, nkv, hd, pos0, t_n, h0, h1, err, outside);
    free(kv.k), free(kv.v), free(q), free(ref), free(out), free(scratch);
#else
    (void)kv_type, (void)nh, (void)nkv, (void)hd, (void)pos0, (void)t_n, (void)h0, (void)h1, (void)qmul;
#endif
}

static void test_attention_simd(void) {
    for (int kt = 0; kt < 2; kt++) {
        const int type = kt ? HLLM_TYPE_F16 : HLLM_TYPE_F32;
        test_attention_simd_case(type, 4, 2, 8, 5, 6, 0, 4, 1.0f);      /* a partial block only */
        test_attention_simd_case(type, 8, 8, 64, 17, 9, 2, 7, 1.0f);    /* no GQA, every remainder of 8 */
        test_attention_simd_case(type, 12, 2, 128, 1030, 9, 6, 12, 1.0f); /* group 6, second group only */
        test_attention_simd_case(type, 32, 8, 64, 100, 4, 8, 24, 4.0f);  /* group 4, middle groups, peaky */
        test_attention_simd_case(type, 16, 1, 128, 300, 3, 0, 16, 8.0f); /* group 16, peaky */
        test_attention_simd_case(type, 2, 1, 512, 40, 3, 0, 2, 1.0f);    /* the widest head */
    }
}

/* The AVX-512 SwiGLU row against the scalar formula in double: arguments across exp's whole
 * range (saturating both ways) and ragged lengths for the masked tail. */
static void test_swiglu_avx512(void) {
#if defined(__x86_64__)
    if (hllm_cpu_isa() != HLLM_ISA_AVX512) {
        printf("swiglu avx512: skipped (no AVX-512)\n");
        return;
    }
    enum { N = 4099 };
    static float g[N], u[N], y[N];
    for (int i = 0; i < N; i++) {
        g[i] = -120.0f + 240.0f * (float)i / (float)(N - 1) + 1e-3f * (float)(i % 7);
        u[i] = 0.5f + (float)(i % 13) * 0.25f;
    }
    double worst = 0;
    for (int n = 1; n <= N; n += n < 40 ? 1 : 409) {
        hllm_cpu_swiglu_row_avx512(g, u, y, n);
        for (int i = 0; i < n; i++) {
            const double ref = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
            const double err = fabs(y[i] - ref) / fmax(fabs(ref), 1e-30);
            if (fabs(ref) > 1e-30) worst = test_max_err(worst, err);
        }
    }
    CHECKF(worst < 1e-6, "swiglu avx512: worst relative error %g", worst);
#endif
}

static void test_swiglu_add(hllm_proc *p) {
    enum { T = 3, D = 37 };
    float g[T * D], u[T * D], y[T * D], x[T * D], y0[T * D];
    fill(g, T * D);
    fill(u, T * D);
    fill(x, T * D);
    hllm_op op = {.kind = HLLM_OP_SWIGLU, .n_tok = T, .dst = y, .src = g, .src2 = u, .ld_dst = D, .ld_src = D, .ld_src2 = D, .dim = D};
    CHECK(p->ops->run(p, &op) == 0);
    double err = 0;
    for (int i = 0; i < T * D; i++) err = test_max_err(err, fabs(y[i] - g[i] / (1.0 + exp(-(double)g[i])) * u[i]));
    CHECKF(err < 1e-6, "swiglu error %g", err);
    op.n_tok = 1; /* decode splits columns across threads */
    CHECK(p->ops->run(p, &op) == 0);
    memcpy(y0, y, sizeof y);
    op = (hllm_op){.kind = HLLM_OP_ADD, .n_tok = T, .dst = y, .src = x, .ld_dst = D, .ld_src = D, .dim = D};
    CHECK(p->ops->run(p, &op) == 0);
    err = 0;
    for (int i = 0; i < T * D; i++) err = test_max_err(err, fabs(y[i] - (y0[i] + x[i])));
    CHECKF(err < 1e-6, "add error %g", err);
}

/* A one-token matmul whose output overwrites its input (the processor interface allows it, the
 * CUDA tests use it): every thread must read the input before any thread writes its rows, so
 * the result equals the out-of-place one bit for bit. */
static void test_matmul_in_place(hllm_proc *p) {
    enum { N = 512 };
    const int types[] = {HLLM_TYPE_Q4_0, HLLM_TYPE_Q8_0, HLLM_TYPE_F16};
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const size_t rb = hllm_row_bytes(types[ti], N);
        float *wf = malloc((size_t)N * N * 4), *x = malloc(N * 4), *y = malloc(N * 4), *z = malloc(N * 4);
        char *wq = malloc((size_t)N * rb);
        fill(wf, (size_t)N * N);
        fill(x, N);
        for (int r = 0; r < N; r++) hllm_quantize_row(types[ti], wf + (size_t)r * N, wq + (size_t)r * rb, N);
        hllm_tensor t = {.name = "w", .type = types[ti], .rows = N, .cols = N, .data = wq, .row_bytes = rb};
        hllm_pweight *w = p->ops->weight_load(p, &t, 0, N, HLLM_MEM_DEVICE);
        CHECK(w != NULL);
        hllm_op op = {.kind = HLLM_OP_MATMUL, .n_tok = 1, .dst = y, .src = x, .ld_dst = N, .ld_src = N, .w = w, .r0 = 0, .r1 = N};
        CHECK(p->ops->run(p, &op) == 0);
        int bad = 0;
        for (int rep = 0; rep < 20; rep++) { /* a race shows in some runs, not all */
            memcpy(z, x, N * 4);
            op.dst = z;
            op.src = z;
            CHECK(p->ops->run(p, &op) == 0);
            bad += memcmp(z, y, N * 4) != 0;
        }
        CHECKF(bad == 0, "in-place %s matmul, %d threads: %d of 20 runs differ from out of place", hllm_type_name(types[ti]),
               p->n_threads, bad);
        p->ops->weight_free(p, w);
        free(wf), free(x), free(y), free(z), free(wq);
    }
}

/* One-token matmuls over a processor's slice of a cut matrix: few 64-row stripes per thread,
 * so the columns are split as well (partial sums per piece, then added). Every case against
 * the scalar ISA running the same op: a wrong column range or a lost piece is off by O(10).
 * The split's ISA: AVX-512 (Q4_0, Q8_0, Q4_K; the other types run by rows there) or NEON
 * (every type). */
static void test_matmul_decode_split(void) {
    const hllm_isa simd = hllm_cpu_set_isa(HLLM_ISA_AVX512) == 0 ? HLLM_ISA_AVX512
                          : hllm_cpu_set_isa(HLLM_ISA_NEON) == 0 ? HLLM_ISA_NEON
                                                                  : HLLM_ISA_SCALAR;
    if (simd == HLLM_ISA_SCALAR) {
        printf("  skip: decode column split (neither AVX-512 nor NEON here: the split has no kernel elsewhere)\n");
        return;
    }
    struct { int type, nt; int64_t rows, cols, w0, w1, r0, r1; bool bias; } cs[] = {
        {HLLM_TYPE_Q4_0, 16, 1536, 4096, 0, 1475, 0, 1475, false},     /* 24 stripes on 16 threads */
        {HLLM_TYPE_Q4_0, 16, 1600, 14336 / 4, 64, 1539, 64, 1539, true}, /* slice from row 64, bias */
        {HLLM_TYPE_Q4_0, 16, 1536, 4096, 0, 1536, 128, 1000, false},   /* op rows inside the slice */
        {HLLM_TYPE_Q4_0, 16, 1536, 4096, 0, 1536, 16, 1000, false},    /* not stripe-aligned: rows only */
        {HLLM_TYPE_Q8_0, 16, 1024, 1024, 0, 700, 0, 700, false},
        {HLLM_TYPE_Q4_K, 16, 1024, 4096, 0, 330, 0, 330, true},
        {HLLM_TYPE_Q4_0, 2, 256, 4096, 0, 150, 0, 150, false},         /* 3 stripes on 2 threads */
        {HLLM_TYPE_Q4_K, 3, 256, 2048, 0, 200, 0, 200, false},
        {HLLM_TYPE_Q6_K, 3, 256, 2048, 0, 200, 0, 200, true},
        {HLLM_TYPE_F16, 2, 256, 1000, 0, 150, 0, 150, false},          /* a ragged last float block */
        {HLLM_TYPE_F32, 2, 256, 512, 64, 256, 64, 256, true},          /* 3 stripes from row 64 */
        {HLLM_TYPE_BF16, 2, 256, 640, 0, 150, 0, 150, false},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof *cs; ci++) {
        const int64_t R = cs[ci].rows, K = cs[ci].cols;
        const size_t rb = hllm_row_bytes(cs[ci].type, K);
        float *wf = malloc((size_t)(R * K) * 4), *x = malloc((size_t)K * 4), *b = malloc((size_t)R * 4);
        float *y = calloc((size_t)R, 4), *yref = calloc((size_t)R, 4);
        char *wq = malloc((size_t)R * rb);
        fill(wf, (size_t)(R * K));
        fill(x, (size_t)K);
        fill(b, (size_t)R);
        for (int64_t r = 0; r < R; r++) hllm_quantize_row(cs[ci].type, wf + r * K, wq + r * rb, K);
        hllm_tensor t = {.name = "w", .type = cs[ci].type, .rows = R, .cols = K, .data = wq, .row_bytes = rb};
        hllm_tensor tb = {.name = "b", .type = HLLM_TYPE_F32, .rows = 1, .cols = R, .data = b, .row_bytes = (size_t)R * 4};
        float err = 0, mag = 0;
        for (int pass = 0; pass < 2; pass++) {
            const hllm_isa isa = pass ? simd : HLLM_ISA_SCALAR;
            hllm_cpu_set_isa(isa); /* weights are packed for the ISA in use when loaded */
            hllm_proc *p = hllm_proc_cpu_new(cs[ci].nt);
            CHECK(p != NULL);
            if (!p) break;
            hllm_pweight *w = p->ops->weight_load(p, &t, cs[ci].w0, cs[ci].w1, HLLM_MEM_DEVICE);
            hllm_pweight *pb = cs[ci].bias ? p->ops->weight_load(p, &tb, 0, 1, HLLM_MEM_DEVICE) : NULL;
            CHECK(w != NULL);
            float *out = isa == HLLM_ISA_SCALAR ? yref : y;
            hllm_op op = {.kind = HLLM_OP_MATMUL, .n_tok = 1, .dst = out, .src = x, .ld_dst = R, .ld_src = K,
                          .w = w, .bias = pb, .r0 = cs[ci].r0, .r1 = cs[ci].r1};
            for (int rep = 0; rep < 3 && w; rep++) CHECK(p->ops->run(p, &op) == 0);
            if (pb) p->ops->weight_free(p, pb);
            if (w) p->ops->weight_free(p, w);
            hllm_proc_free(p);
        }
        hllm_cpu_set_isa(hllm_cpu_isa_detect());
        int outside = 0;
        for (int64_t r = 0; r < R; r++) {
            if (r < cs[ci].r0 || r >= cs[ci].r1) {
                outside += y[r] != 0;
                continue;
            }
            err = (float)test_max_err(err, fabsf(y[r] - yref[r]));
            mag = fmaxf(mag, fabsf(yref[r]));
        }
        CHECKF(err <= 1e-4f * (1 + mag) && mag > 1, "decode split case %zu (%s, %lld rows, %d threads): max error %g (values up to %g)",
               ci, hllm_type_name(cs[ci].type), (long long)(cs[ci].r1 - cs[ci].r0), cs[ci].nt, err, mag);
        CHECKF(outside == 0, "decode split case %zu: %d rows outside [r0, r1) written", ci, outside);
        free(wf), free(x), free(b), free(y), free(yref), free(wq);
    }
}

/* Decode matmuls of one input issued in a row, marked `more` but the last, run as one region
 * when the last comes: each output must equal the same matmul run alone, whether its rows are
 * chunked or its stripes' columns split, whole or a slice, with or without a bias. */
static void test_matmul_group(hllm_proc *p, int type) {
    enum { K = 512, NM = 3 };
    const int64_t rows[NM] = {320, 64, 1000}, r0[NM] = {0, 0, 64};
    const size_t rb = hllm_row_bytes(type, K);
    float *x = malloc(K * 4), *bias = malloc(1000 * 4);
    fill(x, K);
    fill(bias, 1000);
    hllm_pweight *w[NM], *pb = vec(p, bias, 1000);
    char *wq[NM];
    float *alone[NM], *grouped[NM];
    for (int m = 0; m < NM; m++) {
        float *wf = malloc((size_t)rows[m] * K * 4);
        fill(wf, (size_t)rows[m] * K);
        wq[m] = malloc((size_t)rows[m] * rb);
        for (int64_t r = 0; r < rows[m]; r++) hllm_quantize_row(type, wf + r * K, wq[m] + r * rb, K);
        hllm_tensor t = {.name = "w", .type = type, .rows = rows[m], .cols = K, .data = wq[m], .row_bytes = rb};
        w[m] = p->ops->weight_load(p, &t, 0, rows[m], HLLM_MEM_DEVICE);
        alone[m] = calloc((size_t)rows[m], 4);
        grouped[m] = calloc((size_t)rows[m], 4);
        free(wf);
    }
    hllm_op op[NM];
    for (int m = 0; m < NM; m++)
        op[m] = (hllm_op){.kind = HLLM_OP_MATMUL, .n_tok = 1, .src = x, .ld_src = K, .ld_dst = rows[m], .w = w[m], .r0 = r0[m],
                          .r1 = rows[m], .bias = m == 2 ? pb : NULL};
    for (int m = 0; m < NM; m++) {
        op[m].dst = alone[m];
        CHECK(p->ops->run(p, &op[m]) == 0 && p->ops->finish(p) == 0);
    }
    for (int m = 0; m < NM; m++) { /* marked: another of the same input follows, but the last */
        op[m].dst = grouped[m];
        op[m].more = m + 1 < NM;
        CHECK(p->ops->run(p, &op[m]) == 0);
    }
    for (int m = 0; m < NM; m++) {
        CHECKF(memcmp(alone[m], grouped[m], (size_t)rows[m] * 4) == 0, "%s matmul %d of a group, %d threads: differs from it alone",
               hllm_type_name(type), m, p->n_threads);
        p->ops->weight_free(p, w[m]);
        free(wq[m]), free(alone[m]), free(grouped[m]);
    }
    p->ops->weight_free(p, pb);
    free(x), free(bias);
}

int main(void) {
    test_attention_simd();
    test_matmul_decode_split();
    for (int nt = 1; nt <= 4; nt += 3) {
        hllm_proc *p = hllm_proc_cpu_new(nt);
        CHECK(p != NULL);
        if (p) {
            test_matmul_group(p, HLLM_TYPE_Q4_0);
            test_matmul_group(p, HLLM_TYPE_Q8_0);
            test_matmul_group(p, HLLM_TYPE_F16);
        }
        hllm_proc_free(p);
    }
    for (int nt = 1; nt <= 4; nt++) {
        hllm_proc *p = hllm_proc_cpu_new(nt);
        CHECK(p != NULL);
        if (p) test_matmul_in_place(p);
        hllm_proc_free(p);
    }
    for (int nt = 1; nt <= 3; nt++) {
        hllm_proc *p = hllm_proc_cpu_new(nt);
        CHECK(p != NULL);
        if (!p) continue;
        test_rmsnorm(p);
        test_rope(p, HLLM_ROPE_NORM, false);
        test_rope(p, HLLM_ROPE_NEOX, false);
        test_rope(p, HLLM_ROPE_NORM, true);
        /* the scalar reference and the SIMD path (where this CPU has one: AVX2/AVX-512 or NEON) */
        for (int isa = HLLM_ISA_SCALAR; isa <= HLLM_ISA_NEON; isa++) {
            if (hllm_cpu_set_isa((hllm_isa)isa) != 0) continue;
            test_attention(p, HLLM_TYPE_F32);
            test_attention(p, HLLM_TYPE_F16);
        }
        hllm_cpu_set_isa(hllm_cpu_isa_detect());
        test_swiglu_add(p);
        test_swiglu_avx512();
        hllm_proc_free(p);
    }
    return test_summary("test_cpu_ops");
}
