/* Matrix kernels of the CUDA processor.
 *
 * Decode (GEMV, n_tok <= 8): one warp per output row, four rows per 128-thread block; each
 * lane walks the row in 32-element units with 16-byte loads, dequantizes in registers and
 * accumulates n_tok dot products at once (the weight is read once for all tokens).
 * Quantized types dot against the activation quantized to q8_1-style units (int8 quants +
 * (d, d * sum) per 32 elements) with dp4a; float types (F32/F16/BF16) read the f32 activation.
 *
 * Every quantized unit is decoded into 8 packed int8x4 words w (w[i] holds elements 4i..4i+3)
 * and three floats, so that element e's value is a(e) * q_e - b with a = a0 for e < 16 and
 * a1 otherwise. The dot with a q8_1 unit (dx, s = dx * sum(qx)) is then
 *     dx * (a0 * dp4a(w[0..3], qx) + a1 * dp4a(w[4..7], qx)) - b * s.
 *   Q4_0: a = d, b = 8d, q = nibble (0..15).       Q8_0: a = d, b = 0, q signed.
 *   Q4_K: a = d * sc_j, b = dmin * m_j, q = nibble. Q6_K: a0/a1 = d * scale of each 16, q - 32.
 *
 * Prefill (n_tok > 8) dequantizes row tiles to f16 (cu_dequant_rows) for cuBLAS; see cuda_proc.cu. */
#include "proc/cuda/cuda_common.cuh"
#include "proc/cuda/cuda_pass.cuh"
#include <string.h>

/* ---- loads ---- */

static __device__ __forceinline__ int4 ld16(const void *p) { return __ldg((const int4 *)p); }

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ uint32_t byte_of(uint32_t s0, uint32_t s1, uint32_t s2, int i) {
    const uint32_t w = i < 4 ? s0 : (i < 8 ? s1 : s2);
    return (w >> (8 * (i & 3))) & 0xFFu;
}

/* Q4_K: 6-bit scale and min of sub-block j from the 12 scale bytes (as hllm_q4_K_get_scale_min). */
static __device__ __forceinline__ void q4k_scale_min(const uint8_t *blk, int j, int *sc, int *mn) {
    const uint32_t *s = (const uint32_t *)(blk + 4);
    const uint32_t s0 = s[0], s1 = s[1], s2 = s[2];
    if (j < 4) {
        *sc = (int)(byte_of(s0, s1, s2, j) & 63);
        *mn = (int)(byte_of(s0, s1, s2, j + 4) & 63);
    } else {
        const uint32_t a = byte_of(s0, s1, s2, j + 4), lo = byte_of(s0, s1, s2, j - 4), hi = byte_of(s0, s1, s2, j);
        *sc = (int)((a & 0x0F) | ((lo >> 6) << 4));
        *mn = (int)((a >> 4) | ((hi >> 6) << 4));
    }
}

/* ---- decoding one 32-element unit u of local row r ---- */

template <int TYPE>
static __device__ __forceinline__ void decode_unit(const cu_mat &m, int64_t r, int64_t u, int w[8], float &a0, float &a1,
                                                   float &b);

/* The raw bytes of one Q4_0 / Q8_0 unit, loaded apart from their decoding so that a GEMV can
 * ask for its first units before its PDL wait: the weights never depend on the kernel before. */
struct unit_raw {
    int4 v0, v1; /* Q4_0: v0 only */
    __half d;
};

template <int TYPE>
static __device__ __forceinline__ void load_raw(const cu_mat &m, int64_t r, int64_t u, unit_raw &x) {
    static_assert(TYPE == HLLM_TYPE_Q4_0 || TYPE == HLLM_TYPE_Q8_0, "raw units: Q4_0 and Q8_0 only");
    if (TYPE == HLLM_TYPE_Q4_0) {
        x.v0 = ld16(m.data + r * m.row_bytes + u * 16);
    } else {
        const uint8_t *p = m.data + r * m.row_bytes + u * 32;
        x.v0 = ld16(p);
        x.v1 = ld16(p + 16);
    }
    x.d = m.d[r * m.nb + u];
}

template <int TYPE>
static __device__ __forceinline__ void decode_raw(const unit_raw &x, int w[8], float &a0, float &a1, float &b) {
    const int4 v = x.v0;
    const float d = __half2float(x.d);
    a0 = a1 = d;
    if (TYPE == HLLM_TYPE_Q4_0) {
        const int vi[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[i] = vi[i] & 0x0F0F0F0F;
            w[4 + i] = (vi[i] >> 4) & 0x0F0F0F0F;
        }
        b = 8.0f * d;
    } else {
        w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
        w[4] = x.v1.x, w[5] = x.v1.y, w[6] = x.v1.z, w[7] = x.v1.w;
        b = 0.0f;
    }
}

template <>
__device__ __forceinline__ void decode_unit<HLLM_TYPE_Q4_0>(const cu_mat &m, int64_t r, int64_t u, int w[8], float &a0,
                                                            float &a1, float &b) {
    unit_raw x;
    load_raw<HLLM_TYPE_Q4_0>(m, r, u, x);
    decode_raw<HLLM_TYPE_Q4_0>(x, w, a0, a1, b);
}

template <>
__device__ __forceinline__ void decode_unit<HLLM_TYPE_Q8_0>(const cu_mat &m, int64_t r, int64_t u, int w[8], float &a0,
                                                            float &a1, float &b) {
    unit_raw x;
    load_raw<HLLM_TYPE_Q8_0>(m, r, u, x);
    decode_raw<HLLM_TYPE_Q8_0>(x, w, a0, a1, b);
}

template <>
__device__ __forceinline__ void decode_unit<HLLM_TYPE_Q4_K>(const cu_mat &m, int64_t r, int64_t u, int w[8], float &a0,
                                                            float &a1, float &b) {
    const uint8_t *blk = m.data + r * m.row_bytes + (u >> 3) * 144;
    const int j = (int)(u & 7);
    const uint8_t *q = blk + 16 + (j >> 1) * 32;
    const int4 v0 = ld16(q), v1 = ld16(q + 16);
    const int vi[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
    const int sh = (j & 1) * 4;
#pragma unroll
    for (int i = 0; i < 8; i++) w[i] = (vi[i] >> sh) & 0x0F0F0F0F;
    const __half2 dm = *(const __half2 *)blk;
    int sc, mn;
    q4k_scale_min(blk, j, &sc, &mn);
    a0 = a1 = __low2float(dm) * (float)sc;
    b = __high2float(dm) * (float)mn;
}

template <>
__device__ __forceinline__ void decode_unit<HLLM_TYPE_Q6_K>(const cu_mat &m, int64_t r, int64_t u, int w[8], float &a0,
                                                            float &a1, float &b) {
    const int64_t sb = u >> 3;
    const uint8_t *blk = m.data + r * m.row_bytes + sb * CU_Q6K_BYTES;
    const int uu = (int)(u & 7), half = uu >> 2, quarter = uu & 3;
    const uint8_t *ql = blk + 64 * half + 32 * (quarter & 1), *qh = blk + 128 + 32 * half;
    const int4 l0 = ld16(ql), l1 = ld16(ql + 16), h0 = ld16(qh), h1 = ld16(qh + 16);
    const int li[8] = {l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w};
    const int hi[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
    const int lsh = (quarter & 2) ? 4 : 0, hsh = 2 * quarter;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int q = ((li[i] >> lsh) & 0x0F0F0F0F) | (((hi[i] >> hsh) & 0x03030303) << 4);
        w[i] = (int)__vsub4((unsigned)q, 0x20202020u);
    }
    const float d = __half2float(m.d[r * (m.nb >> 3) + sb]);
    const int8_t *sc = (const int8_t *)(blk + 192 + 2 * uu);
    a0 = d * (float)sc[0];
    a1 = d * (float)sc[1];
    b = 0.0f;
}

/* ---- exact dequantization of one unit to floats (the CPU reference's formulas) ---- */

template <int TYPE>
static __device__ __forceinline__ void deq_unit(const cu_mat &m, int64_t r, int64_t u, float out[32]);

template <>
__device__ __forceinline__ void deq_unit<HLLM_TYPE_Q4_0>(const cu_mat &m, int64_t r, int64_t u, float out[32]) {
    const int4 v = ld16(m.data + r * m.row_bytes + u * 16);
    const int vi[4] = {v.x, v.y, v.z, v.w};
    const float d = __half2float(m.d[r * m.nb + u]);
#pragma unroll
    for (int i = 0; i < 16; i++) {
        const int byte = (vi[i >> 2] >> (8 * (i & 3))) & 0xFF;
        out[i] = (float)((byte & 0x0F) - 8) * d;
        out[i + 16] = (float)((byte >> 4) - 8) * d;
    }
}

template <>
__device__ __forceinline__ void deq_unit<HLLM_TYPE_Q8_0>(const cu_mat &m, int64_t r, int64_t u, float out[32]) {
    const uint8_t *p = m.data + r * m.row_bytes + u * 32;
    const int4 v0 = ld16(p), v1 = ld16(p + 16);
    const int vi[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
    const float d = __half2float(m.d[r * m.nb + u]);
#pragma unroll
    for (int i = 0; i < 32; i++) out[i] = (float)(int8_t)((vi[i >> 2] >> (8 * (i & 3))) & 0xFF) * d;
}

template <>
__device__ __forceinline__ void deq_unit<HLLM_TYPE_Q4_K>(const cu_mat &m, int64_t r, int64_t u, float out[32]) {
    int w[8];
    float a0, a1, b;
    decode_unit<HLLM_TYPE_Q4_K>(m, r, u, w, a0, a1, b);
#pragma unroll
    for (int i = 0; i < 32; i++) out[i] = a0 * (float)((w[i >> 2] >> (8 * (i & 3))) & 0xFF) - b;
}

template <>
__device__ __forceinline__ void deq_unit<HLLM_TYPE_Q6_K>(const cu_mat &m, int64_t r, int64_t u, float out[32]) {
    int w[8];
    float a0, a1, b;
    decode_unit<HLLM_TYPE_Q6_K>(m, r, u, w, a0, a1, b);
#pragma unroll
    for (int i = 0; i < 32; i++) out[i] = (i < 16 ? a0 : a1) * (float)(int8_t)((w[i >> 2] >> (8 * (i & 3))) & 0xFF);
}

/* ---- activation quantization: one warp per 32-element unit ---- */

__global__ void k_quantize_q8_1(const float *__restrict__ x, int64_t ldx, int64_t cols, int8_t *__restrict__ xq,
                                float2 *__restrict__ xds) {
    cu_pdl_wait_pass();
    const int64_t nb = cols / 32;
    const int64_t u = (int64_t)blockIdx.x * 8 + (threadIdx.x >> 5);
    const int t = blockIdx.y, lane = threadIdx.x & 31;
    if (u >= nb) return;
    cu_quant_unit(x[t * ldx + u * 32 + lane], xq + t * cols + u * 32 + lane, xds + t * nb + u, lane);
}

int cu_quantize_q8_1(cudaStream_t st, const float *x, int64_t ldx, int n_tok, int64_t cols, int8_t *xq, float2 *xds) {
    const int64_t nb = cols / 32;
    dim3 grid((unsigned)((nb + 7) / 8), (unsigned)n_tok);
    cu_launch(k_quantize_q8_1, grid, 256, 0, st, x, ldx, cols, xq, xds);
    return CU_LAUNCHED("quantize_q8_1");
}

/* ---- GEMV ----
 * 128-thread blocks; WPR warps per output row (1, 2 or 4: 4 / WPR rows per block). Small
 * matrices use more warps per row so that the grid still covers the GPU a couple of times
 * over; the choice depends only on the matrix's shape, so any two calls of one shape agree
 * bit for bit, alone or as one segment of a multi-matrix launch (each block belongs to one
 * segment, and computes its rows with that matrix's WPR).
 *
 * Before waiting on the previous kernel (PDL), a block asks L2 for its rows' weights: they do
 * not depend on that kernel, so the memory streams while the small kernels between two GEMVs
 * (norms, rope, attention) still run, instead of after. */

static int gemv_wpr(int64_t rows, int64_t units);

int cu_n_sm = 132;
bool cu_pdl = false;
bool cu_pdl_op = false;
bool cu_prefetch = true;
int cu_preload = 1;
bool cu_prefetch_attn = true;

struct gsegs_k {
    cu_gseg s[CU_MAX_SEGS];
    int wpr[CU_MAX_SEGS];
    unsigned blk0[CU_MAX_SEGS]; /* first block of each segment */
    int n;
    bool pre[CU_MAX_SEGS]; /* each lane's first units loaded before the PDL wait (k_gemv_q) */
};

static __device__ __forceinline__ void pf_l2(const uint8_t *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

/* L2 prefetch of bytes [p, p + n) by the 128 threads of a block (whole lines, inside the range). */
static __device__ __forceinline__ void pf_range(const uint8_t *p, int64_t n) {
    if (n <= 0) return;
    const uintptr_t a0 = (uintptr_t)p & ~(uintptr_t)127, end = (uintptr_t)p + (uintptr_t)n;
    for (uintptr_t a = a0 + (uintptr_t)threadIdx.x * 128; a < end; a += 128 * 128) pf_l2((const uint8_t *)a);
}

/* The weights of local rows [r, r + n) of m: quants, then the separate scales (SOA, Q6K). */
static __device__ __forceinline__ void pf_rows(const cu_mat &m, int64_t r, int64_t n) {
    pf_range(m.data + r * (int64_t)m.row_bytes, n * (int64_t)m.row_bytes);
    if (m.layout == CU_LAYOUT_SOA) pf_range((const uint8_t *)(m.d + r * m.nb), n * m.nb * 2);
    else if (m.layout == CU_LAYOUT_Q6K) pf_range((const uint8_t *)(m.d + r * (m.nb >> 3)), n * (m.nb >> 3) * 2);
}

/* This block's segment, its WPR and first local row; prefetches the block's rows when asked. */
static __device__ __forceinline__ int gemv_block(const gsegs_k &S, int *wpr, int64_t *rfirst) {
    int si = 0;
    if (S.n > 1 && blockIdx.x >= S.blk0[1]) si = 1;
    if (S.n > 2 && blockIdx.x >= S.blk0[2]) si = 2;
    const cu_gseg &g = S.s[si];
    *wpr = S.wpr[si];
    const int rpb = 4 / *wpr;
    *rfirst = g.lr0 + (int64_t)(blockIdx.x - S.blk0[si]) * rpb;
    if (g.pf) {
        const int64_t n = g.lr1 - *rfirst < rpb ? g.lr1 - *rfirst : rpb;
        pf_rows(g.m, *rfirst, n);
    }
    return si;
}

/* Sums acc over the WPR warps of each row (fixed order); true for the lanes of the row's first
 * warp, which then hold the totals. */
template <int NT>
static __device__ __forceinline__ void row_reduce(float acc[NT], int wpr, int warp, int lane) {
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = warp_sum(acc[t]);
    if (wpr == 1) return;
    __shared__ float red[4][NT];
    if (lane == 0)
#pragma unroll
        for (int t = 0; t < NT; t++) red[warp][t] = acc[t];
    __syncthreads();
    const int w0 = warp - warp % wpr;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float v = red[w0][t];
        for (int k = 1; k < wpr; k++) v += red[w0 + k][t];
        acc[t] = v;
    }
}

/* Lane t < NT of the row's first warp writes token t's result (+ bias; + the fused residual). */
template <int NT>
static __device__ __forceinline__ void row_store(const cu_gseg &g, int64_t r, const float acc[NT], int lane) {
    if (lane >= NT) return;
    float v = 0.0f;
#pragma unroll
    for (int t = 0; t < NT; t++)
        if (t == lane) v = acc[t];
    const int64_t gr = g.grow0 + r;
    v = v + (g.bias ? g.bias[gr] : 0.0f);
    g.y[lane * g.ldy + gr] = v;
    if (g.yadd) g.yadd[lane * g.ldadd + gr] += v;
}

/* acc[t] += the dot of one decoded unit u (weights w, scales a0 a1, offset b) with unit u of
 * token t's q8_1 activation. Every quantized GEMV kernel accumulates through this one function
 * (same order, same arithmetic), so a row computed by any of them is the same bit for bit. */
template <int NT>
static __device__ __forceinline__ void dot_one(const int w[8], float a0, float a1, float b, int64_t u, int64_t nb,
                                               int64_t cols, const int8_t *__restrict__ xq,
                                               const float2 *__restrict__ xds, float acc[NT]) {
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const int8_t *xp = xq + t * cols + u * 32;
        const int4 x0 = ld16(xp), x1 = ld16(xp + 16);
        const float2 ds = __ldg(xds + t * nb + u);
        int s0 = __dp4a(w[0], x0.x, 0);
        s0 = __dp4a(w[1], x0.y, s0);
        s0 = __dp4a(w[2], x0.z, s0);
        s0 = __dp4a(w[3], x0.w, s0);
        int s1 = __dp4a(w[4], x1.x, 0);
        s1 = __dp4a(w[5], x1.y, s1);
        s1 = __dp4a(w[6], x1.z, s1);
        s1 = __dp4a(w[7], x1.w, s1);
        acc[t] += ds.x * (a0 * (float)s0 + a1 * (float)s1) - b * ds.y;
    }
}

/* acc[t] += the dot of units u0, u0 + step, ... of local row r with token t's q8_1 activation.
 * Every quantized GEMV kernel accumulates through dot_one (same order, same arithmetic), so a
 * row computed by any of them is the same bit for bit. */
template <int TYPE, int NT>
static __device__ __forceinline__ void dot_units(const cu_mat &m, int64_t r, int64_t u0, int64_t step, bool live,
                                                 const int8_t *__restrict__ xq, const float2 *__restrict__ xds,
                                                 float acc[NT]) {
    const int64_t nb = m.nb, cols = m.cols;
#pragma unroll 2
    for (int64_t u = u0; live && u < nb; u += step) {
        int w[8];
        float a0, a1, b;
        decode_unit<TYPE>(m, r, u, w, a0, a1, b);
        dot_one<NT>(w, a0, a1, b, u, nb, cols, xq, xds, acc);
    }
}

/* Units a lane of a one-token GEMV loads before its PDL wait (HLLM_CUDA_PRELOAD): 64 bytes of
 * weights a lane; 0 for the K-quants, whose units are read in pieces. */
template <int TYPE>
static __host__ __device__ constexpr int gemv_preload() {
    return TYPE == HLLM_TYPE_Q4_0 ? 4 : TYPE == HLLM_TYPE_Q8_0 ? 2 : 0;
}

template <int TYPE, int NT>
static __device__ __forceinline__ void gemv_q(const gsegs_k &S, const int8_t *__restrict__ xq,
                                              const float2 *__restrict__ xds) {
    int wpr;
    int64_t rfirst;
    const int si = gemv_block(S, &wpr, &rfirst);
    const cu_gseg &g = S.s[si];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, sub = warp % wpr;
    const int64_t r = rfirst + warp / wpr;
    const bool live = r < g.lr1;
    const int64_t u0 = lane + 32 * sub, step = 32 * wpr;
    constexpr int P = NT == 1 ? gemv_preload<TYPE>() : 0; /* one token: the registers are there */
    const int pre = S.pre[si] ? P : 0;
    unit_raw raw[P > 0 ? P : 1];
    if constexpr (P > 0) {
#pragma unroll
        for (int i = 0; i < P; i++)
            if (i < pre && live && u0 + i * step < g.m.nb) load_raw<TYPE>(g.m, r, u0 + i * step, raw[i]);
    }
    cu_pdl_wait();
    if (wpr == 1 && !live) return;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    if constexpr (P > 0) {
#pragma unroll
        for (int i = 0; i < P; i++) {
            const int64_t u = u0 + i * step;
            if (i < pre && live && u < g.m.nb) {
                int w[8];
                float a0, a1, b;
                decode_raw<TYPE>(raw[i], w, a0, a1, b);
                dot_one<NT>(w, a0, a1, b, u, g.m.nb, g.m.cols, xq, xds, acc);
            }
        }
    }
    dot_units<TYPE, NT>(g.m, r, u0 + pre * step, step, live, xq, xds, acc);
    row_reduce<NT>(acc, wpr, warp, lane);
    if (live && sub == 0) row_store<NT>(g, r, acc, lane);
}

template <int TYPE, int NT>
__global__ void __launch_bounds__(128) k_gemv_q(const __grid_constant__ gsegs_k S, const int8_t *__restrict__ xq,
                                                const float2 *__restrict__ xds) {
    gemv_q<TYPE, NT>(S, xq, xds);
}

/* One token: blocks an SM must hold, which caps the registers at what the kernel used before
 * the preload's (Q4_0 / Q8_0 40: 12 blocks; Q4_K 48; Q6_K 56). */
template <int TYPE>
static __host__ __device__ constexpr int gemv1_blocks() {
    return TYPE == HLLM_TYPE_Q4_K ? 10 : TYPE == HLLM_TYPE_Q6_K ? 9 : 12;
}

template <int TYPE>
__global__ void __launch_bounds__(128, gemv1_blocks<TYPE>()) k_gemv_q1(const __grid_constant__ gsegs_k S,
                                                                      const int8_t *__restrict__ xq,
                                                                      const float2 *__restrict__ xds) {
    gemv_q<TYPE, 1>(S, xq, xds);
}

/* ---- gate/up GEMV + SwiGLU (+ q8_1 of the result) in one kernel ----
 * 256-thread blocks: warps 0-3 compute 4 rows of the gate matrix, warps 4-7 the same rows of
 * the up matrix, one warp a row as k_gemv_q does with WPR 1; the gate warps then write
 * silu(gate) * up where the gate matmul would have written gate (the SWIGLU in place) and the
 * up warps write up. The q8_1 units of the result span 32 rows (8 blocks): the last of the 8
 * blocks to finish (a counter per unit, left zero) quantizes them, as cu_swiglu would. */
struct glu_k {
    cu_gseg g, u;
    cu_qout qo; /* xq NULL: no q8_1 copy */
    unsigned *cnt;
    int64_t dim;
};

/* L2 prefetch of local row r of m by the 32 lanes of a warp. */
static __device__ __forceinline__ void pf_row_warp(const cu_mat &m, int64_t r, int lane) {
    const uint8_t *p = m.data + r * (int64_t)m.row_bytes;
    for (int64_t o = (int64_t)lane * 128; o < (int64_t)m.row_bytes; o += 32 * 128) pf_l2(p + o);
    if (m.layout == CU_LAYOUT_SOA && lane * 128 < m.nb * 2) pf_l2((const uint8_t *)(m.d + r * m.nb) + lane * 128);
}

template <int TYPE, int NT>
__global__ void __launch_bounds__(256) k_gemv_glu(const __grid_constant__ glu_k P, const int8_t *__restrict__ xq,
                                                  const float2 *__restrict__ xds) {
    __shared__ float su[4][NT];
    __shared__ int s_last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, is_up = warp >> 2;
    const cu_gseg &g = is_up ? P.u : P.g;
    const int64_t r = g.lr0 + (int64_t)blockIdx.x * 4 + (warp & 3); /* rows: a multiple of 32, all live */
    if (g.pf) pf_row_warp(g.m, r, lane);
    cu_pdl_wait();
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    dot_units<TYPE, NT>(g.m, r, lane, 32, true, xq, xds, acc);
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = warp_sum(acc[t]);
    float v = 0.0f;
#pragma unroll
    for (int t = 0; t < NT; t++)
        if (t == lane) v = acc[t];
    const int64_t gr = g.grow0 + r;
    if (lane < NT) v = v + (g.bias ? g.bias[gr] : 0.0f);
    if (is_up && lane < NT) {
        g.y[lane * g.ldy + gr] = v;
        su[warp & 3][lane] = v;
    }
    __syncthreads();
    if (!is_up && lane < NT) g.y[lane * g.ldy + gr] = cu_silu_mul(v, su[warp][lane]);
    if (!P.qo.xq) return;
    __threadfence();
    __syncthreads();
    const int64_t unit = (g.grow0 + g.lr0 + (int64_t)blockIdx.x * 4) / 32;
    if (threadIdx.x == 0) s_last = atomicAdd(P.cnt + unit, 1u) == 7u;
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    if (warp < NT) {
        const float x = __ldcg(P.g.y + warp * P.g.ldy + unit * 32 + lane);
        cu_quant_unit(x, P.qo.xq + warp * P.dim + unit * 32 + lane, P.qo.xds + warp * (P.dim / 32) + unit, lane);
    }
    if (threadIdx.x == 0) P.cnt[unit] = 0u;
}

bool cu_gemv_glu_ok(const cu_mat &m, int64_t rows) {
    return (m.type == HLLM_TYPE_Q4_0 || m.type == HLLM_TYPE_Q8_0 || m.type == HLLM_TYPE_Q4_K ||
            m.type == HLLM_TYPE_Q6_K) &&
           rows % 32 == 0 && gemv_wpr(rows, m.nb) == 1;
}

int cu_gemv_glu(cudaStream_t st, const cu_gseg &gate, const cu_gseg &up, const int8_t *xq, const float2 *xds, int n_tok,
                cu_qout qo, unsigned *cnt) {
    const int64_t rows = gate.lr1 - gate.lr0;
    if (rows <= 0) return 0;
    glu_k P;
    memset(&P, 0, sizeof P);
    P.g = gate;
    P.u = up;
    P.g.pf = gate.pf && cu_prefetch;
    P.u.pf = up.pf && cu_prefetch;
    P.qo = qo;
    P.cnt = cnt;
    P.dim = rows;
    const unsigned blocks = (unsigned)(rows / 4);
#define GLU(T, N) cu_launch(k_gemv_glu<T, N>, blocks, 256, 0, st, P, xq, xds)
#define GLU_T(N)                                        \
    switch (gate.m.type) {                              \
    case HLLM_TYPE_Q4_0: GLU(HLLM_TYPE_Q4_0, N); break; \
    case HLLM_TYPE_Q8_0: GLU(HLLM_TYPE_Q8_0, N); break; \
    case HLLM_TYPE_Q4_K: GLU(HLLM_TYPE_Q4_K, N); break; \
    case HLLM_TYPE_Q6_K: GLU(HLLM_TYPE_Q6_K, N); break; \
    default: return hllm_fail("CUDA: gate/up GEMV of %s", hllm_type_name(gate.m.type)); \
    }
    switch (n_tok) {
    case 1: GLU_T(1) break;
    case 2: GLU_T(2) break;
    case 3: GLU_T(3) break;
    case 4: GLU_T(4) break;
    case 5: GLU_T(5) break;
    case 6: GLU_T(6) break;
    case 7: GLU_T(7) break;
    case 8: GLU_T(8) break;
    default: return hllm_fail("CUDA: gemv with %d tokens (max 8)", n_tok);
    }
#undef GLU_T
#undef GLU
    return CU_LAUNCHED("gemv (gate/up + swiglu)");
}

/* Eight f16 or bf16 weights of a 16-byte load to floats. */
template <int TYPE>
static __device__ __forceinline__ void cvt8(const int4 v, float f[8]) {
    const uint32_t vi[4] = {(uint32_t)v.x, (uint32_t)v.y, (uint32_t)v.z, (uint32_t)v.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (TYPE == HLLM_TYPE_BF16) {
            f[2 * i] = __uint_as_float(vi[i] << 16);
            f[2 * i + 1] = __uint_as_float(vi[i] & 0xFFFF0000u);
        } else {
            const float2 x = __half22float2(*(const __half2 *)&vi[i]);
            f[2 * i] = x.x;
            f[2 * i + 1] = x.y;
        }
    }
}

template <int TYPE>
static __device__ __forceinline__ float load1(const uint8_t *row, int64_t c) {
    if (TYPE == HLLM_TYPE_F32) return __ldg((const float *)row + c);
    const unsigned short h = __ldg((const unsigned short *)row + c);
    if (TYPE == HLLM_TYPE_F16) return __half2float(__ushort_as_half(h));
    return __uint_as_float((uint32_t)h << 16);
}

/* Float weights: VEC = 16-byte loads (cols a multiple of 8, x rows 16-byte aligned). */
template <int TYPE, int NT, bool VEC, int U>
__global__ void __launch_bounds__(128) k_gemv_f(const __grid_constant__ gsegs_k S, const float *__restrict__ x,
                                                int64_t ldx) {
    int wpr;
    int64_t rfirst;
    const cu_gseg &g = S.s[gemv_block(S, &wpr, &rfirst)];
    cu_pdl_wait();
    const cu_mat &m = g.m;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, sub = warp % wpr;
    const int64_t r = rfirst + warp / wpr;
    const bool live = r < g.lr1;
    if (wpr == 1 && !live) return;
    const int l = lane + 32 * sub, step = 32 * wpr; /* this warp's lane index among the row's */
    const uint8_t *row = m.data + r * m.row_bytes;
    const int64_t cols = m.cols;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    if (VEC) {
        if (TYPE == HLLM_TYPE_F32) {
#pragma unroll 2
            for (int64_t c = l * 4; live && c < cols; c += 4 * step) {
                const float4 w = __ldg((const float4 *)(row + c * 4));
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    const float4 a = __ldg((const float4 *)(x + t * ldx + c));
                    acc[t] += w.x * a.x + w.y * a.y + w.z * a.z + w.w * a.w;
                }
            }
        } else {
            /* U loads of a lane in flight before any is used */
            const int64_t stride = 8 * (int64_t)step;
            for (int64_t c0 = l * 8; live && c0 < cols; c0 += stride * U) {
                int4 v[U];
#pragma unroll
                for (int u = 0; u < U; u++)
                    if (c0 + u * stride < cols) v[u] = ld16w(row + (c0 + u * stride) * 2);
#pragma unroll
                for (int u = 0; u < U; u++) {
                    const int64_t c = c0 + u * stride;
                    if (c >= cols) break;
                    float w[8];
                    cvt8<TYPE>(v[u], w);
#pragma unroll
                    for (int t = 0; t < NT; t++) {
                        const float4 a = __ldg((const float4 *)(x + t * ldx + c));
                        const float4 b = __ldg((const float4 *)(x + t * ldx + c + 4));
                        acc[t] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y +
                                  w[6] * b.z + w[7] * b.w;
                    }
                }
            }
        }
    } else {
        for (int64_t c = l; live && c < cols; c += step) {
            const float w = load1<TYPE>(row, c);
#pragma unroll
            for (int t = 0; t < NT; t++) acc[t] += w * x[t * ldx + c];
        }
    }
    row_reduce<NT>(acc, wpr, warp, lane);
    if (live && sub == 0) row_store<NT>(g, r, acc, lane);
}

/* Warps per row (1, 2 or 4) for a matrix of `rows` output rows and `units` loads (32-element
 * units or 16-byte vectors) per row: more until the launch has cu_gemv_warps warps per SM, and
 * beyond that while a lane would walk more than 8 units and the SMs still hold the warps (long
 * rows: down-projections). Measured on H100 (tg128): llama3.2-1b's 2048 x 8192 down wants 2
 * (4 was 3% slower), llama3-8b's 4096 x 14336 down 2, its 4096 x 4096 q and o 1. Every lane
 * keeps at least one unit. */
int cu_gemv_warps = 16;
static int gemv_wpr(int64_t rows, int64_t units) {
    const int64_t want = (int64_t)cu_gemv_warps * cu_n_sm, hold = 64 * (int64_t)cu_n_sm;
    int wpr = 1;
    while (wpr < 4 && units >= 64 * wpr &&
           (rows * wpr < want || (units > 8 * 32 * wpr && rows * 2 * wpr <= hold)))
        wpr *= 2;
    return wpr;
}

template <int NT>
static void launch_gemv(cudaStream_t st, const gsegs_k &S, unsigned blocks, const float *x, int64_t ldx,
                        const int8_t *xq, const float2 *xds) {
    const cu_mat &m = S.s[0].m;
    bool vec = ((uintptr_t)x % 16) == 0 && ldx % 4 == 0;
    for (int i = 0; i < S.n; i++) vec = vec && S.s[i].m.cols % 8 == 0 && S.s[i].m.row_bytes % 16 == 0;
    switch (m.type) {
/* one token: the kernel whose register cap keeps the blocks an SM held before the preload */
#define Q_CASE(T)                                                                      \
    case T:                                                                            \
        if constexpr (NT == 1) cu_launch(k_gemv_q1<T>, blocks, 128, 0, st, S, xq, xds); \
        else cu_launch(k_gemv_q<T, NT>, blocks, 128, 0, st, S, xq, xds);               \
        break;
        Q_CASE(HLLM_TYPE_Q4_0)
        Q_CASE(HLLM_TYPE_Q8_0)
        Q_CASE(HLLM_TYPE_Q4_K)
        Q_CASE(HLLM_TYPE_Q6_K)
#undef Q_CASE
/* one token: 4 loads in flight per lane (llama3-8b F16 tg128 on H100: 2 160.0, 4 160.8, 8 159.1 tok/s) */
#define F_CASE(T)                                                                                   \
    case T:                                                                                         \
        if (vec && NT == 1) cu_launch(k_gemv_f<T, NT, true, 4>, blocks, 128, 0, st, S, x, ldx);        \
        else if (vec) cu_launch(k_gemv_f<T, NT, true, 2>, blocks, 128, 0, st, S, x, ldx);               \
        else cu_launch(k_gemv_f<T, NT, false, 2>, blocks, 128, 0, st, S, x, ldx);                       \
        break;
        F_CASE(HLLM_TYPE_F32)
        F_CASE(HLLM_TYPE_F16)
        F_CASE(HLLM_TYPE_BF16)
#undef F_CASE
    default: break;
    }
}

int cu_gemv_multi(cudaStream_t st, const cu_gseg *segs, int n_segs, const float *x, int64_t ldx, const int8_t *xq,
                  const float2 *xds, int n_tok) {
    if (n_segs < 1 || n_segs > CU_MAX_SEGS) return hllm_fail("CUDA: gemv of %d matrices", n_segs);
    gsegs_k S;
    memset(&S, 0, sizeof S);
    /* one token of Q4_0 / Q8_0 in VRAM: the first units go to registers before the PDL wait, and
     * the L2 prefetch is left out (with both, llama3-8b tg128 on H100 lost 2%; preload alone won
     * 1% on q4_0 and 7.5% on q8_0 against the prefetch alone). Host rows (g.pf false: read over
     * PCIe) keep their measured path, neither, unless HLLM_CUDA_PRELOAD=2 (not yet measured). */
    const bool preload = cu_preload && n_tok == 1 && (segs[0].m.type == HLLM_TYPE_Q4_0 || segs[0].m.type == HLLM_TYPE_Q8_0);
    unsigned blocks = 0;
    for (int i = 0; i < n_segs; i++) {
        const cu_gseg &g = segs[i];
        if (g.m.type != segs[0].m.type) return hllm_fail("CUDA: one gemv launch over matrices of different types");
        const int64_t units = cu_type_quantized(g.m.type) ? g.m.nb : (int64_t)(g.m.row_bytes / 16);
        S.s[S.n] = g;
        S.pre[S.n] = preload && (g.pf || cu_preload == 2);
        S.s[S.n].pf = g.pf && cu_prefetch && !S.pre[S.n];
        S.wpr[S.n] = gemv_wpr(g.lr1 - g.lr0, units);
        /* float weights: rows are 2-4x longer in bytes than quantized ones; 4 warps a row keep
         * more loads in flight per row (F16 decode on H100, llama3-8b: 1-2 warps 135.6 tok/s,
         * 4 warps 153.7) */
        if (!cu_type_quantized(g.m.type))
            while (S.wpr[S.n] < 4 && units >= 64 * S.wpr[S.n]) S.wpr[S.n] *= 2;
        S.blk0[S.n] = blocks;
        const int rpb = 4 / S.wpr[S.n];
        if (g.lr1 <= g.lr0) continue; /* nothing to do: not a segment */
        blocks += (unsigned)((g.lr1 - g.lr0 + rpb - 1) / rpb);
        S.n++;
    }
    if (S.n == 0) return 0;
    switch (n_tok) {
    case 1: launch_gemv<1>(st, S, blocks, x, ldx, xq, xds); break;
    case 2: launch_gemv<2>(st, S, blocks, x, ldx, xq, xds); break;
    case 3: launch_gemv<3>(st, S, blocks, x, ldx, xq, xds); break;
    case 4: launch_gemv<4>(st, S, blocks, x, ldx, xq, xds); break;
    case 5: launch_gemv<5>(st, S, blocks, x, ldx, xq, xds); break;
    case 6: launch_gemv<6>(st, S, blocks, x, ldx, xq, xds); break;
    case 7: launch_gemv<7>(st, S, blocks, x, ldx, xq, xds); break;
    case 8: launch_gemv<8>(st, S, blocks, x, ldx, xq, xds); break;
    default: return hllm_fail("CUDA: gemv with %d tokens (max 8)", n_tok);
    }
    return CU_LAUNCHED("gemv");
}

/* ---- dequantization to f16 / bf16 tiles (prefill) ---- */

/* One thread decodes one 32-element unit (64 bytes of f16), and the tile is dense, so a warp's
 * 32 units are 2 KiB of contiguous output: they go out through shared memory as 16-byte chunks
 * in lane order (each store instruction a contiguous 512 bytes). Direct 64-byte-strided stores
 * held the kernel at ~1.6 TB/s on H100. */
template <int TYPE, bool BF>
__global__ void __launch_bounds__(128) k_dequant_rows(const cu_mat m, int64_t lr0, int64_t n_units, void *dst) {
    cu_pdl_wait();
    __shared__ int4 sb[4][128];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t w0 = ((int64_t)blockIdx.x * blockDim.x + warp * 32); /* the warp's first unit */
    const int64_t i = w0 + lane;
    if (w0 >= n_units) return; /* whole warps only: the rest take part in the exchange */
    if (i < n_units) {
        const int64_t rr = i / m.nb, u = i - rr * m.nb;
        float f[32];
        deq_unit<TYPE>(m, lr0 + rr, u, f);
        uint32_t o[16];
#pragma unroll
        for (int k = 0; k < 16; k++) {
            if (BF) {
                __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
                o[k] = *(uint32_t *)&h;
            } else {
                __half2 h = __floats2half2_rn(f[2 * k], f[2 * k + 1]);
                o[k] = *(uint32_t *)&h;
            }
        }
#pragma unroll
        for (int k = 0; k < 4; k++) /* chunk k of unit lane, its slot rotated by lane / 2: no bank conflicts */
            sb[warp][lane * 4 + ((k + (lane >> 1)) & 3)] =
                make_int4((int)o[4 * k], (int)o[4 * k + 1], (int)o[4 * k + 2], (int)o[4 * k + 3]);
    }
    __syncwarp();
    const int64_t n_chunks = (n_units - w0 < 32 ? n_units - w0 : 32) * 4;
    int4 *d = (int4 *)((uint16_t *)dst + w0 * 32);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const int c = k * 32 + lane;
        const int u = c >> 2;
        if (c < n_chunks) d[c] = sb[warp][u * 4 + (((c & 3) + (u >> 1)) & 3)];
    }
}

int cu_dequant_rows(cudaStream_t st, const cu_mat &m, int64_t lr0, int64_t lr1, void *dst, bool bf16) {
    const int64_t n = (lr1 - lr0) * m.nb;
    if (n <= 0) return 0;
    const unsigned grid = (unsigned)((n + 127) / 128);
#define DQ(T)                                                                                   \
    case T:                                                                                     \
        if (bf16) cu_launch(k_dequant_rows<T, true>, grid, 128, 0, st, m, lr0, n, dst);               \
        else cu_launch(k_dequant_rows<T, false>, grid, 128, 0, st, m, lr0, n, dst);                   \
        break;
    switch (m.type) {
        DQ(HLLM_TYPE_Q4_0)
        DQ(HLLM_TYPE_Q8_0)
        DQ(HLLM_TYPE_Q4_K)
        DQ(HLLM_TYPE_Q6_K)
    default: return hllm_fail("CUDA: no dequantization for %s", hllm_type_name(m.type));
    }
#undef DQ
    return CU_LAUNCHED("dequant_rows");
}

/* Four columns per thread; vec: rows 16-byte aligned in x and 8-byte aligned in dst. */
template <bool BF>
__global__ void k_convert_act(const float *__restrict__ x, int64_t ldx, int64_t cols, int n_tok, void *dst, bool vec) {
    cu_pdl_wait();
    const int64_t c = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 4;
    if (c >= cols) return;
    for (int t = blockIdx.y; t < n_tok; t += gridDim.y) {
        const float *src = x + (int64_t)t * ldx + c;
        const int64_t o = (int64_t)t * cols + c;
        if (vec) {
            const float4 v = *(const float4 *)src;
            if (BF) {
                ((__nv_bfloat162 *)dst)[o / 2] = __floats2bfloat162_rn(v.x, v.y);
                ((__nv_bfloat162 *)dst)[o / 2 + 1] = __floats2bfloat162_rn(v.z, v.w);
            } else {
                ((__half2 *)dst)[o / 2] = __floats2half2_rn(v.x, v.y);
                ((__half2 *)dst)[o / 2 + 1] = __floats2half2_rn(v.z, v.w);
            }
        } else
            for (int k = 0; k < 4 && c + k < cols; k++) {
                if (BF) ((__nv_bfloat16 *)dst)[o + k] = __float2bfloat16_rn(src[k]);
                else ((__half *)dst)[o + k] = __float2half_rn(src[k]);
            }
    }
}

int cu_convert_act(cudaStream_t st, const float *x, int64_t ldx, int n_tok, int64_t cols, void *dst, bool bf16) {
    if (n_tok <= 0 || cols <= 0) return 0;
    const bool vec = cols % 4 == 0 && ldx % 4 == 0 && !((uintptr_t)x & 15) && !((uintptr_t)dst & 7);
    const dim3 grid = cu_rows_grid((cols + 3) / 4, n_tok, 256);
    if (bf16) cu_launch(k_convert_act<true>, grid, 256, 0, st, x, ldx, cols, n_tok, dst, vec);
    else cu_launch(k_convert_act<false>, grid, 256, 0, st, x, ldx, cols, n_tok, dst, vec);
    return CU_LAUNCHED("convert_act");
}

__global__ void k_add_bias(float *y, int64_t ldy, int64_t c0, int64_t n, int n_tok, const float *__restrict__ bias) {
    cu_pdl_wait_pass();
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= n) return;
    for (int t = blockIdx.y; t < n_tok; t += gridDim.y) y[(int64_t)t * ldy + c0 + c] += bias[c0 + c];
}

int cu_add_bias(cudaStream_t st, float *y, int64_t ldy, int n_tok, int64_t c0, int64_t n, const float *bias) {
    if (n_tok <= 0 || n <= 0) return 0;
    cu_launch(k_add_bias, cu_rows_grid(n, n_tok, 256), 256, 0, st, y, ldy, c0, n, n_tok, bias);
    return CU_LAUNCHED("add_bias");
}

/* ---- embedding rows ---- */

template <int TYPE>
__global__ void k_embed_q(const cu_mat m, int64_t row0, const int32_t *__restrict__ tokens, const cu_tok8 inl, float *dst,
                          int64_t ldd) {
    cu_pdl_wait();
    const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int t = blockIdx.y;
    if (u >= m.nb) return;
    const int64_t r = (int64_t)(tokens ? tokens[t] : inl.t[t]) - row0;
    float f[32];
    deq_unit<TYPE>(m, r, u, f);
    float *o = dst + t * ldd + u * 32;
#pragma unroll
    for (int k = 0; k < 32; k++) o[k] = f[k];
}

template <int TYPE>
__global__ void k_embed_f(const cu_mat m, int64_t row0, const int32_t *__restrict__ tokens, const cu_tok8 inl, float *dst,
                          int64_t ldd) {
    cu_pdl_wait();
    const int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int t = blockIdx.y;
    if (c >= m.cols) return;
    const int64_t r = (int64_t)(tokens ? tokens[t] : inl.t[t]) - row0;
    dst[t * ldd + c] = load1<TYPE>(m.data + r * m.row_bytes, c);
}

int cu_embed(cudaStream_t st, const cu_mat &m, int64_t row0, const int32_t *tokens, const cu_tok8 &inl, int n_tok,
             float *dst, int64_t ldd) {
    if (cu_type_quantized(m.type)) {
        const dim3 grid((unsigned)((m.nb + 63) / 64), (unsigned)n_tok);
        switch (m.type) {
        case HLLM_TYPE_Q4_0: cu_launch(k_embed_q<HLLM_TYPE_Q4_0>, grid, 64, 0, st, m, row0, tokens, inl, dst, ldd); break;
        case HLLM_TYPE_Q8_0: cu_launch(k_embed_q<HLLM_TYPE_Q8_0>, grid, 64, 0, st, m, row0, tokens, inl, dst, ldd); break;
        case HLLM_TYPE_Q4_K: cu_launch(k_embed_q<HLLM_TYPE_Q4_K>, grid, 64, 0, st, m, row0, tokens, inl, dst, ldd); break;
        case HLLM_TYPE_Q6_K: cu_launch(k_embed_q<HLLM_TYPE_Q6_K>, grid, 64, 0, st, m, row0, tokens, inl, dst, ldd); break;
        default: break;
        }
    } else {
        const dim3 grid((unsigned)((m.cols + 255) / 256), (unsigned)n_tok);
        switch (m.type) {
        case HLLM_TYPE_F32: cu_launch(k_embed_f<HLLM_TYPE_F32>, grid, 256, 0, st, m, row0, tokens, inl, dst, ldd); break;
        case HLLM_TYPE_F16: cu_launch(k_embed_f<HLLM_TYPE_F16>, grid, 256, 0, st, m, row0, tokens, inl, dst, ldd); break;
        case HLLM_TYPE_BF16: cu_launch(k_embed_f<HLLM_TYPE_BF16>, grid, 256, 0, st, m, row0, tokens, inl, dst, ldd); break;
        default: return hllm_fail("CUDA: cannot embed from %s", hllm_type_name(m.type));
        }
    }
    return CU_LAUNCHED("embed");
}

bool cu_pass_set_matmul(bool on) { return cu_pass_upload(on); }
