/* heterollm public C API: load a GGUF model, make a context, tokenize and detokenize,
 * evaluate batches of tokens, read logits, sample.
 *
 * Errors: functions return NULL or a negative value and hllm_last_error() gives one line
 * with the cause. Nothing already loaded is lost when a call fails. */
#ifndef HLLM_H
#define HLLM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t hllm_token;
typedef struct hllm_model hllm_model;
typedef struct hllm_context hllm_context;
typedef struct hllm_sampler hllm_sampler;

/* "0.1.0 (commit abc123)\nprocessors: cpu cuda" */
const char *hllm_version_string(void);
/* The calling thread's last error line ("" if none). */
const char *hllm_last_error(void);

/* ---- model ---- */
typedef struct {
    void (*progress)(float fraction, void *user); /* called while loading, 0..1 */
    void *progress_user;
} hllm_model_params;

hllm_model_params hllm_model_default_params(void);
hllm_model *hllm_model_load(const char *path, const hllm_model_params *params);
void hllm_model_free(hllm_model *m);

const char *hllm_model_desc(const hllm_model *m);     /* "llama 8.0B q4_0" */
const char *hllm_model_arch(const hllm_model *m);     /* "llama", "qwen2", "qwen3" */
int32_t hllm_model_n_vocab(const hllm_model *m);
int32_t hllm_model_n_embd(const hllm_model *m);
int32_t hllm_model_n_layer(const hllm_model *m);
int32_t hllm_model_n_ctx_train(const hllm_model *m);
uint64_t hllm_model_n_params(const hllm_model *m);
uint64_t hllm_model_size(const hllm_model *m);        /* bytes of tensor data */

/* ---- tokenizer ---- */
/* Returns the token count, or -(needed) if max is too small. add_special: BOS/EOS as the
 * model's metadata says; parse_special: special-token text becomes special tokens. */
int hllm_model_tokenize(const hllm_model *m, const char *text, size_t len, bool add_special, bool parse_special,
                        hllm_token *out, int max);
/* The bytes of one token; returns the length, or -(needed) if size is too small. */
int hllm_model_token_to_piece(const hllm_model *m, hllm_token id, char *buf, int size, bool special);
hllm_token hllm_model_token_bos(const hllm_model *m);
hllm_token hllm_model_token_eos(const hllm_model *m);
bool hllm_model_token_is_eog(const hllm_model *m, hllm_token id);

/* Streaming detokenizer: emits only complete UTF-8 characters. */
typedef struct {
    char pending[8];
    int n_pending;
} hllm_detok;
int hllm_detok_piece(const hllm_model *m, hllm_detok *d, hllm_token id, char *out, int size);
int hllm_detok_finish(hllm_detok *d, char *out, int size);

/* ---- context ---- */
typedef enum { HLLM_KV_F16 = 0, HLLM_KV_F32 = 1 } hllm_kv_type;

typedef struct {
    int n_ctx;            /* 0 = the model's training context (capped at 4096) */
    int n_batch;          /* most tokens evaluated at once (prompt batches), default 512 */
    int n_threads;        /* CPU threads, 0 = physical cores */
    hllm_kv_type kv_type; /* default F16 */
    bool logits_all;      /* keep logits for every token of a batch */
    const char *proc;     /* "cpu", "cuda", or NULL for the default (cpu) */
    void (*progress)(float fraction, void *user);
    void *progress_user;
    /* Heterogeneous placement (CPU + GPU). With split = HLLM_SPLIT_DEFAULT and gpu_mem NULL the
     * context runs on `proc` alone, as before. Otherwise, when a GPU is present, the planner
     * places the model on the CPU and the GPU from a measured profile (`hllm profile`) and the
     * VRAM budget; without a GPU it runs on the CPU. */
    int split;            /* hllm_split_mode */
    const char *gpu_mem;  /* VRAM for weights: "50%" (of the model's weights), "6G", "512M"; NULL = no limit */
    const char *profile;  /* profile file from `hllm profile`; NULL = built-in estimates */
} hllm_context_params;

typedef enum {
    HLLM_SPLIT_DEFAULT = 0, /* one processor (proc), unless gpu_mem is set (then: auto) */
    HLLM_SPLIT_MODE_NONE = 1,   /* forced: best single processor (GPU weights beyond gpu_mem read from host memory) */
    HLLM_SPLIT_MODE_LAYER = 2,  /* forced: whole layers on the GPU or the CPU */
    HLLM_SPLIT_MODE_TENSOR = 3, /* forced: matmuls row-cut across CPU and GPU */
    HLLM_SPLIT_MODE_AUTO = 4,   /* the solver's choice among all of the above */
} hllm_split_mode;

/* The placement of a context as text (plan listing and why it was chosen). */
const char *hllm_context_plan(hllm_context *c);

hllm_context_params hllm_context_default_params(void);
hllm_context *hllm_context_new(hllm_model *m, const hllm_context_params *params);
void hllm_context_free(hllm_context *c);
int hllm_context_n_ctx(const hllm_context *c);
int hllm_context_pos(const hllm_context *c);  /* tokens in the KV cache */
void hllm_context_reset(hllm_context *c);     /* forget the sequence */
const char *hllm_context_proc(const hllm_context *c);
int hllm_context_n_threads(const hllm_context *c);

/* Evaluates n tokens appended to the sequence (split into n_batch chunks). Afterwards
 * hllm_get_logits gives the last token's logits. 0 or -1 (the context is unchanged on error). */
int hllm_eval(hllm_context *c, const hllm_token *tokens, int n);
float *hllm_get_logits(hllm_context *c);
/* Logits of token i of the last hllm_eval call (logits_all contexts; i < that call's n). */
float *hllm_get_logits_ith(hllm_context *c, int i);

typedef struct {
    double t_prompt_s, t_gen_s; /* time in multi-token and single-token evaluations */
    int n_prompt, n_gen;         /* tokens evaluated in each */
} hllm_timings;
hllm_timings hllm_get_timings(const hllm_context *c);
void hllm_reset_timings(hllm_context *c);
/* Per-op accumulated time (for --verbose); returns a static multi-line report. */
void hllm_context_set_profiling(hllm_context *c, bool on);
const char *hllm_context_profile_report(hllm_context *c);

/* ---- sampling (llama.cpp's names and order: penalties, top-k, top-p, min-p, temperature) ---- */
typedef struct {
    float temp;           /* 0 = greedy (argmax) */
    int top_k;            /* 0 = off */
    float top_p;          /* 1 = off */
    float min_p;          /* 0 = off */
    float repeat_penalty; /* 1 = off */
    int repeat_last_n;    /* tokens the penalty looks back over */
    uint64_t seed;
} hllm_sampler_params;

hllm_sampler_params hllm_sampler_default_params(void);
hllm_sampler *hllm_sampler_new(const hllm_sampler_params *p);
void hllm_sampler_free(hllm_sampler *s);
/* Picks a token from n_vocab logits (not modified). */
hllm_token hllm_sampler_sample(hllm_sampler *s, const float *logits, int n_vocab);
/* Records a token in the penalty history (prompt and generated tokens). */
void hllm_sampler_accept(hllm_sampler *s, hllm_token t);

#ifdef __cplusplus
}
#endif
#endif
