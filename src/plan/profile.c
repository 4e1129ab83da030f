#include "plan/profile.h"
#include "core/error.h"
#include "core/quant.h"
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

hllm_profile *hllm_profile_new(void) {
    hllm_profile *p = calloc(1, sizeof *p);
    if (!p) hllm_fail("out of memory");
    return p;
}

void hllm_profile_free(hllm_profile *p) {
    if (!p) return;
    free(p->kv);
    free(p);
}

double hllm_profile_get(const hllm_profile *p, const char *key, double dflt) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->kv[i].key, key)) return p->kv[i].val;
    return dflt;
}

int hllm_profile_set(hllm_profile *p, const char *key, double v) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->kv[i].key, key)) {
            p->kv[i].val = v;
            return 0;
        }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        hllm_profile_kv *nk = realloc(p->kv, (size_t)cap * sizeof *nk);
        if (!nk) return hllm_fail("out of memory");
        p->kv = nk;
        p->cap = cap;
    }
    snprintf(p->kv[p->n].key, sizeof p->kv[p->n].key, "%s", key);
    p->kv[p->n++].val = v;
    return 0;
}

int hllm_profile_save(const hllm_profile *p, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return hllm_fail("cannot write %s", path);
    fprintf(f, "# heterollm profile (hllm profile); GB/s are 1e9 bytes per second\n");
    fprintf(f, "machine = %s\n", p->machine);
    fprintf(f, "date = %s\n", p->date);
    for (int i = 0; i < p->n; i++) fprintf(f, "%s = %.6g\n", p->kv[i].key, p->kv[i].val);
    if (fclose(f)) return hllm_fail("cannot write %s", path);
    return 0;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

hllm_profile *hllm_profile_load(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        hllm_fail("cannot open profile %s", path);
        return NULL;
    }
    hllm_profile *p = hllm_profile_new();
    char line[512];
    int ln = 0;
    while (p && fgets(line, sizeof line, f)) {
        ln++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            hllm_fail("%s:%d: expected key = value", path, ln);
            hllm_profile_free(p);
            p = NULL;
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        if (!strcmp(k, "machine")) snprintf(p->machine, sizeof p->machine, "%s", v);
        else if (!strcmp(k, "date")) snprintf(p->date, sizeof p->date, "%s", v);
        else {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *trim(end)) {
                hllm_fail("%s:%d: '%s' is not a number", path, ln, v);
                hllm_profile_free(p);
                p = NULL;
                break;
            }
            if (hllm_profile_set(p, k, d)) {
                hllm_profile_free(p);
                p = NULL;
            }
        }
    }
    fclose(f);
    return p;
}

static const int k_batches_full[] = {1, 16, 128, 512};
static const int k_batches_quick[] = {1, 512}; /* decode and prompts: what the solver weighs most */

double hllm_profile_matmul_gbs(const hllm_profile *p, const char *proc, int mem, int type, int batch, double dflt) {
    char key[96];
    const char *ms = mem == HLLM_MEM_HOST ? "host" : "dev";
    /* nearest measured batch (in log distance), exact type first, then any type */
    for (int pass = 0; pass < 2; pass++) {
        double best = -1, best_d = 1e9;
        for (int i = 0; i < p->n; i++) {
            char pr[32], mm[8], ty[16];
            int b;
            if (sscanf(p->kv[i].key, "%31[^.].matmul.%7[^.].%15[^.].b%d", pr, mm, ty, &b) != 4) continue;
            snprintf(key, sizeof key, "%s.matmul.%s.%s.b%d", pr, mm, ty, b);
            if (strcmp(key, p->kv[i].key)) continue; /* a per-shape line */
            if (strcmp(pr, proc) || strcmp(mm, ms)) continue;
            if (pass == 0 && strcmp(ty, hllm_type_name(type))) continue;
            double d = b > batch ? (double)b / batch : (double)batch / b;
            if (d < best_d) best_d = d, best = p->kv[i].val;
        }
        if (best > 0) return best;
    }
    return dflt;
}

double hllm_profile_matmul_shape_gbs(const hllm_profile *p, const char *proc, int mem, int type, int64_t rows, int64_t cols,
                                     int batch, double dflt) {
    char want[96];
    snprintf(want, sizeof want, "%s.matmul.%s.%s.%lldx%lld.b", proc, mem == HLLM_MEM_HOST ? "host" : "dev", hllm_type_name(type),
             (long long)rows, (long long)cols);
    const size_t wl = strlen(want);
    double best = -1, best_d = 1e9;
    for (int i = 0; i < p->n; i++) {
        const char *k = p->kv[i].key;
        int b;
        char tail[8];
        if (strncmp(k, want, wl) || sscanf(k + wl, "%d.%7s", &b, tail) != 2 || strcmp(tail, "us") || b <= 0 ||
            p->kv[i].val <= 0)
            continue;
        double d = b > batch ? (double)b / batch : (double)batch / b;
        if (d < best_d) best_d = d, best = (double)hllm_row_bytes(type, cols) * (double)rows / (p->kv[i].val * 1e-6) / 1e9;
    }
    return best > 0 ? best : dflt;
}

double hllm_profile_matmul_slice_s(const hllm_profile *p, const char *proc, int mem, int type, int64_t rows, int64_t cols,
                                   int64_t n_rows) {
    char full[128], pre[112];
    const char *ms = mem == HLLM_MEM_HOST ? "host" : "dev";
    snprintf(full, sizeof full, "%s.matmul.%s.%s.%lldx%lld.b1.us", proc, ms, hllm_type_name(type), (long long)rows, (long long)cols);
    snprintf(pre, sizeof pre, "%s.matmul.%s.%s.%lldx%lld.b1.r", proc, ms, hllm_type_name(type), (long long)rows, (long long)cols);
    const double tf = hllm_profile_get(p, full, -1);
    if (tf <= 0) return -1;
    const size_t pl = strlen(pre);
    for (int i = 0; i < p->n; i++) {
        long long r;
        char tail[8];
        if (strncmp(p->kv[i].key, pre, pl) || sscanf(p->kv[i].key + pl, "%lld.%7s", &r, tail) != 2 || strcmp(tail, "us") ||
            r <= 0 || r >= rows || p->kv[i].val <= 0)
            continue;
        /* the line through (r, t_r) and (rows, t_full): a fixed part and a part per row */
        const double tr = p->kv[i].val, per_row = (tf - tr) / (double)(rows - r);
        const double fixed = tr - per_row * (double)r;
        const double t = (per_row > 0 ? per_row : 0) * (double)n_rows + (fixed > 0 ? fixed : 0);
        return t * 1e-6;
    }
    return -1;
}

/* ---------------- measurement ---------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int type;
    int64_t rows, cols;
    void *data; /* synthesized host rows */
    size_t bytes;
} shape;

static void say(const hllm_profile_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const hllm_profile_opts *o, const char *fmt, ...) {
    if (!o->progress) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    o->progress(buf, o->user);
}

static int add_shape(shape *sh, int *n, int type, int64_t rows, int64_t cols) {
    for (int i = 0; i < *n; i++)
        if (sh[i].type == type && sh[i].rows == rows && sh[i].cols == cols) return 0;
    if (*n >= 8) return 0;
    sh[*n] = (shape){.type = type, .rows = rows, .cols = cols};
    size_t rb = hllm_row_bytes(type, cols);
    sh[*n].bytes = rb * (size_t)rows;
    sh[*n].data = malloc(sh[*n].bytes);
    float *row = malloc((size_t)cols * sizeof(float));
    if (!sh[*n].data || !row) {
        free(row);
        free(sh[*n].data);
        return hllm_fail("out of memory");
    }
    unsigned s = 12345;
    for (int64_t c = 0; c < cols; c++) row[c] = (float)((s = s * 1664525u + 1013904223u) >> 9) / (float)(1u << 23) - 0.5f;
    char *d = sh[*n].data;
    hllm_quantize_row(type, row, d, cols);
    for (int64_t r = 1; r < rows; r++) memcpy(d + (size_t)r * rb, d, rb);
    free(row);
    (*n)++;
    return 0;
}

/* A working set of copies of one shape on one processor, large enough to leave the caches. */
typedef struct {
    hllm_proc *p;
    hllm_pweight *w[512];
    int n_w;
    float *x, *y;
    int64_t rows, cols;
    int64_t r1;        /* rows each call computes: [0, r1) (a slice, as a cut plan gives a processor) */
    size_t bytes;
} mm_set;

static int mm_set_init(mm_set *s, hllm_proc *p, const shape *sh, int mem, int max_batch, size_t min_total) {
    memset(s, 0, sizeof *s);
    s->p = p;
    s->rows = sh->rows;
    s->r1 = sh->rows;
    s->cols = sh->cols;
    s->bytes = sh->bytes;
    int n = (int)((min_total + sh->bytes - 1) / sh->bytes);
    if (n < 1) n = 1;
    if (n > 512) n = 512;
    hllm_tensor t = {.name = "profile", .type = sh->type, .rows = sh->rows, .cols = sh->cols, .data = sh->data,
                     .row_bytes = hllm_row_bytes(sh->type, sh->cols)};
    for (int i = 0; i < n; i++) {
        s->w[i] = p->ops->weight_load(p, &t, 0, sh->rows, (hllm_mem_kind)mem);
        if (!s->w[i]) return -1;
        s->n_w++;
    }
    size_t xb = (size_t)max_batch * (size_t)sh->cols * sizeof(float), yb = (size_t)max_batch * (size_t)sh->rows * sizeof(float);
    s->x = p->ops->alloc(p, xb, HLLM_MEM_DEVICE);
    s->y = p->ops->alloc(p, yb, HLLM_MEM_DEVICE);
    if (!s->x || !s->y) return -1;
    float *hx = malloc(xb);
    if (!hx) return hllm_fail("out of memory");
    for (size_t i = 0; i < xb / sizeof(float); i++) hx[i] = (float)(i % 17) * 0.01f - 0.08f;
    int rc = p->ops->copy_in(p, s->x, hx, xb);
    rc |= p->ops->finish(p);
    free(hx);
    return rc;
}

static void mm_set_free(mm_set *s) {
    if (!s->p) return;
    for (int i = 0; i < s->n_w; i++) s->p->ops->weight_free(s->p, s->w[i]);
    if (s->x) s->p->ops->free(s->p, s->x);
    if (s->y) s->p->ops->free(s->p, s->y);
    s->p = NULL;
}

static int mm_run(mm_set *s, int i, int b) {
    hllm_op op = {.kind = HLLM_OP_MATMUL, .n_tok = b, .dst = s->y, .src = s->x, .ld_dst = s->rows, .ld_src = s->cols,
                  .w = s->w[i % s->n_w], .r0 = 0, .r1 = s->r1};
    return s->p->ops->run(s->p, &op);
}

/* Seconds per call at batch b: repeated until the budget is spent (queued processors run
 * batches of calls between finishes). */
static double mm_time_once(mm_set *s, int b, double budget) {
    if (mm_run(s, 0, b) || s->p->ops->finish(s->p)) return -1;
    int k = 1, done = 0;
    double t0 = now_s(), el = 0;
    while (el < budget && done < 4096) {
        for (int i = 0; i < k; i++)
            if (mm_run(s, done + i + 1, b)) return -1;
        if (s->p->ops->finish(s->p)) return -1;
        done += k;
        el = now_s() - t0;
        if (k < 64) k *= 2;
    }
    return el / done;
}

/* The best of three timings: noise (page faults of memory the VM is still growing, other
 * processes) only ever adds time. */
static double mm_time(mm_set *s, int b, double budget) {
    double best = -1;
    for (int r = 0; r < 3; r++) {
        double t = mm_time_once(s, b, budget / 2);
        if (t < 0) return -1;
        if (best < 0 || t < best) best = t;
    }
    return best;
}

typedef struct {
    mm_set *s;
    double secs;
    long calls;
    atomic_int *stop;
} conc_arg;

static void *conc_cpu(void *arg) {
    conc_arg *a = arg;
    double t0 = now_s();
    /* at least one call: a thread started late (a loaded machine) must not report 0 GB/s */
    do {
        if (mm_run(a->s, (int)a->calls, 1)) break;
        a->calls++;
    } while (!atomic_load(a->stop));
    a->secs = now_s() - t0;
    return NULL;
}

/* The CPU running GEMVs of cset on its own thread while the GPU reads host memory for `secs`:
 * GEMVs of gset (weights in host memory: zero-copy reads) or, without gset, copies of nb bytes
 * at a time from pinned host memory h (hb bytes, walked in turn: beyond the caches, as weights
 * are) to device memory d (the copy engine). The GPU's work goes in batches,
 * each followed by a flag, one batch queued ahead; this thread sleeps while it waits, so that it
 * takes no core from the CPU's threads (a spinning stream synchronize would, as the executor never
 * does). *cpu_gbs, *gpu_gbs: what each read meanwhile. */
static int concurrent_reads(hllm_proc *g, mm_set *cset, mm_set *gset, void *d, const char *h, size_t hb, size_t nb,
                            double secs, double *cpu_gbs, double *gpu_gbs) {
    volatile uint32_t *done = g->ops->alloc(g, 64, HLLM_MEM_HOST);
    if (!done) return -1;
    atomic_int stop;
    atomic_init(&stop, 0);
    conc_arg ca = {.s = cset, .stop = &stop};
    pthread_t th;
    int rc = -1;
    *done = 0;
    const double t0 = now_s();
    if (pthread_create(&th, NULL, conc_cpu, &ca) == 0) {
        const struct timespec nap = {0, 50000};
        uint32_t issued = 0;
        long calls = 0;
        double bytes = 0;
        rc = 0;
        while (!rc && (calls == 0 || now_s() - t0 < secs)) { /* at least one batch, as above */
            for (int i = 0; i < (gset ? 8 : 1) && !rc; i++, calls++) {
                rc = gset ? mm_run(gset, (int)calls, 1) : g->ops->copy_in(g, d, h + (size_t)calls % (hb / nb) * nb, nb);
                bytes += gset ? (double)gset->bytes : (double)nb;
            }
            g->ops->signal(g, done, ++issued);
            while (__atomic_load_n(done, __ATOMIC_ACQUIRE) + 1 < issued) nanosleep(&nap, NULL);
        }
        while (__atomic_load_n(done, __ATOMIC_ACQUIRE) < issued) nanosleep(&nap, NULL);
        const double gsec = now_s() - t0;
        atomic_store(&stop, 1);
        pthread_join(th, NULL);
        *cpu_gbs = (double)ca.calls * (double)cset->bytes / ca.secs / 1e9;
        *gpu_gbs = bytes / gsec / 1e9;
    }
    g->ops->finish(g);
    g->ops->free(g, (void *)done);
    return rc;
}

/* One matmul cut between CPU and GPU as the executor runs it in decode, timed against the
 * larger of its two parts alone: the GPU copies the input to the CPU and signals; the CPU waits,
 * computes its rows, signals; the GPU computes its rows, waits, copies the CPU's rows in. What
 * the cut costs beyond its parts (flag latencies, copy setup, threads waking, a slice too small
 * to share evenly) is saved as split.handoff_us; the solver charges it to every cut step. */
/* gmem HLLM_MEM_HOST: the GPU's rows in host memory (zero-copy), as a cut of a host-resident
 * matrix gives them; then what is saved is how much slower the GPU's part runs inside the cut
 * than alone (split.gpu_host_factor): its reads then share the host's memory with the CPU's, and
 * its start waits on the handoff. A plain concurrent-read measurement overrated it by ~25% (traced
 * runs on two device hosts). base_handoff: the VRAM case's handoff, in seconds. */
static double split_handoff(hllm_proc *c, hllm_proc *g, const shape *sh, int gmem, double base_handoff,
                            const hllm_profile_opts *o, hllm_profile *out) {
    const int64_t rows = sh->rows, cols = sh->cols, cut = (gmem == HLLM_MEM_HOST ? rows / 2 : rows / 3) / 64 * 64;
    double result = -1;
    if (cut <= 0) return result;
    hllm_tensor t = {.name = "profile", .type = sh->type, .rows = rows, .cols = cols, .data = sh->data,
                     .row_bytes = hllm_row_bytes(sh->type, cols)};
    hllm_pweight *wc = c->ops->weight_load(c, &t, 0, rows, HLLM_MEM_DEVICE);
    hllm_pweight *wg = g->ops->weight_load(g, &t, 0, rows, (hllm_mem_kind)gmem);
    float *xh = g->ops->alloc(g, (size_t)cols * 4, HLLM_MEM_HOST), *yh = g->ops->alloc(g, (size_t)rows * 4, HLLM_MEM_HOST);
    float *xd = g->ops->alloc(g, (size_t)cols * 4, HLLM_MEM_DEVICE), *yd = g->ops->alloc(g, (size_t)rows * 4, HLLM_MEM_DEVICE);
    uint32_t *flags = g->ops->alloc(g, 256, HLLM_MEM_HOST);
    if (wc && wg && xh && yh && xd && yd && flags) {
        memset(xh, 0, (size_t)cols * 4);
        memset(flags, 0, 256);
        g->ops->copy_in(g, xd, xh, (size_t)cols * 4);
        g->ops->finish(g);
        hllm_op oc = {.kind = HLLM_OP_MATMUL, .n_tok = 1, .dst = yh, .src = xh, .ld_dst = rows, .ld_src = cols, .w = wc, .r0 = 0, .r1 = cut};
        hllm_op og = {.kind = HLLM_OP_MATMUL, .n_tok = 1, .dst = yd, .src = xd, .ld_dst = rows, .ld_src = cols, .w = wg, .r0 = cut, .r1 = rows};
        volatile uint32_t *g2c = flags, *c2g = flags + 16;
        const int n = 400;
        double best_c = 1e9, best_g = 1e9, best_s = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_s();
            for (int i = 0; i < n; i++) c->ops->run(c, &oc);
            c->ops->finish(c);
            best_c = fmin(best_c, (now_s() - t0) / n);
            t0 = now_s();
            for (int i = 0; i < n; i++) g->ops->run(g, &og);
            g->ops->finish(g);
            best_g = fmin(best_g, (now_s() - t0) / n);
            memset(flags, 0, 256);
            t0 = now_s();
            for (uint32_t i = 1; i <= (uint32_t)n; i++) {
                g->ops->copy_out(g, xh, xd, (size_t)cols * 4);
                g->ops->signal(g, g2c, i);
                g->ops->run(g, &og);
                g->ops->wait(g, c2g, i);
                g->ops->copy_in(g, yd, yh, (size_t)cut * 4);
                c->ops->wait(c, g2c, i);
                c->ops->run(c, &oc);
                c->ops->signal(c, c2g, i);
            }
            g->ops->finish(g);
            best_s = fmin(best_s, (now_s() - t0) / n);
        }
        if (gmem == HLLM_MEM_HOST) {
            /* the GPU's part inside the cut: what the iteration took beyond the handoff */
            const double inside = best_s - (base_handoff > 0 ? base_handoff : 0);
            double f = inside > best_g ? best_g / inside : 1;
            if (best_c >= inside) f = 1; /* the CPU's part was the longer: nothing learned */
            hllm_profile_set(out, "split.gpu_host_factor", f);
            say(o, "split %lldx%lld at row %lld, GPU rows in host memory: cpu part %.1f us, gpu part %.1f us alone, "
                "together %.1f us: the GPU's host reads at %.2f of their speed alone",
                (long long)rows, (long long)cols, (long long)cut, best_c * 1e6, best_g * 1e6, best_s * 1e6, f);
            result = f;
        } else {
            const double handoff = best_s - fmax(best_c, best_g);
            hllm_profile_set(out, "split.handoff_us", handoff > 0 ? handoff * 1e6 : 0);
            say(o, "split %lldx%lld at row %lld: cpu part %.1f us, gpu part %.1f us, together %.1f us: handoff %.1f us",
                (long long)rows, (long long)cols, (long long)cut, best_c * 1e6, best_g * 1e6, best_s * 1e6, handoff * 1e6);
            result = handoff > 0 ? handoff : 0;
        }
    } else
        say(o, "split handoff: not measured (%s)", hllm_error());
    if (wc) c->ops->weight_free(c, wc);
    if (wg) g->ops->weight_free(g, wg);
    if (xh) g->ops->free(g, xh);
    if (yh) g->ops->free(g, yh);
    if (xd) g->ops->free(g, xd);
    if (yd) g->ops->free(g, yd);
    if (flags) g->ops->free(g, flags);
    return result;
}

static const char *mem_name(int mem) { return mem == HLLM_MEM_HOST ? "host" : "dev"; }

static const char *mem_name(int mem);

/* The first shape of shape si's type: where per-type figures are summed. */
static int type_slot(const shape *sh, int si) {
    for (int j = 0; j < si; j++)
        if (sh[j].type == sh[si].type) return j;
    return si;
}

/* The profile key of a matmul timing: batch b, and rows [0, r1) when r1 > 0 (a slice). */
static void mm_key(char *key, size_t n, const char *pn, int mem, const shape *sh, int b, int64_t r1) {
    if (r1 > 0)
        snprintf(key, n, "%s.matmul.%s.%s.%lldx%lld.b%d.r%lld.us", pn, mem_name(mem), hllm_type_name(sh->type),
                 (long long)sh->rows, (long long)sh->cols, b, (long long)r1);
    else
        snprintf(key, n, "%s.matmul.%s.%s.%lldx%lld.b%d.us", pn, mem_name(mem), hllm_type_name(sh->type),
                 (long long)sh->rows, (long long)sh->cols, b);
}

/* Bytes of weight copies a shape's timing cycles through: 8x the last-level cache, and at least
 * 1 GiB. A cyclic working set only 3-4x a 300 MiB L3 still came partly from the cache (q8_0
 * llama3-8b on an H100 host: CPU 166 GB/s "from memory" where it streams 108), and the solver
 * then gave the CPU rows it could not read in time (+20-29% over the prediction). At most an
 * eighth of the machine's memory. */
static size_t default_working_set(void) {
    size_t l3 = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (v > 0) l3 = (size_t)v;
#endif
    if (!l3) { /* VMs often leave sysconf's cache sizes at 0 */
        FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
        if (f) {
            unsigned long n = 0;
            char unit = 0;
            if (fscanf(f, "%lu%c", &n, &unit) >= 1)
                l3 = (size_t)n * (unit == 'K' ? 1024u : unit == 'M' ? 1024u * 1024u : 1u);
            fclose(f);
        }
    }
    size_t ws = (size_t)1 << 30;
    if (8 * l3 > ws) ws = 8 * l3;
    const long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psz > 0 && ws > (size_t)pages * (size_t)psz / 8) ws = (size_t)pages * (size_t)psz / 8;
    return ws < ((size_t)1 << 30) ? (size_t)1 << 30 : ws;
}

/* Times the CPU's one-token matmuls a second time, seconds after the first, and keeps the faster
 * of the two (and the per-type and read-bandwidth figures derived from them). A VM's vCPUs can
 * run at a fraction of their speed for a while (seen on the device host: one profile had 38-52
 * GB/s for layer-sized matrices where decode then streamed 83), and the solver, believing the CPU
 * slow, handed the GPU's zero-copy reads a share they took twice as long for. */
static void retime_one_token(hllm_proc *p, const shape *sh, int n_sh, int big, size_t min_total, double budget,
                             const hllm_profile_opts *o, hllm_profile *out) {
    char key[128];
    double tb[8] = {0}, ts[8] = {0};
    for (int si = 0; si < n_sh; si++) {
        mm_set s;
        if (mm_set_init(&s, p, &sh[si], HLLM_MEM_DEVICE, 1, min_total)) {
            mm_set_free(&s);
            return;
        }
        const int64_t q = s.rows / 4 / 64 * 64;
        for (int part = 0; part < 2; part++) {
            if (part == 1 && q <= 0) break;
            s.r1 = part ? q : s.rows;
            mm_key(key, sizeof key, p->name, HLLM_MEM_DEVICE, &sh[si], 1, part ? q : 0);
            const double first = hllm_profile_get(out, key, -1) * 1e-6, t = mm_time(&s, 1, budget);
            const double best = t > 0 && (first <= 0 || t < first) ? t : first;
            if (best <= 0) continue;
            if (best < first) {
                hllm_profile_set(out, key, best * 1e6);
                say(o, "%s: matmul dev %s %lldx%lld%s b1 again: %.1f us (first %.1f)", p->name, hllm_type_name(sh[si].type),
                    (long long)sh[si].rows, (long long)sh[si].cols, part ? " (a quarter)" : "", best * 1e6, first * 1e6);
            }
            if (part) continue;
            const int ti = type_slot(sh, si);
            tb[ti] += (double)sh[si].bytes;
            ts[ti] += best;
            if (si == big) {
                snprintf(key, sizeof key, "%s.read_gbs", p->name);
                hllm_profile_set(out, key, (double)s.bytes / best / 1e9);
            }
        }
        mm_set_free(&s);
    }
    for (int ti = 0; ti < n_sh; ti++)
        if (ts[ti] > 0) {
            snprintf(key, sizeof key, "%s.matmul.dev.%s.b1", p->name, hllm_type_name(sh[ti].type));
            hllm_profile_set(out, key, tb[ti] / ts[ti] / 1e9);
        }
}

int hllm_profile_measure(const hllm_model_s *m, hllm_proc **procs, int n_procs, const hllm_profile_opts *opts,
                         hllm_profile *out) {
    hllm_profile_opts o = opts ? *opts : (hllm_profile_opts){0};
    if (o.budget_s <= 0) o.budget_s = 0.03;
    char key[128];
    if (gethostname(out->machine, sizeof out->machine)) snprintf(out->machine, sizeof out->machine, "unknown");
    time_t now = time(NULL);
    strftime(out->date, sizeof out->date, "%Y-%m-%d %H:%M:%S", localtime(&now));
    shape sh[8];
    int n_sh = 0, rc = 0;
    if (m) {
        const hllm_layer_tensors *L = &m->layers[0];
        const hllm_tensor *ts[] = {&L->wq, &L->wk, &L->wo, &L->w_gate, &L->w_down, &m->output};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0] && !rc; i++)
            if (ts[i]->data) rc = add_shape(sh, &n_sh, ts[i]->type, ts[i]->rows, ts[i]->cols);
    } else {
        rc = add_shape(sh, &n_sh, HLLM_TYPE_Q4_0, 4096, 4096);
        if (!rc) rc = add_shape(sh, &n_sh, HLLM_TYPE_Q4_0, 1024, 4096);
        if (!rc) rc = add_shape(sh, &n_sh, HLLM_TYPE_Q4_0, 14336, 4096);
        if (!rc) rc = add_shape(sh, &n_sh, HLLM_TYPE_Q4_0, 4096, 14336);
    }
    const int *k_batches = o.quick ? k_batches_quick : k_batches_full;
    const int n_b = o.quick ? 2 : 4;
    /* working sets beyond the last-level caches, as a model's weights are (a quick profile too:
     * decode speeds from cache would mislead the solver) */
    const size_t min_total = o.working_set ? o.working_set : default_working_set();
    int cpu = -1, gpu = -1;
    for (int q = 0; q < n_procs; q++) {
        if (procs[q]->n_threads > 0 && cpu < 0) cpu = q;
        if (procs[q]->n_threads == 0 && gpu < 0) gpu = q;
    }
    int big = 0; /* the largest shape: bandwidth figures */
    for (int i = 1; i < n_sh; i++)
        if (sh[i].bytes > sh[big].bytes) big = i;
    for (int q = 0; q < n_procs && !rc; q++) {
        hllm_proc *p = procs[q];
        const char *pn = p->name;
        if (p->n_threads > 0) {
            snprintf(key, sizeof key, "%s.threads", pn);
            hllm_profile_set(out, key, p->n_threads);
        }
        /* op overhead: a tiny ADD */
        {
            float *a = p->ops->alloc(p, 64 * sizeof(float), HLLM_MEM_DEVICE), *b = p->ops->alloc(p, 64 * sizeof(float), HLLM_MEM_DEVICE);
            if (!a || !b) return -1;
            float z[64] = {0};
            p->ops->copy_in(p, a, z, sizeof z);
            p->ops->copy_in(p, b, z, sizeof z);
            hllm_op op = {.kind = HLLM_OP_ADD, .n_tok = 1, .dst = a, .src = b, .ld_dst = 64, .ld_src = 64, .dim = 64};
            p->ops->finish(p);
            /* the best of 10 rounds: a round can catch the VM or other processes taking cores */
            double best = 1e9;
            for (int r = 0; r < 10; r++) {
                double t0 = now_s();
                for (int i = 0; i < 200; i++) p->ops->run(p, &op);
                p->ops->finish(p);
                double us = (now_s() - t0) / 200 * 1e6;
                if (us < best) best = us;
            }
            snprintf(key, sizeof key, "%s.op_us", pn);
            hllm_profile_set(out, key, best);
            say(&o, "%s: op issue %.2f us", pn, best);
            /* the same op inside steps a processor captures and replays (decode's graphs): 64
             * ops a step, the first steps capturing, the best of the later rounds */
            if (p->ops->step_begin && p->ops->step_end) {
                const int32_t tok0 = 0;
                double bg = 1e9;
                for (int r = 0; r < 12; r++) {
                    double t0 = now_s();
                    for (int st = 0; st < 8; st++) {
                        if (p->ops->step_begin(p, 0x9e0f11e5u, 0, &tok0, 1) < 0) break;
                        for (int i = 0; i < 64; i++) p->ops->run(p, &op);
                        p->ops->step_end(p);
                    }
                    p->ops->finish(p);
                    double us = (now_s() - t0) / (8 * 64) * 1e6;
                    if (r >= 2 && us < bg) bg = us;
                }
                snprintf(key, sizeof key, "%s.graph_op_us", pn);
                hllm_profile_set(out, key, bg);
                say(&o, "%s: op in a replayed step %.2f us", pn, bg);
            }
            p->ops->free(p, a);
            p->ops->free(p, b);
        }
        const int n_mem = p->n_threads > 0 ? 1 : 2;
        for (int mem = 0; mem < n_mem && !rc; mem++) {
            /* per type: total bytes and seconds over shapes, per batch */
            double tb[8][4] = {{0}}, ts[8][4] = {{0}};
            for (int si = 0; si < n_sh && !rc; si++) {
                mm_set s;
                if (mm_set_init(&s, p, &sh[si], mem, k_batches[n_b - 1], min_total)) {
                    mm_set_free(&s);
                    if (mem == HLLM_MEM_HOST) { /* optional path */
                        say(&o, "%s: host-memory weights unavailable (%s)", pn, hllm_error());
                        break;
                    }
                    rc = -1;
                    break;
                }
                for (int bi = 0; bi < n_b; bi++) {
                    double t = mm_time(&s, k_batches[bi], o.budget_s);
                    if (t < 0) {
                        rc = -1;
                        break;
                    }
                    mm_key(key, sizeof key, pn, mem, &sh[si], k_batches[bi], 0);
                    hllm_profile_set(out, key, t * 1e6);
                    say(&o, "%s: matmul %s %s %lldx%lld b%-3d %9.1f us  %7.1f GB/s of weights  %8.1f GFLOP/s", pn,
                        mem_name(mem), hllm_type_name(sh[si].type), (long long)sh[si].rows, (long long)sh[si].cols,
                        k_batches[bi], t * 1e6, (double)sh[si].bytes / t / 1e9,
                        2.0 * k_batches[bi] * (double)sh[si].rows * (double)sh[si].cols / t / 1e9);
                    /* aggregate per type (index by first shape of that type) */
                    const int ti = type_slot(sh, si);
                    tb[ti][bi] += (double)sh[si].bytes;
                    ts[ti][bi] += t;
                }
                /* a quarter of the rows, one token: what a cut plan's slice costs beyond its share
                 * of the whole (dispatch, threads with no full chunk, streams restarting) */
                const int64_t q = s.rows / 4 / 64 * 64;
                if (!rc && q > 0) {
                    s.r1 = q;
                    double t = mm_time(&s, 1, o.budget_s);
                    s.r1 = s.rows;
                    if (t > 0) {
                        mm_key(key, sizeof key, pn, mem, &sh[si], 1, q);
                        hllm_profile_set(out, key, t * 1e6);
                        say(&o, "%s: matmul %s %s %lldx%lld rows [0, %lld) b1 %9.1f us", pn, mem_name(mem),
                            hllm_type_name(sh[si].type), (long long)sh[si].rows, (long long)sh[si].cols, (long long)q, t * 1e6);
                    }
                }
                if (!rc && si == big) {
                    double t = mm_time(&s, 1, o.budget_s);
                    snprintf(key, sizeof key, "%s.%s", pn, mem == HLLM_MEM_HOST ? "host_read_gbs" : "read_gbs");
                    hllm_profile_set(out, key, (double)s.bytes / t / 1e9);
                }
                mm_set_free(&s);
            }
            for (int ti = 0; ti < n_sh; ti++)
                for (int bi = 0; bi < n_b; bi++)
                    if (ts[ti][bi] > 0) {
                        snprintf(key, sizeof key, "%s.matmul.%s.%s.b%d", pn, mem_name(mem), hllm_type_name(sh[ti].type), k_batches[bi]);
                        hllm_profile_set(out, key, tb[ti][bi] / ts[ti][bi] / 1e9);
                    }
        }
    }
    /* GPU: copies, sync round trip, concurrent host reads with the CPU */
    if (!rc && gpu >= 0 && cpu >= 0) {
        hllm_proc *g = procs[gpu], *c = procs[cpu];
        const size_t nb = (size_t)64 << 20;
        void *h = g->ops->alloc(g, nb, HLLM_MEM_HOST), *d = g->ops->alloc(g, nb, HLLM_MEM_DEVICE);
        uint32_t *flags = g->ops->alloc(g, 256, HLLM_MEM_HOST);
        if (h && d && flags) {
            memset(h, 1, nb);
            memset(flags, 0, 256);
            for (int dir = 0; dir < 2; dir++) {
                g->ops->finish(g);
                double t0 = now_s();
                for (int i = 0; i < 4; i++) {
                    if (dir == 0) g->ops->copy_in(g, d, h, nb);
                    else g->ops->copy_out(g, h, d, nb);
                }
                g->ops->finish(g);
                double gbs = 4.0 * (double)nb / (now_s() - t0) / 1e9;
                snprintf(key, sizeof key, "%s.%s", g->name, dir == 0 ? "h2d_gbs" : "d2h_gbs");
                hllm_profile_set(out, key, gbs);
                say(&o, "%s: copy %s %.1f GB/s", g->name, dir == 0 ? "host->device" : "device->host", gbs);
            }
            volatile uint32_t *c2g = flags, *g2c = flags + 16;
            const int rounds = 2000;
            double t0 = now_s();
            for (uint32_t i = 1; i <= (uint32_t)rounds; i++) {
                g->ops->wait(g, c2g, i);
                g->ops->signal(g, g2c, i);
                c->ops->signal(c, c2g, i);
                c->ops->wait(c, g2c, i);
            }
            double us = (now_s() - t0) / rounds * 1e6;
            hllm_profile_set(out, "sync.round_trip_us", us);
            say(&o, "sync: cpu -> %s -> cpu round trip %.2f us", g->name, us);
            g->ops->finish(g);
        }
        if (h) g->ops->free(g, h);
        if (d) g->ops->free(g, d);
        if (flags) g->ops->free(g, flags);
        /* concurrent host reads: CPU GEMVs on its weights beside the GPU's GEMVs on host-resident
         * weights (zero-copy, what cut plans do), then beside the GPU's copy engine copying host
         * memory into VRAM (what staging a decode's host rows through VRAM would do) */
        mm_set sc, sg;
        memset(&sc, 0, sizeof sc);
        memset(&sg, 0, sizeof sg);
        const bool cpu_set = mm_set_init(&sc, c, &sh[big], HLLM_MEM_DEVICE, 1, min_total) == 0;
        if (cpu_set && mm_set_init(&sg, g, &sh[big], HLLM_MEM_HOST, 1, min_total) == 0) {
            double cg, gg;
            if (!concurrent_reads(g, &sc, &sg, NULL, NULL, 0, 0, 10 * o.budget_s, &cg, &gg)) {
                snprintf(key, sizeof key, "%s.concurrent_host_gbs", c->name);
                hllm_profile_set(out, key, cg);
                snprintf(key, sizeof key, "%s.concurrent_host_gbs", g->name);
                hllm_profile_set(out, key, gg);
                say(&o, "concurrent host reads: %s %.1f + %s %.1f = %.1f GB/s", c->name, cg, g->name, gg, cg + gg);
            }
        } else say(&o, "concurrent host reads: not measured (%s)", hllm_error());
        mm_set_free(&sg);
        const size_t hb = min_total > nb ? min_total / nb * nb : nb;
        h = cpu_set ? g->ops->alloc(g, hb, HLLM_MEM_HOST) : NULL;
        d = h ? g->ops->alloc(g, nb, HLLM_MEM_DEVICE) : NULL;
        if (h && d) {
            memset(h, 1, hb);
            double cg, gg;
            if (!concurrent_reads(g, &sc, NULL, d, h, hb, nb, 10 * o.budget_s, &cg, &gg)) {
                snprintf(key, sizeof key, "%s.concurrent_h2d_cpu_gbs", c->name);
                hllm_profile_set(out, key, cg);
                snprintf(key, sizeof key, "%s.concurrent_h2d_gbs", g->name);
                hllm_profile_set(out, key, gg);
                say(&o, "concurrent host reads: %s %.1f + %s copy engine %.1f = %.1f GB/s", c->name, cg, g->name, gg,
                    cg + gg);
            }
        }
        if (h) g->ops->free(g, h);
        if (d) g->ops->free(g, d);
        mm_set_free(&sc);
        const double hand = split_handoff(c, g, &sh[0], HLLM_MEM_DEVICE, 0, &o, out);
        int ffn = -1; /* the largest layer matrix (the FFN's): the bulk of what cut plans share */
        for (int i = 0; i < n_sh; i++)
            if (i != big && (ffn < 0 || sh[i].bytes > sh[ffn].bytes)) ffn = i;
        if (ffn >= 0) split_handoff(c, g, &sh[ffn], HLLM_MEM_HOST, hand, &o, out);
    }
    if (!rc && cpu >= 0) retime_one_token(procs[cpu], sh, n_sh, big, min_total, o.budget_s, &o, out);
    for (int i = 0; i < n_sh; i++) free(sh[i].data);
    return rc;
}

/* Built-in estimates when no profile file is given (the device host of DESIGN.md: 16 Xeon cores
 * and an H100); `hllm profile` measures the real machine. */
hllm_profile *hllm_profile_builtin(void) {
    hllm_profile *pf = hllm_profile_new();
    if (!pf) return NULL;
    static const struct {
        const char *k;
        double v;
    } d[] = {
        /* weight GB/s by batch, llama3-8b q4_0 shapes, measured there 2026-11-25 */
        {"cpu.matmul.dev.q4_0.b1", 85}, {"cpu.matmul.dev.q4_0.b16", 20}, {"cpu.matmul.dev.q4_0.b128", 4.8},
        {"cpu.matmul.dev.q4_0.b512", 1.5}, {"cuda.matmul.dev.q4_0.b1", 2600}, {"cuda.matmul.dev.q4_0.b16", 220},
        {"cuda.matmul.dev.q4_0.b128", 210}, {"cuda.matmul.dev.q4_0.b512", 160}, {"cuda.matmul.host.q4_0.b1", 49},
        {"cuda.matmul.host.q4_0.b16", 45}, {"cuda.matmul.host.q4_0.b512", 36},
        {"cpu.read_gbs", 90}, {"cuda.read_gbs", 2900}, {"cuda.host_read_gbs", 49}, {"cpu.concurrent_host_gbs", 88},
        {"cuda.concurrent_host_gbs", 45}, {"cuda.h2d_gbs", 54}, {"cuda.d2h_gbs", 54}, {"sync.round_trip_us", 6},
        {"cpu.op_us", 2.5}, {"cuda.op_us", 4}, {"cuda.graph_op_us", 1.2},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) hllm_profile_set(pf, d[i].k, d[i].v);
    snprintf(pf->machine, sizeof pf->machine, "built-in estimates");
    return pf;
}
