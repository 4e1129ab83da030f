/* Synthetic models: GGUF files with the shapes, metadata and vocabulary size of real models
 * (llama, qwen2, qwen3) and deterministic random weights, for tests and benchmarks without
 * downloading weights. Files are llama.cpp-compatible. */
#ifndef HLLM_MODEL_SYNTH_H
#define HLLM_MODEL_SYNTH_H
#include "core/types.h"

typedef struct {
    const char *name;    /* "tiny", "llama3.2-1b", ... */
    const char *arch;    /* "llama", "qwen2" or "qwen3" */
    int n_embd, n_layer, n_head, n_head_kv;
    int head_dim;        /* written as key_length/value_length when it is not n_embd / n_head */
    int n_ff, n_vocab, n_ctx;
    float rope_base, rms_eps;
    bool tied;           /* no output.weight: the lm_head is token_embd */
    bool qkv_bias;       /* attn_{q,k,v}.bias (qwen2) */
    bool qk_norm;        /* attn_{q,k}_norm.weight (qwen3) */
    bool rope_freqs;     /* rope_freqs.weight: per-dimension frequency divisors (llama 3.1+) */
} hllm_synth_preset;

/* All presets (tiny once per architecture); *n gets the count. */
const hllm_synth_preset *hllm_synth_presets(int *n);
/* A preset by name; arch (may be NULL) picks among same-named ones ("tiny") and must match
 * the preset's. NULL + hllm_fail() when there is none. */
const hllm_synth_preset *hllm_synth_find_preset(const char *name, const char *arch);

typedef struct {
    const char *arch;    /* NULL = the preset's (for "tiny": llama) */
    const char *preset;  /* preset name */
    int type;            /* F32, F16, BF16, Q8_0, Q4_0, Q6_K, or Q4_K (= a Q4_K_M-style mix) */
    uint64_t seed;
    bool progress;       /* progress lines on stderr */
    int n_threads;       /* 0 = online CPUs (at most 16) */
} hllm_synth_opts;

/* Writes the synthetic model to path. 0, or -1 with hllm_fail(). */
int hllm_synth_write(const hllm_synth_opts *o, const char *path);

/* The tensor type hllm_synth_write uses for a weight (name as in the file, e.g. "blk.3.attn_v.weight")
 * of a preset at the requested --type: shows the Q4_K_M mix and the fallbacks for rows that are
 * not a multiple of 256. */
int hllm_synth_tensor_type(const hllm_synth_preset *p, int type, const char *name, int64_t row_len);
/* llama.cpp's general.file_type (llama_ftype) for a --type; -1 if the type is not offered. */
int hllm_synth_file_type(int type);

#endif
