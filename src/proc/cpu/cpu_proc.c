/* The CPU processor: ops run on a persistent thread pool before run() returns, except decode
 * matmuls of one input the caller issues in a row (q/k/v, gate/up; marked `more` but the last):
 * those are held until the last one (or the next op, signal, wait, copy or finish) and run as one
 * parallel region, so that their rows are shared out together and the threads wait for the
 * slowest once instead of once per matrix. */
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

#define CPU_GROUP_MAX 4

typedef struct {
    hllm_pool *pool;
    hllm_op held[CPU_GROUP_MAX]; /* decode matmuls of one input, not run yet */
    int n_held;
    int held_err;         /* a held group failed when a call that cannot report it ran it */
    void *act_q;          /* activations quantized for the current matmul */
    size_t act_q_size;
    float *part;          /* decode matmuls split by columns: each column piece's partial sums */
    size_t part_size;
    float *scratch;       /* attention scores: one n_ctx row per thread */
    size_t scratch_size;
    int n_threads;
} cpu_impl;

/* One matmul of a parallel region: how its rows are shared out. */
typedef struct {
    const hllm_op *op;
    int64_t lo, hi;        /* rows, local to the weight */
    int64_t chunk;         /* rows per unit (rows only) */
    int ksplit;            /* one token: column pieces per row stripe (0: rows only) */
    int64_t kb;            /* split: the kernel's column blocks per row */
    float *part;           /* split: each piece's partial sums */
    int64_t units;
} mm_item;

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
    mm_item mm[CPU_GROUP_MAX]; /* MATMUL: the matrices (one input), their units in turn */
    int n_mm;
    int64_t mm_units;
} cpu_task;

static int run_held(cpu_impl *cpu);
static void settle(cpu_impl *cpu);

static void *cpu_alloc(hllm_proc *p, size_t bytes, hllm_mem_kind kind) {
    (void)p;
    (void)kind;
    void *ptr = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!ptr) hllm_fail("out of memory: the CPU processor could not allocate %zu bytes", bytes);
    return ptr;
}

static void cpu_free(hllm_proc *p, void *ptr) {
    settle(p->impl); /* a held matmul may use it */
    free(ptr);
}

static int cpu_copy(hllm_proc *p, void *dst, const void *src, size_t bytes) {
    if (run_held(p->impl)) return -1;
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
    settle(p->impl); /* a held matmul may read it */
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

/* Unit u of matmul item it: a (stripe, column piece) of a split, else a chunk of rows. */
static void mm_unit(const mm_item *it, int64_t u, const char *xq) {
    const hllm_op *op = it->op;
    const hllm_pweight *w = op->w;
    if (it->ksplit) { /* partial sums apart; added after the region's barrier */
        const int s = it->ksplit;
        const int64_t r0 = it->lo + u / s * HLLM_CPU_STRIPE_ROWS, j = u % s;
        const int64_t r1 = r0 + HLLM_CPU_STRIPE_ROWS < it->hi ? r0 + HLLM_CPU_STRIPE_ROWS : it->hi;
        hllm_cpu_gemv_partial(&w->mat, r0, r1, it->kb * j / s, it->kb * (j + 1) / s, xq, it->part + j * it->hi);
        return;
    }
    const int64_t r0 = it->lo + u * it->chunk, r1 = r0 + it->chunk < it->hi ? r0 + it->chunk : it->hi;
    float *y = op->dst + w->row0;
    hllm_cpu_matmul_rows(&w->mat, r0, r1, xq, op->n_tok, y, op->ld_dst);
    if (op->bias)
        for (int t = 0; t < op->n_tok; t++)
            for (int64_t r = r0; r < r1; r++) y[t * op->ld_dst + r] += op->bias->vec[w->row0 + r];
}

static void matmul_task(void *arg, int ith, int nth) {
    cpu_task *tk = arg;
    const hllm_op *op = tk->mm[0].op; /* every item has its input and kind of matrix */
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
    /* units taken dynamically across the items, so a slow thread does not hold up the rest */
    bool split = false;
    for (int j = 0; j < tk->n_mm; j++) split |= tk->mm[j].ksplit > 0;
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(&tk->next, 1, memory_order_relaxed);
        if (u >= tk->mm_units) break;
        int j = 0;
        while (u >= tk->mm[j].units) u -= tk->mm[j++].units;
        mm_unit(&tk->mm[j], u, xq);
    }
    if (!split) return;
    /* split items: every row's pieces added in a fixed order (the same result whoever ran
     * what); rows are written only after the barrier, so an output may overwrite its input */
    hllm_pool_barrier(tk->cpu->pool);
    for (int j = 0; j < tk->n_mm; j++) {
        const mm_item *it = &tk->mm[j];
        if (!it->ksplit) continue;
        int64_t a, b;
        split_even(it->hi - it->lo, ith, nth, &a, &b);
        const hllm_op *o = it->op;
        float *y = o->dst + o->w->row0;
        for (int64_t r = it->lo + a; r < it->lo + b; r++) {
            float v = it->part[r];
            for (int k = 1; k < it->ksplit; k++) v += it->part[k * it->hi + r];
            y[r] = o->bias ? v + o->bias->vec[o->w->row0 + r] : v;
        }
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
#elif defined(__aarch64__)
        if (tk->fast) {
            hllm_cpu_attention_items_neon(op, i0, i1);
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

/* Ops too small to share out: a region wakes every worker and waits for the last one, which in a
 * split decode (a dozen small ops a layer) costs more than the op. The calling thread runs them
 * alone (HLLM_CPU_ALONE=0: every op on the pool, for comparison). */
static bool run_alone(const hllm_op *op) {
    static int off = -1;
    if (off < 0) off = getenv("HLLM_CPU_ALONE") && getenv("HLLM_CPU_ALONE")[0] == '0';
    if (off) return false;
    switch (op->kind) {
    case HLLM_OP_RMSNORM: return op->n_rows * op->dim <= 16384;
    case HLLM_OP_ROPE:
    case HLLM_OP_KV_STORE: return op->n_tok == 1;
    case HLLM_OP_ADD:
    case HLLM_OP_SWIGLU: return (int64_t)op->n_tok * op->dim <= 8192;
    default: return false;
    }
}

/* Whether a matmul's output overlaps its input. */
static bool mm_in_place(const hllm_op *o) {
    const float *s0 = o->src, *s1 = o->src + (int64_t)(o->n_tok - 1) * o->ld_src + o->w->mat.cols;
    const float *d0 = o->dst, *d1 = o->dst + (int64_t)(o->n_tok - 1) * o->ld_dst + o->w->row0 + o->w->mat.rows;
    return d0 < s1 && s0 < d1;
}

/* Shares out the rows of the n matmuls ops (one input) as the units of one region. */
static int mm_prepare(cpu_impl *cpu, cpu_task *tk, const hllm_op *ops, int n) {
    const hllm_op *op = &ops[0];
    const hllm_cpu_mat *m0 = &op->w->mat;
    tk->q_row_bytes = (hllm_cpu_act_row_bytes(m0) + 63) / 64 * 64;
    /* decode: one quantized row per thread */
    const int n_rows = op->n_tok == 1 ? cpu->n_threads : op->n_tok;
    if (ensure(&cpu->act_q, &cpu->act_q_size, tk->q_row_bytes * (size_t)n_rows)) return -1;
    size_t part = 0;
    tk->n_mm = n;
    tk->mm_units = 0;
    for (int j = 0; j < n; j++) {
        const hllm_op *o = &ops[j];
        const hllm_cpu_mat *m = &o->w->mat;
        mm_item *it = &tk->mm[j];
        *it = (mm_item){.op = o, .lo = o->r0 - o->w->row0, .hi = o->r1 - o->w->row0};
        const int64_t rows = o->r1 - o->r0;
        tk->in_place |= mm_in_place(o);
        const int pieces = o->n_tok == 1 ? decode_col_pieces(m, it->lo, rows, cpu->n_threads, &it->kb) : 0;
        if (pieces > 1) {
            it->ksplit = pieces;
            part += (size_t)pieces * (size_t)it->hi;
            it->units = (rows + HLLM_CPU_STRIPE_ROWS - 1) / HLLM_CPU_STRIPE_ROWS * pieces;
        } else {
            /* ~8 chunks per thread (4 in decode), multiples of 16 rows (the kernels'
             * interleave); decode chunks are whole 64-row stripes, so the kernels run 4-group
             * tiles over whole lines, unless that leaves threads idle and the columns cannot be
             * split instead */
            const int64_t align = o->n_tok == 1 && (pieces < 0 || rows >= (int64_t)cpu->n_threads * 128) ? 64 : 16;
            int64_t chunk = rows / ((int64_t)cpu->n_threads * (o->n_tok == 1 ? 4 : 8));
            chunk = (chunk + align - 1) / align * align;
            it->chunk = chunk < align ? align : chunk;
            it->units = (rows + it->chunk - 1) / it->chunk;
        }
        tk->mm_units += it->units;
    }
    if (part) {
        if (ensure((void **)&cpu->part, &cpu->part_size, part * sizeof(float))) return -1;
        float *p = cpu->part;
        for (int j = 0; j < n; j++)
            if (tk->mm[j].ksplit) {
                tk->mm[j].part = p;
                p += (size_t)tk->mm[j].ksplit * (size_t)tk->mm[j].hi;
            }
    }
    return 0;
}

/* A decode matmul that may run in one region with others of the same input (HLLM_CPU_GROUP=0:
 * each on its own, for comparison). */
static bool groupable(const hllm_op *op) {
    static int off = -1;
    if (off < 0) off = getenv("HLLM_CPU_GROUP") && getenv("HLLM_CPU_GROUP")[0] == '0';
    return !off && op->kind == HLLM_OP_MATMUL && op->n_tok == 1 && op->w && !op->w->vec && !mm_in_place(op);
}

/* b runs in a's region: the same input and kind of matrix, outputs apart from the inputs. */
static bool joins(const hllm_op *a, const hllm_op *b) {
    const hllm_cpu_mat *x = &a->w->mat, *y = &b->w->mat;
    if (b->src != a->src || x->type != y->type || x->cols != y->cols || x->packed_kind != y->packed_kind) return false;
    const float *d0 = b->dst, *d1 = b->dst + b->w->row0 + y->rows;
    const float *e0 = a->dst, *e1 = a->dst + a->w->row0 + x->rows;
    return !(d0 < e1 && e0 < d1);
}

/* Runs the held matmuls, if any, as one region. */
static int run_held(cpu_impl *cpu) {
    if (!cpu->n_held) return 0;
    cpu_task tk = {.cpu = cpu};
    atomic_init(&tk.next, 0);
    const int n = cpu->n_held;
    cpu->n_held = 0;
    if (mm_prepare(cpu, &tk, cpu->held, n)) return -1;
    hllm_pool_run(cpu->pool, matmul_task, &tk);
    return 0;
}

/* For calls that cannot report an error: run_held's failure shows at the next run or finish. */
static void settle(cpu_impl *cpu) {
    if (run_held(cpu)) cpu->held_err = 1;
}

static int cpu_run(hllm_proc *p, const hllm_op *op) {
    cpu_impl *cpu = p->impl;
    if (cpu->held_err) {
        cpu->held_err = 0;
        return -1;
    }
    const bool grp = groupable(op);
    if (cpu->n_held && !(grp && joins(&cpu->held[0], op)) && run_held(cpu)) return -1;
    if (grp && (op->more || cpu->n_held)) {
        cpu->held[cpu->n_held++] = *op;
        return op->more && cpu->n_held < CPU_GROUP_MAX ? 0 : run_held(cpu);
    }
    cpu_task tk = {.op = op, .cpu = cpu, .chunk = 1};
    atomic_init(&tk.next, 0);
    hllm_pool_fn fn = NULL;
    switch (op->kind) {
    case HLLM_OP_EMBED: fn = embed_task; break;
    case HLLM_OP_RMSNORM: fn = rmsnorm_task; break;
    case HLLM_OP_MATMUL:
        if (mm_prepare(cpu, &tk, op, 1)) return -1;
        fn = matmul_task;
        break;
    case HLLM_OP_ROPE: fn = rope_task; break;
    case HLLM_OP_KV_STORE: fn = kv_store_task; break;
    case HLLM_OP_ATTENTION: {
        size_t need = (size_t)cpu->n_threads * (size_t)op->kv->n_ctx * sizeof(float);
        if (ensure((void **)&cpu->scratch, &cpu->scratch_size, need)) return -1;
        int64_t items = (int64_t)op->n_tok * (op->h1 - op->h0);
#if defined(__x86_64__) || defined(__aarch64__)
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
    if (run_alone(op)) fn(&tk, 0, 1);
    else hllm_pool_run(cpu->pool, fn, &tk);
    return 0;
}

static void cpu_signal(hllm_proc *p, volatile uint32_t *flag, uint32_t value) {
    settle(p->impl);
    atomic_thread_fence(memory_order_release);
    __atomic_store_n(flag, value, __ATOMIC_RELEASE);
}

static void cpu_wait(hllm_proc *p, volatile uint32_t *flag, uint32_t value) {
    settle(p->impl); /* the held work runs while the other processor finishes */
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < value) cpu_relax();
}

static int cpu_finish(hllm_proc *p) {
    cpu_impl *cpu = p->impl;
    const int rc = run_held(cpu) || cpu->held_err ? -1 : 0;
    cpu->held_err = 0;
    return rc;
}

static void cpu_destroy(hllm_proc *p) {
    cpu_impl *cpu = p->impl;
    cpu->n_held = 0;
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
