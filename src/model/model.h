/* A loaded model: architecture, hyperparameters, the host-resident weights (views into the
 * mapped GGUF) and the tokenizer. Architecture files (llama.c, qwen.c) fill it in. */
#ifndef HLLM_MODEL_H
#define HLLM_MODEL_H
#include "gguf/gguf.h"
#include "proc/proc.h"
#include "tokenizer/tokenizer.h"

typedef enum { HLLM_ARCH_LLAMA, HLLM_ARCH_QWEN2, HLLM_ARCH_QWEN3 } hllm_arch;

typedef struct {
    hllm_arch arch;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    int n_rot;
    float rms_eps;
    float rope_base, rope_freq_scale;
    hllm_rope_type rope_type;
} hllm_hparams;

typedef struct {
    hllm_tensor attn_norm, wq, wk, wv, wo;
    hllm_tensor bq, bk, bv;         /* qwen2; data NULL when absent */
    hllm_tensor q_norm, k_norm;     /* qwen3; data NULL when absent */
    hllm_tensor ffn_norm, w_gate, w_up, w_down;
} hllm_layer_tensors;

typedef struct hllm_model_s {
    hllm_gguf_file *gguf;
    hllm_hparams hp;
    char arch_name[32];
    char desc[128];          /* "llama 8B Q4_0"-style summary */
    hllm_tensor tok_embd, output_norm, output;
    hllm_tensor rope_freqs;  /* data NULL when absent */
    hllm_layer_tensors *layers;
    hllm_tokenizer *tok;
    uint64_t n_params, n_bytes;
} hllm_model_s;

/* Loads a model from an open GGUF (takes ownership of f on success). NULL + hllm_fail. */
hllm_model_s *hllm_model_from_gguf(hllm_gguf_file *f);
void hllm_model_destroy(hllm_model_s *m);

/* Architecture-specific metadata (arch.c): fills hp from <arch>.* keys. */
int hllm_arch_load_hparams(const hllm_gguf_file *f, const char *arch, hllm_hparams *hp);

#endif
