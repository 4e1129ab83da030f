/* Unicode helpers for the tokenizers: UTF-8 decoding exactly as llama.cpp's unicode.cpp does it
 * (lenient; an invalid byte becomes U+FFFD), category flags from the generated tables, and
 * GPT-2's byte <-> unicode mapping. Internal to src/tokenizer. */
#ifndef HLLM_TOKENIZER_UNICODE_H
#define HLLM_TOKENIZER_UNICODE_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Category flags; the bit values are shared with tools/gen_unicode_tables.py. */
enum {
    HLLM_UC_L = 1,   /* \p{L} */
    HLLM_UC_N = 2,   /* \p{N} */
    HLLM_UC_P = 4,   /* \p{P} */
    HLLM_UC_S = 8,   /* \p{S} */
    HLLM_UC_M = 16,  /* \p{M} */
    HLLM_UC_WS = 32, /* White_Space */
    HLLM_UC_IN = 64, /* set by the pre-tokenizers for any code point inside the text */
};

extern const char hllm_unicode_version[];
extern const int hllm_ucat_n;
extern const uint32_t hllm_ucat_start[];
extern const uint8_t hllm_ucat_flags[];

/* Category flags of a code point (0 past U+10FFFF). */
unsigned hllm_uc_flags(uint32_t cp);

/* Byte length of a UTF-8 sequence from its first byte, as llama.cpp's unicode_len_utf8
 * (continuation bytes count 1, 0xF8..0xFF count 4). */
static inline size_t hllm_utf8_len(unsigned char c) {
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[c >> 4];
}

/* Decodes one code point at s[*off] (< n) like llama.cpp: no overlong/surrogate checks; a bad
 * sequence consumes one byte and yields U+FFFD. Values above U+10FFFF (which llama.cpp cannot
 * re-encode) also become U+FFFD. */
uint32_t hllm_utf8_decode(const char *s, size_t n, size_t *off);
/* Encodes cp (<= U+10FFFF) into out[4]; returns the byte count. */
int hllm_utf8_encode(uint32_t cp, char *out);

/* GPT-2's byte-level mapping: byte -> code point, and code point -> byte (-1 if none). */
uint32_t hllm_gpt2_byte_to_cp(uint8_t b);
int hllm_gpt2_cp_to_byte(uint32_t cp);

#endif
