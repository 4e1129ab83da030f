/* GGUF reader: maps the file read-only and validates every field before anything is used.
 * Layout (v2/v3, little-endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims, u64 ne[n_dims],
 * u32 type, u64 offset), padding to the alignment, then the tensor data section. */
#include "gguf/gguf.h"
#include "core/error.h"
#include "core/hash.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_NAME_MAX 63          /* ggml's GGML_MAX_NAME (64) less the NUL */
#define GGUF_MAX_KV (1u << 20)    /* real files have ~50; anything near this is corrupt */
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_STR_ARRAY (1u << 24) /* vocabularies are ~100K-300K entries */

/* Smallest encodings, used to reject counts that cannot fit in the file before allocating. */
#define GGUF_MIN_KV_BYTES 14u     /* key len 8 + 1 byte key + type 4 + 1 byte value */
#define GGUF_MIN_TI_BYTES 33u     /* name len 8 + 1 + n_dims 4 + one dim 8 + type 4 + offset 8 */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} arena_chunk;

struct hllm_gguf_file {
    char *name;
    const uint8_t *base;
    size_t size;
    void *map; /* NULL for hllm_gguf_open_memory */
    uint32_t version, alignment;
    size_t data_offset;
    int64_t n_kv, n_tensors;
    hllm_gguf_kv *kvs;
    hllm_gguf_tensor *tensors;
    uint32_t *kv_slots, *t_slots; /* open-addressing hash: index + 1, 0 = empty */
    uint32_t kv_mask, t_mask;
    arena_chunk *arena;
};

/* ---- small helpers ---- */

/* align: 1 for string bytes (packed tight: a big vocab is mostly page faults), 16 otherwise. */
static void *arena_alloc_a(hllm_gguf_file *f, size_t n, size_t align) {
    arena_chunk *c = f->arena;
    if (c) c->used = (c->used + align - 1) & ~(align - 1);
    if (c && c->used > c->cap) c->used = c->cap;
    if (!c || c->cap - c->used < n) {
        /* Chunks grow with the file so a big vocab takes a handful of mallocs. */
        size_t cap = c ? c->cap * 2 : 64 * 1024;
        if (cap > 16u << 20) cap = 16u << 20;
        if (cap < n) cap = n;
        if (cap > SIZE_MAX - sizeof(arena_chunk)) return NULL;
        c = malloc(sizeof(arena_chunk) + cap);
        if (!c) return NULL;
        c->next = f->arena;
        c->cap = cap;
        c->used = 0;
        f->arena = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void *arena_alloc(hllm_gguf_file *f, size_t n) { return arena_alloc_a(f, n, 16); }
static char *arena_str(hllm_gguf_file *f, size_t n) { return arena_alloc_a(f, n, 1); }

static bool str_eq(hllm_str a, const char *s, size_t n) { return a.n == n && memcmp(a.s, s, n) == 0; }

static uint32_t *slots_new(int64_t n, uint32_t *mask) {
    uint64_t cap = 8;
    while (cap < (uint64_t)n * 2) cap *= 2;
    *mask = (uint32_t)(cap - 1);
    return calloc(cap, sizeof(uint32_t));
}

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }

/* ---- cursor over the file with bounds checks ---- */

typedef struct {
    hllm_gguf_file *f;
    size_t pos;
} rd;

static size_t rd_left(const rd *r) { return r->f->size - r->pos; }

static int rd_need(rd *r, uint64_t n, const char *what) {
    if (n > rd_left(r))
        return hllm_fail("%s: offset %zu: truncated: %s needs %" PRIu64 " bytes but only %zu remain (file size %zu)",
                         r->f->name, r->pos, what, n, rd_left(r), r->f->size);
    return 0;
}

static int rd_u32(rd *r, uint32_t *out, const char *what) {
    if (rd_need(r, 4, what)) return -1;
    *out = ld32(r->f->base + r->pos);
    r->pos += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *out, const char *what) {
    if (rd_need(r, 8, what)) return -1;
    *out = ld64(r->f->base + r->pos);
    r->pos += 8;
    return 0;
}

/* Reads a length-prefixed string and makes a NUL-terminated copy. */
static int rd_str(rd *r, hllm_str *out, const char *what) {
    size_t at = r->pos;
    uint64_t n;
    if (rd_u64(r, &n, what)) return -1;
    if (n > rd_left(r))
        return hllm_fail("%s: offset %zu: %s: string length %" PRIu64 " runs past the end of the file (%zu bytes remain, file size %zu)",
                         r->f->name, at, what, n, rd_left(r), r->f->size);
    char *s = arena_str(r->f, (size_t)n + 1);
    if (!s) return hllm_fail("%s: offset %zu: %s: out of memory", r->f->name, at, what);
    memcpy(s, r->f->base + r->pos, (size_t)n);
    s[n] = 0;
    r->pos += (size_t)n;
    out->s = s;
    out->n = n;
    return 0;
}

size_t hllm_gguf_vtype_size(hllm_gguf_vtype t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *hllm_gguf_vtype_name(hllm_gguf_vtype t) {
    static const char *names[GGUF_TYPE_COUNT] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                 "bool", "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "invalid";
}

/* Decodes one scalar at p into kv->v (integers widened, floats to double). */
static void decode_scalar(hllm_gguf_kv *kv, const uint8_t *p) {
    switch (kv->type) {
    case GGUF_TYPE_UINT8: kv->v.u64 = p[0]; break;
    case GGUF_TYPE_INT8: kv->v.i64 = (int8_t)p[0]; break;
    case GGUF_TYPE_UINT16: kv->v.u64 = ld16(p); break;
    case GGUF_TYPE_INT16: kv->v.i64 = (int16_t)ld16(p); break;
    case GGUF_TYPE_UINT32: kv->v.u64 = ld32(p); break;
    case GGUF_TYPE_INT32: kv->v.i64 = (int32_t)ld32(p); break;
    case GGUF_TYPE_UINT64: kv->v.u64 = ld64(p); break;
    case GGUF_TYPE_INT64: kv->v.i64 = (int64_t)ld64(p); break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t u = ld32(p);
        float x;
        memcpy(&x, &u, 4);
        kv->v.f64 = x;
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        uint64_t u = ld64(p);
        memcpy(&kv->v.f64, &u, 8);
        break;
    }
    case GGUF_TYPE_BOOL: kv->v.b = p[0] != 0; break;
    default: break;
    }
}

/* ---- KVs ---- */

static int parse_kv(hllm_gguf_file *f, rd *r, int64_t i) {
    hllm_gguf_kv *kv = &f->kvs[i];
    char what[96];
    size_t at = r->pos;
    snprintf(what, sizeof what, "key of kv %" PRId64, i);
    if (rd_str(r, &kv->key, what)) return -1;
    if (kv->key.n == 0) return hllm_fail("%s: offset %zu: kv %" PRId64 " has an empty key", f->name, at, i);
    if (memchr(kv->key.s, 0, kv->key.n))
        return hllm_fail("%s: offset %zu: kv %" PRId64 " key contains a NUL byte", f->name, at, i);

    /* Duplicate keys are ambiguous: refuse them. */
    uint64_t h = hllm_hash_bytes(kv->key.s, kv->key.n);
    for (uint32_t s = (uint32_t)h & f->kv_mask;; s = (s + 1) & f->kv_mask) {
        uint32_t e = f->kv_slots[s];
        if (!e) {
            f->kv_slots[s] = (uint32_t)i + 1;
            break;
        }
        if (str_eq(f->kvs[e - 1].key, kv->key.s, kv->key.n))
            return hllm_fail("%s: offset %zu: duplicate key '%s' (kv %u and kv %" PRId64 ")", f->name, at, kv->key.s,
                             e - 1, i);
    }

    size_t tat = r->pos;
    uint32_t t;
    snprintf(what, sizeof what, "type of kv '%.60s'", kv->key.s);
    if (rd_u32(r, &t, what)) return -1;
    if (t >= GGUF_TYPE_COUNT)
        return hllm_fail("%s: offset %zu: kv '%s': unknown value type %u", f->name, tat, kv->key.s, t);
    kv->type = (hllm_gguf_vtype)t;
    snprintf(what, sizeof what, "value of kv '%.60s'", kv->key.s);
    size_t vat = r->pos;

    if (t == GGUF_TYPE_STRING) return rd_str(r, &kv->v.str, what);

    if (t != GGUF_TYPE_ARRAY) {
        size_t sz = hllm_gguf_vtype_size((hllm_gguf_vtype)t);
        if (rd_need(r, sz, what)) return -1;
        const uint8_t *p = f->base + r->pos;
        if (t == GGUF_TYPE_BOOL && p[0] > 1)
            return hllm_fail("%s: offset %zu: kv '%s': bool value %u is not 0 or 1", f->name, vat, kv->key.s, p[0]);
        decode_scalar(kv, p);
        r->pos += sz;
        if (!strcmp(kv->key.s, "general.alignment")) {
            if (t != GGUF_TYPE_UINT32)
                return hllm_fail("%s: offset %zu: general.alignment has type %s, must be u32", f->name, tat,
                                 hllm_gguf_vtype_name(kv->type));
            uint64_t a = kv->v.u64;
            if (a == 0 || (a & (a - 1)))
                return hllm_fail("%s: offset %zu: general.alignment %" PRIu64 " is not a nonzero power of two", f->name,
                                 vat, a);
            f->alignment = (uint32_t)a;
        }
        return 0;
    }

    if (!strcmp(kv->key.s, "general.alignment"))
        return hllm_fail("%s: offset %zu: general.alignment has type arr, must be u32", f->name, tat);
    uint32_t et;
    uint64_t n;
    if (rd_u32(r, &et, what)) return -1;
    if (et == GGUF_TYPE_ARRAY)
        return hllm_fail("%s: offset %zu: kv '%s': nested arrays are not supported", f->name, vat, kv->key.s);
    if (et >= GGUF_TYPE_COUNT)
        return hllm_fail("%s: offset %zu: kv '%s': unknown array element type %u", f->name, vat, kv->key.s, et);
    size_t nat = r->pos;
    if (rd_u64(r, &n, what)) return -1;
    kv->arr_type = (hllm_gguf_vtype)et;
    kv->arr_n = n;

    if (et == GGUF_TYPE_STRING) {
        /* Each string takes at least its 8-byte length: bound the count before allocating. */
        if (n > rd_left(r) / 8)
            return hllm_fail("%s: offset %zu: kv '%s': array of %" PRIu64 " strings cannot fit in the %zu bytes left in the file",
                             f->name, nat, kv->key.s, n, rd_left(r));
        if (n > GGUF_MAX_STR_ARRAY)
            return hllm_fail("%s: offset %zu: kv '%s': array of %" PRIu64 " strings exceeds the limit of %u", f->name,
                             nat, kv->key.s, n, GGUF_MAX_STR_ARRAY);
        hllm_str *a = arena_alloc(f, (size_t)(n ? n : 1) * sizeof(hllm_str));
        if (!a) return hllm_fail("%s: offset %zu: kv '%s': out of memory", f->name, nat, kv->key.s);
        /* Hot path for vocabularies: the error context is formatted only on failure. */
        for (uint64_t j = 0; j < n; j++) {
            if (rd_left(r) < 8 || ld64(f->base + r->pos) > rd_left(r) - 8) {
                snprintf(what, sizeof what, "kv '%.50s' element %" PRIu64, kv->key.s, j);
                return rd_str(r, &a[j], what); /* fails with the full message */
            }
            size_t len = (size_t)ld64(f->base + r->pos);
            char *c = arena_str(f, len + 1);
            if (!c) return hllm_fail("%s: offset %zu: kv '%s': out of memory", f->name, r->pos, kv->key.s);
            memcpy(c, f->base + r->pos + 8, len);
            c[len] = 0;
            a[j].s = c;
            a[j].n = len;
            r->pos += 8 + len;
        }
        kv->v.arr_str = a;
        return 0;
    }

    size_t es = hllm_gguf_vtype_size((hllm_gguf_vtype)et);
    if (n > rd_left(r) / es)
        return hllm_fail("%s: offset %zu: kv '%s': array of %" PRIu64 " %s (%zu bytes each) runs past the end of the file (%zu bytes remain, file size %zu)",
                         f->name, nat, kv->key.s, n, hllm_gguf_vtype_name(kv->arr_type), es, rd_left(r), f->size);
    const uint8_t *p = f->base + r->pos;
    if (et == GGUF_TYPE_BOOL)
        for (uint64_t j = 0; j < n; j++)
            if (p[j] > 1)
                return hllm_fail("%s: offset %zu: kv '%s': bool element %" PRIu64 " is %u, not 0 or 1", f->name,
                                 r->pos + (size_t)j, kv->key.s, j, p[j]);
    kv->v.arr = p;
    r->pos += (size_t)n * es;
    return 0;
}

/* ---- tensor infos ---- */

static int parse_tensor_info(hllm_gguf_file *f, rd *r, int64_t i, size_t *off_field) {
    hllm_gguf_tensor *t = &f->tensors[i];
    char what[112];
    size_t at = r->pos;
    snprintf(what, sizeof what, "name of tensor %" PRId64, i);
    if (rd_str(r, &t->name, what)) return -1;
    if (t->name.n == 0) return hllm_fail("%s: offset %zu: tensor %" PRId64 " has an empty name", f->name, at, i);
    if (t->name.n > GGUF_NAME_MAX)
        return hllm_fail("%s: offset %zu: tensor %" PRId64 " name is %" PRIu64 " bytes long (at most %d)", f->name, at,
                         i, t->name.n, GGUF_NAME_MAX);
    if (memchr(t->name.s, 0, t->name.n))
        return hllm_fail("%s: offset %zu: tensor %" PRId64 " name contains a NUL byte", f->name, at, i);
    const char *nm = t->name.s;

    uint64_t h = hllm_hash_bytes(nm, t->name.n);
    for (uint32_t s = (uint32_t)h & f->t_mask;; s = (s + 1) & f->t_mask) {
        uint32_t e = f->t_slots[s];
        if (!e) {
            f->t_slots[s] = (uint32_t)i + 1;
            break;
        }
        if (str_eq(f->tensors[e - 1].name, nm, t->name.n))
            return hllm_fail("%s: offset %zu: duplicate tensor name '%s' (tensors %u and %" PRId64 ")", f->name, at, nm,
                             e - 1, i);
    }

    snprintf(what, sizeof what, "tensor '%s' info", nm);
    size_t dat = r->pos;
    if (rd_u32(r, &t->n_dims, what)) return -1;
    if (t->n_dims < 1 || t->n_dims > 4)
        return hllm_fail("%s: offset %zu: tensor '%s': n_dims %u is not in 1..4", f->name, dat, nm, t->n_dims);
    int64_t nel = 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        size_t eat = r->pos;
        uint64_t v;
        if (rd_u64(r, &v, what)) return -1;
        if (v == 0 || v > (uint64_t)INT64_MAX)
            return hllm_fail("%s: offset %zu: tensor '%s': dimension %u is %" PRIu64 " (must be 1..2^63-1)", f->name,
                             eat, nm, d, v);
        if ((int64_t)v > INT64_MAX / nel)
            return hllm_fail("%s: offset %zu: tensor '%s': element count overflows (dimension %u = %" PRIu64 ")",
                             f->name, eat, nm, d, v);
        t->ne[d] = (int64_t)v;
        nel *= (int64_t)v;
    }
    size_t tat = r->pos;
    uint32_t type;
    if (rd_u32(r, &type, what)) return -1;
    const hllm_type_traits *tr = hllm_type_info((int)type);
    if (!tr->block_bytes)
        return hllm_fail("%s: offset %zu: tensor '%s' has unknown type number %u", f->name, tat, nm, type);
    t->type = (int)type;
    if (t->ne[0] % tr->block_size)
        return hllm_fail("%s: offset %zu: tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %d",
                         f->name, dat, nm, t->ne[0], tr->name, tr->block_size);
    uint64_t nblocks = (uint64_t)(nel / tr->block_size);
    if (nblocks > SIZE_MAX / (uint64_t)tr->block_bytes)
        return hllm_fail("%s: offset %zu: tensor '%s': byte size overflows", f->name, dat, nm);
    t->nbytes = (size_t)nblocks * (size_t)tr->block_bytes;

    *off_field = r->pos;
    if (rd_u64(r, &t->offset, what)) return -1;
    if (t->offset % f->alignment)
        return hllm_fail("%s: offset %zu: tensor '%s': data offset %" PRIu64 " is not a multiple of the alignment %u",
                         f->name, *off_field, nm, t->offset, f->alignment);
    return 0;
}

/* ---- open ---- */

static int parse(hllm_gguf_file *f) {
    rd r = {f, 0};
    if (rd_need(&r, 4, "magic")) return -1;
    if (memcmp(f->base, "GGUF", 4) != 0) {
        if (memcmp(f->base, "FUGG", 4) == 0)
            return hllm_fail("%s: offset 0: byte-swapped magic 'FUGG': big-endian GGUF is not supported", f->name);
        return hllm_fail("%s: offset 0: not a GGUF file (magic %02x %02x %02x %02x, expected 'GGUF')", f->name,
                         f->base[0], f->base[1], f->base[2], f->base[3]);
    }
    r.pos = 4;
    if (rd_u32(&r, &f->version, "version")) return -1;
    uint32_t v = f->version;
    if (v == 1) return hllm_fail("%s: offset 4: GGUF v1 is not supported (only v2 and v3); reconvert the model", f->name);
    if (v != 2 && v != 3) {
        uint32_t sw = (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
        if (sw >= 1 && sw <= 3)
            return hllm_fail("%s: offset 4: version field reads %u (byte-swapped %u): big-endian GGUF is not supported",
                             f->name, v, sw);
        return hllm_fail("%s: offset 4: unsupported GGUF version %u (only 2 and 3)", f->name, v);
    }
    uint64_t nt, nk;
    if (rd_u64(&r, &nt, "tensor count") || rd_u64(&r, &nk, "kv count")) return -1;
    size_t body = rd_left(&r);
    if (nt > body / GGUF_MIN_TI_BYTES || nt > GGUF_MAX_TENSORS)
        return hllm_fail("%s: offset 8: tensor count %" PRIu64 " is impossible for a file of %zu bytes (limit %u)",
                         f->name, nt, f->size, GGUF_MAX_TENSORS);
    if (nk > body / GGUF_MIN_KV_BYTES || nk > GGUF_MAX_KV)
        return hllm_fail("%s: offset 16: kv count %" PRIu64 " is impossible for a file of %zu bytes (limit %u)", f->name,
                         nk, f->size, GGUF_MAX_KV);
    f->n_tensors = (int64_t)nt;
    f->n_kv = (int64_t)nk;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    f->kvs = calloc(nk ? nk : 1, sizeof(hllm_gguf_kv));
    f->tensors = calloc(nt ? nt : 1, sizeof(hllm_gguf_tensor));
    f->kv_slots = slots_new((int64_t)nk, &f->kv_mask);
    f->t_slots = slots_new((int64_t)nt, &f->t_mask);
    size_t *off_fields = calloc(nt ? nt : 1, sizeof(size_t));
    if (!f->kvs || !f->tensors || !f->kv_slots || !f->t_slots || !off_fields) {
        free(off_fields);
        return hllm_fail("%s: out of memory", f->name);
    }

    int rc = 0;
    for (int64_t i = 0; i < f->n_kv && !rc; i++) rc = parse_kv(f, &r, i);
    for (int64_t i = 0; i < f->n_tensors && !rc; i++) rc = parse_tensor_info(f, &r, i, &off_fields[i]);
    if (!rc) {
        /* The data section starts at the next multiple of the alignment. */
        size_t pad = (f->alignment - r.pos % f->alignment) % f->alignment;
        f->data_offset = r.pos + pad;
        for (int64_t i = 0; i < f->n_tensors; i++) {
            hllm_gguf_tensor *t = &f->tensors[i];
            uint64_t avail = f->data_offset <= f->size ? f->size - f->data_offset : 0;
            if (f->data_offset > f->size || t->offset > avail || t->nbytes > avail - t->offset) {
                char range[96];
                uint64_t start = (uint64_t)f->data_offset + t->offset, end = start + t->nbytes;
                if (t->offset > UINT64_MAX - f->data_offset || t->nbytes > UINT64_MAX - start)
                    snprintf(range, sizeof range, "[%zu + %" PRIu64 ", +%zu)", f->data_offset, t->offset, t->nbytes);
                else
                    snprintf(range, sizeof range, "[%" PRIu64 ", %" PRIu64 ")", start, end);
                rc = hllm_fail("%s: offset %zu: tensor '%s' data %s lies past the end of the file (size %zu)", f->name,
                               off_fields[i], t->name.s, range, f->size);
                break;
            }
            size_t start = f->data_offset + (size_t)t->offset;
            t->data = f->base + start;
        }
    }
    free(off_fields);
    return rc;
}

static hllm_gguf_file *file_new(const char *name) {
    hllm_gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        hllm_fail("%s: out of memory", name);
        return NULL;
    }
    f->name = strdup(name);
    if (!f->name) {
        free(f);
        hllm_fail("%s: out of memory", name);
        return NULL;
    }
    return f;
}

hllm_gguf_file *hllm_gguf_open_memory(const void *data, size_t size, const char *name) {
    if (!name) name = "<memory>";
    if (!data && size) {
        hllm_fail("%s: no data", name);
        return NULL;
    }
    hllm_gguf_file *f = file_new(name);
    if (!f) return NULL;
    f->base = data;
    f->size = size;
    if (parse(f)) {
        hllm_gguf_close(f);
        return NULL;
    }
    return f;
}

hllm_gguf_file *hllm_gguf_open(const char *path) {
    if (!path) {
        hllm_fail("hllm_gguf_open: no path");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        hllm_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        hllm_fail("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        hllm_fail("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size == 0) {
        hllm_fail("%s: offset 0: empty file (not a GGUF file)", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        hllm_fail("%s: file too large to map", path);
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) {
        hllm_fail("%s: cannot mmap %zu bytes: %s", path, size, strerror(err));
        return NULL;
    }
    hllm_gguf_file *f = file_new(path);
    if (!f) {
        munmap(map, size);
        return NULL;
    }
    f->map = map;
    f->base = map;
    f->size = size;
    if (parse(f)) {
        hllm_gguf_close(f);
        return NULL;
    }
    return f;
}

void hllm_gguf_close(hllm_gguf_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    for (arena_chunk *c = f->arena, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(f->kvs);
    free(f->tensors);
    free(f->kv_slots);
    free(f->t_slots);
    free(f->name);
    free(f);
}

/* ---- accessors ---- */

const char *hllm_gguf_path(const hllm_gguf_file *f) { return f->name; }
uint32_t hllm_gguf_version(const hllm_gguf_file *f) { return f->version; }
size_t hllm_gguf_file_size(const hllm_gguf_file *f) { return f->size; }
size_t hllm_gguf_data_offset(const hllm_gguf_file *f) { return f->data_offset; }
uint32_t hllm_gguf_alignment(const hllm_gguf_file *f) { return f->alignment; }
int64_t hllm_gguf_n_kv(const hllm_gguf_file *f) { return f->n_kv; }
int64_t hllm_gguf_n_tensors(const hllm_gguf_file *f) { return f->n_tensors; }

const hllm_gguf_kv *hllm_gguf_kv_at(const hllm_gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_kv) ? &f->kvs[i] : NULL;
}

const hllm_gguf_tensor *hllm_gguf_tensor_at(const hllm_gguf_file *f, int64_t i) {
    return (i >= 0 && i < f->n_tensors) ? &f->tensors[i] : NULL;
}

const hllm_gguf_kv *hllm_gguf_find_kv(const hllm_gguf_file *f, const char *key) {
    if (!f || !key) return NULL;
    size_t n = strlen(key);
    for (uint32_t s = (uint32_t)hllm_hash_bytes(key, n) & f->kv_mask;; s = (s + 1) & f->kv_mask) {
        uint32_t e = f->kv_slots[s];
        if (!e) return NULL;
        if (str_eq(f->kvs[e - 1].key, key, n)) return &f->kvs[e - 1];
    }
}

const hllm_gguf_tensor *hllm_gguf_find_tensor(const hllm_gguf_file *f, const char *name) {
    if (!f || !name) return NULL;
    size_t n = strlen(name);
    for (uint32_t s = (uint32_t)hllm_hash_bytes(name, n) & f->t_mask;; s = (s + 1) & f->t_mask) {
        uint32_t e = f->t_slots[s];
        if (!e) return NULL;
        if (str_eq(f->tensors[e - 1].name, name, n)) return &f->tensors[e - 1];
    }
}

/* ---- typed getters ---- */

static bool is_unsigned(hllm_gguf_vtype t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_UINT64;
}
static bool is_signed(hllm_gguf_vtype t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

static int wrong_type(const hllm_gguf_file *f, const hllm_gguf_kv *kv, const char *want) {
    if (kv->type == GGUF_TYPE_ARRAY)
        return hllm_fail("%s: key '%s' is an array of %s, expected %s", f->name, kv->key.s, hllm_gguf_vtype_name(kv->arr_type),
                         want);
    return hllm_fail("%s: key '%s' has type %s, expected %s", f->name, kv->key.s, hllm_gguf_vtype_name(kv->type), want);
}

/* Reads any integer KV into [lo, hi] as a signed 128-bit-free check: *u (unsigned view) or *s. */
static int get_int(const hllm_gguf_file *f, const char *key, bool want_signed, uint64_t umax, int64_t smin, int64_t smax,
                   uint64_t *uout, int64_t *sout) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 1;
    if (is_unsigned(kv->type)) {
        uint64_t v = kv->v.u64;
        if (want_signed ? v > (uint64_t)smax : v > umax)
            return hllm_fail("%s: key '%s' value %" PRIu64 " is out of range", f->name, key, v);
        if (want_signed) *sout = (int64_t)v;
        else *uout = v;
        return 0;
    }
    if (is_signed(kv->type)) {
        int64_t v = kv->v.i64;
        if (want_signed ? (v < smin || v > smax) : (v < 0 || (uint64_t)v > umax))
            return hllm_fail("%s: key '%s' value %" PRId64 " is out of range", f->name, key, v);
        if (want_signed) *sout = v;
        else *uout = (uint64_t)v;
        return 0;
    }
    return wrong_type(f, kv, "an integer");
}

int hllm_gguf_get_u32(const hllm_gguf_file *f, const char *key, uint32_t *out) {
    uint64_t u = 0;
    int rc = get_int(f, key, false, UINT32_MAX, 0, 0, &u, NULL);
    if (rc == 0) *out = (uint32_t)u;
    return rc;
}

int hllm_gguf_get_i32(const hllm_gguf_file *f, const char *key, int32_t *out) {
    int64_t s = 0;
    int rc = get_int(f, key, true, 0, INT32_MIN, INT32_MAX, NULL, &s);
    if (rc == 0) *out = (int32_t)s;
    return rc;
}

int hllm_gguf_get_u64(const hllm_gguf_file *f, const char *key, uint64_t *out) {
    uint64_t u = 0;
    int rc = get_int(f, key, false, UINT64_MAX, 0, 0, &u, NULL);
    if (rc == 0) *out = u;
    return rc;
}

int hllm_gguf_get_f32(const hllm_gguf_file *f, const char *key, float *out) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64) return wrong_type(f, kv, "a float");
    *out = (float)kv->v.f64;
    return 0;
}

int hllm_gguf_get_bool(const hllm_gguf_file *f, const char *key, bool *out) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_BOOL) return wrong_type(f, kv, "bool");
    *out = kv->v.b;
    return 0;
}

int hllm_gguf_get_str(const hllm_gguf_file *f, const char *key, hllm_str *out) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_STRING) return wrong_type(f, kv, "str");
    *out = kv->v.str;
    return 0;
}

/* For a string array, *data is the hllm_str array (same as hllm_gguf_get_arr_str). */
int hllm_gguf_get_arr(const hllm_gguf_file *f, const char *key, hllm_gguf_vtype *elem_type, const void **data, uint64_t *n) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_ARRAY) return wrong_type(f, kv, "an array");
    if (elem_type) *elem_type = kv->arr_type;
    if (data) *data = kv->arr_type == GGUF_TYPE_STRING ? (const void *)kv->v.arr_str : kv->v.arr;
    if (n) *n = kv->arr_n;
    return 0;
}

int hllm_gguf_get_arr_str(const hllm_gguf_file *f, const char *key, const hllm_str **strs, uint64_t *n) {
    const hllm_gguf_kv *kv = hllm_gguf_find_kv(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING) return wrong_type(f, kv, "an array of str");
    if (strs) *strs = kv->v.arr_str;
    if (n) *n = kv->arr_n;
    return 0;
}
