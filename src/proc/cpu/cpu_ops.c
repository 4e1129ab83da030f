#include "proc/cpu/cpu_ops.h"
#include "core/fp16.h"
#include <math.h>
#include <string.h>

void hllm_cpu_rmsnorm_rows(const hllm_op *op, const float *w, int64_t i0, int64_t i1) {
    const int64_t dim = op->dim;
    /* rows per token: 1 for a whole-vector norm, n_head for per-head q/k norms */
    const int64_t per_tok = op->n_rows / (op->n_tok > 0 ? op->n_tok : 1);
    for (int64_t i = i0; i < i1; i++) {
        const int64_t t = i / per_tok, h = i % per_tok;
        const float *x = op->src + t * op->ld_src + h * dim;
        float *y = op->dst + t * op->ld_dst + h * dim;
        double sum = 0.0; /* double, as ggml does: long rows lose precision in float */
        for (int64_t j = 0; j < dim; j++) sum += (double)(x[j] * x[j]);
        const float scale = 1.0f / sqrtf((float)(sum / (double)dim) + op->eps);
        for (int64_t j = 0; j < dim; j++) y[j] = x[j] * scale * w[j];
    }
}

static void rope_vec(float *x, int n_heads, int head_dim, int n_rot, hllm_rope_type type,
                     const float *cos_t, const float *sin_t) {
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        if (type == HLLM_ROPE_NEOX) {
            const int half = n_rot / 2;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * cos_t[i] - b * sin_t[i];
                v[i + half] = a * sin_t[i] + b * cos_t[i];
            }
        } else {
            for (int i = 0; i < n_rot / 2; i++) {
                const float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cos_t[i] - b * sin_t[i];
                v[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
            }
        }
    }
}

void hllm_cpu_rope_tokens(const hllm_op *op, const float *ff, int t0, int t1) {
    float cos_t[512], sin_t[512];
    const int half = op->n_rot / 2;
    const float theta_scale = powf(op->freq_base, -2.0f / (float)op->n_rot);
    for (int t = t0; t < t1; t++) {
        const float p = (float)(op->pos0 + t);
        float theta = p;
        for (int i = 0; i < half && i < 512; i++) {
            float th = op->freq_scale * theta / (ff ? ff[i] : 1.0f);
            cos_t[i] = cosf(th);
            sin_t[i] = sinf(th);
            theta *= theta_scale;
        }
        rope_vec(op->dst + (int64_t)t * op->ld_dst, op->n_head, op->head_dim, op->n_rot, op->rope_type, cos_t, sin_t);
        rope_vec((float *)op->src2 + (int64_t)t * op->ld_src2, op->n_head_kv, op->head_dim, op->n_rot,
                 op->rope_type, cos_t, sin_t);
    }
}

void hllm_cpu_kv_store_tokens(const hllm_op *op, int t0, int t1) {
    const hllm_kv *kv = op->kv;
    const int64_t kv_dim = (int64_t)op->n_head_kv * op->head_dim;
    for (int t = t0; t < t1; t++) {
        const int64_t row = op->pos0 + t;
        const float *k = op->src + (int64_t)t * op->ld_src, *v = op->src2 + (int64_t)t * op->ld_src2;
        if (kv->type == HLLM_TYPE_F16) {
            uint16_t *kd = (uint16_t *)kv->k + row * kv_dim, *vd = (uint16_t *)kv->v + row * kv_dim;
            for (int64_t i = 0; i < kv_dim; i++) {
                kd[i] = hllm_f32_to_fp16(k[i]);
                vd[i] = hllm_f32_to_fp16(v[i]);
            }
        } else {
            memcpy((float *)kv->k + row * kv_dim, k, (size_t)kv_dim * sizeof(float));
            memcpy((float *)kv->v + row * kv_dim, v, (size_t)kv_dim * sizeof(float));
        }
    }
}

bool hllm_cpu_attention_fast_ok(const hllm_op *op) {
    const int group = op->n_head / op->n_head_kv;
    return op->head_dim % 8 == 0 && op->head_dim <= HLLM_ATTN_MAX_HD && group <= HLLM_ATTN_MAX_GROUP &&
           op->h0 % group == 0 && op->h1 % group == 0;
}

void hllm_cpu_attention_items(const hllm_op *op, int64_t i0, int64_t i1, float *scores) {
    const hllm_kv *kv = op->kv;
    const int hd = op->head_dim;
    const int64_t kv_dim = (int64_t)op->n_head_kv * hd;
    const int group = op->n_head / op->n_head_kv;
    const int nh = op->h1 - op->h0;
    const bool f16 = kv->type == HLLM_TYPE_F16;
    float qv[512], acc[512];
    for (int64_t it = i0; it < i1; it++) {
        const int t = (int)(it / nh), h = op->h0 + (int)(it % nh);
        const int kvh = h / group;
        const int n_keys = op->pos0 + t + 1; /* causal: positions 0..pos0+t */
        const float *q = op->src + (int64_t)t * op->ld_src + (int64_t)h * hd;
        /* With an F16 cache, q is rounded to f16 as llama.cpp's CPU path does for K.q. */
        for (int i = 0; i < hd; i++) qv[i] = f16 ? hllm_fp16_to_f32(hllm_f32_to_fp16(q[i])) : q[i];
        float mx = -INFINITY;
        for (int j = 0; j < n_keys; j++) {
            float s = 0.0f;
            if (f16) {
                const uint16_t *k = (const uint16_t *)kv->k + (int64_t)j * kv_dim + (int64_t)kvh * hd;
                for (int i = 0; i < hd; i++) s += qv[i] * hllm_fp16_to_f32(k[i]);
            } else {
                const float *k = (const float *)kv->k + (int64_t)j * kv_dim + (int64_t)kvh * hd;
                for (int i = 0; i < hd; i++) s += qv[i] * k[i];
            }
            s *= op->attn_scale;
            scores[j] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (int j = 0; j < n_keys; j++) {
            scores[j] = expf(scores[j] - mx);
            sum += scores[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int i = 0; i < hd; i++) acc[i] = 0.0f;
        for (int j = 0; j < n_keys; j++) {
            const float pj = scores[j] * inv;
            if (f16) {
                const uint16_t *v = (const uint16_t *)kv->v + (int64_t)j * kv_dim + (int64_t)kvh * hd;
                for (int i = 0; i < hd; i++) acc[i] += pj * hllm_fp16_to_f32(v[i]);
            } else {
                const float *v = (const float *)kv->v + (int64_t)j * kv_dim + (int64_t)kvh * hd;
                for (int i = 0; i < hd; i++) acc[i] += pj * v[i];
            }
        }
        memcpy(op->dst + (int64_t)t * op->ld_dst + (int64_t)h * hd, acc, (size_t)hd * sizeof(float));
    }
}

void hllm_cpu_swiglu_tokens(const hllm_op *op, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *g = op->src + (int64_t)t * op->ld_src, *u = op->src2 + (int64_t)t * op->ld_src2;
        float *y = op->dst + (int64_t)t * op->ld_dst;
        for (int64_t i = 0; i < op->dim; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

void hllm_cpu_add_tokens(const hllm_op *op, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *x = op->src + (int64_t)t * op->ld_src;
        float *y = op->dst + (int64_t)t * op->ld_dst;
        for (int64_t i = 0; i < op->dim; i++) y[i] += x[i];
    }
}
