/* Binds a GGUF's tensors to the model's weights, checking every name, shape and type. */
#include "model/model.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds a tensor and checks it is a rows x cols matrix (cols = ne[0]) of a supported type. */
static int bind(const hllm_model_s *m, hllm_tensor *t, const char *name, int64_t cols, int64_t rows, bool required) {
    const hllm_gguf_tensor *g = hllm_gguf_find_tensor(m->gguf, name);
    memset(t, 0, sizeof *t);
    if (!g) {
        if (required) return hllm_fail("%s: tensor '%s' is missing", hllm_gguf_path(m->gguf), name);
        return 0;
    }
    int64_t g_rows = 1;
    for (uint32_t i = 1; i < g->n_dims; i++) g_rows *= g->ne[i];
    if (g->ne[0] != cols || g_rows != rows)
        return hllm_fail("%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", hllm_gguf_path(m->gguf), name,
                         (long long)g->ne[0], (long long)g_rows, (long long)cols, (long long)rows);
    const hllm_type_traits *tt = hllm_type_info(g->type);
    if (!tt->supported)
        return hllm_fail("%s: tensor '%s' has type %s, which heterollm does not support (supported: f32, f16, bf16, q8_0, q4_0, q4_K, q6_K)",
                         hllm_gguf_path(m->gguf), name, hllm_type_name(g->type));
    size_t rb = hllm_row_bytes(g->type, cols);
    if (!rb)
        return hllm_fail("%s: tensor '%s' row length %lld is not a multiple of the %s block size %d",
                         hllm_gguf_path(m->gguf), name, (long long)cols, tt->name, tt->block_size);
    t->name = g->name.s;
    t->type = g->type;
    t->rows = rows;
    t->cols = cols;
    t->data = g->data;
    t->row_bytes = rb;
    return 0;
}

static void describe(hllm_model_s *m) {
    /* The type holding most bytes names the file, as llama.cpp's model type string does. */
    uint64_t bytes_by_type[HLLM_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < hllm_gguf_n_tensors(m->gguf); i++) {
        const hllm_gguf_tensor *g = hllm_gguf_tensor_at(m->gguf, i);
        int64_t n = 1;
        for (uint32_t d = 0; d < g->n_dims; d++) n *= g->ne[d];
        m->n_params += (uint64_t)n;
        m->n_bytes += g->nbytes;
        if (g->type >= 0 && g->type < HLLM_TYPE_COUNT) bytes_by_type[g->type] += g->nbytes;
    }
    int best = 0;
    for (int t = 0; t < HLLM_TYPE_COUNT; t++)
        if (bytes_by_type[t] > bytes_by_type[best]) best = t;
    double p = (double)m->n_params;
    char size[32];
    if (p >= 1e9) snprintf(size, sizeof size, "%.1fB", p / 1e9);
    else if (p >= 1e6) snprintf(size, sizeof size, "%.0fM", p / 1e6);
    else snprintf(size, sizeof size, "%.0fK", p / 1e3);
    snprintf(m->desc, sizeof m->desc, "%s %s %s", m->arch_name, size, hllm_type_name(best));
}

hllm_model_s *hllm_model_from_gguf(hllm_gguf_file *f) {
    hllm_model_s *m = calloc(1, sizeof *m);
    if (!m) {
        hllm_fail("out of memory");
        return NULL;
    }
    m->gguf = f;
    hllm_str arch;
    int rc = hllm_gguf_get_str(f, "general.architecture", &arch);
    if (rc != 0) {
        if (rc == 1) hllm_fail("%s: key 'general.architecture' is missing", hllm_gguf_path(f));
        goto fail;
    }
    snprintf(m->arch_name, sizeof m->arch_name, "%s", arch.s);
    if (hllm_arch_load_hparams(f, arch.s, &m->hp)) goto fail;
    hllm_hparams *hp = &m->hp;
    const hllm_gguf_tensor *emb = hllm_gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2) {
        hllm_fail("%s: tensor 'token_embd.weight' is missing or not 2-D", hllm_gguf_path(f));
        goto fail;
    }
    hp->n_vocab = (int)emb->ne[1];
    const int64_t E = hp->n_embd, QD = (int64_t)hp->n_head * hp->head_dim, KVD = (int64_t)hp->n_head_kv * hp->head_dim;
    if (bind(m, &m->tok_embd, "token_embd.weight", E, hp->n_vocab, true)) goto fail;
    if (bind(m, &m->output_norm, "output_norm.weight", E, 1, true)) goto fail;
    if (bind(m, &m->output, "output.weight", E, hp->n_vocab, false)) goto fail;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    if (bind(m, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, 1, false)) goto fail;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        hllm_fail("out of memory");
        goto fail;
    }
    const bool bias = hp->arch == HLLM_ARCH_QWEN2, qk_norm = hp->arch == HLLM_ARCH_QWEN3;
    for (int l = 0; l < hp->n_layer; l++) {
        hllm_layer_tensors *L = &m->layers[l];
        char n[96];
#define BIND(field, suffix, cols, rows, req)                                  \
    snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                           \
    if (bind(m, &L->field, n, cols, rows, req)) goto fail;
        BIND(attn_norm, "attn_norm.weight", E, 1, true);
        BIND(wq, "attn_q.weight", E, QD, true);
        BIND(wk, "attn_k.weight", E, KVD, true);
        BIND(wv, "attn_v.weight", E, KVD, true);
        BIND(wo, "attn_output.weight", QD, E, true);
        BIND(bq, "attn_q.bias", QD, 1, bias);
        BIND(bk, "attn_k.bias", KVD, 1, bias);
        BIND(bv, "attn_v.bias", KVD, 1, bias);
        BIND(q_norm, "attn_q_norm.weight", hp->head_dim, 1, qk_norm);
        BIND(k_norm, "attn_k_norm.weight", hp->head_dim, 1, qk_norm);
        BIND(ffn_norm, "ffn_norm.weight", E, 1, true);
        BIND(w_gate, "ffn_gate.weight", E, hp->n_ff, true);
        BIND(w_up, "ffn_up.weight", E, hp->n_ff, true);
        BIND(w_down, "ffn_down.weight", hp->n_ff, E, true);
#undef BIND
    }
    m->tok = hllm_tokenizer_from_gguf(f);
    if (!m->tok) goto fail;
    if (hllm_tokenizer_n_vocab(m->tok) > hp->n_vocab) {
        hllm_fail("%s: the vocabulary has %d tokens but token_embd.weight has only %d rows", hllm_gguf_path(f),
                  hllm_tokenizer_n_vocab(m->tok), hp->n_vocab);
        goto fail;
    }
    describe(m);
    return m;
fail:
    m->gguf = NULL; /* the caller still owns f on failure */
    hllm_model_destroy(m);
    return NULL;
}

void hllm_model_destroy(hllm_model_s *m) {
    if (!m) return;
    hllm_tokenizer_free(m->tok);
    free(m->layers);
    hllm_gguf_close(m->gguf);
    free(m);
}
