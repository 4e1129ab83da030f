/* Attention of the CUDA processor: dst[t] = softmax(q[t] . K[0..pos0+t] * scale) V per query
 * head, causal, GQA (query head h reads KV head h / (n_head / n_head_kv)). With an F16 cache
 * q is rounded to f16 first, as the CPU processor does.
 *
 * Decode (split-KV, "flash decoding"): one 128-thread block per (token, head, chunk of keys)
 * computes the chunk's scores in shared memory, its max, sum and unnormalized P.V; a second
 * kernel merges the chunks (skipped when there is one chunk).
 *
 * Prefill (flash): one 128-thread block per (32 queries, head) walks 32-key tiles of K and V
 * through shared memory with an online softmax; no score matrix beyond one 32x32 tile exists.
 * Thread (qi = tid / 4, sub = tid % 4) owns query row qi, keys sub + 4jj of each tile, and
 * output dims sub + 4c. */
#include "proc/cuda/cuda_common.cuh"
#include <math.h>

struct attn_p {
    const float *q;
    int64_t ldq;
    float *dst;
    int64_t ldd;
    const void *kc, *vc;
    int64_t kv_dim;
    int hd, group, h0, nh, pos0, n_tok;
    float scale;
};

static attn_p attn_p_of(const hllm_op *op) {
    attn_p a;
    a.q = op->src;
    a.ldq = op->ld_src;
    a.dst = op->dst;
    a.ldd = op->ld_dst;
    a.kc = op->kv->k;
    a.vc = op->kv->v;
    a.hd = op->head_dim;
    a.kv_dim = (int64_t)op->n_head_kv * op->head_dim;
    a.group = op->n_head / op->n_head_kv;
    a.h0 = op->h0;
    a.nh = op->h1 - op->h0;
    a.pos0 = op->pos0;
    a.n_tok = op->n_tok;
    a.scale = op->attn_scale;
    return a;
}

template <bool F16>
static __device__ __forceinline__ float kv_at(const void *p, int64_t i) {
    if (F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

/* ---- split-KV decode ---- */

template <bool F16>
__global__ void __launch_bounds__(128) k_attn_split(const attn_p a, int chunk, int n_chunks, float *part) {
    extern __shared__ float sm[];
    const int hd = a.hd;
    float *qs = sm, *sc = qs + ((hd + 3) & ~3), *pv = sc + chunk, *red = pv + 128;
    const int c = blockIdx.x, hi = blockIdx.y, t = blockIdx.z, tid = threadIdx.x;
    const int h = a.h0 + hi, kvh = h / a.group;
    const int n_keys = a.pos0 + t + 1;
    const int kb = c * chunk, ke = min(kb + chunk, n_keys), len = ke - kb;
    const int64_t pidx = ((int64_t)t * a.nh + hi) * n_chunks + c;
    if (len <= 0) { /* this token sees no key of this chunk */
        float *pp = part + pidx * (hd + 2);
        for (int d = tid; d < hd + 2; d += 128) pp[d] = d == 0 ? -INFINITY : 0.0f;
        return;
    }
    for (int d = tid; d < hd; d += 128) {
        float v = a.q[(int64_t)t * a.ldq + (int64_t)h * hd + d];
        if (F16) v = __half2float(__float2half_rn(v));
        qs[d] = v;
    }
    __syncthreads();
    const int64_t koff = (int64_t)kvh * hd;
    float mx = -INFINITY;
    for (int j = tid; j < len; j += 128) {
        const int64_t row = (int64_t)(kb + j) * a.kv_dim + koff;
        float s = 0.0f;
        if (F16 && (hd & 7) == 0) {
            const int4 *kp = (const int4 *)((const __half *)a.kc + row);
            for (int d = 0; d < hd; d += 8) {
                const int4 kv = kp[d >> 3];
                const __half2 *k2 = (const __half2 *)&kv;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float2 f = __half22float2(k2[e]);
                    s += qs[d + 2 * e] * f.x;
                    s += qs[d + 2 * e + 1] * f.y;
                }
            }
        } else if (!F16 && (hd & 3) == 0) {
            const float4 *kp = (const float4 *)((const float *)a.kc + row);
            for (int d = 0; d < hd; d += 4) {
                const float4 k4 = kp[d >> 2];
                s += qs[d] * k4.x;
                s += qs[d + 1] * k4.y;
                s += qs[d + 2] * k4.z;
                s += qs[d + 3] * k4.w;
            }
        } else {
            for (int d = 0; d < hd; d++) s += qs[d] * kv_at<F16>(a.kc, row + d);
        }
        s *= a.scale;
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if ((tid & 31) == 0) red[tid >> 5] = mx;
    __syncthreads();
    mx = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    float sum = 0.0f;
    for (int j = tid; j < len; j += 128) {
        const float p = expf(sc[j] - mx);
        sc[j] = p;
        sum += p;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((tid & 31) == 0) red[4 + (tid >> 5)] = sum;
    __syncthreads();
    sum = red[4] + red[5] + red[6] + red[7];
    const int64_t voff = koff;
    float *out = n_chunks == 1 ? a.dst + (int64_t)t * a.ldd + (int64_t)h * hd : part + pidx * (hd + 2) + 2;
    const float norm = n_chunks == 1 ? 1.0f / sum : 1.0f;
    if (hd <= 128) {
        /* nsl slices of the keys, each over all hd dims; then the slices are summed */
        const int nsl = 128 / hd, d = tid % hd, s = tid / hd;
        float acc = 0.0f;
        if (s < nsl)
            for (int j = s; j < len; j += nsl) acc += sc[j] * kv_at<F16>(a.vc, (int64_t)(kb + j) * a.kv_dim + voff + d);
        pv[tid] = acc;
        __syncthreads();
        if (tid < hd) {
            float tot = 0.0f;
            for (int k = 0; k < nsl; k++) tot += pv[k * hd + tid];
            out[tid] = tot * norm;
        }
    } else {
        for (int d = tid; d < hd; d += 128) {
            float acc = 0.0f;
            for (int j = 0; j < len; j++) acc += sc[j] * kv_at<F16>(a.vc, (int64_t)(kb + j) * a.kv_dim + voff + d);
            out[d] = acc * norm;
        }
    }
    if (n_chunks > 1 && tid == 0) {
        part[pidx * (hd + 2)] = mx;
        part[pidx * (hd + 2) + 1] = sum;
    }
}

__global__ void k_attn_merge(const attn_p a, int n_chunks, const float *__restrict__ part) {
    const int hi = blockIdx.x, t = blockIdx.y, hd = a.hd;
    const float *pp = part + ((int64_t)t * a.nh + hi) * n_chunks * (hd + 2);
    float M = -INFINITY;
    for (int c = 0; c < n_chunks; c++) M = fmaxf(M, pp[c * (hd + 2)]);
    float L = 0.0f;
    for (int c = 0; c < n_chunks; c++) {
        const float mc = pp[c * (hd + 2)];
        if (mc != -INFINITY) L += pp[c * (hd + 2) + 1] * expf(mc - M);
    }
    float *out = a.dst + (int64_t)t * a.ldd + (int64_t)(a.h0 + hi) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int c = 0; c < n_chunks; c++) {
            const float mc = pp[c * (hd + 2)];
            if (mc != -INFINITY) acc += pp[c * (hd + 2) + 2 + d] * expf(mc - M);
        }
        out[d] = acc / L;
    }
}

size_t cu_attn_split_scratch(const hllm_op *op, int n_sm, int *chunk, int *n_chunks) {
    const int n_keys = op->pos0 + op->n_tok;
    const int items = op->n_tok * (op->h1 - op->h0);
    /* enough blocks to fill the GPU a few times over, at most 64 chunks, 64..8192 keys each */
    int want = (4 * n_sm + items - 1) / (items > 0 ? items : 1);
    if (want < 1) want = 1;
    if (want > 64) want = 64;
    int ch = (n_keys + want - 1) / want;
    ch = (ch + 63) / 64 * 64;
    if (ch < 64) ch = 64;
    if (ch > 8192) ch = 8192;
    *chunk = ch;
    *n_chunks = (n_keys + ch - 1) / ch;
    if (*n_chunks == 1) return 0;
    return (size_t)items * (size_t)*n_chunks * (size_t)(op->head_dim + 2);
}

int cu_attn_split(cudaStream_t st, const hllm_op *op, int chunk, int n_chunks, float *part) {
    const attn_p a = attn_p_of(op);
    if (a.nh <= 0 || a.n_tok <= 0) return 0;
    const size_t smem = (size_t)(((a.hd + 3) & ~3) + chunk + 128 + 8) * sizeof(float);
    const dim3 grid((unsigned)n_chunks, (unsigned)a.nh, (unsigned)a.n_tok);
    if (op->kv->type == HLLM_TYPE_F16) {
        if (smem > 48 * 1024) cudaFuncSetAttribute(k_attn_split<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        k_attn_split<true><<<grid, 128, smem, st>>>(a, chunk, n_chunks, part);
    } else {
        if (smem > 48 * 1024) cudaFuncSetAttribute(k_attn_split<false>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        k_attn_split<false><<<grid, 128, smem, st>>>(a, chunk, n_chunks, part);
    }
    if (CU_LAUNCHED("attention (split)")) return -1;
    if (n_chunks > 1) {
        k_attn_merge<<<dim3((unsigned)a.nh, (unsigned)a.n_tok), 128, 0, st>>>(a, n_chunks, part);
        return CU_LAUNCHED("attention merge");
    }
    return 0;
}

/* ---- tiled flash attention (prefill) ---- */

template <int HDM, bool F16>
__global__ void __launch_bounds__(128) k_attn_flash(const attn_p a) {
    extern __shared__ float sm[];
    const int hd = a.hd, hdp = hd + 1;
    float *Qs = sm, *Ks = Qs + 32 * hdp, *Vs = Ks + 32 * hdp, *Ps = Vs + 32 * hdp;
    const int tid = threadIdx.x, qi = tid >> 2, sub = tid & 3;
    const int t0 = blockIdx.x * 32, h = a.h0 + blockIdx.y, kvh = h / a.group;
    const int nq = min(32, a.n_tok - t0);
    for (int idx = tid; idx < 32 * hd; idx += 128) {
        const int r = idx / hd, d = idx - r * hd;
        float v = 0.0f;
        if (r < nq) {
            v = a.q[(int64_t)(t0 + r) * a.ldq + (int64_t)h * hd + d];
            if (F16) v = __half2float(__float2half_rn(v));
        }
        Qs[r * hdp + d] = v;
    }
    float O[HDM / 4];
#pragma unroll
    for (int c = 0; c < HDM / 4; c++) O[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const bool valid = qi < nq;
    const int klast = a.pos0 + t0 + qi;  /* last key this row sees */
    const int kend = a.pos0 + t0 + nq;   /* keys [0, kend) are seen by some row of the block */
    const int64_t koff = (int64_t)kvh * hd;
    for (int kb = 0; kb < kend; kb += 32) {
        __syncthreads();
        for (int idx = tid; idx < 32 * hd; idx += 128) {
            const int r = idx / hd, d = idx - r * hd, j = kb + r;
            float kx = 0.0f, vx = 0.0f;
            if (j < kend) {
                const int64_t o = (int64_t)j * a.kv_dim + koff + d;
                kx = kv_at<F16>(a.kc, o);
                vx = kv_at<F16>(a.vc, o);
            }
            Ks[r * hdp + d] = kx;
            Vs[r * hdp + d] = vx;
        }
        __syncthreads();
        float s[8];
#pragma unroll
        for (int jj = 0; jj < 8; jj++) s[jj] = 0.0f;
        const float *qrow = Qs + qi * hdp;
        for (int d = 0; d < hd; d++) {
            const float qv = qrow[d];
#pragma unroll
            for (int jj = 0; jj < 8; jj++) s[jj] += qv * Ks[(sub + 4 * jj) * hdp + d];
        }
        float tmax = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < 8; jj++) {
            const int kpos = kb + sub + 4 * jj;
            s[jj] = (valid && kpos <= klast) ? s[jj] * a.scale : -INFINITY;
            tmax = fmaxf(tmax, s[jj]);
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
        tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 2));
        const float mnew = fmaxf(m, tmax);
        float corr = 1.0f, psum = 0.0f;
#pragma unroll
        for (int jj = 0; jj < 8; jj++) {
            const float p = mnew == -INFINITY ? 0.0f : expf(s[jj] - mnew);
            Ps[qi * 33 + sub + 4 * jj] = p;
            psum += p;
        }
        if (mnew != -INFINITY) corr = expf(m - mnew);
        l = l * corr + psum;
        m = mnew;
#pragma unroll
        for (int c = 0; c < HDM / 4; c++) O[c] *= corr;
        __syncwarp();
        const int jmax = min(32, kend - kb);
        for (int j = 0; j < jmax; j++) {
            const float pj = Ps[qi * 33 + j];
            const float *vr = Vs + j * hdp;
#pragma unroll
            for (int c = 0; c < HDM / 4; c++) {
                const int d = sub + 4 * c;
                if (d < hd) O[c] += pj * vr[d];
            }
        }
    }
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (valid) {
        float *out = a.dst + (int64_t)(t0 + qi) * a.ldd + (int64_t)h * hd;
        const float inv = 1.0f / l;
#pragma unroll
        for (int c = 0; c < HDM / 4; c++) {
            const int d = sub + 4 * c;
            if (d < hd) out[d] = O[c] * inv;
        }
    }
}

template <int HDM, bool F16>
static int launch_flash(cudaStream_t st, const attn_p &a, size_t smem) {
    if (smem > 48 * 1024 &&
        cu_check(cudaFuncSetAttribute(k_attn_flash<HDM, F16>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                 "attention (flash) shared memory"))
        return -1;
    const dim3 grid((unsigned)((a.n_tok + 31) / 32), (unsigned)a.nh);
    k_attn_flash<HDM, F16><<<grid, 128, smem, st>>>(a);
    return CU_LAUNCHED("attention (flash)");
}

int cu_attn_flash(cudaStream_t st, const hllm_op *op, size_t smem_optin) {
    const attn_p a = attn_p_of(op);
    if (a.hd > 256) return 1;
    const size_t smem = (size_t)(3 * 32 * (a.hd + 1) + 32 * 33) * sizeof(float);
    if (smem > smem_optin) return 1;
    if (a.nh <= 0 || a.n_tok <= 0) return 0;
    const bool f16 = op->kv->type == HLLM_TYPE_F16;
    if (a.hd <= 32) return f16 ? launch_flash<32, true>(st, a, smem) : launch_flash<32, false>(st, a, smem);
    if (a.hd <= 64) return f16 ? launch_flash<64, true>(st, a, smem) : launch_flash<64, false>(st, a, smem);
    if (a.hd <= 128) return f16 ? launch_flash<128, true>(st, a, smem) : launch_flash<128, false>(st, a, smem);
    return f16 ? launch_flash<256, true>(st, a, smem) : launch_flash<256, false>(st, a, smem);
}
