/* The CUDA processor: proc.h on one CUDA stream.
 *
 * Work is enqueued on a non-blocking stream in issue order; finish() synchronizes it.
 * Weights are uploaded once (Q4_0/Q8_0/Q6_K repacked so every kernel load is 16 bytes; see
 * cuda_common.cuh); vectors become f32. Cross-processor ordering uses flags in pinned mapped
 * host memory: signal = cuStreamWriteValue32, wait = cuStreamWaitValue32 (the driver entry
 * points are fetched through the runtime, so the engine never links libcuda and a machine
 * without a driver still runs the CPU processor).
 *
 * Decode steps (step_begin / step_end, n_tok <= 8) are captured into CUDA graphs, one per
 * shape (a few cached), on the first step of that shape, which runs as issued; later steps of
 * the shape only record their ops and, if they match the captured ones (same operands apart
 * from pos0 and ids), replay the graph after one async copy of the step state (pos0, ids) that
 * the captured EMBED / ROPE / KV_STORE / ATTENTION kernels read. Growing a scratch buffer,
 * freeing memory or a weight drops the graphs. RMSNORM, SWIGLU and ATTENTION also write the
 * q8_1 copy of their output that the next GEMV would otherwise quantize in its own kernel.
 *
 * Prompts over host-resident rows (n_tok > 8): rather than reading pinned memory from the
 * kernels (zero-copy, ~40 GB/s), row tiles are copied by DMA (~54 GB/s) on a second stream into
 * a ring of VRAM slots, each dequantized and multiplied on the main stream once its copy is in;
 * the host issues ahead of the GPU, so the copies of the next tiles overlap the GEMMs of the
 * current ones.
 *
 * Failures never abort: no GPU, an old driver, missing kernels for the GPU's architecture and
 * out-of-memory each return NULL / -1 with one hllm_fail line, and the CPU stays usable.
 *
 * This file: memory, weights, the ops and the processor's life; cuda_step.cu: captured steps,
 * flags and handoffs; cuda_impl.cuh: the state both share. */
#include "proc/cuda/cuda_impl.cuh"
#include "proc/cuda/cuda_proc.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <new>

extern "C" {
#include "core/types.h"
}

__thread int cu_tl_dev = -1; /* see use_dev */

int cu_gemv_max_tok = 8; /* tests lower them (hllm_cuda_set_paths) */
int cu_split_max_tok = 8;
extern "C" void hllm_cuda_set_paths(int gemv_max_tok, int split_max_tok) {
    if (gemv_max_tok >= 0) cu_gemv_max_tok = gemv_max_tok > 8 ? 8 : gemv_max_tok;
    if (split_max_tok >= 0) cu_split_max_tok = split_max_tok;
}

static int g_attn_mma = -1; /* -1: not decided yet (HLLM_CUDA_ATTN_MMA) */
extern "C" void hllm_cuda_set_attn_mma(int on) {
    if (on >= 0) g_attn_mma = on ? 1 : 0;
}
static bool attn_mma_on(void) {
    if (g_attn_mma < 0) {
        const char *e = getenv("HLLM_CUDA_ATTN_MMA");
        g_attn_mma = e && e[0] == '0' ? 0 : 1;
    }
    return g_attn_mma != 0;
}

/* Prompt matmuls over quantized rows in VRAM dequantize tiles of up to 128M elements (a whole
 * Llama-3-8B matrix; pp512 +14% on H100 against 32M tiles, whose GEMMs were too short to fill the
 * GPU); host-resident rows stream through the staging slots in tiles of at most 32M (three
 * slots of VRAM the budget did not count). */
#define CU_TILE_DEFAULT ((int64_t)128 << 20)
#define CU_STAGE_TILE_MAX ((int64_t)32 << 20)
static int64_t g_tile_elems = CU_TILE_DEFAULT;
extern "C" void hllm_cuda_set_prompt_tile(long long elems) { g_tile_elems = elems > 0 ? elems : CU_TILE_DEFAULT; }

int cu_check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    return hllm_fail("CUDA: %s failed: %s", what, cudaGetErrorString(e));
}

static int oom(cuda_impl *c, size_t bytes, const char *what) {
    size_t fr = 0, tot = 0;
    cudaGetLastError();
    cudaMemGetInfo(&fr, &tot);
    return hllm_fail("CUDA: out of device memory for %s: asked for %.1f MiB, %.1f MiB free of %.1f MiB on %s", what,
                     (double)bytes / 1048576.0, (double)fr / 1048576.0, (double)tot / 1048576.0, c->prop.name);
}

static void drop_graphs(cuda_impl *c) {
    bool any = false;
    for (cu_graph &g : c->graphs) any |= g.exec != NULL;
    if (!any) return;
    /* no stream sync: a split plan's queued work may wait on host flags the host sets later */
    for (cu_graph &g : c->graphs) cu_free_graph(&g);
    cudaGetLastError();
}

/* Stream-ordered scratch: grows (never shrinks) with cudaMallocAsync on the stream. Graphs
 * hold the old addresses, so growing drops them; while capturing, growing is refused. */
static int ensure(cuda_impl *c, cu_buf *b, size_t need, const char *what) {
    if (need <= b->size) return 0;
    if (c->capturing) return hllm_fail("CUDA: %s would grow during a graph capture", what);
    drop_graphs(c);
    size_t sz = need + need / 4;
    sz = (sz + 255) / 256 * 256;
    if (b->p) cudaFreeAsync(b->p, c->st);
    b->p = NULL;
    b->size = 0;
    void *p = NULL;
    if (cudaMallocAsync(&p, sz, c->st) != cudaSuccess) return oom(c, sz, what);
    b->p = p;
    b->size = sz;
    return 0;
}

/* ---- memory ---- */

/* The last allocation in c->pinned that starts at or before ptr (-1: none). */
static int pinned_find(const cuda_impl *c, const char *ptr) {
    int lo = 0, hi = c->n_pinned; /* first entry starting after ptr */
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (c->pinned[mid].p <= ptr) lo = mid + 1;
        else hi = mid;
    }
    return lo - 1;
}

void *cu_pinned_dev(const cuda_impl *c, const void *ptr, size_t bytes) {
    const char *q = (const char *)ptr;
    const int i = pinned_find(c, q);
    if (i < 0 || q + bytes > c->pinned[i].p + c->pinned[i].n) return NULL;
    return c->pinned[i].d + (q - c->pinned[i].p);
}

/* Enters a pinned allocation (mapped) in the sorted table; without its device address or room
 * in the table it stays out, and lookups of it ask the driver. */
static void pinned_add(cuda_impl *c, void *ptr, size_t bytes) {
    void *d = NULL;
    if (cudaHostGetDevicePointer(&d, ptr, 0) != cudaSuccess || !d) {
        cudaGetLastError();
        return;
    }
    if (c->n_pinned == c->cap_pinned) {
        const int cap = c->cap_pinned ? 2 * c->cap_pinned : 64;
        cu_pinned *n = (cu_pinned *)realloc(c->pinned, (size_t)cap * sizeof *n);
        if (!n) return;
        c->pinned = n;
        c->cap_pinned = cap;
    }
    const int at = pinned_find(c, (const char *)ptr) + 1;
    memmove(c->pinned + at + 1, c->pinned + at, (size_t)(c->n_pinned - at) * sizeof *c->pinned);
    c->pinned[at] = cu_pinned{(const char *)ptr, bytes, (char *)d};
    c->n_pinned++;
}

static void *cu_alloc(hllm_proc *p, size_t bytes, hllm_mem_kind kind) {
    cuda_impl *c = impl_of(p);
    STEP_GUARD(c);
    act_forget(c);
    use_dev(c->dev);
    void *ptr = NULL;
    if (bytes == 0) bytes = 1;
    if (kind == HLLM_MEM_HOST) {
        if (cudaHostAlloc(&ptr, bytes, cudaHostAllocMapped | cudaHostAllocPortable) != cudaSuccess) {
            cudaGetLastError();
            hllm_fail("CUDA: could not allocate %.1f MiB of pinned host memory", (double)bytes / 1048576.0);
            return NULL;
        }
        pinned_add(c, ptr, bytes);
        return ptr;
    }
    if (cudaMalloc(&ptr, bytes) != cudaSuccess) {
        oom(c, bytes, "a buffer");
        return NULL;
    }
    return ptr;
}

static bool is_pinned_host(const void *ptr) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

static void cu_free(hllm_proc *p, void *ptr) {
    if (!ptr) return;
    cuda_impl *c = impl_of(p);
    STEP_GUARD(c);
    act_forget(c);
    use_dev(c->dev);
    drop_graphs(c); /* they may read or write this buffer */
    if (is_pinned_host(ptr)) {
        const int i = pinned_find(c, (const char *)ptr);
        if (i >= 0 && c->pinned[i].p == (const char *)ptr) {
            memmove(c->pinned + i, c->pinned + i + 1, (size_t)(c->n_pinned - i - 1) * sizeof *c->pinned);
            c->n_pinned--;
        }
        cudaFreeHost(ptr);
    } else cudaFree(ptr);
}

/* Device memory or pinned host memory: a copy from or to it can be captured. */
static bool dev_accessible(const void *ptr) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, ptr) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost || a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* An async copy; recorded into the step (and captured) when `capturable`: the caller has
 * checked the host side (the processor's own side is its device memory). dir: COPY_FROM_HOST
 * or COPY_TO_HOST when that side is pinned mapped memory allocated here (a kernel may copy),
 * else 0 (cuda_impl.cuh). */
static int issue_copy(hllm_proc *p, void *dst, const void *src, size_t bytes, bool capturable, int dir) {
    cuda_impl *c = impl_of(p);
    if (capturable && (c->mode == STEP_RECORD || c->mode == STEP_REPLAY)) {
        hllm_op a = {};
        a.kind = (hllm_op_kind)CU_ACT_COPY;
        a.dst = (float *)dst;
        a.src = (const float *)src;
        a.n_rows = (int64_t)bytes;
        a.r1 = dir;
        return cu_run(p, &a);
    }
    STEP_GUARD(c);
    return cu_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c->st), "copy");
}

static int cu_copy_in(hllm_proc *p, void *dst, const void *src, size_t bytes) {
    cuda_impl *c = impl_of(p);
    act_forget(c);
    if (!bytes) return 0;
    use_dev(c->dev);
    const bool stepping = c->mode == STEP_RECORD || c->mode == STEP_REPLAY;
    if (void *d = stepping ? cu_pinned_dev(c, src, bytes) : NULL) return issue_copy(p, dst, d, bytes, true, COPY_FROM_HOST);
    return issue_copy(p, dst, src, bytes, stepping && dev_accessible(src), 0);
}

static int flush_pending(cuda_impl *c) {
    if (cu_check(cudaStreamSynchronize(c->st), "stream synchronize")) return -1;
    for (int i = 0; i < c->n_pend; i++) memcpy(c->pend[i].dst, c->stage + c->pend[i].off, c->pend[i].bytes);
    c->n_pend = 0;
    c->stage_used = 0;
    return 0;
}

static int cu_copy_out(hllm_proc *p, void *dst, const void *src, size_t bytes) {
    cuda_impl *c = impl_of(p);
    if (!bytes) return 0;
    use_dev(c->dev);
    if (void *d = cu_pinned_dev(c, dst, bytes)) return issue_copy(p, d, src, bytes, true, COPY_TO_HOST);
    if (is_pinned_host(dst)) return issue_copy(p, dst, src, bytes, true, 0);
    STEP_GUARD(c);
    /* pageable destination: copy into pinned staging now, to the destination at finish() */
    const size_t need = (bytes + 255) / 256 * 256;
    if (c->stage_used + need > c->stage_size) {
        if (c->n_pend && flush_pending(c)) return -1;
        if (need > c->stage_size) {
            if (c->stage) cudaFreeHost(c->stage);
            c->stage = NULL;
            c->stage_size = 0;
            size_t sz = need < ((size_t)4 << 20) ? ((size_t)4 << 20) : need;
            if (cudaHostAlloc((void **)&c->stage, sz, cudaHostAllocDefault) != cudaSuccess) {
                cudaGetLastError();
                c->stage = NULL;
                return hllm_fail("CUDA: could not allocate %.1f MiB of pinned staging memory", (double)sz / 1048576.0);
            }
            c->stage_size = sz;
        }
    }
    if (c->n_pend == c->cap_pend) {
        int cap = c->cap_pend ? 2 * c->cap_pend : 16;
        cu_pending *np = (cu_pending *)realloc(c->pend, (size_t)cap * sizeof *np);
        if (!np) return hllm_fail("out of memory");
        c->pend = np;
        c->cap_pend = cap;
    }
    if (cu_check(cudaMemcpyAsync(c->stage + c->stage_used, src, bytes, cudaMemcpyDefault, c->st), "copy_out")) return -1;
    c->pend[c->n_pend++] = cu_pending{dst, c->stage_used, bytes};
    c->stage_used += need;
    return 0;
}

/* ---- weights ---- */

/* Repacks rows [r0, r1) of t into dst (quants; row_bytes each) and dd (scales). */
static void repack_rows(const hllm_tensor *t, int64_t r0, int64_t r1, uint8_t *dst, size_t row_bytes, uint16_t *dd) {
    const int64_t nb = t->cols / 32, nsb = t->cols / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * t->row_bytes;
        uint8_t *q = dst + (size_t)(r - r0) * row_bytes;
        if (t->type == HLLM_TYPE_Q4_0) {
            const hllm_block_q4_0 *b = (const hllm_block_q4_0 *)src;
            for (int64_t i = 0; i < nb; i++) {
                memcpy(q + i * 16, b[i].qs, 16);
                dd[(r - r0) * nb + i] = b[i].d;
            }
        } else if (t->type == HLLM_TYPE_Q8_0) {
            const hllm_block_q8_0 *b = (const hllm_block_q8_0 *)src;
            for (int64_t i = 0; i < nb; i++) {
                memcpy(q + i * 32, b[i].qs, 32);
                dd[(r - r0) * nb + i] = b[i].d;
            }
        } else { /* Q6_K */
            const hllm_block_q6_K *b = (const hllm_block_q6_K *)src;
            for (int64_t i = 0; i < nsb; i++) {
                uint8_t *o = q + i * CU_Q6K_BYTES;
                memcpy(o, b[i].ql, 128);
                memcpy(o + 128, b[i].qh, 64);
                memcpy(o + 192, b[i].scales, 16);
                dd[(r - r0) * nsb + i] = b[i].d;
            }
        }
    }
}

static int blas_init(cuda_impl *c);

/* The copy stream and slot events, once (without them prompts read host rows zero-copy). */
static void staging_init(cuda_impl *c) {
    if (c->staging || getenv("HLLM_CUDA_STAGE") && getenv("HLLM_CUDA_STAGE")[0] == '0') return;
    bool ok = cudaStreamCreateWithFlags(&c->cst, cudaStreamNonBlocking) == cudaSuccess;
    for (int i = 0; ok && i < CU_SLOTS; i++)
        ok = cudaEventCreateWithFlags(&c->slot_copied[i], cudaEventDisableTiming) == cudaSuccess &&
             cudaEventCreateWithFlags(&c->slot_free[i], cudaEventDisableTiming) == cudaSuccess;
    cudaGetLastError();
    c->staging = ok; /* on failure the pieces made are destroyed with the processor */
}

/* Scales per row of a repacked layout (SOA: one half per 32 elements, Q6K: per 256), else 0. */
static int64_t scales_per_row(const cu_mat &m) {
    return m.layout == CU_LAYOUT_SOA ? m.cols / 32 : m.layout == CU_LAYOUT_Q6K ? m.cols / 256 : 0;
}

/* Rows [a, b) of host-resident matrix m copied on the copy stream into the next VRAM slot, after
 * the main stream's last use of that slot; the main stream waits for the copy. *out: the slot
 * as a matrix whose row 0 is row a. */
static int stage_rows(cuda_impl *c, const cu_mat &m, int64_t a, int64_t b, cu_mat *out) {
    const int s = c->slot_i;
    c->slot_i = (s + 1) % CU_SLOTS;
    const size_t qb = (size_t)(b - a) * m.row_bytes, qpad = (qb + 255) / 256 * 256;
    const int64_t spr = scales_per_row(m);
    const size_t db = (size_t)(b - a) * (size_t)spr * 2;
    void *old = c->slot[s].p;
    if (ensure(c, &c->slot[s], qpad + db, "a weight tile of a prompt")) return -1;
    if (c->slot[s].p != old) cudaEventRecord(c->slot_free[s], c->st); /* allocated in the main stream's order */
    uint8_t *dst = (uint8_t *)c->slot[s].p;
    if (cu_check(cudaStreamWaitEvent(c->cst, c->slot_free[s], 0), "copy stream wait") ||
        cu_check(cudaMemcpyAsync(dst, m.data + (size_t)a * m.row_bytes, qb, cudaMemcpyDefault, c->cst), "weight tile copy") ||
        (db && cu_check(cudaMemcpyAsync(dst + qpad, m.d + a * spr, db, cudaMemcpyDefault, c->cst), "weight tile copy")) ||
        cu_check(cudaEventRecord(c->slot_copied[s], c->cst), "event record") ||
        cu_check(cudaStreamWaitEvent(c->st, c->slot_copied[s], 0), "stream wait"))
        return -1;
    *out = m;
    out->rows = b - a;
    out->data = dst;
    out->d = db ? (const __half *)(dst + qpad) : NULL;
    return 0;
}

/* After the main stream's last read of the slot stage_rows returned. */
static int staged_done(cuda_impl *c) {
    const int s = (c->slot_i + CU_SLOTS - 1) % CU_SLOTS;
    return cu_check(cudaEventRecord(c->slot_free[s], c->st), "event record");
}

static hllm_pweight *cu_weight_load(hllm_proc *p, const hllm_tensor *t, int64_t r0, int64_t r1, hllm_mem_kind mem) {
    cuda_impl *c = impl_of(p);
    STEP_GUARD(c);
    use_dev(c->dev);
    if (t->rows > 1 && cu_type_quantized(t->type)) c->any_quant = true;
    /* cuBLAS now, not at the first prompt: creating it may synchronize the device, which must
     * not happen while queued work waits on another processor's flags */
    if (t->rows > 1 && blas_init(c)) return NULL;
    hllm_pweight *w = (hllm_pweight *)calloc(1, sizeof *w);
    if (!w) {
        hllm_fail("out of memory loading %s", t->name);
        return NULL;
    }
    w->type = t->type;
    w->row0 = r0;
    w->cols = t->cols;
    w->host = mem == HLLM_MEM_HOST;
    if (w->host && t->rows > 1) staging_init(c); /* now, for the same reason as cuBLAS */
    if (t->rows == 1) { /* a vector: f32 on the device */
        float *h = (float *)malloc((size_t)t->cols * sizeof(float));
        if (!h) {
            free(w);
            hllm_fail("out of memory loading %s", t->name);
            return NULL;
        }
        hllm_dequantize_row(t->type, t->data, h, t->cols);
        w->rows = 1;
        w->host = false;
        if (cudaMalloc((void **)&w->vec, (size_t)t->cols * sizeof(float)) != cudaSuccess) {
            oom(c, (size_t)t->cols * sizeof(float), t->name);
            free(h);
            free(w);
            return NULL;
        }
        int rc = cu_check(cudaMemcpy(w->vec, h, (size_t)t->cols * sizeof(float), cudaMemcpyHostToDevice), "upload");
        free(h);
        if (rc) {
            cudaFree(w->vec);
            free(w);
            return NULL;
        }
        return w;
    }
    if (!hllm_type_info(t->type)->supported) {
        hllm_fail("CUDA: %s has type %s, which the CUDA processor does not support", t->name, hllm_type_name(t->type));
        free(w);
        return NULL;
    }
    if (r0 < 0 || r1 > t->rows || r1 <= r0) {
        hllm_fail("CUDA: rows [%lld, %lld) of %s (%lld rows)", (long long)r0, (long long)r1, t->name, (long long)t->rows);
        free(w);
        return NULL;
    }
    const int64_t rows = r1 - r0;
    w->rows = rows;
    size_t qbytes, dbytes = 0;
    if (t->type == HLLM_TYPE_Q4_0 || t->type == HLLM_TYPE_Q8_0) {
        w->layout = CU_LAYOUT_SOA;
        w->row_bytes = (size_t)(t->cols / 32) * (t->type == HLLM_TYPE_Q4_0 ? 16 : 32);
        dbytes = (size_t)rows * (size_t)(t->cols / 32) * 2;
    } else if (t->type == HLLM_TYPE_Q6_K) {
        w->layout = CU_LAYOUT_Q6K;
        w->row_bytes = (size_t)(t->cols / 256) * CU_Q6K_BYTES;
        dbytes = (size_t)rows * (size_t)(t->cols / 256) * 2;
    } else {
        w->layout = CU_LAYOUT_RAW;
        w->row_bytes = t->row_bytes;
    }
    qbytes = (size_t)rows * w->row_bytes;
    const size_t qpad = (qbytes + 255) / 256 * 256, total = qpad + dbytes;
    void *dev = NULL;
    if (w->host) {
        void *hp = NULL;
        if (cudaHostAlloc(&hp, total, cudaHostAllocMapped | cudaHostAllocPortable) != cudaSuccess) {
            cudaGetLastError();
            hllm_fail("CUDA: could not allocate %.1f MiB of pinned host memory for %s", (double)total / 1048576.0, t->name);
            free(w);
            return NULL;
        }
        if (w->layout == CU_LAYOUT_RAW) memcpy(hp, (const char *)t->data + (size_t)r0 * t->row_bytes, qbytes);
        else repack_rows(t, r0, r1, (uint8_t *)hp, w->row_bytes, (uint16_t *)((char *)hp + qpad));
        if (cudaHostGetDevicePointer(&dev, hp, 0) != cudaSuccess) {
            cudaGetLastError();
            cudaFreeHost(hp);
            hllm_fail("CUDA: pinned memory for %s is not mapped into the device", t->name);
            free(w);
            return NULL;
        }
    } else {
        if (cudaMalloc(&dev, total) != cudaSuccess) {
            oom(c, total, t->name);
            free(w);
            return NULL;
        }
        int rc;
        if (w->layout == CU_LAYOUT_RAW) {
            rc = cu_check(cudaMemcpy(dev, (const char *)t->data + (size_t)r0 * t->row_bytes, qbytes, cudaMemcpyHostToDevice),
                          "weight upload");
        } else {
            uint8_t *h = (uint8_t *)malloc(total);
            if (!h) {
                cudaFree(dev);
                free(w);
                hllm_fail("out of memory repacking %s", t->name);
                return NULL;
            }
            repack_rows(t, r0, r1, h, w->row_bytes, (uint16_t *)(h + qpad));
            rc = cu_check(cudaMemcpy(dev, h, total, cudaMemcpyHostToDevice), "weight upload");
            free(h);
        }
        if (rc) {
            cudaFree(dev);
            free(w);
            return NULL;
        }
    }
    w->data = dev;
    w->d = dbytes ? (const __half *)((const char *)dev + qpad) : NULL;
    return w;
}

static void cu_weight_free(hllm_proc *p, hllm_pweight *w) {
    if (!w) return;
    cuda_impl *c = impl_of(p);
    STEP_GUARD(c);
    use_dev(c->dev);
    drop_graphs(c);
    if (w->vec) cudaFree(w->vec);
    if (w->data) {
        if (w->host) {
            void *hp = w->data;
            cudaPointerAttributes a;
            if (cudaPointerGetAttributes(&a, w->data) == cudaSuccess && a.hostPointer) hp = a.hostPointer;
            cudaGetLastError();
            cudaFreeHost(hp);
        } else {
            cudaFree(w->data);
        }
    }
    free(w);
}

/* ---- ops ---- */

static int blas_init(cuda_impl *c) {
    if (c->blas_ok) return 0;
    if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS) return hllm_fail("CUDA: cuBLAS could not be initialized");
    cublasSetStream(c->blas, c->st);
    /* its workspace allocated now, not at a first GEMM while queued work waits on flags */
    const size_t ws = (size_t)32 << 20;
    if (cudaMalloc(&c->blas_ws, ws) == cudaSuccess) cublasSetWorkspace(c->blas, c->blas_ws, ws);
    else cudaGetLastError(), c->blas_ws = NULL;
    c->blas_ok = true;
    return 0;
}

static int blas_check(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return hllm_fail("CUDA: cuBLAS %s failed (status %d)", what, (int)s);
}

/* Y[t][grow] (rows m, tokens n) = W (m x k, row-major, lda) . X[t] (k, ldb), column-major view. */
static int gemm(cuda_impl *c, cudaDataType ta, const void *W, int64_t lda, cudaDataType tb, const void *X, int64_t ldb,
                float *Y, int64_t ldy, int64_t m, int n, int64_t k) {
    const float one = 1.0f, zero = 0.0f;
    return blas_check(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)m, n, (int)k, &one, W, ta, (int)lda, X, tb,
                                   (int)ldb, &zero, Y, CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "gemm");
}

/* The q8_1 copy of an activation of n_tok rows of cols (cols % 32 == 0): xq [n_tok][cols],
 * then the (d, d * sum) pairs. */
static int xq_buffer(cuda_impl *c, int n_tok, int64_t cols, cu_qout *qo) {
    const size_t qb = (size_t)n_tok * (size_t)cols, db = (size_t)n_tok * (size_t)(cols / 32) * sizeof(float2);
    const size_t qpad = (qb + 255) / 256 * 256;
    if (ensure(c, &c->xq, qpad + db, "quantized activations")) return -1;
    qo->xq = (int8_t *)c->xq.p;
    qo->xds = (float2 *)((char *)c->xq.p + qpad);
    return 0;
}

/* Ops whose output feeds GEMVs (rmsnorm, swiglu, attention) also write its q8_1 copy when a
 * quantized matrix is loaded, so the matmuls after them skip the quantization kernel. */
static bool produce_q(const cuda_impl *c, int n_tok, int64_t cols) {
    return c->any_quant && n_tok >= 1 && n_tok <= cu_gemv_max_tok && cols % 32 == 0;
}

static void xq_set(cuda_impl *c, const float *src, int64_t ld, int64_t cols, int n_tok) {
    c->xq_alt = false;
    c->xq_src = src;
    c->xq_ld = ld;
    c->xq_cols = cols;
    c->xq_ntok = n_tok;
}

/* A matmul whose output overlaps the input the quantized-activation cache holds ends the
 * cache's validity for the matmuls after it (the GEMV reads the quantized copy, not src). */
static bool writes_into(const hllm_op *op, const hllm_pweight *w, const float *src, int64_t ld, int n_tok, int64_t cols) {
    const char *d0 = (const char *)op->dst, *d1 = (const char *)(op->dst + (int64_t)(op->n_tok - 1) * op->ld_dst + w->row0 + w->rows);
    const char *s0 = (const char *)src, *s1 = (const char *)(src + (int64_t)(n_tok - 1) * ld + cols);
    return d0 < s1 && s0 < d1;
}
static void clobber_check(cuda_impl *c, const hllm_op *op, const hllm_pweight *w) {
    if (c->xq_src && writes_into(op, w, c->xq_src, c->xq_ld, c->xq_ntok, c->xq_cols)) c->xq_src = NULL;
}

/* The same for the f16 copy of a prompt matmul's input. */
static void clobber_check_h(cuda_impl *c, const hllm_op *op, const hllm_pweight *w) {
    if (c->xh_src && writes_into(op, w, c->xh_src, c->xh_ld, c->xh_ntok, c->xh_cols)) c->xh_src = NULL;
}

/* The GEMV path of n matmuls of one input (checked: rows held, n_tok <= cu_gemv_max_tok) in one
 * launch; add: an ADD of the (single) matmul's output fused into it, or NULL. */
/* The fused gate/up + swiglu's q8_1 output buffer (same layout as xq_buffer's) and its
 * counters (zeroed when they grow; the kernel leaves them zero). */
int cu_glu_buffers(cuda_impl *c, int n_tok, int64_t dim, cu_qout *qo) {
    const size_t qb = (size_t)n_tok * (size_t)dim, db = (size_t)n_tok * (size_t)(dim / 32) * sizeof(float2);
    const size_t qpad = (qb + 255) / 256 * 256, nc = (size_t)(dim / 32) * sizeof(unsigned);
    if (ensure(c, &c->xq2, qpad + db, "quantized activations")) return -1;
    if (nc > c->gcnt.size) {
        if (ensure(c, &c->gcnt, nc, "gemv counters")) return -1;
        if (cu_check(cudaMemsetAsync(c->gcnt.p, 0, c->gcnt.size, c->st), "gemv counters")) return -1;
    }
    if (qo) {
        qo->xq = (int8_t *)c->xq2.p;
        qo->xds = (float2 *)((char *)c->xq2.p + qpad);
    }
    return 0;
}

/* The q8_1 input of a GEMV of op's input (quantized matrices): the copy an earlier op left, or
 * a fresh one in xq. no_alt: not the one in xq2 (the caller writes xq2). */
static int gemv_input(cuda_impl *c, const hllm_op *op, bool no_alt, int8_t **xq, float2 **xds) {
    *xq = NULL;
    *xds = NULL;
    if (!cu_type_quantized(op->w->type)) return 0;
    const int n_tok = op->n_tok;
    const int64_t cols = op->w->cols;
    const bool reuse = c->xq_src == op->src && c->xq_ld == op->ld_src && c->xq_cols == cols && c->xq_ntok == n_tok &&
                       !(no_alt && c->xq_alt);
    if (!reuse) c->xq_src = NULL;
    cu_qout qo;
    if (reuse && c->xq_alt) {
        if (cu_glu_buffers(c, n_tok, cols, &qo)) return -1;
    } else if (xq_buffer(c, n_tok, cols, &qo)) {
        return -1;
    }
    *xq = qo.xq;
    *xds = qo.xds;
    if (!reuse) {
        if (cu_quantize_q8_1(c->st, op->src, op->ld_src, n_tok, cols, qo.xq, qo.xds)) return -1;
        xq_set(c, op->src, op->ld_src, cols, n_tok);
    }
    return 0;
}

static cu_gseg seg_of(cuda_impl *c, const hllm_op *op) {
    const hllm_pweight *w = op->w;
    cu_gseg g;
    memset(&g, 0, sizeof g);
    g.m = cu_mat_of(w);
    g.lr0 = op->r0 - w->row0;
    g.lr1 = op->r1 - w->row0;
    g.grow0 = w->row0;
    g.y = op->dst;
    g.ldy = op->ld_dst;
    g.bias = op->bias ? op->bias->vec : NULL;
    g.pf = !w->host; /* over PCIe a prefetch would only compete with the loads */
    clobber_check(c, op, w);
    return g;
}

/* gate, up, SWIGLU (cu_fuse_match checked them) in one kernel. */
int cu_run_glu(cuda_impl *c, const hllm_op *ops) {
    const hllm_op *sw = &ops[2];
    int8_t *xq;
    float2 *xds;
    if (gemv_input(c, &ops[0], true, &xq, &xds)) return -1;
    const cu_gseg g = seg_of(c, &ops[0]), u = seg_of(c, &ops[1]);
    cu_qout qo = {NULL, NULL};
    const bool q = produce_q(c, sw->n_tok, sw->dim);
    if (cu_glu_buffers(c, sw->n_tok, sw->dim, q ? &qo : NULL)) return -1;
    if (cu_gemv_glu(c->st, g, u, xq, xds, sw->n_tok, qo, (unsigned *)c->gcnt.p)) return -1;
    act_forget(c);
    if (q) {
        xq_set(c, sw->dst, sw->ld_dst, sw->dim, sw->n_tok);
        c->xq_alt = true;
    }
    return 0;
}

int cu_run_gemv(cuda_impl *c, const hllm_op *ops, int n, const hllm_op *add) {
    const hllm_op *op = &ops[0];
    const int n_tok = op->n_tok;
    int8_t *xq;
    float2 *xds;
    if (gemv_input(c, op, false, &xq, &xds)) return -1;
    cu_gseg segs[CU_MAX_SEGS];
    for (int i = 0; i < n; i++) segs[i] = seg_of(c, &ops[i]);
    if (add) {
        segs[0].yadd = add->dst;
        segs[0].ldadd = add->ld_dst;
        act_forget(c); /* as after any op but a matmul */
    }
    return cu_gemv_multi(c->st, segs, n, op->src, op->ld_src, xq, xds, n_tok);
}

static int run_matmul(cuda_impl *c, const hllm_op *op) {
    const hllm_pweight *w = op->w;
    if (!w || w->vec) return hllm_fail("CUDA: matmul without a matrix");
    const int64_t lr0 = op->r0 - w->row0, lr1 = op->r1 - w->row0;
    if (lr0 < 0 || lr1 > w->rows || lr1 < lr0)
        return hllm_fail("CUDA: matmul rows [%lld, %lld) outside the rows held [%lld, %lld)", (long long)op->r0,
                         (long long)op->r1, (long long)w->row0, (long long)(w->row0 + w->rows));
    if (lr1 == lr0 || op->n_tok <= 0) return 0;
    const cu_mat m = cu_mat_of(w);
    const float *bias = op->bias ? op->bias->vec : NULL;
    const bool quant = cu_type_quantized(m.type);
    const int n_tok = op->n_tok;
    if (n_tok <= cu_gemv_max_tok) return cu_run_gemv(c, op, 1, NULL);
    clobber_check(c, op, w);
    /* prefill: tensor-core GEMM through cuBLAS */
    if (blas_init(c)) return -1;
    float *Y = op->dst + w->row0 + lr0;
    const int64_t K = m.cols;
    if (m.type == HLLM_TYPE_F32) {
        const float one = 1.0f, zero = 0.0f;
        if (blas_check(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)(lr1 - lr0), n_tok, (int)K, &one,
                                   (const float *)m.data + lr0 * K, (int)K, op->src, (int)op->ld_src, &zero, Y,
                                   (int)op->ld_dst),
                       "sgemm"))
            return -1;
    } else {
        const bool bf = m.type == HLLM_TYPE_BF16;
        const cudaDataType dt = bf ? CUDA_R_16BF : CUDA_R_16F;
        if (!(c->xh_src == op->src && c->xh_ld == op->ld_src && c->xh_cols == K && c->xh_ntok == n_tok && c->xh_bf == bf)) {
            c->xh_src = NULL;
            if (ensure(c, &c->xh, (size_t)n_tok * (size_t)K * 2, "f16 activations")) return -1;
            if (cu_convert_act(c->st, op->src, op->ld_src, n_tok, K, c->xh.p, bf)) return -1;
            c->xh_src = op->src, c->xh_ld = op->ld_src, c->xh_cols = K, c->xh_ntok = n_tok, c->xh_bf = bf;
        }
        /* host-resident rows stream through VRAM slots in tiles (see the top of this file) */
        const bool staged = w->host && c->staging && !c->capturing;
        int64_t tile = (staged && g_tile_elems > CU_STAGE_TILE_MAX ? CU_STAGE_TILE_MAX : g_tile_elems) / K;
        if (tile < 64) tile = 64;
        if (tile > lr1 - lr0) tile = lr1 - lr0;
        if (!quant && !staged) {
            if (gemm(c, dt, m.data + lr0 * m.row_bytes, K, dt, c->xh.p, K, Y, op->ld_dst, lr1 - lr0, n_tok, K)) return -1;
        } else {
            /* less VRAM free than a tile needs: smaller tiles (slower GEMMs) before giving up */
            while (quant && ensure(c, &c->wt, (size_t)tile * (size_t)K * 2, "dequantized weight tile")) {
                if (tile <= 256) return -1;
                tile /= 2;
            }
            for (int64_t a = lr0; a < lr1; a += tile) {
                const int64_t b = a + tile < lr1 ? a + tile : lr1;
                cu_mat src = m;
                int64_t s0 = a, s1 = b; /* the tile's rows in src */
                if (staged) {
                    if (stage_rows(c, m, a, b, &src)) return -1;
                    s0 = 0, s1 = b - a;
                }
                if (quant) {
                    if (cu_dequant_rows(c->st, src, s0, s1, c->wt.p, false)) return -1;
                    if (gemm(c, CUDA_R_16F, c->wt.p, K, CUDA_R_16F, c->xh.p, K, Y + (a - lr0), op->ld_dst, b - a, n_tok, K))
                        return -1;
                } else if (gemm(c, dt, src.data + s0 * src.row_bytes, K, dt, c->xh.p, K, Y + (a - lr0), op->ld_dst, b - a, n_tok, K))
                    return -1;
                if (staged && staged_done(c)) return -1;
            }
        }
    }
    clobber_check_h(c, op, w);
    if (bias) return cu_add_bias(c->st, op->dst, op->ld_dst, n_tok, w->row0 + lr0, lr1 - lr0, bias);
    return 0;
}

static int run_embed(cuda_impl *c, const hllm_op *op) {
    const hllm_pweight *w = op->w;
    if (!w || w->vec) return hllm_fail("CUDA: embedding without a matrix");
    for (int t = 0; t < op->n_tok; t++)
        if (op->tokens[t] < w->row0 || op->tokens[t] >= w->row0 + w->rows)
            return hllm_fail("CUDA: token %d is outside the embedding rows held", op->tokens[t]);
    cu_tok8 inl;
    memset(&inl, 0, sizeof inl);
    if (c->dtok && op->n_tok <= 8) /* capturing a step: the ids of the step state */
        return cu_embed(c->st, cu_mat_of(w), w->row0, c->dtok, inl, op->n_tok, op->dst, op->ld_dst);
    if (op->n_tok <= 8) { /* decode: the ids travel as kernel arguments */
        memcpy(inl.t, op->tokens, (size_t)op->n_tok * sizeof(int32_t));
        return cu_embed(c->st, cu_mat_of(w), w->row0, NULL, inl, op->n_tok, op->dst, op->ld_dst);
    }
    if (ensure(c, &c->tok, (size_t)op->n_tok * sizeof(int32_t), "token ids")) return -1;
    if (cu_check(cudaMemcpyAsync(c->tok.p, op->tokens, (size_t)op->n_tok * sizeof(int32_t), cudaMemcpyHostToDevice, c->st),
                 "token upload"))
        return -1;
    return cu_embed(c->st, cu_mat_of(w), w->row0, (const int32_t *)c->tok.p, inl, op->n_tok, op->dst, op->ld_dst);
}

static int run_attention(cuda_impl *c, const hllm_op *op) {
    if (!op->kv || op->n_head_kv <= 0 || op->n_head % op->n_head_kv) return hllm_fail("CUDA: bad attention shape");
    if (op->head_dim > 512) return hllm_fail("CUDA: head_dim %d > 512", op->head_dim);
    if (op->kv->type != HLLM_TYPE_F16 && op->kv->type != HLLM_TYPE_F32)
        return hllm_fail("CUDA: KV cache type %s is not supported (f16 or f32)", hllm_type_name(op->kv->type));
    if (op->pos0 < 0 || op->pos0 + op->n_tok > op->kv->n_ctx)
        return hllm_fail("CUDA: attention over %d rows at %d exceeds the cache", op->n_tok, op->pos0);
    if (op->n_tok > cu_split_max_tok) {
        int r = attn_mma_on() ? cu_attn_mma(c->st, op, c->prop.major) : 1;
        if (r <= 0) return r;
        r = cu_attn_flash(c->st, op, c->prop.sharedMemPerBlockOptin);
        if (r <= 0) return r;
    }
    int n_chunks;
    const size_t need = cu_attn_split_scratch(op, c->prop.multiProcessorCount, &n_chunks);
    if (need && ensure(c, &c->part, need * sizeof(float), "attention partials")) return -1;
    const size_t n_cnt = (size_t)op->n_tok * (size_t)(op->h1 - op->h0) * sizeof(unsigned);
    if (n_chunks > 1 && n_cnt > c->cnt.size) { /* merge counters: zero, and every launch leaves them zero */
        if (ensure(c, &c->cnt, n_cnt, "attention counters")) return -1;
        if (cu_check(cudaMemsetAsync(c->cnt.p, 0, c->cnt.size, c->st), "attention counters")) return -1;
    }
    const int64_t cols = (int64_t)op->n_head * op->head_dim;
    cu_qout qo = {NULL, NULL};
    const bool q = op->h0 == 0 && op->h1 == op->n_head && op->head_dim % 32 == 0 && produce_q(c, op->n_tok, cols);
    if (q && xq_buffer(c, op->n_tok, cols, &qo)) return -1;
    if (cu_attn_split(c->st, op, n_chunks, (float *)c->part.p, (unsigned *)c->cnt.p, qo, c->dpos)) return -1;
    if (q) xq_set(c, op->dst, op->ld_dst, cols, op->n_tok);
    return 0;
}

static int run_rmsnorm(cuda_impl *c, const hllm_op *op) {
    if (!op->w || !op->w->vec) return hllm_fail("CUDA: rmsnorm without a weight vector");
    cu_qout qo = {NULL, NULL};
    const bool q = op->n_rows == op->n_tok && produce_q(c, op->n_tok, op->dim);
    if (q && xq_buffer(c, op->n_tok, op->dim, &qo)) return -1;
    if (cu_rmsnorm(c->st, op, op->w->vec, qo)) return -1;
    if (q) xq_set(c, op->dst, op->ld_dst, op->dim, op->n_tok);
    return 0;
}

static int run_swiglu(cuda_impl *c, const hllm_op *op) {
    cu_qout qo = {NULL, NULL};
    const bool q = produce_q(c, op->n_tok, op->dim);
    if (q && xq_buffer(c, op->n_tok, op->dim, &qo)) return -1;
    if (cu_swiglu(c->st, op, qo)) return -1;
    if (q) xq_set(c, op->dst, op->ld_dst, op->dim, op->n_tok);
    return 0;
}

/* Issues one op on the stream (or into the graph being captured). */
int cu_run_op(cuda_impl *c, const hllm_op *op) {
    if (op->kind != HLLM_OP_MATMUL) act_forget(c);
    if ((int)op->kind > HLLM_OP_COUNT) return cu_run_action(c, op);
    cu_pdl_op = op->n_tok <= 8;
    switch (op->kind) {
    case HLLM_OP_EMBED: return run_embed(c, op);
    case HLLM_OP_RMSNORM: return run_rmsnorm(c, op);
    case HLLM_OP_MATMUL: return run_matmul(c, op);
    case HLLM_OP_ROPE:
        if (op->n_rot > op->head_dim || (op->n_rot & 1)) return hllm_fail("CUDA: n_rot %d (head_dim %d)", op->n_rot, op->head_dim);
        return cu_rope(c->st, op, op->freq_factors ? op->freq_factors->vec : NULL, c->dpos);
    case HLLM_OP_KV_STORE:
        if (!op->kv || op->pos0 < 0 || op->pos0 + op->n_tok > op->kv->n_ctx)
            return hllm_fail("CUDA: KV store of %d rows at %d exceeds the cache", op->n_tok, op->pos0);
        return cu_kv_store(c->st, op, c->dpos);
    case HLLM_OP_ATTENTION: return run_attention(c, op);
    case HLLM_OP_SWIGLU: return run_swiglu(c, op);
    case HLLM_OP_ADD: return cu_add(c->st, op);
    default: return hllm_fail("CUDA processor: unknown op %d", (int)op->kind);
    }
}


static int cu_finish(hllm_proc *p) {
    cuda_impl *c = impl_of(p);
    STEP_GUARD(c);
    use_dev(c->dev);
    if (c->n_pend) return flush_pending(c);
    return cu_check(cudaStreamSynchronize(c->st), "stream synchronize");
}

static void cu_destroy(hllm_proc *p) {
    if (!p) return;
    cuda_impl *c = impl_of(p);
    if (getenv("HLLM_CUDA_STATS"))
        fprintf(stderr,
                "cuda: graphs captured %ld (the last of %zu nodes), replayed %ld (%ld started at their first wait), "
                "mismatched %ld, failed captures %d\n",
                c->n_captures, c->last_nodes, c->n_replays, c->n_early, c->n_mismatch, c->n_capture_fail);
    use_dev(c->dev);
    cudaStreamSynchronize(c->st);
    drop_graphs(c);
    if (c->cst) cudaStreamSynchronize(c->cst);
    cu_buf *bufs[] = {&c->xq, &c->xh, &c->wt, &c->part, &c->tok, &c->cnt, &c->xq2, &c->gcnt, &c->slot[0], &c->slot[1], &c->slot[2]};
    for (cu_buf *b : bufs)
        if (b->p) cudaFreeAsync(b->p, c->st);
    cudaStreamSynchronize(c->st);
    for (int i = 0; i < CU_SLOTS; i++) {
        if (c->slot_copied[i]) cudaEventDestroy(c->slot_copied[i]);
        if (c->slot_free[i]) cudaEventDestroy(c->slot_free[i]);
    }
    if (c->cst) cudaStreamDestroy(c->cst);
    for (cudaEvent_t ev : c->ring_ev)
        if (ev) cudaEventDestroy(ev);
    if (c->dstate) cudaFree(c->dstate);
    if (c->hstate) cudaFreeHost(c->hstate);
    free(c->rec);
    free(c->pinned);
    if (c->blas_ok) cublasDestroy(c->blas);
    if (c->blas_ws) cudaFree(c->blas_ws);
    cudaStreamDestroy(c->st);
    if (c->stage) cudaFreeHost(c->stage);
    free(c->pend);
    cudaGetLastError();
    free(c);
    free(p);
}

static const hllm_proc_ops k_cuda_ops = {
    "cuda", cu_alloc, cu_free, cu_copy_in, cu_copy_out, cu_weight_load, cu_weight_free,
    cu_run, cu_signal, cu_wait, cu_finish, cu_destroy, cu_step_begin, cu_step_end,
};

__global__ void k_probe(int *x) {
    if (x) *x = 1;
}

static const char *count_devices(int *n) {
    static char why[256];
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e == cudaSuccess && *n > 0) return NULL;
    int drv = 0;
    cudaDriverGetVersion(&drv);
    cudaGetLastError();
    *n = 0;
    if (e == cudaErrorInsufficientDriver) {
        if (drv == 0) snprintf(why, sizeof why, "CUDA: no NVIDIA driver found (libcuda.so.1 could not be loaded)");
        else
            snprintf(why, sizeof why, "CUDA: the NVIDIA driver is too old: it supports CUDA %d.%d, this build needs %d.%d",
                     drv / 1000, drv % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    } else if (e == cudaErrorNoDevice || e == cudaSuccess) {
        snprintf(why, sizeof why, "CUDA: no GPU found");
    } else {
        snprintf(why, sizeof why, "CUDA: cannot initialize: %s", cudaGetErrorString(e));
    }
    return why;
}

extern "C" int hllm_cuda_device_count(const char **why) {
    int n;
    const char *w = count_devices(&n);
    if (why) *why = w;
    return n;
}

extern "C" hllm_proc *hllm_proc_cuda_new(int device) {
    int n;
    const char *why = count_devices(&n);
    if (why) {
        hllm_fail("%s", why);
        return NULL;
    }
    if (device < 0 || device >= n) {
        hllm_fail("CUDA: device %d does not exist (%d found)", device, n);
        return NULL;
    }
    cuda_impl *c = (cuda_impl *)calloc(1, sizeof *c);
    hllm_proc *p = (hllm_proc *)calloc(1, sizeof *p);
    if (!c || !p) {
        free(c);
        free(p);
        hllm_fail("out of memory creating the CUDA processor");
        return NULL;
    }
    c->dev = device;
    cudaError_t e = cudaSetDevice(device);
    cu_tl_dev = device;
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&c->prop, device);
    if (e != cudaSuccess) {
        hllm_fail("CUDA: cannot use device %d: %s", device, cudaGetErrorString(e));
        cudaGetLastError();
        free(c);
        free(p);
        return NULL;
    }
    cudaFuncAttributes fa;
    e = cudaFuncGetAttributes(&fa, k_probe);
    if (e != cudaSuccess) {
        cudaGetLastError();
        hllm_fail("CUDA: this build has no kernels for %s (compute capability %d.%d): rebuild with "
                  "-DCMAKE_CUDA_ARCHITECTURES=%d%d (%s)",
                  c->prop.name, c->prop.major, c->prop.minor, c->prop.major, c->prop.minor, cudaGetErrorString(e));
        free(c);
        free(p);
        return NULL;
    }
    if (cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking) != cudaSuccess) {
        hllm_fail("CUDA: cannot create a stream on %s: %s", c->prop.name, cudaGetErrorString(cudaGetLastError()));
        free(c);
        free(p);
        return NULL;
    }
    cudaDriverEntryPointQueryResult q1 = cudaDriverEntryPointSymbolNotFound, q2 = cudaDriverEntryPointSymbolNotFound;
    void *f1 = NULL, *f2 = NULL;
    cudaGetDriverEntryPointByVersion("cuStreamWriteValue32", &f1, 12000, cudaEnableDefault, &q1);
    cudaGetDriverEntryPointByVersion("cuStreamWaitValue32", &f2, 12000, cudaEnableDefault, &q2);
    cudaGetLastError();
    c->write32 = (pfn_stream_value32)f1;
    c->wait32 = (pfn_stream_value32)f2;
    c->memops = f1 && f2 && q1 == cudaDriverEntryPointSuccess && q2 == cudaDriverEntryPointSuccess;
    cu_n_sm = c->prop.multiProcessorCount;
    {
        const char *e = getenv("HLLM_CUDA_PDL");
        cu_pdl = c->prop.major >= 9 && !(e && e[0] == '0');
        e = getenv("HLLM_CUDA_PREFETCH");
        cu_prefetch = !(e && e[0] == '0');
        e = getenv("HLLM_CUDA_PRELOAD");
        cu_preload = e && (e[0] == '0' || e[0] == '2') ? e[0] - '0' : 1;
        e = getenv("HLLM_CUDA_PROMPT_TILE"); /* elements of a dequantized prompt tile, for experiments */
        if (e && atoll(e) > 0) g_tile_elems = atoll(e);
        e = getenv("HLLM_CUDA_GEMV_WARPS");
        if (e && atoi(e) > 0) cu_gemv_warps = atoi(e);
        e = getenv("HLLM_CUDA_PREFETCH_ATTN");
        cu_prefetch_attn = !(e && e[0] == '0');
        /* HLLM_CUDA_PASS=1: every small kernel; or some of them by name (ops: norms, rope/KV,
         * SwiGLU, adds; attn: decode attention; quant: the activation quantization), to find
         * which ones gain or lose (all of them lost 3% on llama3-8b q4_0, H100, session 14) */
        e = getenv("HLLM_CUDA_PASS");
        const bool all = e && !strcmp(e, "1");
        const bool p_ops = all || (e && strstr(e, "ops")), p_attn = all || (e && strstr(e, "attn")),
                   p_quant = all || (e && strstr(e, "quant"));
        if (!(cu_pass_set_ops(p_ops) && cu_pass_set_attn(p_attn) && cu_pass_set_matmul(p_quant))) {
            cudaGetLastError();
            if (p_ops || p_attn || p_quant)
                fprintf(stderr, "hllm: HLLM_CUDA_PASS=%s ignored: its flags could not be set on the device\n", e);
        }
        cu_steps_configure();
    }
    /* the step state of captured decode steps */
    bool ok = cudaMalloc((void **)&c->dstate, sizeof(cu_dstate)) == cudaSuccess &&
              cudaHostAlloc((void **)&c->hstate, CU_RING * sizeof(cu_dstate), cudaHostAllocDefault) == cudaSuccess;
    for (int i = 0; ok && i < CU_RING; i++)
        ok = cudaEventCreateWithFlags(&c->ring_ev[i], cudaEventDisableTiming) == cudaSuccess;
    if (!ok || cudaMemsetAsync(c->dstate, 0, sizeof(cu_dstate), c->st) != cudaSuccess ||
        cu_handoff_preload(c->st, (uint32_t *)c->dstate)) {
        hllm_fail("CUDA: cannot set up the step state on %s: %s", c->prop.name, cudaGetErrorString(cudaGetLastError()));
        p->impl = c;
        cu_destroy(p);
        return NULL;
    }
    snprintf(c->name, sizeof c->name, "cuda");
    p->ops = &k_cuda_ops;
    p->name = c->name;
    p->n_threads = 0;
    p->impl = c;
    return p;
}
