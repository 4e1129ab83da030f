/* Tensor element types, numbered exactly as ggml/GGUF number them. */
#ifndef HLLM_CORE_TYPES_H
#define HLLM_CORE_TYPES_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* A byte string with its length; s is NUL-terminated too (the text may hold NUL bytes). */
typedef struct {
    const char *s;
    uint64_t n;
} hllm_str;

typedef enum {
    HLLM_TYPE_F32 = 0,
    HLLM_TYPE_F16 = 1,
    HLLM_TYPE_Q4_0 = 2,
    HLLM_TYPE_Q4_1 = 3,
    HLLM_TYPE_Q5_0 = 6,
    HLLM_TYPE_Q5_1 = 7,
    HLLM_TYPE_Q8_0 = 8,
    HLLM_TYPE_Q8_1 = 9,
    HLLM_TYPE_Q2_K = 10,
    HLLM_TYPE_Q3_K = 11,
    HLLM_TYPE_Q4_K = 12,
    HLLM_TYPE_Q5_K = 13,
    HLLM_TYPE_Q6_K = 14,
    HLLM_TYPE_Q8_K = 15,
    HLLM_TYPE_I8 = 24,
    HLLM_TYPE_I16 = 25,
    HLLM_TYPE_I32 = 26,
    HLLM_TYPE_I64 = 27,
    HLLM_TYPE_F64 = 28,
    HLLM_TYPE_BF16 = 30,
    HLLM_TYPE_COUNT = 40
} hllm_type;

typedef struct {
    const char *name;   /* "q4_K" style, as llama.cpp prints */
    int block_size;     /* elements per block (1 for plain types) */
    int block_bytes;    /* bytes per block; 0 = unknown type */
    bool supported;     /* weights of this type can be computed with */
} hllm_type_traits;

/* Traits of a type; for an unknown number, a traits struct with block_bytes 0 and name "unknown". */
const hllm_type_traits *hllm_type_info(int type);
/* The type's name, or "type#N" for a number ggml does not define. Thread-unsafe for unknown N. */
const char *hllm_type_name(int type);
/* Parses a name like "q4_0", "Q4_K", "f16" (case-insensitive); -1 if unknown. */
int hllm_type_from_name(const char *name);
/* Bytes of one row of n elements; 0 if n is not a multiple of the block size or the type is unknown. */
size_t hllm_row_bytes(int type, int64_t n);

#endif
