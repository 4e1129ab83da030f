/* Prefill attention on tensor cores (compute capability 8.0+, F16 KV cache, head_dim a multiple
 * of 16 up to 128): the same result as k_attn_flash (cuda_attn.cu), causal and GQA, but the two
 * products run as mma.sync m16n8k16 (f16 inputs, f32 accumulation) instead of scalar FMAs: the
 * scalar kernel spent ~450 us a layer on a 512-token Llama-3-8B prompt, ~30% of the prompt.
 *
 * One 128-thread block per (64 queries, head); warp w owns queries 16w..16w+15 of the block. Key
 * tiles of 64 rows of K and V pass through shared memory. Each warp keeps its Q fragments in
 * registers, computes S = Q K^T for the tile (16 x 64, f32), masks and rescales it with an online
 * softmax (max and sum per row, kept by the quad of threads that holds the row), and adds P V,
 * with P rounded to f16 as the A operand: the only rounding beyond the scalar kernel's (q is
 * rounded to f16 in both, as the CPU does), worth ~1e-3 relative. */
#include "proc/cuda/cuda_attn.cuh"
#include <math.h>

static __device__ __forceinline__ uint32_t pack_h2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}

static __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* Four 8x8 f16 matrices from shared memory, transposed (thread lane gets rows 2(lane%4) and
 * 2(lane%4)+1 of column lane/4): the B operand of P V straight from V's row-major tile. */
static __device__ __forceinline__ void ldsm_x4_t(uint32_t r[4], const __half *p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

template <int HD>
__global__ void __launch_bounds__(128) k_attn_mma(const attn_p a) {
    cu_pdl_wait();
    const float scale_log2 = a.scale * 1.4426950408889634f; /* scores go through exp2 */
    const __half *kc = (const __half *)a.kc, *vc = (const __half *)a.vc;
    constexpr int KT = 64, LD = HD + 8; /* keys per tile; row stride in halves (no bank conflicts) */
    constexpr int KS = HD / 16, NS = KT / 8, ND = HD / 8;
    extern __shared__ __align__(16) unsigned char sm_raw[];
    __half *Ks = (__half *)sm_raw, *Vs = Ks + KT * LD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int t0 = blockIdx.x * 64, h = a.h0 + blockIdx.y, kvh = h / a.group;
    const int nq = min(64, a.n_tok - t0);
    const int qw = t0 + warp * 16;                   /* the warp's first query */
    const int qa = qw + g, qb = qw + g + 8;          /* this thread's two rows */
    const bool va = qa < a.n_tok, vb = qb < a.n_tok;
    uint32_t qf[KS][4];
    {
        const float *ra = a.q + (int64_t)qa * a.ldq + (int64_t)h * HD, *rb = a.q + (int64_t)qb * a.ldq + (int64_t)h * HD;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            const int c = kk * 16 + 2 * t;
            qf[kk][0] = va ? pack_h2(ra[c], ra[c + 1]) : 0u;
            qf[kk][1] = vb ? pack_h2(rb[c], rb[c + 1]) : 0u;
            qf[kk][2] = va ? pack_h2(ra[c + 8], ra[c + 9]) : 0u;
            qf[kk][3] = vb ? pack_h2(rb[c + 8], rb[c + 9]) : 0u;
        }
    }
    float o[ND][4];
#pragma unroll
    for (int n = 0; n < ND; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float ma = -INFINITY, mb = -INFINITY, la = 0.0f, lb = 0.0f;
    const int kend = a.pos0 + t0 + nq;          /* keys [0, kend) are seen by some row of the block */
    const int wlast = a.pos0 + min(qw + 15, a.n_tok - 1); /* the warp's last visible key */
    const int lasta = a.pos0 + qa, lastb = a.pos0 + qb;
    const int64_t koff = (int64_t)kvh * HD;
    for (int kb = 0; kb < kend; kb += KT) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < KT * (HD / 8); idx += 128) {
            const int r = idx / (HD / 8), c = (idx - r * (HD / 8)) * 8, j = kb + r;
            int4 kx = make_int4(0, 0, 0, 0), vx = kx; /* rows past kend: zeros (0 * garbage could be NaN) */
            if (j < kend) {
                const int64_t off = (int64_t)j * a.kv_dim + koff + c;
                kx = *(const int4 *)(kc + off);
                vx = *(const int4 *)(vc + off);
            }
            *(int4 *)(Ks + r * LD + c) = kx;
            *(int4 *)(Vs + r * LD + c) = vx;
        }
        __syncthreads();
        if (kb > wlast) continue; /* every key of this tile is in the warp's future */
        float s[NS][4];
#pragma unroll
        for (int n = 0; n < NS; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KS; kk++)
#pragma unroll
            for (int n = 0; n < NS; n++) {
                const __half *kr = Ks + (n * 8 + g) * LD + kk * 16 + 2 * t;
                mma16816(s[n], qf[kk], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        float xa = -INFINITY, xb = -INFINITY;
#pragma unroll
        for (int n = 0; n < NS; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = kb + n * 8 + 2 * t + (e & 1);
                const bool ok = e < 2 ? key <= lasta : key <= lastb;
                s[n][e] = ok ? s[n][e] * scale_log2 : -INFINITY;
                if (e < 2) xa = fmaxf(xa, s[n][e]);
                else xb = fmaxf(xb, s[n][e]);
            }
        xa = fmaxf(xa, __shfl_xor_sync(0xffffffffu, xa, 1));
        xa = fmaxf(xa, __shfl_xor_sync(0xffffffffu, xa, 2));
        xb = fmaxf(xb, __shfl_xor_sync(0xffffffffu, xb, 1));
        xb = fmaxf(xb, __shfl_xor_sync(0xffffffffu, xb, 2));
        const float na = fmaxf(ma, xa), nb = fmaxf(mb, xb);
        const float ca = na == -INFINITY ? 1.0f : exp2f(ma - na), cb = nb == -INFINITY ? 1.0f : exp2f(mb - nb);
        float sa = 0.0f, sb = 0.0f;
#pragma unroll
        for (int n = 0; n < NS; n++) {
            s[n][0] = na == -INFINITY ? 0.0f : exp2f(s[n][0] - na);
            s[n][1] = na == -INFINITY ? 0.0f : exp2f(s[n][1] - na);
            s[n][2] = nb == -INFINITY ? 0.0f : exp2f(s[n][2] - nb);
            s[n][3] = nb == -INFINITY ? 0.0f : exp2f(s[n][3] - nb);
            sa += s[n][0] + s[n][1];
            sb += s[n][2] + s[n][3];
        }
        la = la * ca + sa, lb = lb * cb + sb;
        ma = na, mb = nb;
#pragma unroll
        for (int n = 0; n < ND; n++) o[n][0] *= ca, o[n][1] *= ca, o[n][2] *= cb, o[n][3] *= cb;
        /* P V: the S accumulators of key tiles 2kk and 2kk+1 are the A fragment of k-step kk */
        const int vr = (lane & 7) + ((lane >> 3) & 1) * 8, vc = (lane >> 4) * 8;
#pragma unroll
        for (int kk = 0; kk < KT / 16; kk++) {
            const uint32_t pa[4] = {pack_h2(s[2 * kk][0], s[2 * kk][1]), pack_h2(s[2 * kk][2], s[2 * kk][3]),
                                    pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int nd = 0; nd < ND / 2; nd++) {
                uint32_t b[4];
                ldsm_x4_t(b, Vs + (kk * 16 + vr) * LD + nd * 16 + vc);
                mma16816(o[2 * nd], pa, b[0], b[1]);
                mma16816(o[2 * nd + 1], pa, b[2], b[3]);
            }
        }
    }
    la += __shfl_xor_sync(0xffffffffu, la, 1);
    la += __shfl_xor_sync(0xffffffffu, la, 2);
    lb += __shfl_xor_sync(0xffffffffu, lb, 1);
    lb += __shfl_xor_sync(0xffffffffu, lb, 2);
    float *outa = a.dst + (int64_t)qa * a.ldd + (int64_t)h * HD, *outb = a.dst + (int64_t)qb * a.ldd + (int64_t)h * HD;
    const float ia = 1.0f / la, ib = 1.0f / lb;
#pragma unroll
    for (int n = 0; n < ND; n++) {
        const int c = n * 8 + 2 * t;
        if (va) outa[c] = o[n][0] * ia, outa[c + 1] = o[n][1] * ia;
        if (vb) outb[c] = o[n][2] * ib, outb[c + 1] = o[n][3] * ib;
    }
}

template <int HD>
static int launch_mma(cudaStream_t st, const attn_p &a) {
    const size_t smem = (size_t)2 * 64 * (HD + 8) * sizeof(__half);
    const dim3 grid((unsigned)((a.n_tok + 63) / 64), (unsigned)a.nh);
    cu_launch(k_attn_mma<HD>, grid, 128, smem, st, a);
    return CU_LAUNCHED("attention (tensor cores)");
}

int cu_attn_mma(cudaStream_t st, const hllm_op *op, int cc_major) {
    const int hd = op->head_dim;
    if (cc_major < 8 || op->kv->type != HLLM_TYPE_F16 || hd % 16 || hd > 128) return 1;
    const attn_p a = attn_p_of(op);
    if (a.nh <= 0 || a.n_tok <= 0) return 0;
    switch (hd) {
    case 16: return launch_mma<16>(st, a);
    case 32: return launch_mma<32>(st, a);
    case 48: return launch_mma<48>(st, a);
    case 64: return launch_mma<64>(st, a);
    case 80: return launch_mma<80>(st, a);
    case 96: return launch_mma<96>(st, a);
    case 112: return launch_mma<112>(st, a);
    default: return launch_mma<128>(st, a);
    }
}
