/* GGUF v3 writer. KVs are kept already encoded (type + payload); tensors are either copied at
 * add time or produced by a fill callback straight into the output (a file mapping), so a
 * multi-GB tensor never needs a heap buffer of its size. Errors in the void setters are kept
 * (the first one) and reported by hllm_gguf_writer_write*. */
#include "gguf/gguf.h"
#include "core/error.h"
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_NAME_MAX 63

typedef struct {
    char *key;
    hllm_gguf_vtype type;
    uint64_t scalar;     /* scalar value bits (for general.alignment) */
    uint8_t *val;        /* encoded: u32 type, then the payload */
    size_t val_len;
} wkv;

typedef struct {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[4];
    size_t nbytes;
    uint64_t offset;     /* set while writing */
    void *data;          /* owned copy, or NULL when fill is used */
    hllm_gguf_fill_fn fill;
    void *user;
} wtensor;

struct hllm_gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *ts;
    size_t n_ts, cap_ts;
    char err[512]; /* first deferred error */
};

/* ---- growable byte buffer ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf;

static void buf_put(buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return;
    if (n > SIZE_MAX - b->n) {
        b->oom = true;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap = cap > SIZE_MAX / 2 ? b->n + n : cap * 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void buf_u32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_put(b, x, 4);
}

static void buf_u64(buf *b, uint64_t v) {
    buf_u32(b, (uint32_t)v);
    buf_u32(b, (uint32_t)(v >> 32));
}

static void buf_str(buf *b, const char *s, uint64_t n) {
    buf_u64(b, n);
    buf_put(b, s, (size_t)n);
}

/* ---- writer state ---- */

static void werr(hllm_gguf_writer *w, const char *fmt, ...) HLLM_PRINTF(2, 3);
static void werr(hllm_gguf_writer *w, const char *fmt, ...) {
    if (w->err[0]) return; /* keep the first error: later ones are usually its consequences */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

hllm_gguf_writer *hllm_gguf_writer_new(void) {
    hllm_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) hllm_fail("gguf writer: out of memory");
    return w;
}

void hllm_gguf_writer_free(hllm_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].val);
    }
    for (size_t i = 0; i < w->n_ts; i++) {
        free(w->ts[i].name);
        free(w->ts[i].data);
    }
    free(w->kvs);
    free(w->ts);
    free(w);
}

/* Stores an encoded value under key, replacing an earlier value of the same key. Takes b. */
static void set_kv(hllm_gguf_writer *w, const char *key, hllm_gguf_vtype type, uint64_t scalar, buf *b) {
    if (!key || !key[0]) {
        werr(w, "gguf writer: empty key");
        free(b->p);
        return;
    }
    if (b->oom) {
        werr(w, "gguf writer: out of memory encoding key '%s'", key);
        free(b->p);
        return;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (!strcmp(w->kvs[i].key, key)) {
            free(w->kvs[i].val);
            w->kvs[i].type = type;
            w->kvs[i].scalar = scalar;
            w->kvs[i].val = b->p;
            w->kvs[i].val_len = b->n;
            return;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        wkv *p = realloc(w->kvs, cap * sizeof *p);
        if (!p) {
            werr(w, "gguf writer: out of memory adding key '%s'", key);
            free(b->p);
            return;
        }
        w->kvs = p;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        werr(w, "gguf writer: out of memory adding key '%s'", key);
        free(b->p);
        return;
    }
    w->kvs[w->n_kv++] = (wkv){k, type, scalar, b->p, b->n};
}

static void set_scalar(hllm_gguf_writer *w, const char *key, hllm_gguf_vtype type, uint64_t bits, size_t size) {
    if (!w) return;
    buf b = {0};
    buf_u32(&b, (uint32_t)type);
    uint8_t x[8];
    for (size_t i = 0; i < size; i++) x[i] = (uint8_t)(bits >> (8 * i));
    buf_put(&b, x, size);
    set_kv(w, key, type, bits, &b);
}

void hllm_gguf_writer_set_u32(hllm_gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, GGUF_TYPE_UINT32, v, 4); }
void hllm_gguf_writer_set_i32(hllm_gguf_writer *w, const char *key, int32_t v) {
    set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)v, 4);
}
void hllm_gguf_writer_set_u64(hllm_gguf_writer *w, const char *key, uint64_t v) { set_scalar(w, key, GGUF_TYPE_UINT64, v, 8); }
void hllm_gguf_writer_set_f32(hllm_gguf_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    set_scalar(w, key, GGUF_TYPE_FLOAT32, u, 4);
}
void hllm_gguf_writer_set_bool(hllm_gguf_writer *w, const char *key, bool v) { set_scalar(w, key, GGUF_TYPE_BOOL, v ? 1 : 0, 1); }

void hllm_gguf_writer_set_scalar(hllm_gguf_writer *w, const char *key, hllm_gguf_vtype type, const void *v) {
    static const size_t sz[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (!w) return;
    if ((unsigned)type >= GGUF_TYPE_COUNT || !sz[type] || !v) {
        werr(w, "gguf writer: key '%s': type %d is not a scalar value type", key ? key : "(null)", (int)type);
        return;
    }
    uint64_t bits = 0;
    const uint8_t *p = v;
    for (size_t i = 0; i < sz[type]; i++) bits |= (uint64_t)p[i] << (8 * i); /* host is little-endian */
    set_scalar(w, key, type, bits, sz[type]);
}

void hllm_gguf_writer_set_str(hllm_gguf_writer *w, const char *key, const char *v) {
    if (!w) return;
    if (!v) {
        werr(w, "gguf writer: key '%s': NULL string", key);
        return;
    }
    buf b = {0};
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_str(&b, v, strlen(v));
    set_kv(w, key, GGUF_TYPE_STRING, 0, &b);
}

void hllm_gguf_writer_set_arr(hllm_gguf_writer *w, const char *key, hllm_gguf_vtype elem_type, const void *data, uint64_t n) {
    static const size_t sz[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (!w) return;
    if ((unsigned)elem_type >= GGUF_TYPE_COUNT || !sz[elem_type]) {
        werr(w, "gguf writer: key '%s': array element type %d is not a numeric type (use set_arr_str for strings)",
             key ? key : "(null)", (int)elem_type);
        return;
    }
    if (n && !data) {
        werr(w, "gguf writer: key '%s': NULL array data", key);
        return;
    }
    if (n > SIZE_MAX / sz[elem_type]) {
        werr(w, "gguf writer: key '%s': array of %" PRIu64 " elements is too large", key, n);
        return;
    }
    buf b = {0};
    buf_u32(&b, GGUF_TYPE_ARRAY);
    buf_u32(&b, (uint32_t)elem_type);
    buf_u64(&b, n);
    buf_put(&b, data, (size_t)n * sz[elem_type]); /* host is little-endian, like GGUF */
    set_kv(w, key, GGUF_TYPE_ARRAY, 0, &b);
}

void hllm_gguf_writer_set_arr_str(hllm_gguf_writer *w, const char *key, const hllm_str *strs, uint64_t n) {
    if (!w) return;
    if (n && !strs) {
        werr(w, "gguf writer: key '%s': NULL string array", key);
        return;
    }
    buf b = {0};
    buf_u32(&b, GGUF_TYPE_ARRAY);
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_u64(&b, n);
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        if (strs[i].n && !strs[i].s) {
            werr(w, "gguf writer: key '%s': string %" PRIu64 " is NULL", key, i);
            free(b.p);
            return;
        }
        buf_str(&b, strs[i].s, strs[i].n);
    }
    set_kv(w, key, GGUF_TYPE_ARRAY, 0, &b);
}

static wtensor *add_tensor(hllm_gguf_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne) {
    if (!w) return NULL;
    if (!name || !name[0] || strlen(name) > GGUF_NAME_MAX) {
        werr(w, "gguf writer: tensor name '%s' is empty or longer than %d bytes", name ? name : "(null)", GGUF_NAME_MAX);
        return NULL;
    }
    for (size_t i = 0; i < w->n_ts; i++)
        if (!strcmp(w->ts[i].name, name)) {
            werr(w, "gguf writer: duplicate tensor name '%s'", name);
            return NULL;
        }
    if (n_dims < 1 || n_dims > 4 || !ne) {
        werr(w, "gguf writer: tensor '%s': n_dims %u is not in 1..4", name, n_dims);
        return NULL;
    }
    const hllm_type_traits *tr = hllm_type_info(type);
    if (!tr->block_bytes) {
        werr(w, "gguf writer: tensor '%s': unknown type number %d", name, type);
        return NULL;
    }
    int64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || ne[d] > INT64_MAX / nel) {
            werr(w, "gguf writer: tensor '%s': dimension %u is %" PRId64 " (non-positive or overflowing)", name, d, ne[d]);
            return NULL;
        }
        nel *= ne[d];
    }
    if (ne[0] % tr->block_size) {
        werr(w, "gguf writer: tensor '%s': row length %" PRId64 " is not a multiple of the %s block size %d", name,
             ne[0], tr->name, tr->block_size);
        return NULL;
    }
    uint64_t nblocks = (uint64_t)(nel / tr->block_size);
    if (nblocks > SIZE_MAX / (uint64_t)tr->block_bytes) {
        werr(w, "gguf writer: tensor '%s' is too large", name);
        return NULL;
    }
    if (w->n_ts == w->cap_ts) {
        size_t cap = w->cap_ts ? w->cap_ts * 2 : 64;
        wtensor *p = realloc(w->ts, cap * sizeof *p);
        if (!p) {
            werr(w, "gguf writer: out of memory adding tensor '%s'", name);
            return NULL;
        }
        w->ts = p;
        w->cap_ts = cap;
    }
    wtensor *t = &w->ts[w->n_ts];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) {
        werr(w, "gguf writer: out of memory adding tensor '%s'", name);
        return NULL;
    }
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < 4; d++) t->ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
    t->nbytes = (size_t)nblocks * (size_t)tr->block_bytes;
    w->n_ts++;
    return t;
}

void hllm_gguf_writer_add_tensor(hllm_gguf_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne,
                            const void *data) {
    wtensor *t = add_tensor(w, name, type, n_dims, ne);
    if (!t) return;
    if (!data) {
        werr(w, "gguf writer: tensor '%s': NULL data", name);
        return;
    }
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    if (!t->data) {
        werr(w, "gguf writer: out of memory copying tensor '%s' (%zu bytes)", name, t->nbytes);
        return;
    }
    memcpy(t->data, data, t->nbytes);
}

void hllm_gguf_writer_add_tensor_fill(hllm_gguf_writer *w, const char *name, int type, uint32_t n_dims, const int64_t *ne,
                                 hllm_gguf_fill_fn fill, void *user) {
    wtensor *t = add_tensor(w, name, type, n_dims, ne);
    if (!t) return;
    if (!fill) {
        werr(w, "gguf writer: tensor '%s': NULL fill function", name);
        return;
    }
    t->fill = fill;
    t->user = user;
}

/* ---- layout and output ---- */

/* Encodes the header (everything before the data section, padded) and assigns tensor offsets. */
static int encode_header(hllm_gguf_writer *w, buf *b, size_t *total) {
    if (w->err[0]) return hllm_fail("%s", w->err);
    uint32_t align = 32;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment")) continue;
        uint64_t a = w->kvs[i].scalar;
        if (w->kvs[i].type != GGUF_TYPE_UINT32 || a == 0 || (a & (a - 1)))
            return hllm_fail("gguf writer: general.alignment must be a u32 nonzero power of two");
        align = (uint32_t)a;
    }
    buf_put(b, "GGUF", 4);
    buf_u32(b, 3);
    buf_u64(b, w->n_ts);
    buf_u64(b, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(b, w->kvs[i].key, strlen(w->kvs[i].key));
        buf_put(b, w->kvs[i].val, w->kvs[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_ts; i++) {
        wtensor *t = &w->ts[i];
        t->offset = off;
        buf_str(b, t->name, strlen(t->name));
        buf_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) buf_u64(b, (uint64_t)t->ne[d]);
        buf_u32(b, (uint32_t)t->type);
        buf_u64(b, off);
        uint64_t padded = ((uint64_t)t->nbytes + align - 1) / align * align;
        if (padded < t->nbytes || off > UINT64_MAX - padded) return hllm_fail("gguf writer: tensor data too large");
        off += padded;
    }
    static const uint8_t zeros[64] = {0};
    size_t pad = (align - b->n % align) % align;
    while (pad) { /* alignment may exceed the zeros buffer */
        size_t k = pad < sizeof zeros ? pad : sizeof zeros;
        buf_put(b, zeros, k);
        pad -= k;
    }
    if (b->oom) return hllm_fail("gguf writer: out of memory encoding the header");
    if (off > SIZE_MAX - b->n) return hllm_fail("gguf writer: file too large");
    *total = b->n + (size_t)off;
    return 0;
}

int hllm_gguf_writer_write_memory(hllm_gguf_writer *w, void **data, size_t *size) {
    if (!w || !data || !size) return hllm_fail("hllm_gguf_writer_write_memory: bad arguments");
    buf b = {0};
    size_t total;
    if (encode_header(w, &b, &total)) {
        free(b.p);
        return -1;
    }
    uint8_t *out = calloc(total ? total : 1, 1);
    if (!out) {
        free(b.p);
        return hllm_fail("gguf writer: out of memory for %zu bytes", total);
    }
    memcpy(out, b.p, b.n);
    for (size_t i = 0; i < w->n_ts; i++) {
        wtensor *t = &w->ts[i];
        uint8_t *dst = out + b.n + t->offset;
        if (t->data) {
            memcpy(dst, t->data, t->nbytes);
        } else if ((hllm_error_clear(), t->fill(t->user, dst, t->nbytes))) {
            if (!hllm_error()[0]) hllm_fail("gguf writer: filling tensor '%s' failed", t->name);
            free(out);
            free(b.p);
            return -1;
        }
    }
    *data = out;
    *size = total;
    free(b.p);
    return 0;
}

static int write_all(int fd, const void *p, size_t n, off_t at) {
    const uint8_t *c = p;
    while (n) {
        ssize_t k = pwrite(fd, c, n > (1u << 30) ? (1u << 30) : n, at);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += k;
        n -= (size_t)k;
        at += k;
    }
    return 0;
}

/* Fills one tensor in place through a shared mapping of its file range (no heap copy). */
static int fill_tensor_file(int fd, const char *path, wtensor *t, size_t at) {
    if (t->nbytes == 0) return 0;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    size_t start = at / page * page, len = at - start + t->nbytes;
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
    if (m != MAP_FAILED) {
        hllm_error_clear();
        int rc = t->fill(t->user, (uint8_t *)m + (at - start), t->nbytes);
        munmap(m, len);
        if (rc && !hllm_error()[0]) hllm_fail("%s: filling tensor '%s' failed", path, t->name);
        return rc ? -1 : 0;
    }
    /* No shared mapping here (odd filesystem): fall back to a heap buffer. */
    void *tmp = malloc(t->nbytes);
    if (!tmp) return hllm_fail("%s: cannot map or allocate %zu bytes for tensor '%s'", path, t->nbytes, t->name);
    hllm_error_clear();
    int rc = t->fill(t->user, tmp, t->nbytes);
    if (rc) {
        if (!hllm_error()[0]) hllm_fail("%s: filling tensor '%s' failed", path, t->name);
    } else if (write_all(fd, tmp, t->nbytes, (off_t)at)) {
        rc = hllm_fail("%s: write failed: %s", path, strerror(errno));
    }
    free(tmp);
    return rc ? -1 : 0;
}

int hllm_gguf_writer_write(hllm_gguf_writer *w, const char *path) {
    if (!w || !path) return hllm_fail("hllm_gguf_writer_write: bad arguments");
    buf b = {0};
    size_t total;
    if (encode_header(w, &b, &total)) {
        free(b.p);
        return -1;
    }
    /* Write beside the target and rename at the end, so a failure leaves no half file. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(b.p);
        return hllm_fail("%s: out of memory", path);
    }
    snprintf(tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        free(b.p);
        return hllm_fail("%s: cannot create: %s", path, strerror(e));
    }
    int rc = 0;
    /* Reserve the blocks now: a full disk must be an error here, not a SIGBUS in the mapping. */
    int fe = posix_fallocate(fd, 0, (off_t)total);
    if (fe == EOPNOTSUPP || fe == EINVAL) fe = ftruncate(fd, (off_t)total) ? errno : 0;
    if (fe) rc = hllm_fail("%s: cannot reserve %zu bytes: %s", path, total, strerror(fe));
    if (!rc && write_all(fd, b.p, b.n, 0)) rc = hllm_fail("%s: write failed: %s", path, strerror(errno));
    for (size_t i = 0; i < w->n_ts && !rc; i++) {
        wtensor *t = &w->ts[i];
        size_t at = b.n + (size_t)t->offset;
        if (t->data) {
            if (write_all(fd, t->data, t->nbytes, (off_t)at)) rc = hllm_fail("%s: write failed: %s", path, strerror(errno));
        } else {
            rc = fill_tensor_file(fd, path, t, at);
        }
    }
    if (close(fd) && !rc) rc = hllm_fail("%s: close failed: %s", path, strerror(errno));
    if (!rc && rename(tmp, path)) rc = hllm_fail("%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    free(b.p);
    return rc ? -1 : 0;
}
