/* The parameters of the CUDA processor's attention kernels (cuda_attn.cu: split-KV decode and
 * the scalar flash kernel; cuda_attn_mma.cu: prompts on tensor cores), from an ATTENTION op. */
#ifndef HLLM_CUDA_ATTN_CUH
#define HLLM_CUDA_ATTN_CUH
#include "proc/cuda/cuda_common.cuh"

struct attn_p {
    const float *q;
    int64_t ldq;
    float *dst;
    int64_t ldd;
    const void *kc, *vc;
    int64_t kv_dim;
    int hd, group, h0, nh, pos0, n_tok;
    float scale;
    int pf; /* decode: L2 prefetch of the cached keys and values before the PDL wait */
};

static inline attn_p attn_p_of(const hllm_op *op) {
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
    a.pf = 0;
    return a;
}

#endif
