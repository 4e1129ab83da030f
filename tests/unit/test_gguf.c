/* GGUF reader/writer: round trips of every value type, the real stories260K file, truncation at
 * every length and corruption of every header, KV and tensor-info field. */
#include "testutil.h"
#include "gguf/gguf.h"
#include "core/error.h"
#include "core/fp16.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- a hand encoder, so corrupt files can be built field by field ---- */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} tb;

static void tb_put(tb *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void tb_u8(tb *b, uint8_t v) { tb_put(b, &v, 1); }
static void tb_u32(tb *b, uint32_t v) { tb_put(b, &v, 4); }
static void tb_u64(tb *b, uint64_t v) { tb_put(b, &v, 8); }
static void tb_str(tb *b, const char *s) {
    tb_u64(b, strlen(s));
    tb_put(b, s, strlen(s));
}
static void tb_pad(tb *b, size_t a) {
    while (b->n % a) tb_u8(b, 0);
}

enum {
    F_NONE, F_MAGIC, F_V1, F_BIGENDIAN, F_V4, F_NTENSORS, F_NKV, F_KEYLEN, F_EMPTYKEY, F_VTYPE, F_NESTED,
    F_ELEMTYPE, F_ARRCOUNT, F_STRARRCOUNT, F_STRELEMLEN, F_BOOL, F_DUPKEY, F_ALIGN_TYPE, F_ALIGN_ZERO,
    F_ALIGN_NPOT, F_STRLEN, F_TNAMELEN, F_TNAME_EMPTY, F_TNAME_LONG, F_NDIMS0, F_NDIMS5, F_DIM0, F_DIMOVF,
    F_TTYPE, F_ROWBLOCK, F_MISALIGN, F_PASTEND, F_HUGEOFF, F_DUPTENSOR, F_COUNT
};

static const struct {
    int flaw;
    const char *expect;
} k_flaws[] = {
    {F_MAGIC, "not a GGUF file"},
    {F_V1, "GGUF v1 is not supported"},
    {F_BIGENDIAN, "big-endian GGUF is not supported"},
    {F_V4, "unsupported GGUF version 4"},
    {F_NTENSORS, "tensor count"},
    {F_NKV, "kv count"},
    {F_KEYLEN, "string length 1152921504606846976 runs past the end"},
    {F_EMPTYKEY, "empty key"},
    {F_VTYPE, "unknown value type 13"},
    {F_NESTED, "nested arrays are not supported"},
    {F_ELEMTYPE, "unknown array element type 99"},
    {F_ARRCOUNT, "runs past the end of the file"},
    {F_STRARRCOUNT, "strings cannot fit"},
    {F_STRELEMLEN, "element 1: string length"},
    {F_BOOL, "bool value 2 is not 0 or 1"},
    {F_DUPKEY, "duplicate key 'general.architecture'"},
    {F_ALIGN_TYPE, "general.alignment has type u64, must be u32"},
    {F_ALIGN_ZERO, "general.alignment 0 is not a nonzero power of two"},
    {F_ALIGN_NPOT, "general.alignment 48 is not a nonzero power of two"},
    {F_STRLEN, "value of kv 'general.architecture': string length"},
    {F_TNAMELEN, "name of tensor 0: string length"},
    {F_TNAME_EMPTY, "tensor 0 has an empty name"},
    {F_TNAME_LONG, "name is 64 bytes long"},
    {F_NDIMS0, "tensor 't0': n_dims 0 is not in 1..4"},
    {F_NDIMS5, "tensor 't0': n_dims 5 is not in 1..4"},
    {F_DIM0, "tensor 't0': dimension 1 is 0"},
    {F_DIMOVF, "tensor 't0': element count overflows"},
    {F_TTYPE, "tensor 't0' has unknown type number 99"},
    {F_ROWBLOCK, "row length 32 is not a multiple of the q4_K block size 256"},
    {F_MISALIGN, "tensor 'blk.0.attn_q.weight': data offset 260 is not a multiple of the alignment 32"},
    {F_PASTEND, "tensor 'blk.0.attn_q.weight' data ["},
    {F_HUGEOFF, "lies past the end of the file"},
    {F_DUPTENSOR, "duplicate tensor name 't0'"},
};

/* A small valid file (2 tensors, 5 KVs), or the same with one flaw. */
static void build(tb *b, int flaw) {
    b->n = 0;
    tb_put(b, flaw == F_MAGIC ? "GGUX" : "GGUF", 4);
    tb_u32(b, flaw == F_V1 ? 1 : flaw == F_BIGENDIAN ? 0x03000000u : flaw == F_V4 ? 4 : 3);
    tb_u64(b, flaw == F_NTENSORS ? (1ull << 40) : 2);
    tb_u64(b, flaw == F_NKV ? (1ull << 40) : (flaw == F_DUPKEY ? 6 : 5));

    tb_u64(b, flaw == F_KEYLEN ? (1ull << 60) : 20);
    tb_put(b, "general.architecture", 20);
    tb_u32(b, GGUF_TYPE_STRING);
    if (flaw == F_STRLEN) tb_u64(b, 1000000);
    else tb_str(b, "llama");

    tb_str(b, "general.alignment");
    if (flaw == F_ALIGN_TYPE) {
        tb_u32(b, GGUF_TYPE_UINT64);
        tb_u64(b, 32);
    } else {
        tb_u32(b, GGUF_TYPE_UINT32);
        tb_u32(b, flaw == F_ALIGN_ZERO ? 0 : flaw == F_ALIGN_NPOT ? 48 : 32);
    }

    tb_str(b, flaw == F_EMPTYKEY ? "" : "test.u8arr");
    tb_u32(b, flaw == F_VTYPE ? 13 : GGUF_TYPE_ARRAY);
    tb_u32(b, flaw == F_NESTED ? GGUF_TYPE_ARRAY : flaw == F_ELEMTYPE ? 99 : GGUF_TYPE_UINT32);
    tb_u64(b, flaw == F_ARRCOUNT ? (1ull << 62) : 3);
    tb_u32(b, 7);
    tb_u32(b, 8);
    tb_u32(b, 9);

    tb_str(b, "tokenizer.ggml.tokens");
    tb_u32(b, GGUF_TYPE_ARRAY);
    tb_u32(b, GGUF_TYPE_STRING);
    tb_u64(b, flaw == F_STRARRCOUNT ? (1ull << 40) : 3);
    tb_str(b, "a");
    if (flaw == F_STRELEMLEN) tb_u64(b, ~0ull);
    else tb_str(b, "bc");
    tb_str(b, "");

    tb_str(b, "test.bool");
    tb_u32(b, GGUF_TYPE_BOOL);
    tb_u8(b, flaw == F_BOOL ? 2 : 1);

    if (flaw == F_DUPKEY) {
        tb_str(b, "general.architecture");
        tb_u32(b, GGUF_TYPE_STRING);
        tb_str(b, "qwen2");
    }

    /* tensor 0: t0, f32 [32, 2] at 0 (256 bytes) */
    if (flaw == F_TNAMELEN) tb_u64(b, 1ull << 50);
    else if (flaw == F_TNAME_EMPTY) tb_str(b, "");
    else if (flaw == F_TNAME_LONG) tb_str(b, "0123456789012345678901234567890123456789012345678901234567890123");
    else tb_str(b, "t0");
    tb_u32(b, flaw == F_NDIMS0 ? 0 : flaw == F_NDIMS5 ? 5 : 2);
    tb_u64(b, flaw == F_DIMOVF ? (1ull << 32) : 32);
    tb_u64(b, flaw == F_DIM0 ? 0 : flaw == F_DIMOVF ? (1ull << 32) : 2);
    tb_u32(b, flaw == F_TTYPE ? 99 : flaw == F_ROWBLOCK ? 12 : 0);
    tb_u64(b, 0);
    /* tensor 1: q8_0 [32] at 256 (34 bytes) */
    tb_str(b, flaw == F_DUPTENSOR ? "t0" : "blk.0.attn_q.weight");
    tb_u32(b, 1);
    tb_u64(b, 32);
    tb_u32(b, 8);
    tb_u64(b, flaw == F_MISALIGN ? 260 : flaw == F_PASTEND ? 288 : flaw == F_HUGEOFF ? ~0ull - 31 : 256);
    tb_pad(b, 32);
    for (int i = 0; i < 256 + 34; i++) tb_u8(b, (uint8_t)i);
}

/* Opens an exact-size heap copy so any overread is an ASan report. */
static hllm_gguf_file *open_copy(const uint8_t *p, size_t n, void **keep) {
    void *c = malloc(n ? n : 1);
    if (n) memcpy(c, p, n);
    *keep = c;
    return hllm_gguf_open_memory(c, n, "model.gguf");
}

static void test_corruption(void) {
    tb b = {0};
    build(&b, F_NONE);
    void *keep;
    hllm_gguf_file *f = open_copy(b.p, b.n, &keep);
    CHECKF(f != NULL, "valid base file: %s", hllm_error());
    if (f) {
        CHECK(hllm_gguf_n_kv(f) == 5 && hllm_gguf_n_tensors(f) == 2);
        const hllm_gguf_tensor *t = hllm_gguf_find_tensor(f, "blk.0.attn_q.weight");
        CHECK(t && t->type == 8 && t->nbytes == 34 && t->offset == 256);
        hllm_gguf_close(f);
    }
    free(keep);

    /* GGUF v2 has the same layout (64-bit counts): accepted. */
    b.p[4] = 2;
    f = open_copy(b.p, b.n, &keep);
    CHECKF(f && hllm_gguf_version(f) == 2, "v2: %s", hllm_error());
    hllm_gguf_close(f);
    free(keep);

    /* Every single-field corruption gives an error that names the problem. */
    for (size_t i = 0; i < sizeof k_flaws / sizeof k_flaws[0]; i++) {
        build(&b, k_flaws[i].flaw);
        hllm_error_clear();
        f = open_copy(b.p, b.n, &keep);
        CHECKF(f == NULL, "flaw %d accepted", k_flaws[i].flaw);
        CHECKF(strstr(hllm_error(), k_flaws[i].expect) != NULL, "flaw %d: error '%s' lacks '%s'", k_flaws[i].flaw,
               hllm_error(), k_flaws[i].expect);
        CHECKF(strncmp(hllm_error(), "model.gguf: offset ", 19) == 0, "flaw %d: error '%s' lacks file and offset",
               k_flaws[i].flaw, hllm_error());
        hllm_gguf_close(f);
        free(keep);
    }
    /* The example line of the spec, exactly. */
    build(&b, F_PASTEND);
    f = open_copy(b.p, b.n, &keep);
    char want[256];
    snprintf(want, sizeof want, "tensor 'blk.0.attn_q.weight' data [%zu, %zu) lies past the end of the file (size %zu)",
             b.n - 290 + 288, b.n - 290 + 288 + 34, b.n);
    CHECKF(!f && strstr(hllm_error(), want), "'%s' lacks '%s'", hllm_error(), want);
    hllm_gguf_close(f);
    free(keep);

    /* Truncation at every length: a clean error, until the last tensor's data is complete. */
    build(&b, F_NONE);
    size_t need = b.n; /* the last tensor ends exactly at the end of this file */
    int bad = 0;
    for (size_t n = 0; n < need; n++) {
        hllm_error_clear();
        f = open_copy(b.p, n, &keep);
        if (f || !hllm_error()[0]) bad++;
        hllm_gguf_close(f);
        free(keep);
    }
    CHECKF(bad == 0, "%d truncated lengths were accepted or gave no error", bad);

    /* Random byte flips never crash (errors or accepted files are both fine). */
    uint64_t s = 12345;
    for (int it = 0; it < 3000; it++) {
        build(&b, F_NONE);
        for (int k = 0; k < 3; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(s >> 33) % b.n;
            b.p[at] ^= (uint8_t)(1u << ((s >> 20) & 7));
        }
        f = open_copy(b.p, b.n, &keep);
        if (f) {
            for (int64_t i = 0; i < hllm_gguf_n_tensors(f); i++) {
                const hllm_gguf_tensor *t = hllm_gguf_tensor_at(f, i);
                volatile uint8_t x = 0;
                if (t->nbytes) x ^= ((const uint8_t *)t->data)[t->nbytes - 1]; /* in bounds */
                (void)x;
            }
        }
        hllm_gguf_close(f);
        free(keep);
    }
    free(b.p);
}

/* ---- writer round trip ---- */

typedef struct {
    int calls;
    size_t seen;
} fill_ctx;

static int fill_pattern(void *user, void *dst, size_t n) {
    fill_ctx *c = user;
    c->calls++;
    c->seen = n;
    for (size_t i = 0; i < n; i++) ((uint8_t *)dst)[i] = (uint8_t)(i * 7 + 3);
    return 0;
}

static int fill_fail(void *user, void *dst, size_t n) {
    (void)user, (void)dst, (void)n;
    return hllm_fail("synthetic fill failure");
}

static hllm_gguf_writer *make_writer(void) {
    hllm_gguf_writer *w = hllm_gguf_writer_new();
    hllm_gguf_writer_set_str(w, "general.architecture", "llama");
    hllm_gguf_writer_set_u32(w, "t.u32", 4000000000u);
    hllm_gguf_writer_set_i32(w, "t.i32", -7);
    hllm_gguf_writer_set_u64(w, "t.u64", 1ull << 40);
    hllm_gguf_writer_set_f32(w, "t.f32", 1.5f);
    hllm_gguf_writer_set_bool(w, "t.bool", true);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -(1ll << 50);
    double f64 = 3.25;
    hllm_gguf_writer_set_scalar(w, "t.u8", GGUF_TYPE_UINT8, &u8);
    hllm_gguf_writer_set_scalar(w, "t.i8", GGUF_TYPE_INT8, &i8);
    hllm_gguf_writer_set_scalar(w, "t.u16", GGUF_TYPE_UINT16, &u16);
    hllm_gguf_writer_set_scalar(w, "t.i16", GGUF_TYPE_INT16, &i16);
    hllm_gguf_writer_set_scalar(w, "t.i64", GGUF_TYPE_INT64, &i64);
    hllm_gguf_writer_set_scalar(w, "t.f64", GGUF_TYPE_FLOAT64, &f64);
    hllm_gguf_writer_set_str(w, "t.replaced", "first");
    hllm_gguf_writer_set_u32(w, "t.replaced", 99); /* replaces the string */
    hllm_gguf_writer_set_str(w, "t.empty", "");
    /* numeric arrays of every element type */
    uint8_t a8[3] = {1, 2, 255};
    int32_t a32[4] = {-1, 0, 1, 2147483647};
    float af[3] = {0.5f, -2.0f, 1e-6f};
    uint64_t a64[2] = {0, ~0ull};
    double ad[2] = {1.0 / 3, -0.0};
    bool ab[3] = {true, false, true};
    int16_t a16[2] = {-5, 5};
    hllm_gguf_writer_set_arr(w, "a.u8", GGUF_TYPE_UINT8, a8, 3);
    hllm_gguf_writer_set_arr(w, "a.i8", GGUF_TYPE_INT8, a8, 3);
    hllm_gguf_writer_set_arr(w, "a.u16", GGUF_TYPE_UINT16, a16, 2);
    hllm_gguf_writer_set_arr(w, "a.i16", GGUF_TYPE_INT16, a16, 2);
    hllm_gguf_writer_set_arr(w, "a.u32", GGUF_TYPE_UINT32, a32, 4);
    hllm_gguf_writer_set_arr(w, "a.i32", GGUF_TYPE_INT32, a32, 4);
    hllm_gguf_writer_set_arr(w, "a.f32", GGUF_TYPE_FLOAT32, af, 3);
    hllm_gguf_writer_set_arr(w, "a.bool", GGUF_TYPE_BOOL, ab, 3);
    hllm_gguf_writer_set_arr(w, "a.u64", GGUF_TYPE_UINT64, a64, 2);
    hllm_gguf_writer_set_arr(w, "a.i64", GGUF_TYPE_INT64, a64, 2);
    hllm_gguf_writer_set_arr(w, "a.f64", GGUF_TYPE_FLOAT64, ad, 2);
    hllm_gguf_writer_set_arr(w, "a.empty", GGUF_TYPE_INT32, NULL, 0);
    hllm_str strs[4] = {{"<unk>", 5}, {"", 0}, {"a\0b", 3}, {"\xe2\x96\x81the", 6}};
    hllm_gguf_writer_set_arr_str(w, "a.str", strs, 4);
    hllm_gguf_writer_set_arr_str(w, "a.str_empty", NULL, 0);

    /* tensors of several types and ranks */
    float f32[64];
    for (int i = 0; i < 64; i++) f32[i] = (float)i - 10.5f;
    uint16_t f16[64];
    for (int i = 0; i < 64; i++) f16[i] = hllm_f32_to_fp16(f32[i]);
    uint8_t q8[34 * 4];
    for (int i = 0; i < (int)sizeof q8; i++) q8[i] = (uint8_t)i;
    uint8_t q4k[144 * 2];
    for (int i = 0; i < (int)sizeof q4k; i++) q4k[i] = (uint8_t)(255 - i);
    int64_t ne1[1] = {64}, ne2[2] = {32, 2}, ne3[3] = {32, 2, 2}, ne4[4] = {256, 1, 1, 2}, ne5[2] = {64, 2};
    hllm_gguf_writer_add_tensor(w, "v.f32", HLLM_TYPE_F32, 1, ne1, f32);
    hllm_gguf_writer_add_tensor(w, "m.f16", HLLM_TYPE_F16, 2, ne2, f16);
    hllm_gguf_writer_add_tensor(w, "m.q8_0", HLLM_TYPE_Q8_0, 3, ne3, q8);
    hllm_gguf_writer_add_tensor(w, "m.q4_K", HLLM_TYPE_Q4_K, 4, ne4, q4k);
    hllm_gguf_writer_add_tensor(w, "m.q5_0", HLLM_TYPE_Q5_0, 2, ne5, q8); /* unsupported but known: accepted */
    return w;
}

static void check_roundtrip(hllm_gguf_file *f) {
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float fl;
    bool b;
    hllm_str s;
    CHECK(hllm_gguf_version(f) == 3 && hllm_gguf_alignment(f) == 32);
    CHECK(hllm_gguf_get_str(f, "general.architecture", &s) == 0 && !strcmp(s.s, "llama") && s.n == 5);
    CHECK(hllm_gguf_get_u32(f, "t.u32", &u32) == 0 && u32 == 4000000000u);
    CHECK(hllm_gguf_get_i32(f, "t.i32", &i32) == 0 && i32 == -7);
    CHECK(hllm_gguf_get_u64(f, "t.u64", &u64) == 0 && u64 == 1ull << 40);
    CHECK(hllm_gguf_get_f32(f, "t.f32", &fl) == 0 && fl == 1.5f);
    CHECK(hllm_gguf_get_bool(f, "t.bool", &b) == 0 && b);
    CHECK(hllm_gguf_get_u32(f, "t.u8", &u32) == 0 && u32 == 200);
    CHECK(hllm_gguf_get_i32(f, "t.i8", &i32) == 0 && i32 == -100);
    CHECK(hllm_gguf_get_u32(f, "t.u16", &u32) == 0 && u32 == 60000);
    CHECK(hllm_gguf_get_i32(f, "t.i16", &i32) == 0 && i32 == -30000);
    CHECK(hllm_gguf_find_kv(f, "t.i64") && hllm_gguf_find_kv(f, "t.i64")->v.i64 == -(1ll << 50));
    CHECK(hllm_gguf_get_f32(f, "t.f64", &fl) == 0 && fl == 3.25f);
    CHECK(hllm_gguf_get_u32(f, "t.replaced", &u32) == 0 && u32 == 99);
    CHECK(hllm_gguf_get_str(f, "t.empty", &s) == 0 && s.n == 0 && s.s[0] == 0);
    /* typed getter rules: absent 1, wrong type or range -1 */
    CHECK(hllm_gguf_get_u32(f, "nope", &u32) == 1);
    CHECK(hllm_gguf_get_u32(f, "t.u64", &u32) == -1 && strstr(hllm_error(), "out of range"));
    CHECK(hllm_gguf_get_u32(f, "t.i32", &u32) == -1 && strstr(hllm_error(), "out of range"));
    CHECK(hllm_gguf_get_i32(f, "t.u32", &i32) == -1);
    CHECK(hllm_gguf_get_u64(f, "t.i64", &u64) == -1);
    CHECK(hllm_gguf_get_u32(f, "general.architecture", &u32) == -1 && strstr(hllm_error(), "has type str"));
    CHECK(hllm_gguf_get_f32(f, "t.u32", &fl) == -1);
    CHECK(hllm_gguf_get_bool(f, "t.u8", &b) == -1);
    CHECK(hllm_gguf_get_str(f, "a.str", &s) == -1 && strstr(hllm_error(), "array of str"));

    hllm_gguf_vtype et;
    const void *d;
    uint64_t n;
    CHECK(hllm_gguf_get_arr(f, "a.u8", &et, &d, &n) == 0 && et == GGUF_TYPE_UINT8 && n == 3 &&
          ((const uint8_t *)d)[2] == 255);
    CHECK(hllm_gguf_get_arr(f, "a.i8", &et, &d, &n) == 0 && et == GGUF_TYPE_INT8 && ((const int8_t *)d)[2] == -1);
    CHECK(hllm_gguf_get_arr(f, "a.i16", &et, &d, &n) == 0 && et == GGUF_TYPE_INT16 && n == 2);
    CHECK(hllm_gguf_get_arr(f, "a.u16", &et, &d, &n) == 0 && et == GGUF_TYPE_UINT16 && n == 2);
    int32_t i32a[4];
    CHECK(hllm_gguf_get_arr(f, "a.i32", &et, &d, &n) == 0 && et == GGUF_TYPE_INT32 && n == 4);
    memcpy(i32a, d, sizeof i32a);
    CHECK(i32a[0] == -1 && i32a[3] == 2147483647);
    CHECK(hllm_gguf_get_arr(f, "a.u32", &et, &d, &n) == 0 && et == GGUF_TYPE_UINT32 && n == 4);
    float fa[3];
    CHECK(hllm_gguf_get_arr(f, "a.f32", &et, &d, &n) == 0 && et == GGUF_TYPE_FLOAT32 && n == 3);
    memcpy(fa, d, sizeof fa);
    CHECK(fa[0] == 0.5f && fa[1] == -2.0f && fa[2] == 1e-6f);
    CHECK(hllm_gguf_get_arr(f, "a.bool", &et, &d, &n) == 0 && et == GGUF_TYPE_BOOL && n == 3 &&
          ((const uint8_t *)d)[1] == 0);
    uint64_t u64a[2];
    CHECK(hllm_gguf_get_arr(f, "a.u64", &et, &d, &n) == 0 && et == GGUF_TYPE_UINT64 && n == 2);
    memcpy(u64a, d, sizeof u64a);
    CHECK(u64a[1] == ~0ull);
    CHECK(hllm_gguf_get_arr(f, "a.i64", &et, &d, &n) == 0 && et == GGUF_TYPE_INT64);
    double da[2];
    CHECK(hllm_gguf_get_arr(f, "a.f64", &et, &d, &n) == 0 && et == GGUF_TYPE_FLOAT64 && n == 2);
    memcpy(da, d, sizeof da);
    CHECK(da[0] == 1.0 / 3);
    CHECK(hllm_gguf_get_arr(f, "a.empty", &et, &d, &n) == 0 && n == 0);
    CHECK(hllm_gguf_get_arr(f, "t.u32", &et, &d, &n) == -1);
    const hllm_str *sa;
    CHECK(hllm_gguf_get_arr_str(f, "a.str", &sa, &n) == 0 && n == 4);
    if (n == 4) {
        CHECK(!strcmp(sa[0].s, "<unk>") && sa[1].n == 0 && sa[1].s[0] == 0);
        CHECK(sa[2].n == 3 && memcmp(sa[2].s, "a\0b", 4) == 0); /* embedded NUL kept, NUL-terminated */
        CHECK(!strcmp(sa[3].s, "\xe2\x96\x81the"));
    }
    CHECK(hllm_gguf_get_arr_str(f, "a.str_empty", &sa, &n) == 0 && n == 0);
    CHECK(hllm_gguf_get_arr_str(f, "a.u8", &sa, &n) == -1);

    CHECK(hllm_gguf_n_tensors(f) == 5);
    const hllm_gguf_tensor *t = hllm_gguf_find_tensor(f, "v.f32");
    CHECK(t && t->n_dims == 1 && t->ne[0] == 64 && t->ne[1] == 1 && t->nbytes == 256 && t->type == HLLM_TYPE_F32);
    if (t) {
        float x;
        memcpy(&x, (const uint8_t *)t->data + 4 * 63, 4);
        CHECK(x == 63 - 10.5f);
    }
    t = hllm_gguf_find_tensor(f, "m.f16");
    CHECK(t && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 2 && t->nbytes == 128);
    if (t) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * 5, 2);
        CHECK(hllm_fp16_to_f32(h) == 5 - 10.5f);
    }
    t = hllm_gguf_find_tensor(f, "m.q8_0");
    CHECK(t && t->n_dims == 3 && t->ne[2] == 2 && t->nbytes == 136 && ((const uint8_t *)t->data)[135] == 135);
    t = hllm_gguf_find_tensor(f, "m.q4_K");
    CHECK(t && t->n_dims == 4 && t->ne[0] == 256 && t->ne[3] == 2 && t->nbytes == 288 &&
          ((const uint8_t *)t->data)[0] == 255);
    t = hllm_gguf_find_tensor(f, "m.q5_0");
    CHECK(t && t->type == HLLM_TYPE_Q5_0 && t->nbytes == 88);
    for (int64_t i = 0; i < hllm_gguf_n_tensors(f); i++) {
        const hllm_gguf_tensor *ti = hllm_gguf_tensor_at(f, i);
        CHECK(ti->offset % 32 == 0 && (hllm_gguf_data_offset(f) + ti->offset) % 32 == 0);
        CHECK((const uint8_t *)ti->data + ti->nbytes <= (const uint8_t *)ti->data + hllm_gguf_file_size(f));
    }
    CHECK(hllm_gguf_data_offset(f) % 32 == 0);
    CHECK(hllm_gguf_tensor_at(f, 5) == NULL && hllm_gguf_tensor_at(f, -1) == NULL && hllm_gguf_kv_at(f, hllm_gguf_n_kv(f)) == NULL);
    CHECK(hllm_gguf_find_tensor(f, "m.q4") == NULL);
}

static void test_roundtrip(void) {
    hllm_gguf_writer *w = make_writer();
    void *mem = NULL;
    size_t size = 0;
    CHECKF(hllm_gguf_writer_write_memory(w, &mem, &size) == 0, "%s", hllm_error());
    hllm_gguf_file *f = hllm_gguf_open_memory(mem, size, "mem.gguf");
    CHECKF(f != NULL, "%s", hllm_error());
    if (f) {
        check_roundtrip(f);
        hllm_gguf_close(f);
    }

    /* The file path gives the same bytes. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/hllm_test_gguf_%d.gguf", (int)getpid());
    CHECKF(hllm_gguf_writer_write(w, path) == 0, "%s", hllm_error());
    f = hllm_gguf_open(path);
    CHECKF(f != NULL, "%s", hllm_error());
    if (f) {
        check_roundtrip(f);
        CHECK(hllm_gguf_file_size(f) == size && !strcmp(hllm_gguf_path(f), path));
        CHECK(memcmp(hllm_gguf_tensor_at(f, 0)->data, (uint8_t *)mem + hllm_gguf_data_offset(f), 256) == 0);
        hllm_gguf_close(f);
    }
    hllm_gguf_writer_free(w);

    /* Truncating the writer's output at every length before its last tensor ends: clean errors. */
    f = hllm_gguf_open_memory(mem, size, "mem.gguf");
    size_t need = 0;
    for (int64_t i = 0; f && i < hllm_gguf_n_tensors(f); i++) {
        const hllm_gguf_tensor *t = hllm_gguf_tensor_at(f, i);
        size_t end = hllm_gguf_data_offset(f) + t->offset + t->nbytes;
        if (end > need) need = end;
    }
    hllm_gguf_close(f);
    int bad = 0;
    for (size_t n = 0; n < size; n++) {
        void *c = malloc(n ? n : 1);
        memcpy(c, mem, n);
        hllm_error_clear();
        f = hllm_gguf_open_memory(c, n, "cut.gguf");
        if (n < need ? (f != NULL || !hllm_error()[0]) : f == NULL) bad++;
        hllm_gguf_close(f);
        free(c);
    }
    CHECKF(bad == 0, "%d truncation lengths misbehaved (need %zu of %zu)", bad, need, size);
    free(mem);

    /* Fill tensors (streamed), custom alignment, fill failure leaves no file. */
    w = hllm_gguf_writer_new();
    hllm_gguf_writer_set_u32(w, "general.alignment", 64);
    fill_ctx c1 = {0}, c2 = {0};
    int64_t ne[2] = {3, 5}, ne2[1] = {100};
    hllm_gguf_writer_add_tensor_fill(w, "a", HLLM_TYPE_F32, 2, ne, fill_pattern, &c1);
    hllm_gguf_writer_add_tensor_fill(w, "b", HLLM_TYPE_I8, 1, ne2, fill_pattern, &c2);
    CHECKF(hllm_gguf_writer_write(w, path) == 0, "%s", hllm_error());
    CHECK(c1.calls == 1 && c1.seen == 60 && c2.calls == 1 && c2.seen == 100);
    f = hllm_gguf_open(path);
    CHECKF(f != NULL, "%s", hllm_error());
    if (f) {
        CHECK(hllm_gguf_alignment(f) == 64 && hllm_gguf_data_offset(f) % 64 == 0);
        const hllm_gguf_tensor *t = hllm_gguf_find_tensor(f, "b");
        CHECK(t && t->offset == 64 && t->nbytes == 100 && ((const uint8_t *)t->data)[99] == (uint8_t)(99 * 7 + 3));
        CHECK(hllm_gguf_file_size(f) == hllm_gguf_data_offset(f) + 64 + 128); /* each tensor padded */
        hllm_gguf_close(f);
    }
    hllm_gguf_writer_add_tensor_fill(w, "c", HLLM_TYPE_F32, 1, ne2, fill_fail, NULL);
    unlink(path);
    CHECK(hllm_gguf_writer_write(w, path) == -1 && strstr(hllm_error(), "synthetic fill failure"));
    CHECK(access(path, F_OK) != 0);
    hllm_gguf_writer_free(w);

    /* Deferred writer errors are reported by write. */
    const struct {
        int what;
        const char *expect;
    } werrs[] = {{0, "duplicate tensor name 'x'"}, {1, "general.alignment"}, {2, "not a multiple of the q8_0 block"},
                 {3, "unknown type number 77"},   {4, "n_dims 5"},          {5, "dimension 1 is 0"}};
    for (size_t i = 0; i < sizeof werrs / sizeof werrs[0]; i++) {
        w = hllm_gguf_writer_new();
        float z[64] = {0};
        int64_t n1[4] = {16, 0, 1, 1};
        hllm_gguf_writer_add_tensor(w, "x", HLLM_TYPE_F32, 1, n1, z);
        switch (werrs[i].what) {
        case 0: hllm_gguf_writer_add_tensor(w, "x", HLLM_TYPE_F32, 1, n1, z); break;
        case 1: hllm_gguf_writer_set_u32(w, "general.alignment", 24); break;
        case 2: hllm_gguf_writer_add_tensor(w, "y", HLLM_TYPE_Q8_0, 1, n1, z); break;
        case 3: hllm_gguf_writer_add_tensor(w, "y", 77, 1, n1, z); break;
        case 4: hllm_gguf_writer_add_tensor(w, "y", HLLM_TYPE_F32, 5, n1, z); break;
        case 5: hllm_gguf_writer_add_tensor(w, "y", HLLM_TYPE_F32, 2, n1, z); break;
        }
        CHECK(hllm_gguf_writer_write_memory(w, &mem, &size) == -1);
        CHECKF(strstr(hllm_error(), werrs[i].expect) != NULL, "writer error '%s' lacks '%s'", hllm_error(),
               werrs[i].expect);
        hllm_gguf_writer_free(w);
    }

    /* Empty file (no KVs, no tensors) round trips. */
    w = hllm_gguf_writer_new();
    CHECK(hllm_gguf_writer_write_memory(w, &mem, &size) == 0 && size == 32); /* header padded to the alignment */
    f = hllm_gguf_open_memory(mem, size, "empty.gguf");
    CHECK(f && hllm_gguf_n_kv(f) == 0 && hllm_gguf_n_tensors(f) == 0);
    hllm_gguf_close(f);
    free(mem);
    hllm_gguf_writer_free(w);

    /* hllm_gguf_open errors: missing file, directory, empty file. */
    CHECK(hllm_gguf_open("/nonexistent/x.gguf") == NULL && strstr(hllm_error(), "cannot open"));
    CHECK(hllm_gguf_open("/tmp") == NULL && strstr(hllm_error(), "not a regular file"));
    FILE *fp = fopen(path, "wb");
    if (fp) fclose(fp);
    CHECK(hllm_gguf_open(path) == NULL && strstr(hllm_error(), "empty file"));
    unlink(path);
}

/* A 128K-entry vocabulary loads quickly. */
static void test_big_vocab(void) {
    enum { N = 128256 };
    hllm_str *v = malloc(N * sizeof *v);
    char *pool = malloc((size_t)N * 12);
    for (int i = 0; i < N; i++) {
        char *s = pool + (size_t)i * 12;
        int n = snprintf(s, 12, "tok%d", i);
        v[i] = (hllm_str){s, (uint64_t)n};
    }
    hllm_gguf_writer *w = hllm_gguf_writer_new();
    hllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v, N);
    void *mem;
    size_t size;
    CHECK(hllm_gguf_writer_write_memory(w, &mem, &size) == 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    hllm_gguf_file *f = hllm_gguf_open_memory(mem, size, "vocab.gguf");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    printf("128256-entry vocab opened in %.2f ms\n", ms);
    CHECKF(ms < 500, "vocab open took %.1f ms", ms);
    const hllm_str *sa;
    uint64_t n;
    CHECK(f && hllm_gguf_get_arr_str(f, "tokenizer.ggml.tokens", &sa, &n) == 0 && n == N && !strcmp(sa[N - 1].s, "tok128255"));
    hllm_gguf_close(f);
    free(mem);
    hllm_gguf_writer_free(w);
    free(v);
    free(pool);
}

static void test_stories(void) {
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        printf("stories260K.gguf not found: skipped\n");
        return;
    }
    hllm_gguf_file *f = hllm_gguf_open(path);
    CHECKF(f != NULL, "%s", hllm_error());
    if (!f) return;
    CHECK(hllm_gguf_version(f) == 3);
    CHECK(hllm_gguf_n_kv(f) == 19);
    CHECK(hllm_gguf_n_tensors(f) == 48);
    CHECK(hllm_gguf_data_offset(f) == 14176);
    CHECK(hllm_gguf_alignment(f) == 32);
    CHECK(hllm_gguf_file_size(f) == 1185376);
    hllm_str s;
    CHECK(hllm_gguf_get_str(f, "general.architecture", &s) == 0 && !strcmp(s.s, "llama"));
    CHECK(hllm_gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && !strcmp(s.s, "llama"));
    uint32_t u;
    CHECK(hllm_gguf_get_u32(f, "llama.embedding_length", &u) == 0 && u == 64);
    CHECK(hllm_gguf_get_u32(f, "llama.block_count", &u) == 0 && u == 5);
    CHECK(hllm_gguf_get_u32(f, "llama.attention.head_count", &u) == 0 && u == 8);
    CHECK(hllm_gguf_get_u32(f, "llama.attention.head_count_kv", &u) == 0 && u == 4);
    CHECK(hllm_gguf_get_u32(f, "llama.feed_forward_length", &u) == 0 && u == 172);
    float eps;
    CHECK(hllm_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) == 0 && fabsf(eps - 1e-5f) < 1e-9f);
    const hllm_str *toks;
    uint64_t n;
    CHECK(hllm_gguf_get_arr_str(f, "tokenizer.ggml.tokens", &toks, &n) == 0 && n == 512);
    if (n == 512) CHECK(!strcmp(toks[0].s, "<unk>") && !strcmp(toks[3].s, "<0x00>") && !strcmp(toks[258].s, "<0xFF>"));
    const struct {
        const char *name;
        int64_t ne0, ne1;
    } shapes[] = {{"token_embd.weight", 64, 512}, {"output_norm.weight", 64, 1}, {"output.weight", 64, 512},
                  {"blk.0.attn_q.weight", 64, 64}, {"blk.0.attn_k.weight", 64, 32}, {"blk.4.attn_v.weight", 64, 32},
                  {"blk.2.attn_output.weight", 64, 64}, {"blk.3.attn_norm.weight", 64, 1},
                  {"blk.1.ffn_gate.weight", 64, 172}, {"blk.1.ffn_up.weight", 64, 172},
                  {"blk.4.ffn_down.weight", 172, 64}, {"blk.0.ffn_norm.weight", 64, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const hllm_gguf_tensor *t = hllm_gguf_find_tensor(f, shapes[i].name);
        CHECKF(t && t->type == HLLM_TYPE_F32 && t->ne[0] == shapes[i].ne0 && t->ne[1] == shapes[i].ne1 &&
                   t->n_dims == (shapes[i].ne1 == 1 ? 1u : 2u),
               "tensor %s", shapes[i].name);
    }
    const hllm_gguf_tensor *a = hllm_gguf_find_tensor(f, "token_embd.weight"), *b = hllm_gguf_find_tensor(f, "output.weight");
    CHECK(a && b && a->nbytes == 64 * 512 * 4 && memcmp(a->data, b->data, a->nbytes) == 0);
    CHECK(hllm_gguf_find_tensor(f, "blk.5.attn_q.weight") == NULL);
    hllm_gguf_close(f);
}

/* Errors quote names from files verbatim: the message stays one line of valid UTF-8. */
static void test_error_line(void) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain 'name'", "plain 'name'"},
        {"a\nb\tc\x7f", "a\\x0ab\\x09c\\x7f"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"bad \xff\xfe", "bad \\xff\\xfe"},
        {"cut \xe2\x82", "cut \\xe2\\x82"},                  /* truncated sequence at the end */
        {"cut \xe2\x82z", "cut \\xe2\\x82z"},                /* truncated in the middle */
        {"overlong \xc0\xaf \xe0\x80\xaf", "overlong \\xc0\\xaf \\xe0\\x80\\xaf"},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        {"past max \xf4\x90\x80\x80", "past max \\xf4\\x90\\x80\\x80"},
        {"nel \xc2\x85 ls \xe2\x80\xa8", "nel \\xc2\\x85 ls \\xe2\\x80\\xa8"}, /* line breaks to some terminals */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hllm_fail("%s", cases[i].in);
        CHECKF(strcmp(hllm_error(), cases[i].want) == 0, "error text %zu: got '%s', want '%s'", i, hllm_error(),
               cases[i].want);
    }
    /* a long message is cut at a character, never inside one */
    char big[2100];
    for (int i = 0; i < 700; i++) memcpy(big + 3 * i, "\xe2\x82\xac", 3);
    big[2100 - 1] = 0;
    hllm_fail("%s", big);
    const size_t n = strlen(hllm_error());
    CHECKF(n > 900 && n % 3 == 0, "long error cut to %zu bytes, inside a character", n);
}

int main(void) {
    test_error_line();
    test_corruption();
    test_roundtrip();
    test_big_vocab();
    test_stories();
    return test_summary("test_gguf");
}
