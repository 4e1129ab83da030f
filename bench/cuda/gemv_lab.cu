/* GEMV lab: variants of the one-token q4_0 GEMV run back to back as a llama3-8b decode step
 * runs them (per layer: q/k/v as one launch, o, gate/up as one launch, down; then the head), in
 * a CUDA graph with programmatic dependent launch, so the cost of each kernel boundary shows.
 * Weights are the processor's q4_0 layout (16 quant bytes a 32-element unit, f16 scales apart),
 * the activation q8_1 (int8 + (d, d * sum) a unit), the arithmetic that of k_gemv_q.
 *
 *   nvcc -O3 -arch=sm_90 -Isrc -o gemv_lab bench/cuda/gemv_lab.cu && ./gemv_lab
 *
 * Prints, per variant, ms per step and GB/s of weights, beside a plain read of the same bytes.
 * The "+small" variants put a small kernel between each two GEMVs (two after q/k/v), as a
 * decode step does, to see what those boundaries cost and what HLLM_CUDA_PASS's order saves.
 * "norms folded": q/k/v, gate/up and the head normalize and quantize their input themselves
 * (k_pers_norm), so the two norm kernels of a layer and their boundaries go.
 * Last, "chain": the whole step as one persistent kernel with a grid barrier where each kernel
 * boundary was, what a persistent layer kernel would stream at best. */
#include "proc/cuda/cuda_common.cuh" /* ld16w, cu_quant_unit: the engine's own */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#define CK(x)                                                                              \
    do {                                                                                   \
        cudaError_t e_ = (x);                                                              \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

struct mat {
    const uint8_t *q; /* rows x nb x 16 */
    const __half *d;  /* rows x nb */
    int rows, nb;
};

static __device__ __forceinline__ int4 ld16(const void *p) { return __ldg((const int4 *)p); }
static __device__ __forceinline__ void pf_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }
static __device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
static __device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" :::); }

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* one unit's contribution: weights v (16 bytes), scale dh, activation quants x0 x1, (d, d * sum) ds */
static __device__ __forceinline__ float dot_q(int4 v, __half dh, int4 x0, int4 x1, float2 ds) {
    const int vi[4] = {v.x, v.y, v.z, v.w};
    const int xa[4] = {x0.x, x0.y, x0.z, x0.w}, xb[4] = {x1.x, x1.y, x1.z, x1.w};
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) s = __dp4a(vi[i] & 0x0F0F0F0F, xa[i], s);
#pragma unroll
    for (int i = 0; i < 4; i++) s = __dp4a((vi[i] >> 4) & 0x0F0F0F0F, xb[i], s);
    const float d = __half2float(dh);
    return ds.x * (d * (float)s) - 8.0f * d * ds.y;
}

/* the same with activation unit u read from global memory (through L1) */
static __device__ __forceinline__ float dot_unit(int4 v, __half dh, const int8_t *__restrict__ xq,
                                                 const float2 *__restrict__ xds, int u) {
    return dot_q(v, dh, ld16(xq + u * 32), ld16(xq + u * 32 + 16), __ldg(xds + u));
}

/* Row-per-warp family (the engine's k_gemv_q): 128-thread blocks, 4 / WPR rows a block.
 * PF: L2 prefetch of the block's rows before the wait (the engine's default).
 * PRE: units per lane loaded into registers before the wait (weights do not depend on the
 * previous kernel; only the activation does).  ET: trigger the next kernel before the wait. */
template <int WPR, bool PF, int PRE, bool ET>
__global__ void __launch_bounds__(128) k_row(mat m, const int8_t *__restrict__ xq, const float2 *__restrict__ xds,
                                             float *__restrict__ y) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, sub = warp % WPR;
    const int rpb = 4 / WPR;
    const int r = blockIdx.x * rpb + warp / WPR;
    const int l = lane + 32 * sub, step = 32 * WPR, nb = m.nb;
    if (ET) pdl_trigger();
    const uint8_t *row = m.q + (size_t)r * nb * 16;
    const __half *drow = m.d + (size_t)r * nb;
    if (PF) {
        const uint8_t *p0 = m.q + (size_t)blockIdx.x * rpb * nb * 16;
        for (int o = threadIdx.x * 128; o < rpb * nb * 16; o += 128 * 128) pf_l2(p0 + o);
        const uint8_t *d0 = (const uint8_t *)(m.d + (size_t)blockIdx.x * rpb * nb);
        for (int o = threadIdx.x * 128; o < rpb * nb * 2; o += 128 * 128) pf_l2(d0 + o);
    }
    int4 pw[PRE > 0 ? PRE : 1];
    __half pd[PRE > 0 ? PRE : 1];
#pragma unroll
    for (int i = 0; i < PRE; i++) {
        const int u = l + i * step;
        if (u < nb) {
            pw[i] = ld16w(row + (size_t)u * 16);
            pd[i] = drow[u];
        }
    }
    pdl_wait();
    if (!ET) pdl_trigger();
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < PRE; i++) {
        const int u = l + i * step;
        if (u < nb) acc += dot_unit(pw[i], pd[i], xq, xds, u);
    }
#pragma unroll 2
    for (int u = l + PRE * step; u < nb; u += step) acc += dot_unit(ld16w(row + (size_t)u * 16), drow[u], xq, xds, u);
    acc = warp_sum(acc);
    if (WPR > 1) {
        __shared__ float red[4];
        if (lane == 0) red[warp] = acc;
        __syncthreads();
        if (sub == 0 && lane == 0) {
            float v = 0.0f;
            for (int k = 0; k < WPR; k++) v += red[warp + k];
            y[r] = v;
        }
    } else if (lane == 0)
        y[r] = acc;
}

/* Persistent-per-SM family: the grid is exactly the blocks the SMs hold at once (BPS a SM), each
 * warp walks rows gw, gw + W, ...; the lane loads the next row's units while it computes this
 * row's (two rows in registers), so the weight stream never waits for the arithmetic. Rows whose
 * lane holds at most U units (nb <= 32 U); down keeps the row family. Activation from L1 as above. */
template <int U, bool ET>
__global__ void __launch_bounds__(128) k_pers(mat m, const int8_t *__restrict__ xq, const float2 *__restrict__ xds,
                                              float *__restrict__ y) {
    const int lane = threadIdx.x & 31, nw = gridDim.x * 4;
    int r = blockIdx.x * 4 + (threadIdx.x >> 5);
    const int nb = m.nb;
    if (ET) pdl_trigger();
    int4 w[U];
    __half dd[U];
    auto load = [&](int rr) {
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int u = lane + 32 * i;
            if (rr < m.rows && u < nb) {
                w[i] = ld16w(m.q + ((size_t)rr * nb + u) * 16);
                dd[i] = m.d[(size_t)rr * nb + u];
            }
        }
    };
    load(r);
    pdl_wait();
    if (!ET) pdl_trigger();
    for (; r < m.rows; r += nw) {
        int4 cw[U];
        __half cd[U];
#pragma unroll
        for (int i = 0; i < U; i++) cw[i] = w[i], cd[i] = dd[i];
        load(r + nw);
        float acc = 0.0f;
#pragma unroll
        for (int i = 0; i < U; i++) {
            const int u = lane + 32 * i;
            if (u < nb) acc += dot_unit(cw[i], cd[i], xq, xds, u);
        }
        acc = warp_sum(acc);
        if (lane == 0) y[r] = acc;
    }
}

/* A small kernel of the kind that sits between two GEMVs in a decode step (an RMS norm over
 * 4096 floats: a block reduction, then a scaled copy), blocks x 256 threads. PASS: trigger the
 * next launch before the wait (HLLM_CUDA_PASS in the engine), else after it. */
template <bool PASS>
__global__ void __launch_bounds__(256) k_small(const float *__restrict__ x, float *__restrict__ out, int n) {
    if (PASS) pdl_trigger();
    pdl_wait();
    if (!PASS) pdl_trigger();
    __shared__ float part[8];
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += 256) s += x[i] * x[i];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    float t = 0.0f;
    for (int w = 0; w < 8; w++) t += part[w];
    const float rs = rsqrtf(t / n + 1e-5f);
    for (int i = threadIdx.x; i < n; i += 256) out[blockIdx.x * n + i] = x[i] * rs;
}

/* The whole step as ONE persistent kernel (what a persistent layer kernel would do): the grid is
 * what the SMs hold at once, warps walk the rows of each matrix in turn, and a grid-wide barrier
 * stands where a kernel boundary was (the next matrix's input would be ready only then). Before
 * each barrier a warp loads its first row of the next matrix into registers, so the weight
 * stream runs on through it. Rows of at most 32 PRE units a lane are preloaded whole. */
static __device__ __forceinline__ void grid_barrier(unsigned *bar) {
    __syncthreads();
    if (threadIdx.x == 0) {
        volatile unsigned *gen = bar + 1;
        const unsigned g = *gen;
        __threadfence();
        if (atomicAdd(bar, 1u) == gridDim.x - 1) {
            bar[0] = 0;
            __threadfence();
            atomicAdd(bar + 1, 1u);
        } else
            while (*gen == g) __nanosleep(32);
        __threadfence();
    }
    __syncthreads();
}

template <int PRE>
__global__ void __launch_bounds__(128) k_chain(const mat *__restrict__ mats, int n, const int8_t *__restrict__ xq,
                                               const float2 *__restrict__ xds, float *__restrict__ y, unsigned *bar) {
    const int lane = threadIdx.x & 31, gw = blockIdx.x * 4 + (threadIdx.x >> 5), nw = gridDim.x * 4;
    int4 pw[PRE];
    __half pd[PRE];
    auto preload = [&](const mat &m) {
#pragma unroll
        for (int i = 0; i < PRE; i++) {
            const int u = lane + 32 * i;
            if (gw < m.rows && u < m.nb) {
                pw[i] = ld16w(m.q + ((size_t)gw * m.nb + u) * 16);
                pd[i] = m.d[(size_t)gw * m.nb + u];
            }
        }
    };
    preload(mats[0]);
    for (int k = 0; k < n; k++) {
        const mat m = mats[k];
        for (int r = gw; r < m.rows; r += nw) {
            float acc = 0.0f;
            int u0 = lane;
            if (r == gw) {
#pragma unroll
                for (int i = 0; i < PRE; i++)
                    if (lane + 32 * i < m.nb) acc += dot_unit(pw[i], pd[i], xq, xds, lane + 32 * i);
                u0 = lane + 32 * PRE;
            }
            const uint8_t *row = m.q + (size_t)r * m.nb * 16;
            const __half *drow = m.d + (size_t)r * m.nb;
#pragma unroll 2
            for (int u = u0; u < m.nb; u += 32) acc += dot_unit(ld16w(row + (size_t)u * 16), drow[u], xq, xds, u);
            acc = warp_sum(acc);
            if (lane == 0) y[r] = acc;
        }
        if (k + 1 < n) {
            preload(mats[k + 1]);
            grid_barrier(bar);
        }
    }
}

/* The RMS norm and the q8_1 quantization folded into the GEMV that reads them (what the engine's
 * rmsnorm kernel does before q/k/v, gate/up and the head): a persistent grid (BPS blocks an SM),
 * each block first loads its warps' first rows (before the PDL wait), then normalizes and
 * quantizes the 4096-float input into shared memory (reading it and the norm weight from L2,
 * once per block: why the grid is kept small), then walks its rows dotting against shared memory. */
__global__ void __launch_bounds__(128) k_pers_norm(mat m, const float *__restrict__ x, const float *__restrict__ gamma,
                                                   float *__restrict__ y) {
    __shared__ __align__(16) int8_t sq[4096];
    __shared__ float2 sds[128];
    __shared__ float part[4];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = gridDim.x * 4;
    int r = blockIdx.x * 4 + warp;
    int4 w[4];
    __half dd[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
        if (r < m.rows) {
            w[i] = ld16w(m.q + ((size_t)r * 128 + lane + 32 * i) * 16);
            dd[i] = m.d[(size_t)r * 128 + lane + 32 * i];
        }
    pdl_wait();
    pdl_trigger();
    float ss = 0.0f;
    for (int i = threadIdx.x; i < 1024; i += 128) {
        const float4 v = __ldg((const float4 *)x + i);
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    ss = warp_sum(ss);
    if (lane == 0) part[warp] = ss;
    __syncthreads();
    const float rs = rsqrtf((part[0] + part[1] + part[2] + part[3]) / 4096.0f + 1e-5f);
    for (int u = warp; u < 128; u += 4) {
        cu_quant_unit(x[u * 32 + lane] * gamma[u * 32 + lane] * rs, sq + u * 32 + lane, sds + u, lane);
    }
    __syncthreads();
    for (; r < m.rows; r += nw) {
        int4 cw[4];
        __half cd[4];
#pragma unroll
        for (int i = 0; i < 4; i++) cw[i] = w[i], cd[i] = dd[i];
        const int rn = r + nw;
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (rn < m.rows) {
                w[i] = ld16w(m.q + ((size_t)rn * 128 + lane + 32 * i) * 16);
                dd[i] = m.d[(size_t)rn * 128 + lane + 32 * i];
            }
        float acc = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int u = lane + 32 * i;
            acc += dot_q(cw[i], cd[i], *(const int4 *)(sq + u * 32), *(const int4 *)(sq + u * 32 + 16), sds[u]);
        }
        acc = warp_sum(acc);
        if (lane == 0) y[r] = acc;
    }
}

/* plain read of n int4s (the bandwidth reference) */
__global__ void k_read(const int4 *p, size_t n, int *sink) {
    int acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int4 v = ld16w(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678) *sink = acc;
}

static int n_sm;

template <typename... A>
static void launch(void (*k)(A...), unsigned grid, cudaStream_t st, mat m, const int8_t *xq, const float2 *xds,
                   float *y) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = 128;
    cfg.stream = st;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, k, m, xq, xds, y));
}

/* a variant: how it launches one matrix */
typedef void (*launch_fn)(cudaStream_t, mat, const int8_t *, const float2 *, float *);

template <int WPR, bool PF, int PRE, bool ET>
static void L_row(cudaStream_t st, mat m, const int8_t *xq, const float2 *xds, float *y) {
    launch(k_row<WPR, PF, PRE, ET>, (unsigned)(m.rows / (4 / WPR)), st, m, xq, xds, y);
}
/* the engine's warps-per-row rule for these shapes: down (long rows) 2, the rest 1 */
template <bool PF, int PRE, bool ET, int DW>
static void L_rule(cudaStream_t st, mat m, const int8_t *xq, const float2 *xds, float *y) {
    if (m.nb > 200) {
        if (DW == 1) L_row<1, PF, PRE, ET>(st, m, xq, xds, y);
        else if (DW == 2) L_row<2, PF, PRE, ET>(st, m, xq, xds, y);
        else L_row<4, PF, PRE, ET>(st, m, xq, xds, y);
    } else
        L_row<1, PF, PRE, ET>(st, m, xq, xds, y);
}
template <int BPS, bool ET>
static void L_pers(cudaStream_t st, mat m, const int8_t *xq, const float2 *xds, float *y) {
    unsigned g = (unsigned)(n_sm * BPS);
    if ((int)g * 4 > m.rows) g = (unsigned)(m.rows / 4);
    if (m.nb <= 128) launch(k_pers<4, ET>, g, st, m, xq, xds, y);
    else L_row<2, false, 4, ET>(st, m, xq, xds, y); /* long rows: two rows in registers would not fit */
}

static float *g_xf, *g_gamma; /* the norm's input and weight (fused variants) */
template <int BPS>
static void L_fused(cudaStream_t st, mat m, const int8_t *xq, const float2 *xds, float *y) {
    if (m.nb == 128 && m.rows != 4096) {
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = (unsigned)(n_sm * BPS);
        cfg.blockDim = 128;
        cfg.stream = st;
        cfg.attrs = at;
        cfg.numAttrs = 1;
        CK(cudaLaunchKernelEx(&cfg, k_pers_norm, m, (const float *)g_xf, (const float *)g_gamma, y));
    } else
        L_rule<false, 4, false, 2>(st, m, xq, xds, y);
}

struct variant {
    const char *name;
    launch_fn f;
    int small; /* 0: GEMVs back to back; 1: a small kernel between each two (as a decode step has,
                * with a 32-block one more after q/k/v, for attention); 2: the same, PASS;
                * 3 / 4: as 1 / 2 without the norms (folded into the GEMVs after them) */
};

/* the small kernels after GEMV i of the step (layer order q/k/v, o, gate/up, down) */
static void smalls(cudaStream_t st, int kind, int i, const float *x, float *out) {
    if (!kind) return;
    int n_k = i % 4 == 0 ? 2 : 1;
    if (kind >= 3 && (i % 4 == 1 || i % 4 == 3)) n_k = 0; /* the norm is in the GEMV after */
    for (int k = 0; k < n_k; k++) {
        cudaLaunchAttribute at[1];
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = k == 1 ? 32 : 1;
        cfg.blockDim = 256;
        cfg.stream = st;
        cfg.attrs = at;
        cfg.numAttrs = 1;
        if (kind == 2 || kind == 4) CK(cudaLaunchKernelEx(&cfg, k_small<true>, x, out, 4096));
        else CK(cudaLaunchKernelEx(&cfg, k_small<false>, x, out, 4096));
    }
}

int main(int argc, char **argv) {
    const int n_layers = argc > 1 ? atoi(argv[1]) : 32;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    n_sm = prop.multiProcessorCount;
    printf("device %s, %d SMs\n", prop.name, n_sm);
    /* llama3-8b shapes: q/k/v 6144 x 4096, o 4096 x 4096, gate/up 28672 x 4096, down 4096 x 14336, head 128256 x 4096 */
    const int shp[5][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}};
    const char *shn[5] = {"qkv", "o", "gate/up", "down", "head"};
    std::vector<mat> mats; /* layer-major, then the head */
    size_t total = 0;
    for (int i = 0; i < 4 * n_layers + 1; i++) {
            const int s = i == 4 * n_layers ? 4 : i % 4;
            mat m;
            m.rows = shp[s][0];
            m.nb = shp[s][1] / 32;
            const size_t qb = (size_t)m.rows * m.nb * 16, db = (size_t)m.rows * m.nb * 2;
            uint8_t *q;
            __half *d;
            CK(cudaMalloc(&q, qb));
            CK(cudaMalloc(&d, db));
            /* pseudo-random quants, scales ~1/64 */
            std::vector<uint8_t> hq(qb < (1 << 24) ? qb : (1 << 24));
            for (size_t i = 0; i < hq.size(); i++) hq[i] = (uint8_t)(i * 2654435761u >> 13);
            for (size_t o = 0; o < qb; o += hq.size()) CK(cudaMemcpy(q + o, hq.data(), qb - o < hq.size() ? qb - o : hq.size(), cudaMemcpyHostToDevice));
            std::vector<__half> hd((size_t)m.rows * m.nb);
            for (size_t i = 0; i < hd.size(); i++) hd[i] = __float2half(((int)(i * 40503u % 97) - 48) / 3072.0f);
            CK(cudaMemcpy(d, hd.data(), db, cudaMemcpyHostToDevice));
            m.q = q;
            m.d = d;
            mats.push_back(m);
            total += qb + db;
        }
    printf("%d layers + head: %zu matrices, %.3f GB of weights\n", n_layers, mats.size(), total / 1e9);
    int8_t *xq;
    float2 *xds;
    float *y, *yref;
    int *sink;
    CK(cudaMalloc(&xq, 14336));
    CK(cudaMalloc(&xds, 448 * sizeof(float2)));
    CK(cudaMalloc(&y, 128256 * sizeof(float)));
    CK(cudaMalloc(&yref, 128256 * sizeof(float)));
    CK(cudaMalloc(&sink, 4));
    float *small_out;
    CK(cudaMalloc(&small_out, 32 * 4096 * sizeof(float)));
    {
        std::vector<float> hx(4096), hg(4096);
        for (int i = 0; i < 4096; i++) hx[i] = ((i * 37) % 101 - 50) / 25.0f, hg[i] = 0.5f + (i % 13) / 13.0f;
        CK(cudaMalloc(&g_xf, 4096 * sizeof(float)));
        CK(cudaMalloc(&g_gamma, 4096 * sizeof(float)));
        CK(cudaMemcpy(g_xf, hx.data(), 4096 * sizeof(float), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(g_gamma, hg.data(), 4096 * sizeof(float), cudaMemcpyHostToDevice));
    }
    {
        std::vector<int8_t> hx(14336);
        std::vector<float2> hds(448);
        for (int i = 0; i < 14336; i++) hx[i] = (int8_t)((i * 37 % 255) - 127);
        for (int u = 0; u < 448; u++) {
            int s = 0;
            for (int k = 0; k < 32; k++) s += hx[u * 32 + k];
            const float dx = 0.01f + 0.001f * (u % 7);
            hds[u] = make_float2(dx, dx * (float)s);
        }
        CK(cudaMemcpy(xq, hx.data(), 14336, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(xds, hds.data(), 448 * sizeof(float2), cudaMemcpyHostToDevice));
    }
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    /* bandwidth reference: read every matrix's quants */
    {
        float best = 1e30f;
        for (int rep = 0; rep < 5; rep++) {
            CK(cudaEventRecord(e0, st));
            for (const mat &m : mats)
                k_read<<<n_sm * 16, 256, 0, st>>>((const int4 *)m.q, (size_t)m.rows * m.nb, sink);
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (ms < best) best = ms;
        }
        size_t qbytes = 0;
        for (const mat &m : mats) qbytes += (size_t)m.rows * m.nb * 16;
        printf("plain read of the quants (%zu launches): %.3f ms, %.0f GB/s\n", mats.size(), best, qbytes / best / 1e6);
    }

    variant vs[] = {
        {"engine (PF, wpr rule)", L_rule<true, 0, false, 2>, 0},
        {"no prefetch", L_rule<false, 0, false, 2>, 0},
        {"PRE2", L_rule<false, 2, false, 2>, 0},
        {"PRE4", L_rule<false, 4, false, 2>, 0},
        {"PRE4 + PF", L_rule<true, 4, false, 2>, 0},
        {"PRE4 + ET", L_rule<false, 4, true, 2>, 0},
        {"PRE2 + ET", L_rule<false, 2, true, 2>, 0},
        {"PF + ET", L_rule<true, 0, true, 2>, 0},
        {"PRE4 down wpr1", L_rule<false, 4, false, 1>, 0},
        {"PRE4 down wpr4", L_rule<false, 4, false, 4>, 0},
        {"PRE2 down wpr4", L_rule<false, 2, false, 4>, 0},
        {"pers 8/SM", L_pers<8, false>, 0},
        {"pers 12/SM", L_pers<12, false>, 0},
        {"pers 16/SM", L_pers<16, false>, 0},
        {"+small: PF (engine before)", L_rule<true, 0, false, 2>, 1},
        {"+small: PRE4 (engine now)", L_rule<false, 4, false, 2>, 1},
        {"+small: PRE4, PASS", L_rule<false, 4, false, 2>, 2},
        {"+small: PRE2, PASS", L_rule<false, 2, false, 2>, 2},
        {"+small: PF, PASS", L_rule<true, 0, false, 2>, 2},
        {"+small: norms folded, 4/SM", L_fused<4>, 3},
        {"+small: norms folded, 8/SM", L_fused<8>, 3},
        {"+small: norms folded, 8/SM, PASS", L_fused<8>, 4},
    };
    const int nv = (int)(sizeof vs / sizeof vs[0]);
    /* correctness: every variant's head and down outputs equal the engine variant's (same
     * per-row arithmetic up to the order of the lane sums) */
    for (int s : {3, 4}) {
        const mat &m = mats[s == 4 ? mats.size() - 1 : 3];
        vs[0].f(st, m, xq, xds, yref);
        CK(cudaStreamSynchronize(st)); /* st does not wait for the default stream's copies, nor they for it */
        std::vector<float> a(m.rows), b(m.rows);
        CK(cudaMemcpy(a.data(), yref, m.rows * 4, cudaMemcpyDeviceToHost));
        for (int v = 1; v < nv; v++) {
            if (vs[v].small >= 3) continue; /* the folded norm dots another input */
            CK(cudaMemset(y, 0, m.rows * 4));
            CK(cudaDeviceSynchronize());
            vs[v].f(st, m, xq, xds, y);
            CK(cudaStreamSynchronize(st));
            CK(cudaMemcpy(b.data(), y, m.rows * 4, cudaMemcpyDeviceToHost));
            int bad = 0;
            for (int i = 0; i < m.rows; i++)
                if (fabsf(a[i] - b[i]) > 1e-3f * (1.0f + fabsf(a[i]))) bad++;
            if (bad) printf("MISMATCH %s on %s: %d rows\n", vs[v].name, shn[s], bad);
        }
    }
    CK(cudaStreamSynchronize(st));
    CK(cudaGetLastError());

    /* timing: the whole step as one graph; then each shape alone (its 32 launches) */
    const int reps = 3;
    printf("\n%-24s %9s %8s | per shape (GB/s, its launches back to back)\n", "variant", "ms/step", "GB/s");
    std::vector<double> best_ms(nv, 1e30);
    for (int rep = 0; rep < reps; rep++)
        for (int v = 0; v < nv; v++) {
            cudaGraph_t g;
            cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
            for (size_t i = 0; i < mats.size(); i++) {
                vs[v].f(st, mats[i], xq, xds, y);
                if (i + 1 < mats.size()) smalls(st, vs[v].small, (int)i, y, small_out);
            }
            CK(cudaStreamEndCapture(st, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            CK(cudaGraphLaunch(ge, st));
            CK(cudaEventRecord(e0, st));
            for (int i = 0; i < 10; i++) CK(cudaGraphLaunch(ge, st));
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            ms /= 10;
            if (ms < best_ms[v]) best_ms[v] = ms;
            CK(cudaGraphExecDestroy(ge));
            CK(cudaGraphDestroy(g));
            if (rep < reps - 1) continue;
            printf("%-24s %9.3f %8.0f |", vs[v].name, best_ms[v], total / best_ms[v] / 1e6);
            for (int s = 0; s < 5; s++) {
                cudaGraph_t g2;
                cudaGraphExec_t ge2;
                size_t bytes = 0;
                CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
                for (size_t i = 0; i < mats.size(); i++) {
                    const bool is_head = i == mats.size() - 1;
                    if (is_head != (s == 4) || (!is_head && (int)(i % 4) != s)) continue;
                    vs[v].f(st, mats[i], xq, xds, y);
                    bytes += (size_t)mats[i].rows * mats[i].nb * 18;
                }
                CK(cudaStreamEndCapture(st, &g2));
                CK(cudaGraphInstantiate(&ge2, g2, 0));
                CK(cudaGraphLaunch(ge2, st));
                float best2 = 1e30f;
                for (int k = 0; k < 3; k++) {
                    CK(cudaEventRecord(e0, st));
                    CK(cudaGraphLaunch(ge2, st));
                    CK(cudaEventRecord(e1, st));
                    CK(cudaEventSynchronize(e1));
                    float ms2;
                    CK(cudaEventElapsedTime(&ms2, e0, e1));
                    if (ms2 < best2) best2 = ms2;
                }
                printf(" %s %.0f", shn[s], bytes / best2 / 1e6);
                CK(cudaGraphExecDestroy(ge2));
                CK(cudaGraphDestroy(g2));
            }
            printf("\n");
        }

    /* the persistent chain: one launch a step, all its blocks resident at once */
    {
        mat *dm;
        unsigned *bar;
        CK(cudaMalloc(&dm, mats.size() * sizeof(mat)));
        CK(cudaMemcpy(dm, mats.data(), mats.size() * sizeof(mat), cudaMemcpyHostToDevice));
        CK(cudaMalloc(&bar, 2 * sizeof(unsigned)));
        CK(cudaMemset(bar, 0, 2 * sizeof(unsigned)));
        const int nm = (int)mats.size();
        for (int pre : {2, 4})
            for (int bps : {4, 6, 8}) {
                int fit = 0;
                if (pre == 2) CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, k_chain<2>, 128, 0));
                else CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, k_chain<4>, 128, 0));
                if (bps > fit) {
                    printf("chain PRE%d %2d blocks/SM: only %d fit\n", pre, bps, fit);
                    continue;
                }
                const unsigned grid = (unsigned)(n_sm * bps);
                float best = 1e30f;
                for (int rep = 0; rep < 6; rep++) {
                    CK(cudaEventRecord(e0, st));
                    if (pre == 2) k_chain<2><<<grid, 128, 0, st>>>(dm, nm, xq, xds, y, bar);
                    else k_chain<4><<<grid, 128, 0, st>>>(dm, nm, xq, xds, y, bar);
                    CK(cudaEventRecord(e1, st));
                    CK(cudaEventSynchronize(e1));
                    CK(cudaGetLastError());
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (rep > 0 && ms < best) best = ms;
                }
                printf("chain PRE%d %2d blocks/SM (one kernel, %d grid barriers) %9.3f ms %8.0f GB/s\n", pre, bps, nm - 1,
                       best, total / best / 1e6);
            }
        /* its rows against the engine-shaped kernel's (head: the last matrix) */
        const mat &mh = mats.back();
        vs[0].f(st, mh, xq, xds, yref);
        k_chain<4><<<(unsigned)(n_sm * 4), 128, 0, st>>>(dm, nm, xq, xds, y, bar);
        CK(cudaStreamSynchronize(st));
        std::vector<float> a(mh.rows), b(mh.rows);
        CK(cudaMemcpy(a.data(), yref, mh.rows * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(b.data(), y, mh.rows * 4, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int i = 0; i < mh.rows; i++)
            if (fabsf(a[i] - b[i]) > 1e-3f * (1.0f + fabsf(a[i]))) bad++;
        printf("chain head rows against the engine-shaped kernel: %d differ\n", bad);
    }
    return 0;
}
