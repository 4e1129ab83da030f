/* Tokenizers built from a GGUF vocabulary: SentencePiece BPE (tokenizer.ggml.model = "llama",
 * byte fallback) and byte-level BPE ("gpt2", with the llama3 / qwen2 / default pre-tokenizers).
 * Behaviour matches llama.cpp's llama_tokenize / llama_token_to_piece. */
#ifndef HLLM_TOKENIZER_H
#define HLLM_TOKENIZER_H
#include "core/types.h"
#include "gguf/gguf.h"

typedef struct hllm_tokenizer hllm_tokenizer;

/* Reads tokenizer.ggml.* from the file. NULL + hllm_fail() on a missing or malformed vocab. */
hllm_tokenizer *hllm_tokenizer_from_gguf(const hllm_gguf_file *f);
void hllm_tokenizer_free(hllm_tokenizer *t);

int32_t hllm_tokenizer_n_vocab(const hllm_tokenizer *t);
int32_t hllm_tokenizer_bos(const hllm_tokenizer *t);     /* -1 if none */
int32_t hllm_tokenizer_eos(const hllm_tokenizer *t);     /* -1 if none */
int32_t hllm_tokenizer_eot(const hllm_tokenizer *t);     /* -1 if none */
bool hllm_tokenizer_is_eog(const hllm_tokenizer *t, int32_t id); /* end of generation (eos, eot, ...) */
bool hllm_tokenizer_add_bos(const hllm_tokenizer *t);    /* whether BOS is prepended by default */
const char *hllm_tokenizer_model(const hllm_tokenizer *t); /* "llama" or "gpt2" */

/* Tokenizes text[0..len). add_special: add BOS/EOS as the vocab's metadata says.
 * parse_special: text matching special/control tokens becomes those tokens.
 * Returns the number of tokens; if that exceeds max, returns -(needed) and writes nothing useful. */
int hllm_tokenize(const hllm_tokenizer *t, const char *text, size_t len, bool add_special,
                  bool parse_special, int32_t *out, int max);

/* The bytes of one token (byte tokens become their byte; SPM's U+2581 becomes a space; BPE's
 * byte-level unicode becomes raw bytes). special: render control tokens' text too.
 * Returns the byte count; if larger than size, returns -(needed). Unknown id: 0 bytes. */
int hllm_token_to_piece(const hllm_tokenizer *t, int32_t id, char *buf, int size, bool special);

/* Streaming detokenizer: holds back an incomplete UTF-8 sequence until the rest arrives, so a
 * character split across tokens is emitted whole. */
typedef struct {
    char pending[8];
    int n_pending;
} hllm_detok_stream;

/* Appends token id's text to out (at most size bytes, which must be >= 64 + piece length);
 * returns the number of bytes written (only complete UTF-8 characters). */
int hllm_detok_push(const hllm_tokenizer *t, hllm_detok_stream *s, int32_t id, char *out, int size);
/* Flushes whatever is left (an invalid trailing sequence is emitted as U+FFFD). */
int hllm_detok_flush(hllm_detok_stream *s, char *out, int size);

/* ---- additions (tokenizer owner) ----
 * Errors: hllm_tokenize, hllm_detokenize and the stream functions return INT_MIN (as
 * llama_tokenize does) with hllm_fail() on a real error (out of memory, a byte with no token
 * and no <unk>, bad arguments), so a negative value other than INT_MIN is always -(needed). */

/* Like llama_detokenize: concatenates the pieces of ids. remove_special drops a leading BOS /
 * trailing EOS when the vocab adds them; unparse_special renders control tokens' text. SPM
 * strips the space prefix of the first piece (unless a BOS was removed, as llama.cpp does);
 * "gpt2" vocabs whose pre-tokenizer asks for it (default, gpt-2, llama3; not qwen2) apply
 * llama.cpp's clean-up of spaces before punctuation. Returns the byte count, or -(needed) if
 * larger than size. The stream functions return -(needed), state unchanged, if out is short. */
int hllm_detokenize(const hllm_tokenizer *t, const int32_t *ids, int n_ids, char *out, int size,
                    bool remove_special, bool unparse_special);
/* hllm_detok_push with a choice of rendering control tokens (hllm_detok_push: special = false). */
int hllm_detok_push_ex(const hllm_tokenizer *t, hllm_detok_stream *s, int32_t id, bool special,
                       char *out, int size);

int32_t hllm_tokenizer_unk(const hllm_tokenizer *t);      /* -1 if none */
bool hllm_tokenizer_add_eos(const hllm_tokenizer *t);
const char *hllm_tokenizer_pre(const hllm_tokenizer *t);  /* tokenizer.ggml.pre, "" if none */
/* The token's raw vocabulary text (NUL-terminated), NULL for an unknown id. */
const char *hllm_tokenizer_token_text(const hllm_tokenizer *t, int32_t id);
/* Its type as tokenizer.ggml.token_type numbers it (1 normal, 2 unknown, 3 control,
 * 4 user-defined, 5 unused, 6 byte; 0 undefined), after llama.cpp's adjustments; -1 if no id. */
int hllm_tokenizer_token_type(const hllm_tokenizer *t, int32_t id);

#endif
