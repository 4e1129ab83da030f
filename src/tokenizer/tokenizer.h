/* Tokenizers built from a GGUF vocabulary: SentencePiece BPE (tokenizer.ggml.model = "llama",
 * byte fallback) and byte-level BPE ("gpt2", with the llama3 / qwen2 / default pre-tokenizers).
 * Behaviour matches llama.cpp's llama_tokenize / llama_token_to_piece. */
#ifndef HLLM_TOKENIZER_H
#define HLLM_TOKENIZER_H
#include "core/types.h"
#include "gguf/gguf.h"

typedef struct hllm_tokenizer hllm_tokenizer;

/* Reads tokenizer.ggml.* from the file. NULL + hllm_fail() on a missing or malformed vocab. */
hllm_tokenizer *hllm_tokenizer_from_gguf(const gguf_file *f);
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

#endif
