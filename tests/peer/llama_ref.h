/* llama_ref: a small reference wrapper over llama.cpp's C API, for peer tests.
 *
 * llama.cpp comes from the prebuilt CPU libraries of node-llama-cpp 3.21.1
 * (tests/peer/setup.sh copies them to build/peer/lib). They are loaded at run
 * time with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) and every llama_* / ggml_*
 * function is resolved with dlsym, so:
 *   - this header needs no llama.cpp header, and no llama/ggml symbol ever
 *     enters the global symbol namespace of the process;
 *   - a program can link libhllm (whose gguf_* names clash with ggml's
 *     exported gguf_find_tensor / gguf_get_arr_str) and llama_ref together.
 * Our own exported names all start with llama_ref_.
 *
 * Library directory lookup (first that holds libllama.v0.4.0.so):
 *   params.lib_dir, $HLLM_LLAMA_LIB_DIR, the directory baked in at build time
 *   (LLAMA_REF_LIB_DIR), <exe dir>/lib, <exe dir>/peer/lib, <exe dir>/../peer/lib.
 * Environment knobs: HLLM_LLAMA_CPU_VARIANT=x64|haswell|skylakex|icelake|...
 *   forces one libggml-cpu-<variant>.so instead of ggml's best-score pick;
 *   HLLM_LLAMA_NO_DEEPBIND=1 drops RTLD_DEEPBIND (it is off anyway under ASan).
 *
 * Not thread-safe; one llama_ref may be used by one thread at a time.
 */
#ifndef LLAMA_REF_H
#define LLAMA_REF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llama_ref llama_ref;

enum llama_ref_kv { LLAMA_REF_KV_F32 = 0, LLAMA_REF_KV_F16 = 1 };

typedef struct llama_ref_params {
    int n_ctx;      /* context length (KV cache size); default 512 */
    int n_batch;    /* max tokens per llama_decode; 0 = n_ctx */
    int n_ubatch;   /* physical micro-batch; 0 = n_batch (a prompt runs as one graph) */
    int n_threads;  /* threads for decode and batch; default 1 */
    int kv_type;    /* enum llama_ref_kv; default F32 */
    int flash_attn; /* -1 auto (llama.cpp default), 0 off, 1 on; default 0 */
    int use_mmap;   /* 0 (default): read weights into memory; 1: mmap */
    int verbose;    /* 0: only llama.cpp errors on stderr; 1: warnings; 2: everything */
    const char *lib_dir; /* NULL = search as above */
    int vocab_only; /* 1: load only the vocabulary (tokenizer use; no context: eval/generate fail) */
} llama_ref_params;

void llama_ref_default_params(llama_ref_params *p);

/* Returns NULL on failure; llama_ref_last_error() then says why. */
llama_ref *llama_ref_open(const char *model_path, const llama_ref_params *p);
void llama_ref_close(llama_ref *r);
const char *llama_ref_last_error(void);

/* Information (valid after a successful open). */
const char *llama_ref_lib_dir(void);       /* directory libllama was loaded from */
const char *llama_ref_llama_version(void); /* llama_version() of the loaded library */
const char *llama_ref_system_info(void);   /* llama_print_system_info() */
const char *llama_ref_backend_desc(const llama_ref *r); /* e.g. "CPU (skylakex variant)" */
int llama_ref_n_vocab(const llama_ref *r);
int llama_ref_n_ctx(const llama_ref *r);
int llama_ref_n_threads(const llama_ref *r);
int32_t llama_ref_bos(const llama_ref *r);
int32_t llama_ref_eos(const llama_ref *r);
int llama_ref_add_bos(const llama_ref *r); /* does the vocab ask for BOS? */
int llama_ref_is_eog(const llama_ref *r, int32_t tok);
int llama_ref_model_desc(const llama_ref *r, char *buf, size_t n);

void llama_ref_set_threads(llama_ref *r, int n_threads);

/* Tokenize `len` bytes of text (len < 0: strlen). add_special prepends BOS
 * (and appends EOS) as the vocab says; parse_special turns "<s>" etc. in the
 * text into control tokens. Returns the number of tokens written to out, or,
 * if max is too small, -(number needed). Use llama_ref_tokenize_alloc for a
 * malloc'ed result (*out, free() it); it returns the count or -1. */
int llama_ref_tokenize(llama_ref *r, const char *text, int len, int add_special,
                       int parse_special, int32_t *out, int max);
int llama_ref_tokenize_alloc(llama_ref *r, const char *text, int len, int add_special,
                             int parse_special, int32_t **out);

/* The text of one token (SentencePiece '▁' turned into ' ', byte tokens into
 * their byte). special != 0 renders control tokens such as <s>. Returns the
 * byte count (buf is NUL-terminated if room), or -(size needed). */
int llama_ref_token_to_piece(llama_ref *r, int32_t tok, char *buf, int len, int special);

/* Clear the KV cache. */
void llama_ref_reset(llama_ref *r);

/* Clear the cache, evaluate tokens[0..n) as ONE llama_decode at positions 0..n-1,
 * and copy out the logits of every position (all_logits: n * n_vocab floats,
 * row-major) or, if all_logits is NULL, of the last position only into
 * last_logits (n_vocab floats). Returns 0 on success. */
int llama_ref_eval(llama_ref *r, const int32_t *tokens, int n, float *all_logits,
                   float *last_logits);

enum {
    LLAMA_REF_GEN_STOP_AT_EOG = 1, /* stop after emitting an end-of-generation token */
};

/* Greedy decoding. The prompt (pass it with BOS already in it, e.g. from
 * llama_ref_tokenize(..., add_special=1, ...)) is cleared-cache evaluated as one
 * batch; then up to n_gen tokens are chosen by argmax of the logits (ties: the
 * lowest id; no sampler chain), each fed back as a single-token decode.
 *   out_tokens:  n_gen slots, receives the generated ids.
 *   first_logits: NULL or n_vocab floats: logits of the last prompt position.
 *   step_logits: NULL or n_gen * n_vocab floats: row i = the logits from which
 *                generated token i was chosen (row 0 == first_logits).
 * Returns the number of tokens generated (< n_gen only with STOP_AT_EOG), or -1. */
int llama_ref_generate_greedy(llama_ref *r, const int32_t *prompt, int n_prompt, int n_gen,
                              int flags, int32_t *out_tokens, float *first_logits,
                              float *step_logits);

/* llama-bench style timings with the current thread count; token ids are
 * pseudo-random from `seed` (first one BOS if the vocab adds BOS).
 *   pp: clear the cache, one llama_decode of n tokens (in n_batch chunks if
 *       n > n_batch), synchronize.
 *   tg: clear the cache, n single-token decodes, synchronize after each.
 * Need n <= n_ctx. Return elapsed seconds (monotonic clock), or < 0 on error. */
double llama_ref_time_pp(llama_ref *r, int n, uint32_t seed);
double llama_ref_time_tg(llama_ref *r, int n, uint32_t seed);

/* Wall clock in seconds (CLOCK_MONOTONIC), for callers' own timing. */
double llama_ref_now(void);

#ifdef __cplusplus
}
#endif

#endif /* LLAMA_REF_H */
