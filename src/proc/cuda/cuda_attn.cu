/* Attention of the CUDA processor: dst[t] = softmax(q[t] . K[0..pos0+t] * scale) V per query
 * head, causal, GQA (query head h reads KV head h / (n_head / n_head_kv)). With an F16 cache
 * q is rounded to f16 first, as the CPU processor does.
 *
 * Decode (split-KV, "flash decoding"): one 128-thread block per (token, head, chunk of keys)
 * computes the chunk's scores in shared memory, its max, sum and unnormalized P.V; the last
 * block of each (token, head) merges the chunks. The number of chunks depends only on the
 * cache size and the shape, the keys per chunk on pos0 (read on the device in a captured
 * step), so one launch shape serves every position.
 *
 * Prefill (flash): one 128-thread block per (32 queries, head) walks 32-key tiles of K and V
 * through shared memory with an online softmax; no score matrix beyond one 32x32 tile exists.
 * Thread (qi = tid / 4, sub = tid % 4) owns query row qi, keys sub + 4jj of each tile, and
 * output dims sub + 4c. */
#include "proc/cuda/cuda_attn.cuh"
#include "proc/cuda/cuda_pass.cuh"
#include <math.h>

template <bool F16>
static __device__ __forceinline__ float kv_at(const void *p, int64_t i) {
    if (F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

/* ---- split-KV decode ---- */

/* Keys per chunk for n_keys keys in n_chunks chunks: a multiple of 64, at least 128 (short
 * contexts then fit one chunk, whose block writes the output with no merge). Every block of a
 * launch uses the largest n_keys of the launch (pos0 + n_tok), so they agree on the chunks. */
static __host__ __device__ __forceinline__ int attn_chunk(int n_keys, int n_chunks) {
    const int c = ((n_keys + n_chunks - 1) / n_chunks + 63) & ~63;
    return c < 128 ? 128 : c;
}

template <bool F16, bool Q>
__global__ void __launch_bounds__(128) k_attn_split(const attn_p a, const int32_t *dpos, int n_chunks, float *part,
                                                    unsigned *cnt, cu_qout qo) {
    extern __shared__ float sm[];
    __shared__ int s_last;
    const int hd = a.hd;
    /* pos0 comes from the host before the step, not from the kernel before this one */
    const int pos0 = dpos ? *dpos : a.pos0;
    const int chunk = attn_chunk(pos0 + a.n_tok, n_chunks);
    /* Before waiting on the previous kernel, ask L2 for this chunk's keys and values that are
     * already in the cache (positions < pos0: the rope/KV store before this writes only the new
     * ones): the loads below then wait on L2, not on HBM. */
    if (a.pf) {
        const int kb0 = blockIdx.x * chunk, ke0 = min(kb0 + chunk, pos0);
        const int64_t rb = (int64_t)hd * (F16 ? 2 : 4), off = (int64_t)((a.h0 + blockIdx.y) / a.group) * hd;
        for (int j = kb0 + threadIdx.x; j < ke0; j += 128)
            for (int64_t o = 0; o < rb; o += 128) {
                const int64_t e = (int64_t)j * a.kv_dim + off;
                asm volatile("prefetch.global.L2 [%0];" ::"l"((const char *)a.kc + e * (F16 ? 2 : 4) + o));
                asm volatile("prefetch.global.L2 [%0];" ::"l"((const char *)a.vc + e * (F16 ? 2 : 4) + o));
            }
    }
    cu_pdl_wait_pass();
    float *qs = sm, *sc = qs + ((hd + 3) & ~3), *pv = sc + chunk, *red = pv + 512;
    const int c = blockIdx.x, hi = blockIdx.y, t = blockIdx.z, tid = threadIdx.x;
    const int h = a.h0 + hi, kvh = h / a.group;
    const int n_keys = pos0 + t + 1;
    const int kb = c * chunk, ke = min(kb + chunk, n_keys), len = ke - kb;
    /* chunks holding keys of this token: only they take part (one: no merge) */
    const int n_act = min(n_chunks, (n_keys + chunk - 1) / chunk);
    if (len <= 0) return; /* block-uniform */
    const int64_t pidx = ((int64_t)t * a.nh + hi) * n_chunks + c;
    const int64_t qcols = (int64_t)a.nh * hd; /* with Q, all heads: the q8_1 row length */
    float *dst_row = a.dst + (int64_t)t * a.ldd + (int64_t)h * hd;
    {
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
                /* four partial sums: the loads of a row go out together and the sums do
                 * not wait on one another */
                const int4 *kp = (const int4 *)((const __half *)a.kc + row);
                float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
                for (int d = 0; d < hd; d += 8) {
                    const int4 kv = kp[d >> 3];
                    const __half2 *k2 = (const __half2 *)&kv;
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const float2 f = __half22float2(k2[e]);
                        s4[e] += qs[d + 2 * e] * f.x;
                        s4[e] += qs[d + 2 * e + 1] * f.y;
                    }
                }
                s = (s4[0] + s4[1]) + (s4[2] + s4[3]);
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
        const bool direct = n_act == 1;
        float *out = direct ? dst_row : part + pidx * (hd + 2) + 2;
        const float norm = direct ? 1.0f / sum : 1.0f;
        if (F16 && (hd & 3) == 0) {
            /* tpr threads per V row, 4 dims each (8-byte loads); nsl slices of the keys, then
             * the slices are summed per dim */
            const int tpr = hd / 4, nsl = 128 / tpr, d4 = tid % tpr, s = tid / tpr;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            if (s < nsl) {
                const __half *vb = (const __half *)a.vc + voff + 4 * d4;
#pragma unroll 8
                for (int j = s; j < len; j += nsl) {
                    const uint2 raw = *(const uint2 *)(vb + (int64_t)(kb + j) * a.kv_dim);
                    const float2 f0 = __half22float2(*(const __half2 *)&raw.x), f1 = __half22float2(*(const __half2 *)&raw.y);
                    const float p = sc[j];
                    a0 += p * f0.x;
                    a1 += p * f0.y;
                    a2 += p * f1.x;
                    a3 += p * f1.y;
                }
            }
            *(float4 *)(pv + 4 * tid) = make_float4(a0, a1, a2, a3);
            __syncthreads();
            for (int d = tid; d < hd; d += 128) {
                float tot = 0.0f;
                for (int k = 0; k < nsl; k++) tot += pv[4 * (k * tpr) + d];
                out[d] = tot * norm;
                if (Q && direct)
                    cu_quant_unit(tot * norm, qo.xq + t * qcols + (int64_t)h * hd + d,
                                  qo.xds + t * (qcols / 32) + ((int64_t)h * hd + d) / 32, tid & 31);
            }
        } else if (hd <= 128) {
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
                if (Q && direct)
                    cu_quant_unit(tot * norm, qo.xq + t * qcols + (int64_t)h * hd + tid,
                                  qo.xds + t * (qcols / 32) + ((int64_t)h * hd + tid) / 32, tid & 31);
            }
        } else {
            for (int d = tid; d < hd; d += 128) {
                float acc = 0.0f;
                for (int j = 0; j < len; j++) acc += sc[j] * kv_at<F16>(a.vc, (int64_t)(kb + j) * a.kv_dim + voff + d);
                out[d] = acc * norm;
                if (Q && direct)
                    cu_quant_unit(acc * norm, qo.xq + t * qcols + (int64_t)h * hd + d,
                                  qo.xds + t * (qcols / 32) + ((int64_t)h * hd + d) / 32, tid & 31);
            }
        }
        if (!direct && tid == 0) {
            part[pidx * (hd + 2)] = mx;
            part[pidx * (hd + 2) + 1] = sum;
        }
    }
    if (n_act == 1) return;
    /* the last active block of this (token, head) to finish merges the chunks */
    __threadfence();
    __syncthreads();
    unsigned *ctr = cnt + (int64_t)t * a.nh + hi;
    if (tid == 0) s_last = atomicAdd(ctr, 1u) == (unsigned)(n_act - 1);
    __syncthreads();
    if (!s_last) return;
    __threadfence();
    const float *pp = part + ((int64_t)t * a.nh + hi) * n_chunks * (hd + 2);
    float M = -INFINITY;
    for (int k = 0; k < n_act; k++) M = fmaxf(M, __ldcg(pp + k * (hd + 2)));
    float L = 0.0f;
    for (int k = 0; k < n_act; k++) L += __ldcg(pp + k * (hd + 2) + 1) * expf(__ldcg(pp + k * (hd + 2)) - M);
    for (int d = tid; d < hd; d += 128) {
        float acc = 0.0f;
        for (int k = 0; k < n_act; k++) acc += __ldcg(pp + k * (hd + 2) + 2 + d) * expf(__ldcg(pp + k * (hd + 2)) - M);
        const float v = acc / L;
        dst_row[d] = v;
        if (Q)
            cu_quant_unit(v, qo.xq + t * qcols + (int64_t)h * hd + d, qo.xds + t * (qcols / 32) + ((int64_t)h * hd + d) / 32,
                          tid & 31);
    }
    if (tid == 0) *ctr = 0u;
}

size_t cu_attn_split_scratch(const hllm_op *op, int n_sm, int *n_chunks) {
    /* a fixed number of chunks per (token, head) for this cache: enough blocks to fill the GPU
     * a few times over, at most 64 (more only to keep a chunk <= 8192 keys), >= 64 keys each */
    const int n_ctx = op->kv->n_ctx > 0 ? op->kv->n_ctx : 1;
    const int items = op->n_tok * (op->h1 - op->h0);
    int nc = (4 * n_sm + items - 1) / (items > 0 ? items : 1);
    if (nc < 1) nc = 1;
    if (nc > 64) nc = 64;
    if (nc < (n_ctx + 8191) / 8192) nc = (n_ctx + 8191) / 8192;
    if (nc > (n_ctx + 63) / 64) nc = (n_ctx + 63) / 64;
    *n_chunks = nc;
    if (nc == 1) return 0;
    return (size_t)items * (size_t)nc * (size_t)(op->head_dim + 2);
}

int cu_attn_split(cudaStream_t st, const hllm_op *op, int n_chunks, float *part, unsigned *cnt, cu_qout qo,
                  const int32_t *dpos) {
    attn_p a = attn_p_of(op);
    if (a.nh <= 0 || a.n_tok <= 0) return 0;
    a.pf = cu_prefetch_attn;
    const int n_ctx = op->kv->n_ctx > 0 ? op->kv->n_ctx : 1;
    const int chunk_max = attn_chunk(n_ctx, n_chunks); /* for any pos0 + n_tok <= n_ctx */
    const size_t smem = (size_t)(((a.hd + 3) & ~3) + chunk_max + 512 + 8) * sizeof(float);
    const dim3 grid((unsigned)n_chunks, (unsigned)a.nh, (unsigned)a.n_tok);
    const bool q = qo.xq && a.hd % 32 == 0;
#define SPLIT(F, Q)                                                                                                  \
    do {                                                                                                             \
        if (smem > 48 * 1024 &&                                                                                      \
            cu_check(cudaFuncSetAttribute(k_attn_split<F, Q>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem), \
                     "attention (split) shared memory"))                                                             \
            return -1;                                                                                               \
        cu_launch(k_attn_split<F, Q>, grid, 128, smem, st, a, dpos, n_chunks, part, cnt, qo);                               \
    } while (0)
    if (op->kv->type == HLLM_TYPE_F16) {
        if (q) SPLIT(true, true);
        else SPLIT(true, false);
    } else {
        if (q) SPLIT(false, true);
        else SPLIT(false, false);
    }
#undef SPLIT
    return CU_LAUNCHED("attention (split)");
}

/* ---- tiled flash attention (prefill) ---- */

template <int HDM, bool F16>
__global__ void __launch_bounds__(128) k_attn_flash(const attn_p a) {
    cu_pdl_wait();
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
    cu_launch(k_attn_flash<HDM, F16>, grid, 128, smem, st, a);
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

bool cu_pass_set_attn(bool on) { return cu_pass_upload(on); }
