/* The CPU processor: ops run on a persistent thread pool before run() returns. */
#include "proc/proc.h"
#include "proc/cpu/cpu_matmul.h"
#include "proc/cpu/cpu_ops.h"
#include "core/error.h"
#include "core/quant.h"
#include "core/threadpool.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/spin.h"
#define cpu_relax() hllm_spin_relax()

struct hllm_pweight {
    hllm_cpu_mat mat;  /* matrices */
    float *vec;        /* vectors (norms, biases, rope factors), dequantized to f32 */
    int64_t row0;      /* first global row held */
};

typedef struct {
    hllm_pool *pool;
    void *act_q;          /* activations quantized for the current matmul */
    size_t act_q_size;
    float *part;          /* decode matmuls split by columns: each column piece's partial sums */
    size_t part_size;
    float *scratch;       /* attention scores: one n_ctx row per thread */
    size_t scratch_size;
    int n_threads;
} cpu_impl;

/* State of one parallel op, shared by the pool's threads. */
typedef struct {
    const hllm_op *op;
    cpu_impl *cpu;
    atomic_llong next;     /* dynamic chunk counter */
    int64_t chunk;
    size_t q_row_bytes;
    int64_t n_items;       /* ATTENTION: work items */
    bool fast;             /* ATTENTION: SIMD path */
    bool in_place;         /* MATMUL: dst overlaps src */
    int ksplit;            /* MATMUL, one token: column pieces per row stripe (0: rows only) */
    int64_t kb;            /* MATMUL, split: the kernel's column blocks per row */
} cpu_task;

static void *cpu_alloc(hllm_proc *p, size_t bytes, hllm_mem_kind kind) {
    (void)p;
    (void)kind;
    void *ptr = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!ptr) hllm_fail("out of memory: the CPU processor could not allocate %zu bytes", bytes);
    return ptr;
}

static void cpu_free(hllm_proc *p, void *ptr) {
    (void)p;
    free(ptr);
}

static int cpu_copy(hllm_proc *p, void *dst, const void *src, size_t bytes) {
    (void)p;
    memcpy(dst, src, bytes);
    return 0;
}

/* The file's rows are not dropped (madvise) after repacking: this processor cannot tell a
 * file mapping from caller memory (anonymous pages would read back as zeros), the embedding
 * op reads raw rows of a matrix that may also be repacked (tied output), and the mapping's
 * clean pages are reclaimable page cache anyway. */
static hllm_pweight *cpu_weight_load(hllm_proc *p, const hllm_tensor *t, int64_t r0, int64_t r1, hllm_mem_kind mem) {
    (void)mem;
    hllm_pweight *w = calloc(1, sizeof *w);
    if (!w) {
        hllm_fail("out of memory loading %s", t->name);
        return NULL;
    }
    w->row0 = r0;
    if (t->rows == 1) { /* a vector: keep it as f32 */
        w->vec = malloc((size_t)t->cols * sizeof(float));
        if (!w->vec) {
            free(w);
            hllm_fail("out of memory loading %s", t->name);
            return NULL;
        }
        hllm_dequantize_row(t->type, t->data, w->vec, t->cols);
        return w;
    }
    const char *base = (const char *)t->data + (size_t)r0 * t->row_bytes;
    if (hllm_cpu_mat_init_pool(&w->mat, t->type, r1 - r0, t->cols, base, ((cpu_impl *)p->impl)->pool) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

static void cpu_weight_free(hllm_proc *p, hllm_pweight *w) {
    (void)p;
    if (!w) return;
    if (w->vec) free(w->vec);
    else hllm_cpu_mat_free(&w->mat);
    free(w);
}

/* Splits [0, n) evenly: thread ith gets [*a, *b). */
static void split_even(int64_t n, int ith, int nth, int64_t *a, int64_t *b) {
    *a = n * ith / nth;
    *b = n * (ith + 1) / nth;
}

static void matmul_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    const hllm_op *op = tk->op;
    const hllm_pweight *w = op->w;
    const char *xq = tk->cpu->act_q;
    if (op->n_tok == 1 && nth > 1 && !tk->in_place) {
        /* decode: each thread quantizes the (small) row into its own buffer; no barrier (not
         * when the output overwrites the input: a thread could then read rows already written) */
        xq += (size_t)ith * tk->q_row_bytes;
        hllm_cpu_quantize_act(&w->mat, op->src, (char *)xq);
    } else {
        /* quantize the activations once, tokens split across threads */
        int64_t a, b;
        split_even(op->n_tok, ith, nth, &a, &b);
        for (int64_t t = a; t < b; t++)
            hllm_cpu_quantize_act(&w->mat, op->src + t * op->ld_src, (char *)tk->cpu->act_q + t * tk->q_row_bytes);
        hllm_pool_barrier(tk->cpu->pool);
    }
    const int64_t lo = op->r0 - w->row0, hi = op->r1 - w->row0;
    if (tk->ksplit) {
        /* 2'. (stripe, column piece) units taken dynamically, each piece's partial sums apart,
         * then every row's pieces added in a fixed order (the same result whoever ran what);
         * rows are written only after the barrier, so an output may overwrite its input */
        const int s = tk->ksplit;
        const int64_t units = (hi - lo + HLLM_CPU_STRIPE_ROWS - 1) / HLLM_CPU_STRIPE_ROWS * s;
        float *part = tk->cpu->part;
        for (;;) {
            const int64_t u = atomic_fetch_add_explicit(&tk->next, 1, memory_order_relaxed);
            if (u >= units) break;
            const int64_t r0 = lo + u / s * HLLM_CPU_STRIPE_ROWS, j = u % s;
            const int64_t r1 = r0 + HLLM_CPU_STRIPE_ROWS < hi ? r0 + HLLM_CPU_STRIPE_ROWS : hi;
            hllm_cpu_gemv_partial(&w->mat, r0, r1, tk->kb * j / s, tk->kb * (j + 1) / s, xq, part + j * hi);
        }
        hllm_pool_barrier(tk->cpu->pool);
        int64_t a, b;
        split_even(hi - lo, ith, nth, &a, &b);
        float *y = op->dst + w->row0;
        for (int64_t r = lo + a; r < lo + b; r++) {
            float v = part[r];
            for (int j = 1; j < s; j++) v += part[j * hi + r];
            y[r] = op->bias ? v + op->bias->vec[w->row0 + r] : v;
        }
        return;
    }
    /* 2. rows in chunks taken dynamically, so a slow thread does not hold up the rest */
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&tk->next, 1, memory_order_relaxed);
        int64_t r0 = lo + c * tk->chunk;
        if (r0 >= hi) break;
        int64_t r1 = r0 + tk->chunk < hi ? r0 + tk->chunk : hi;
        float *y = op->dst + w->row0;
        hllm_cpu_matmul_rows(&w->mat, r0, r1, xq, op->n_tok, y, op->ld_dst);
        if (op->bias)
            for (int t = 0; t < op->n_tok; t++)
                for (int64_t r = r0; r < r1; r++) y[t * op->ld_dst + r] += op->bias->vec[w->row0 + r];
    }
}

static void embed_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    const hllm_op *op = tk->op;
    const hllm_cpu_mat *m = &op->w->mat;
    int64_t a, b;
    split_even(op->n_tok, ith, nth, &a, &b);
    for (int64_t t = a; t < b; t++)
        hllm_dequantize_row(m->type, (const char *)m->data + (size_t)op->tokens[t] * m->row_bytes,
                            op->dst + t * op->ld_dst, m->cols);
}

static void rmsnorm_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    int64_t a, b;
    split_even(tk->op->n_rows, ith, nth, &a, &b);
    hllm_cpu_rmsnorm_rows(tk->op, tk->op->w->vec, a, b);
}

static void rope_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    int64_t a, b;
    split_even(tk->op->n_tok, ith, nth, &a, &b);
    hllm_cpu_rope_tokens(tk->op, tk->op->freq_factors ? tk->op->freq_factors->vec : NULL, (int)a, (int)b);
}

static void kv_store_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    int64_t a, b;
    split_even(tk->op->n_tok, ith, nth, &a, &b);
    hllm_cpu_kv_store_tokens(tk->op, (int)a, (int)b);
}

static void attention_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    const hllm_op *op = tk->op;
    float *scratch = tk->cpu->scratch + (size_t)ith * (size_t)op->kv->n_ctx;
    /* later tokens see more keys: dynamic chunks balance the triangle */
    for (;;) {
        int64_t c = atomic_fetch_add_explicit(&tk->next, 1, memory_order_relaxed);
        int64_t i0 = c * tk->chunk;
        if (i0 >= tk->n_items) break;
        int64_t i1 = i0 + tk->chunk < tk->n_items ? i0 + tk->chunk : tk->n_items;
#if defined(__x86_64__)
        if (tk->fast) {
            hllm_cpu_attention_items_avx2(op, i0, i1);
            continue;
        }
#endif
        hllm_cpu_attention_items(op, i0, i1, scratch);
    }
    (void)nth;
}

/* Tokens [t0, t1) of a SWIGLU, columns [c0, c1). */
static void swiglu_part(const hllm_op *op, int64_t t0, int64_t t1, int64_t c0, int64_t c1) {
#if defined(__x86_64__)
    if (hllm_cpu_isa() == HLLM_ISA_AVX512) {
        for (int64_t t = t0; t < t1; t++)
            hllm_cpu_swiglu_row_avx512(op->src + t * op->ld_src + c0, op->src2 + t * op->ld_src2 + c0,
                                       op->dst + t * op->ld_dst + c0, c1 - c0);
        return;
    }
#endif
    hllm_op sub = *op;
    sub.dst += c0;
    sub.src += c0;
    sub.src2 += c0;
    sub.dim = c1 - c0;
    hllm_cpu_swiglu_tokens(&sub, (int)t0, (int)t1);
}

static void swiglu_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    int64_t a, b;
    if (tk->op->n_tok == 1) { /* decode: split the columns instead */
        split_even(tk->op->dim, ith, nth, &a, &b);
        swiglu_part(tk->op, 0, 1, a, b);
        return;
    }
    split_even(tk->op->n_tok, ith, nth, &a, &b);
    swiglu_part(tk->op, a, b, 0, tk->op->dim);
}

static void add_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    int64_t a, b;
    split_even(tk->op->n_tok, ith, nth, &a, &b);
    hllm_cpu_add_tokens(tk->op, (int)a, (int)b);
}

static int ensure(void **buf, size_t *size, size_t need) {
    if (need <= *size) return 0;
    free(*buf);
    *buf = aligned_alloc(64, (need + 63) / 64 * 64);
    *size = *buf ? need : 0;
    if (!*buf) return hllm_fail("out of memory: CPU scratch of %zu bytes", need);
    return 0;
}

/* Column pieces per row stripe for a one-token product of `rows` rows starting at local row lo
 * (*kb: the kernel's column blocks a row, when it splits); -1: whole stripes already keep the
 * threads evenly busy; 0: no column split (no kernel).
 * Threads taking whole 64-row stripes read whole lines in long runs, but a processor's slice of
 * a cut matrix can be a few stripes per thread (1475 rows of ffn_down: 24 stripes on 16
 * threads, half the threads taking 2 and half 1, so the matmul runs at 75% of the bandwidth);
 * cutting each stripe's columns into pieces evens the work out. */
static int decode_col_pieces(const hllm_cpu_mat *m, int64_t lo, int64_t rows, int nth, int64_t *kb_out) {
    static int off = -1; /* HLLM_CPU_COLSPLIT=0: rows only (experiments) */
    if (off < 0) off = getenv("HLLM_CPU_COLSPLIT") && getenv("HLLM_CPU_COLSPLIT")[0] == '0';
    if (off || nth < 2 || lo % HLLM_CPU_STRIPE_ROWS) return 0;
    const int64_t kb = *kb_out = hllm_cpu_gemv_kblocks(m);
    if (kb < 8) return 0;
    const int64_t stripes = (rows + HLLM_CPU_STRIPE_ROWS - 1) / HLLM_CPU_STRIPE_ROWS;
    /* the busiest thread's units against the average */
    double best = (double)((stripes + nth - 1) / nth) * nth / (double)stripes;
    if (best <= 1.1) return -1;
    int pick = 0;
    for (int s = 2; s <= 8 && kb / s >= 4; s++) {
        const int64_t units = stripes * s;
        const double imb = (double)((units + nth - 1) / nth) * nth / (double)units;
        if (imb < best - 0.02) best = imb, pick = s;
        if (best <= 1.1) break;
    }
    return pick ? pick : -1;
}

static int cpu_run(hllm_proc *p, const hllm_op *op) {
    cpu_impl *cpu = p->impl;
    cpu_task tk = {.op = op, .cpu = cpu, .chunk = 1};
    atomic_init(&tk.next, 0);
    hllm_pool_fn fn = NULL;
    switch (op->kind) {
    case HLLM_OP_EMBED: fn = embed_task; break;
    case HLLM_OP_RMSNORM: fn = rmsnorm_task; break;
    case HLLM_OP_MATMUL: {
        const hllm_cpu_mat *m = &op->w->mat;
        tk.q_row_bytes = (hllm_cpu_act_row_bytes(m) + 63) / 64 * 64;
        /* decode: one quantized row per thread */
        const int n_rows = op->n_tok == 1 ? cpu->n_threads : op->n_tok;
        if (ensure(&cpu->act_q, &cpu->act_q_size, tk.q_row_bytes * (size_t)n_rows)) return -1;
        int64_t rows = op->r1 - op->r0;
        {
            const float *s0 = op->src, *s1 = op->src + (int64_t)(op->n_tok - 1) * op->ld_src + m->cols;
            const float *d0 = op->dst, *d1 = op->dst + (int64_t)(op->n_tok - 1) * op->ld_dst + op->w->row0 + m->rows;
            tk.in_place = d0 < s1 && s0 < d1;
        }
        const int pieces = op->n_tok == 1 ? decode_col_pieces(m, op->r0 - op->w->row0, rows, cpu->n_threads, &tk.kb) : 0;
        if (pieces > 1) {
            tk.ksplit = pieces;
            if (ensure((void **)&cpu->part, &cpu->part_size, (size_t)pieces * (size_t)(op->r1 - op->w->row0) * sizeof(float)))
                return -1;
        }
        /* ~8 chunks per thread (4 in decode), multiples of 16 rows (the kernels' interleave);
         * decode chunks are whole 64-row stripes, so the kernels run 4-group tiles over whole
         * lines, unless that leaves threads idle and the columns cannot be split instead */
        const int64_t align = op->n_tok == 1 && (pieces < 0 || rows >= (int64_t)cpu->n_threads * 128) ? 64 : 16;
        int64_t chunk = rows / ((int64_t)cpu->n_threads * (op->n_tok == 1 ? 4 : 8));
        chunk = (chunk + align - 1) / align * align;
        tk.chunk = chunk < align ? align : chunk;
        fn = matmul_task;
        break;
    }
    case HLLM_OP_ROPE: fn = rope_task; break;
    case HLLM_OP_KV_STORE: fn = kv_store_task; break;
    case HLLM_OP_ATTENTION: {
        size_t need = (size_t)cpu->n_threads * (size_t)op->kv->n_ctx * sizeof(float);
        if (ensure((void **)&cpu->scratch, &cpu->scratch_size, need)) return -1;
        int64_t items = (int64_t)op->n_tok * (op->h1 - op->h0);
#if defined(__x86_64__)
        /* the SIMD path takes (token, kv head) items: a GQA group shares each K/V load */
        tk.fast = hllm_cpu_isa() != HLLM_ISA_SCALAR && hllm_cpu_attention_fast_ok(op);
        if (tk.fast) items /= op->n_head / op->n_head_kv;
#endif
        tk.n_items = items;
        tk.chunk = items / ((int64_t)cpu->n_threads * 8);
        if (tk.chunk < 1) tk.chunk = 1;
        fn = attention_task;
        break;
    }
    case HLLM_OP_SWIGLU: fn = swiglu_task; break;
    case HLLM_OP_ADD: fn = add_task; break;
    default: return hllm_fail("CPU processor: unknown op %d", (int)op->kind);
    }
    hllm_pool_run(cpu->pool, fn, &tk);
    return 0;
}

static void cpu_signal(hllm_proc *p, volatile uint32_t *flag, uint32_t value) {
    (void)p;
    atomic_thread_fence(memory_order_release);
    __atomic_store_n(flag, value, __ATOMIC_RELEASE);
}

static void cpu_wait(hllm_proc *p, volatile uint32_t *flag, uint32_t value) {
    (void)p;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < value) cpu_relax();
}

static int cpu_finish(hllm_proc *p) {
    (void)p;
    return 0;
}

static void cpu_destroy(hllm_proc *p) {
    cpu_impl *cpu = p->impl;
    hllm_pool_free(cpu->pool);
    free(cpu->act_q);
    free(cpu->scratch);
    free(cpu->part);
    free(cpu);
    free(p);
}

static const hllm_proc_ops k_cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
    .weight_load = cpu_weight_load,
    .weight_free = cpu_weight_free,
    .run = cpu_run,
    .signal = cpu_signal,
    .wait = cpu_wait,
    .finish = cpu_finish,
    .destroy = cpu_destroy,
};

hllm_proc *hllm_proc_cpu_new(int n_threads) {
    if (n_threads <= 0) n_threads = hllm_physical_cores();
    hllm_proc *p = calloc(1, sizeof *p);
    cpu_impl *cpu = calloc(1, sizeof *cpu);
    if (!p || !cpu) {
        free(p);
        free(cpu);
        hllm_fail("out of memory creating the CPU processor");
        return NULL;
    }
    cpu->pool = hllm_pool_new(n_threads);
    if (!cpu->pool) {
        free(p);
        free(cpu);
        return NULL;
    }
    cpu->n_threads = n_threads;
    p->ops = &k_cpu_ops;
    p->name = "cpu";
    p->n_threads = n_threads;
    p->impl = cpu;
    return p;
}
