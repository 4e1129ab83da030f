/* The CUDA processor's fusions of captured steps (cuda_fuse.cu): op sequences run with the
 * step hooks (captured, then replayed: fused where allowed) must leave every buffer
 * bit-identical to the same sequence run op by op, both where fusing is allowed (and counted)
 * and where aliasing forbids it (and nothing is fused). Without a CUDA build or device it
 * prints "SKIP: <reason>" and passes. */
#include "proc/proc.h"
#include "core/error.h"
#include "core/quant.h"
#include "testutil.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef HLLM_HAVE_CUDA
#include "proc/cuda/cuda_proc.h"

enum { D = 256, NT = 2, NBUF = 6, STEPS = 3 };

static hllm_proc *G;
static uint64_t g_shape = 1000; /* a new step shape for each case: no graph of another case applies */
static unsigned g_seed = 777;
static float frand(void) { /* uniform in [-1, 1) */
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)(g_seed >> 8) / (float)(1u << 23) - 1.0f;
}

static hllm_pweight *mat(int type, int64_t rows, int64_t cols, void **keep) {
    const size_t rb = hllm_row_bytes(type, cols);
    float *f = malloc((size_t)cols * 4);
    char *q = malloc((size_t)rows * rb);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < cols; i++) f[i] = frand() / sqrtf((float)cols);
        hllm_quantize_row(type, f, q + r * rb, cols);
    }
    free(f);
    *keep = q;
    hllm_tensor t = {.name = "w", .type = type, .rows = rows, .cols = cols, .data = q, .row_bytes = rb};
    return G->ops->weight_load(G, &t, 0, rows, HLLM_MEM_DEVICE);
}

/* Two identical sets of NBUF activation buffers of NT x D: one run op by op, one with hooks. */
typedef struct {
    float *b[2][NBUF];
} bufs;

static void bufs_init(bufs *s) {
    float *h = malloc(NT * D * 4);
    for (int i = 0; i < NBUF; i++) {
        for (int k = 0; k < NT * D; k++) h[k] = frand();
        for (int set = 0; set < 2; set++) {
            s->b[set][i] = G->ops->alloc(G, NT * D * 4, HLLM_MEM_DEVICE);
            G->ops->copy_in(G, s->b[set][i], h, NT * D * 4);
        }
    }
    free(h);
}

static void bufs_free(bufs *s) {
    for (int set = 0; set < 2; set++)
        for (int i = 0; i < NBUF; i++) G->ops->free(G, s->b[set][i]);
}

/* All buffers of the two sets equal, bit for bit. */
static int bufs_same(const bufs *s) {
    float *a = malloc(NT * D * 4), *b = malloc(NT * D * 4);
    int same = 1;
    for (int i = 0; i < NBUF; i++) {
        G->ops->copy_out(G, a, s->b[0][i], NT * D * 4);
        G->ops->copy_out(G, b, s->b[1][i], NT * D * 4);
        CHECK(G->ops->finish(G) == 0);
        same &= !memcmp(a, b, NT * D * 4);
    }
    free(a), free(b);
    return same;
}

static hllm_op mm(float *dst, const float *src, const hllm_pweight *w, int64_t r1) {
    return (hllm_op){.kind = HLLM_OP_MATMUL, .n_tok = NT, .dst = dst, .src = src, .ld_dst = D, .ld_src = D, .w = w,
                     .r0 = 0, .r1 = r1};
}

static hllm_op swiglu(float *dst, const float *up) {
    return (hllm_op){.kind = HLLM_OP_SWIGLU, .n_tok = NT, .dst = dst, .src = dst, .src2 = up, .ld_dst = D, .ld_src = D,
                     .ld_src2 = D, .dim = D};
}

static hllm_op add(float *dst, const float *src) {
    return (hllm_op){.kind = HLLM_OP_ADD, .n_tok = NT, .dst = dst, .src = src, .ld_dst = D, .ld_src = D, .dim = D};
}

/* Runs ops (built for set 0, pointers mapped to set `set`) as one step, with hooks or not. */
static void run_seq(const bufs *s, const hllm_op *ops, int n, int set, uint64_t shape) {
    if (set) CHECK(G->ops->step_begin(G, shape, 0, NULL, NT) >= 0);
    for (int i = 0; i < n; i++) {
        hllm_op o = ops[i];
        for (int k = 0; k < NBUF; k++) {
            if (o.dst == s->b[0][k]) o.dst = s->b[set][k];
            if (o.src == s->b[0][k]) o.src = s->b[set][k];
            if (o.src2 == s->b[0][k]) o.src2 = s->b[set][k];
        }
        CHECKF(G->ops->run(G, &o) == 0, "op %d: %s", i, hllm_error());
    }
    if (set) CHECK(G->ops->step_end(G) == 0);
    CHECK(G->ops->finish(G) == 0);
}

/* hazard 0: q/k/v-like matmuls of one input (3 fused into 1) and a matmul + residual add (fused);
 * hazard 1: an in-place matmul before another of its input, an add into the matmul's own input,
 * an add of a matmul that wrote only half the rows: none may be fused;
 * hazard 2: gate, up, swiglu (one kernel for quantized types; float: gate/up joined), then the
 * down matmul reading the swiglu's q8_1 copy + residual add;
 * hazard 3: the same but the swiglu's second input is not the up output: no gate/up/swiglu
 * kernel (gate and up still share a launch). */
static void matmul_case(int type, int hazard) {
    const int f0 = g_test_fail;
    void *keep[5];
    hllm_pweight *w[5];
    for (int i = 0; i < 5; i++) w[i] = mat(type, D, D, &keep[i]);
    bufs s;
    bufs_init(&s);
    float **b = s.b[0];
    hllm_op ops[8];
    int n = 0, expect;
    if (!hazard) {
        ops[n++] = mm(b[1], b[0], w[0], D);
        ops[n++] = mm(b[2], b[0], w[1], D);
        ops[n++] = mm(b[3], b[0], w[2], D);
        ops[n++] = mm(b[4], b[1], w[3], D);
        ops[n++] = add(b[0], b[4]);
        expect = 3;
    } else {
        ops[n++] = mm(b[0], b[0], w[0], D); /* writes its own input, */
        ops[n++] = mm(b[1], b[0], w[1], D); /* which this one must read afterwards */
        ops[n++] = mm(b[2], b[1], w[2], D);
        ops[n++] = add(b[1], b[2]); /* adds into the matmul's input */
        ops[n++] = mm(b[3], b[4], w[3], D / 2);
        ops[n++] = add(b[5], b[3]); /* reads rows the matmul did not write */
        expect = 0;
    }
    if (hazard >= 2) {
        n = 0;
        ops[n++] = mm(b[1], b[0], w[0], D);
        ops[n++] = mm(b[2], b[0], w[1], D);
        ops[n++] = swiglu(b[1], hazard == 2 ? b[2] : b[4]);
        ops[n++] = mm(b[3], b[1], w[2], D);
        ops[n++] = add(b[0], b[3]);
        expect = hazard == 2 && type != HLLM_TYPE_F32 ? 3 : 2;
    }
    const long fused0 = hllm_cuda_fused_ops(G);
    const uint64_t shape = ++g_shape;
    for (int step = 0; step < STEPS; step++) {
        run_seq(&s, ops, n, 0, 0);
        run_seq(&s, ops, n, 1, shape);
        CHECKF(bufs_same(&s), "%s hazard %d step %d: hooks differ from op by op", hllm_type_name(type), hazard, step);
    }
    const long fused = hllm_cuda_fused_ops(G) - fused0;
    CHECKF(fused == expect, "%s hazard %d: %ld ops fused, expected %d", hllm_type_name(type), hazard, fused, expect);
    bufs_free(&s);
    for (int i = 0; i < 5; i++) G->ops->weight_free(G, w[i]), free(keep[i]);
    printf("fused matmuls %s hazard %d: %s\n", hllm_type_name(type), hazard, g_test_fail == f0 ? "ok" : "FAILED");
}

/* ROPE + KV_STORE (fused) against op by op: partial and full rotation, both rope types,
 * frequency factors, f16 and f32 caches, positions advancing step by step. */
static void rope_kv_case(int kv_type, int neox, int n_rot, int with_ff) {
    const int f0 = g_test_fail;
    const int nh = 4, nkv = 2, hd = 64, n_ctx = 16;
    const int64_t qd = nh * hd, kd = nkv * hd;
    const size_t elt = kv_type == HLLM_TYPE_F16 ? 2 : 4;
    float ff[32];
    for (int i = 0; i < 32; i++) ff[i] = 1.0f + 3.0f * (float)i / 31.0f;
    hllm_tensor tf = {.name = "ff", .type = HLLM_TYPE_F32, .rows = 1, .cols = n_rot / 2, .data = ff,
                      .row_bytes = (size_t)n_rot / 2 * 4};
    hllm_pweight *gf = with_ff ? G->ops->weight_load(G, &tf, 0, 1, HLLM_MEM_DEVICE) : NULL;
    float *q[2], *k[2], *v[2];
    hllm_kv kv[2];
    float *h = malloc((size_t)NT * qd * 4);
    for (int set = 0; set < 2; set++) {
        q[set] = G->ops->alloc(G, (size_t)NT * qd * 4, HLLM_MEM_DEVICE);
        k[set] = G->ops->alloc(G, (size_t)NT * kd * 4, HLLM_MEM_DEVICE);
        v[set] = G->ops->alloc(G, (size_t)NT * kd * 4, HLLM_MEM_DEVICE);
        kv[set] = (hllm_kv){.type = kv_type, .n_ctx = n_ctx};
        kv[set].k = G->ops->alloc(G, (size_t)n_ctx * kd * elt, HLLM_MEM_DEVICE);
        kv[set].v = G->ops->alloc(G, (size_t)n_ctx * kd * elt, HLLM_MEM_DEVICE);
        /* the rows no step writes must compare equal too */
        void *z = calloc((size_t)n_ctx * kd, elt);
        G->ops->copy_in(G, kv[set].k, z, (size_t)n_ctx * kd * elt);
        G->ops->copy_in(G, kv[set].v, z, (size_t)n_ctx * kd * elt);
        free(z);
    }
    const long fused0 = hllm_cuda_fused_ops(G);
    const uint64_t shape = ++g_shape;
    int same = 1;
    for (int step = 0; step < STEPS; step++) {
        const int pos0 = step * NT;
        /* fresh q, k, v each step (as the matmuls before them would write) */
        float *srcs[3][2] = {{q[0], q[1]}, {k[0], k[1]}, {v[0], v[1]}};
        const int64_t widths[3] = {qd, kd, kd};
        for (int a = 0; a < 3; a++) {
            for (int64_t i = 0; i < NT * widths[a]; i++) h[i] = 2.0f * frand();
            for (int set = 0; set < 2; set++) G->ops->copy_in(G, srcs[a][set], h, (size_t)(NT * widths[a]) * 4);
        }
        for (int set = 0; set < 2; set++) {
            hllm_op rope = {.kind = HLLM_OP_ROPE, .n_tok = NT, .dst = q[set], .src2 = k[set], .ld_dst = qd, .ld_src2 = kd,
                            .pos0 = pos0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .n_rot = n_rot,
                            .rope_type = neox ? HLLM_ROPE_NEOX : HLLM_ROPE_NORM, .freq_base = 10000.0f,
                            .freq_scale = with_ff ? 0.5f : 1.0f, .freq_factors = gf};
            hllm_op st = {.kind = HLLM_OP_KV_STORE, .n_tok = NT, .src = k[set], .src2 = v[set], .ld_src = kd,
                          .ld_src2 = kd, .pos0 = pos0, .n_head = nh, .n_head_kv = nkv, .head_dim = hd, .kv = &kv[set]};
            if (set) CHECK(G->ops->step_begin(G, shape, pos0, NULL, NT) >= 0);
            CHECK(G->ops->run(G, &rope) == 0);
            CHECK(G->ops->run(G, &st) == 0);
            if (set) CHECK(G->ops->step_end(G) == 0);
        }
        CHECK(G->ops->finish(G) == 0);
        const void *ptr[4][2] = {{q[0], q[1]}, {k[0], k[1]}, {kv[0].k, kv[1].k}, {kv[0].v, kv[1].v}};
        const size_t bytes[4] = {(size_t)NT * qd * 4, (size_t)NT * kd * 4, (size_t)n_ctx * kd * elt, (size_t)n_ctx * kd * elt};
        for (int a = 0; a < 4; a++) {
            char *x = malloc(bytes[a]), *y = malloc(bytes[a]);
            G->ops->copy_out(G, x, ptr[a][0], bytes[a]);
            G->ops->copy_out(G, y, ptr[a][1], bytes[a]);
            CHECK(G->ops->finish(G) == 0);
            same &= !memcmp(x, y, bytes[a]);
            free(x), free(y);
        }
    }
    CHECKF(same, "rope + kv_store %s neox %d n_rot %d ff %d: hooks differ from op by op", hllm_type_name(kv_type), neox,
           n_rot, with_ff);
    const long fused = hllm_cuda_fused_ops(G) - fused0;
    CHECKF(fused == 1, "rope + kv_store: %ld ops fused, expected 1 (one capture)", fused);
    for (int set = 0; set < 2; set++) {
        G->ops->free(G, q[set]), G->ops->free(G, k[set]), G->ops->free(G, v[set]);
        G->ops->free(G, kv[set].k), G->ops->free(G, kv[set].v);
    }
    if (gf) G->ops->weight_free(G, gf);
    free(h);
    printf("rope + kv_store %s neox %d n_rot %d ff %d: %s\n", hllm_type_name(kv_type), neox, n_rot, with_ff,
           g_test_fail == f0 ? "ok" : "FAILED");
}
#endif

int main(void) {
#ifndef HLLM_HAVE_CUDA
    printf("SKIP: the CUDA processor is not compiled into this build\n");
    return test_summary("test_cuda_fuse");
#else
    const char *why = NULL;
    if (hllm_cuda_device_count(&why) == 0) {
        printf("SKIP: %s\n", why ? why : "no CUDA device");
        return test_summary("test_cuda_fuse");
    }
    G = hllm_proc_cuda_new(0);
    CHECKF(G != NULL, "hllm_proc_cuda_new: %s", hllm_error());
    if (!G) return test_summary("test_cuda_fuse");
    hllm_cuda_set_graphs(1);
    hllm_cuda_set_fusion(1);
    matmul_case(HLLM_TYPE_Q8_0, 0);
    matmul_case(HLLM_TYPE_Q8_0, 1);
    matmul_case(HLLM_TYPE_F32, 0);
    matmul_case(HLLM_TYPE_Q4_K, 0);
    for (int hz = 2; hz < 4; hz++) {
        matmul_case(HLLM_TYPE_Q8_0, hz);
        matmul_case(HLLM_TYPE_Q4_0, hz);
        matmul_case(HLLM_TYPE_Q6_K, hz);
        matmul_case(HLLM_TYPE_F32, hz);
    }
    for (int kt = 0; kt < 2; kt++)
        for (int neox = 0; neox < 2; neox++) {
            rope_kv_case(kt ? HLLM_TYPE_F32 : HLLM_TYPE_F16, neox, 64, 0);
            rope_kv_case(kt ? HLLM_TYPE_F32 : HLLM_TYPE_F16, neox, 32, 1);
        }
    hllm_proc_free(G);
    return test_summary("test_cuda_fuse");
#endif
}
