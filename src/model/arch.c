/* Hyperparameters of the supported architectures, read from <arch>.* metadata keys. */
#include "model/model.h"
#include "core/error.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int get_u32(const hllm_gguf_file *f, const char *arch, const char *suffix, uint32_t *out, bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = hllm_gguf_get_u32(f, key, out);
    if (rc < 0) return -1;
    if (rc == 1 && required) return hllm_fail("%s: required key '%s' is missing", hllm_gguf_path(f), key);
    return rc;
}

static int get_f32(const hllm_gguf_file *f, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return hllm_gguf_get_f32(f, key, out);
}

int hllm_arch_load_hparams(const hllm_gguf_file *f, const char *arch, hllm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    if (!strcmp(arch, "llama")) {
        hp->arch = HLLM_ARCH_LLAMA;
        hp->rope_type = HLLM_ROPE_NORM;
    } else if (!strcmp(arch, "qwen2")) {
        hp->arch = HLLM_ARCH_QWEN2;
        hp->rope_type = HLLM_ROPE_NEOX;
    } else if (!strcmp(arch, "qwen3")) {
        hp->arch = HLLM_ARCH_QWEN3;
        hp->rope_type = HLLM_ROPE_NEOX;
    } else {
        return hllm_fail("%s: unknown architecture '%s' (supported: llama, qwen2, qwen3)", hllm_gguf_path(f), arch);
    }
    uint32_t v;
    if (get_u32(f, arch, "embedding_length", &v, true)) return -1;
    hp->n_embd = (int)v;
    if (get_u32(f, arch, "block_count", &v, true)) return -1;
    hp->n_layer = (int)v;
    if (get_u32(f, arch, "feed_forward_length", &v, true)) return -1;
    hp->n_ff = (int)v;
    if (get_u32(f, arch, "attention.head_count", &v, true)) return -1;
    hp->n_head = (int)v;
    hp->n_head_kv = hp->n_head;
    int rc = get_u32(f, arch, "attention.head_count_kv", &v, false);
    if (rc < 0) return -1;
    if (rc == 0) hp->n_head_kv = (int)v;
    hp->n_ctx_train = 2048;
    rc = get_u32(f, arch, "context_length", &v, false);
    if (rc < 0) return -1;
    if (rc == 0) {
        if (v == 0 || v > INT32_MAX) /* the default context is min(this, 4096): it must be a positive int */
            return hllm_fail("%s: %s.context_length %u is out of range (1..%d)", hllm_gguf_path(f), arch, v, INT32_MAX);
        hp->n_ctx_train = (int)v;
    }
    if (hp->n_embd <= 0 || hp->n_embd > 65536 || hp->n_layer <= 0 || hp->n_layer > 1024 || hp->n_ff <= 0 ||
        hp->n_ff > 1 << 20 || hp->n_head <= 0 || hp->n_head > 1024 || hp->n_head_kv <= 0 ||
        hp->n_head % hp->n_head_kv)
        return hllm_fail("%s: inconsistent hyperparameters (n_embd %d, n_layer %d, n_ff %d, n_head %d, n_head_kv %d)",
                         hllm_gguf_path(f), hp->n_embd, hp->n_layer, hp->n_ff, hp->n_head, hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    rc = get_u32(f, arch, "attention.key_length", &v, false);
    if (rc < 0) return -1;
    if (rc == 0) hp->head_dim = (int)v;
    if (hp->head_dim <= 0 || hp->head_dim > 512 || hp->head_dim % 2)
        return hllm_fail("%s: unsupported head size %d (must be even, at most 512)", hllm_gguf_path(f), hp->head_dim);
    hp->n_rot = hp->head_dim;
    rc = get_u32(f, arch, "rope.dimension_count", &v, false);
    if (rc < 0) return -1;
    if (rc == 0) hp->n_rot = (int)v;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return hllm_fail("%s: rope dimension %d does not fit head size %d", hllm_gguf_path(f), hp->n_rot, hp->head_dim);
    hp->rms_eps = 1e-5f;
    if (get_f32(f, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps) < 0) return -1;
    hp->rope_base = 10000.0f;
    if (get_f32(f, arch, "rope.freq_base", &hp->rope_base) < 0) return -1;
    hp->rope_freq_scale = 1.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    hllm_str stype;
    rc = hllm_gguf_get_str(f, key, &stype);
    if (rc < 0) return -1;
    if (rc == 0 && strcmp(stype.s, "none") != 0) {
        if (strcmp(stype.s, "linear") != 0)
            return hllm_fail("%s: rope scaling '%s' is not supported (supported: none, linear, llama3 frequency factors)",
                             hllm_gguf_path(f), stype.s);
        float factor = 1.0f;
        if (get_f32(f, arch, "rope.scaling.factor", &factor) < 0) return -1;
        if (!(factor >= 0) || !isfinite(factor))
            return hllm_fail("%s: bad rope scaling factor %g", hllm_gguf_path(f), factor);
        if (factor > 0) hp->rope_freq_scale = 1.0f / factor; /* 0: no scaling, as llama.cpp reads it */
    }
    /* finite and positive, else every logit would be NaN (or the model silently wrong) */
    if (!(hp->rope_base > 0) || !isfinite(hp->rope_base) || !(hp->rms_eps > 0) || !isfinite(hp->rms_eps))
        return hllm_fail("%s: bad rope base %g or rms epsilon %g", hllm_gguf_path(f), hp->rope_base, hp->rms_eps);
    return 0;
}
