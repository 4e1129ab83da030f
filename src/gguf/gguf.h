/* GGUF v2/v3 reader (mmap, every field validated before use) and writer.
 * Errors: functions return NULL / negative and record one line via hllm_fail() naming the
 * file, the byte offset and what is wrong. */
#ifndef HLLM_GGUF_H
#define HLLM_GGUF_H
#include "core/types.h"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} hllm_gguf_vtype;

typedef struct {
    hllm_str key;
    hllm_gguf_vtype type;          /* value type; GGUF_TYPE_ARRAY for arrays */
    hllm_gguf_vtype arr_type;      /* element type when type == ARRAY */
    uint64_t arr_n;           /* element count when type == ARRAY */
    union {
        uint64_t u64;         /* any unsigned integer, widened */
        int64_t i64;          /* any signed integer, widened */
        double f64;           /* float32 or float64, widened */
        bool b;
        hllm_str str;
        const void *arr;      /* numeric arrays: the raw little-endian elements (inside the file) */
        const hllm_str *arr_str; /* string arrays: arr_n strings */
    } v;
} hllm_gguf_kv;

typedef struct {
    hllm_str name;
    uint32_t n_dims;
    int64_t ne[4];            /* ne[0] = innermost (row length); unused dims are 1 */
    int type;                 /* hllm_type */
    uint64_t offset;          /* relative to the data section */
    size_t nbytes;
    const void *data;         /* inside the mapping */
} hllm_gguf_tensor;

typedef struct hllm_gguf_file hllm_gguf_file;

/* Opens and fully validates a file (header, every KV, every tensor info, that every tensor's
 * data lies inside the file, alignment). Tensors of unknown or unsupported types are accepted
 * here (hllm info lists them); the model loader refuses them. */
hllm_gguf_file *hllm_gguf_open(const char *path);
/* Same over a memory buffer (not copied; must outlive the result). `name` is used in errors. */
hllm_gguf_file *hllm_gguf_open_memory(const void *data, size_t size, const char *name);
void hllm_gguf_close(hllm_gguf_file *f);

const char *hllm_gguf_path(const hllm_gguf_file *f);
uint32_t hllm_gguf_version(const hllm_gguf_file *f);
size_t hllm_gguf_file_size(const hllm_gguf_file *f);
size_t hllm_gguf_data_offset(const hllm_gguf_file *f);   /* byte offset of the tensor data section */
uint32_t hllm_gguf_alignment(const hllm_gguf_file *f);

int64_t hllm_gguf_n_kv(const hllm_gguf_file *f);
const hllm_gguf_kv *hllm_gguf_kv_at(const hllm_gguf_file *f, int64_t i);
const hllm_gguf_kv *hllm_gguf_find_kv(const hllm_gguf_file *f, const char *key); /* NULL if absent */

/* Typed getters. Return 0 and set *out when the key is present with a compatible type
 * (any integer type that fits for ints; f32/f64 for floats), 1 when absent (out untouched),
 * -1 with hllm_fail() when present but of the wrong type or out of range. */
int hllm_gguf_get_u32(const hllm_gguf_file *f, const char *key, uint32_t *out);
int hllm_gguf_get_i32(const hllm_gguf_file *f, const char *key, int32_t *out);
int hllm_gguf_get_u64(const hllm_gguf_file *f, const char *key, uint64_t *out);
int hllm_gguf_get_f32(const hllm_gguf_file *f, const char *key, float *out);
int hllm_gguf_get_bool(const hllm_gguf_file *f, const char *key, bool *out);
int hllm_gguf_get_str(const hllm_gguf_file *f, const char *key, hllm_str *out);
/* Arrays: *n = element count. For string arrays use hllm_gguf_get_arr_str. */
int hllm_gguf_get_arr(const hllm_gguf_file *f, const char *key, hllm_gguf_vtype *elem_type, const void **data, uint64_t *n);
int hllm_gguf_get_arr_str(const hllm_gguf_file *f, const char *key, const hllm_str **strs, uint64_t *n);

int64_t hllm_gguf_n_tensors(const hllm_gguf_file *f);
const hllm_gguf_tensor *hllm_gguf_tensor_at(const hllm_gguf_file *f, int64_t i);
const hllm_gguf_tensor *hllm_gguf_find_tensor(const hllm_gguf_file *f, const char *name); /* NULL if absent */

const char *hllm_gguf_vtype_name(hllm_gguf_vtype t);
size_t hllm_gguf_vtype_size(hllm_gguf_vtype t); /* bytes of one scalar value; 0: a string or an array */

/* ---- writer ---- */
typedef struct hllm_gguf_writer hllm_gguf_writer;
/* Fills `dst` (nbytes) with the tensor's data; returns 0, or -1 (with hllm_fail) to abort. */
typedef int (*hllm_gguf_fill_fn)(void *user, void *dst, size_t nbytes);

hllm_gguf_writer *hllm_gguf_writer_new(void);
void hllm_gguf_writer_free(hllm_gguf_writer *w);
/* Setting a key twice replaces its value. Strings and arrays are copied. */
void hllm_gguf_writer_set_u32(hllm_gguf_writer *w, const char *key, uint32_t v);
void hllm_gguf_writer_set_i32(hllm_gguf_writer *w, const char *key, int32_t v);
void hllm_gguf_writer_set_u64(hllm_gguf_writer *w, const char *key, uint64_t v);
void hllm_gguf_writer_set_f32(hllm_gguf_writer *w, const char *key, float v);
void hllm_gguf_writer_set_bool(hllm_gguf_writer *w, const char *key, bool v);
void hllm_gguf_writer_set_str(hllm_gguf_writer *w, const char *key, const char *v);
/* Any scalar type (u8..f64, bool) from the value's native bytes at v. */
void hllm_gguf_writer_set_scalar(hllm_gguf_writer *w, const char *key, hllm_gguf_vtype type, const void *v);
void hllm_gguf_writer_set_arr(hllm_gguf_writer *w, const char *key, hllm_gguf_vtype elem_type, const void *data, uint64_t n);
void hllm_gguf_writer_set_arr_str(hllm_gguf_writer *w, const char *key, const hllm_str *strs, uint64_t n);
/* Adds a tensor whose bytes are copied now. ne in GGUF order (ne[0] = row length). */
void hllm_gguf_writer_add_tensor(hllm_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                            const int64_t *ne, const void *data);
/* Adds a tensor whose bytes are produced by fill() while writing (large files stream). */
void hllm_gguf_writer_add_tensor_fill(hllm_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                 const int64_t *ne, hllm_gguf_fill_fn fill, void *user);
/* Writes a GGUF v3 file (alignment from general.alignment if set, else 32). 0 or -1. */
int hllm_gguf_writer_write(hllm_gguf_writer *w, const char *path);
/* Same, into a malloc'd buffer (for tests). */
int hllm_gguf_writer_write_memory(hllm_gguf_writer *w, void **data, size_t *size);

#endif
