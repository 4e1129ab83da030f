#include "queue_proc.h"
#include "core/error.h"
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { QA_OP, QA_COPY, QA_SIGNAL, QA_WAIT } qa_kind;

typedef struct {
    qa_kind kind;
    hllm_op op;
    void *dst;
    const void *src;
    size_t bytes;
    volatile uint32_t *flag;
    uint32_t value;
} qaction;

typedef struct {
    hllm_proc *inner;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    qaction *q;
    size_t head, tail, cap;
    bool quit;
    int err;
    unsigned seed;
    int max_delay_us;
    /* weights' own copies, as a device keeps (the executor frees a column cut's rows once a
     * device has loaded them; the inner CPU reads its weights in place unless it repacks them) */
    struct qweight { hllm_pweight *w; void *copy; } *wts;
    int n_wts, cap_wts;
    /* held steps (test_queue_proc_set_held), as the CUDA processor's captured graphs: the
     * actions of a step are collected and queued at step_end (mode 2: those before its first
     * wait after work of its own, when that wait is issued); a shape's first step runs as issued */
    int held_mode;
    bool holding, own_work, launched;
    qaction *pend;
    size_t n_pend, cap_pend;
    uint64_t shapes_seen; /* bit n: a step of n tokens ran */
    long n_held, n_early;
} qimpl;

static qimpl *impl_of(hllm_proc *p) { return p->impl; }

static void execute(qimpl *c, const qaction *a) {
    switch (a->kind) {
    case QA_OP: /* done before the next action (the inner CPU may hold a matmul until finish) */
        if (c->inner->ops->run(c->inner, &a->op) || c->inner->ops->finish(c->inner)) c->err = -1;
        break;
    case QA_COPY: memcpy(a->dst, a->src, a->bytes); break;
    case QA_SIGNAL: __atomic_store_n(a->flag, a->value, __ATOMIC_RELEASE); break;
    case QA_WAIT:
        while (__atomic_load_n(a->flag, __ATOMIC_ACQUIRE) < a->value) sched_yield();
        break;
    }
}

static void *worker(void *arg) {
    qimpl *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->head == c->tail && !c->quit) pthread_cond_wait(&c->work, &c->mu);
        if (c->head == c->tail) break;
        qaction a = c->q[c->head];
        pthread_mutex_unlock(&c->mu);
        if (c->max_delay_us > 0) usleep((useconds_t)(rand_r(&c->seed) % (unsigned)(c->max_delay_us + 1)));
        execute(c, &a);
        pthread_mutex_lock(&c->mu);
        if (++c->head == c->tail) {
            c->head = c->tail = 0;
            pthread_cond_broadcast(&c->idle);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int enqueue(qimpl *c, const qaction *a) {
    pthread_mutex_lock(&c->mu);
    if (c->tail == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        qaction *n = realloc(c->q, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&c->mu);
            return hllm_fail("queue processor: out of memory");
        }
        c->q = n;
        c->cap = cap;
    }
    c->q[c->tail++] = *a;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int launch_pending(qimpl *c) {
    for (size_t i = 0; i < c->n_pend; i++)
        if (enqueue(c, &c->pend[i])) return -1;
    c->n_pend = 0;
    return 0;
}

static int push(qimpl *c, const qaction *a) {
    if (!c->holding) return enqueue(c, a);
    if (a->kind == QA_WAIT && c->held_mode == 2 && c->own_work && !c->launched) {
        if (launch_pending(c)) return -1;
        c->launched = true;
        c->n_early++;
    }
    if (a->kind != QA_WAIT) c->own_work = true;
    if (c->n_pend == c->cap_pend) {
        size_t cap = c->cap_pend ? 2 * c->cap_pend : 256;
        qaction *n = realloc(c->pend, cap * sizeof *n);
        if (!n) return hllm_fail("queue processor: out of memory");
        c->pend = n;
        c->cap_pend = cap;
    }
    c->pend[c->n_pend++] = *a;
    return 0;
}

static int q_step_begin(hllm_proc *p, uint64_t shape, int pos0, const int32_t *tokens, int n_tok) {
    qimpl *c = impl_of(p);
    (void)pos0, (void)tokens;
    c->holding = c->own_work = c->launched = false;
    c->n_pend = 0;
    if (!c->held_mode || n_tok < 1 || n_tok > 8 || shape > 63) return 0;
    const uint64_t bit = 1ull << shape;
    if (!(c->shapes_seen & bit)) { /* the first step of a shape runs as issued (CUDA: recorded) */
        c->shapes_seen |= bit;
        return 0;
    }
    c->holding = true;
    c->n_held++;
    return 1;
}

static int q_step_end(hllm_proc *p) {
    qimpl *c = impl_of(p);
    const bool was = c->holding;
    c->holding = false;
    return was ? launch_pending(c) : 0;
}

static void *q_alloc(hllm_proc *p, size_t bytes, hllm_mem_kind kind) {
    hllm_proc *in = impl_of(p)->inner;
    return in->ops->alloc(in, bytes, kind);
}
static void q_free(hllm_proc *p, void *ptr) {
    hllm_proc *in = impl_of(p)->inner;
    in->ops->free(in, ptr);
}
static int q_copy(hllm_proc *p, void *dst, const void *src, size_t bytes) {
    qaction a = {.kind = QA_COPY, .dst = dst, .src = src, .bytes = bytes};
    return push(impl_of(p), &a);
}
static hllm_pweight *q_weight_load(hllm_proc *p, const hllm_tensor *t, int64_t r0, int64_t r1, hllm_mem_kind mem) {
    qimpl *c = impl_of(p);
    hllm_proc *in = c->inner;
    if (c->n_wts == c->cap_wts) {
        int cap = c->cap_wts ? 2 * c->cap_wts : 64;
        struct qweight *n = realloc(c->wts, (size_t)cap * sizeof *n);
        if (!n) {
            hllm_fail("queue processor: out of memory");
            return NULL;
        }
        c->wts = n;
        c->cap_wts = cap;
    }
    /* rows [r0, r1) at their own offsets in a buffer of r1 rows (the inner CPU reads from row r0) */
    hllm_tensor view = *t;
    void *copy = malloc((size_t)r1 * t->row_bytes + 1);
    if (!copy) {
        hllm_fail("queue processor: out of memory");
        return NULL;
    }
    memcpy((char *)copy + (size_t)r0 * t->row_bytes, (const char *)t->data + (size_t)r0 * t->row_bytes,
           (size_t)(r1 - r0) * t->row_bytes);
    view.data = copy;
    hllm_pweight *w = in->ops->weight_load(in, &view, r0, r1, mem);
    if (!w) {
        free(copy);
        return NULL;
    }
    c->wts[c->n_wts++] = (struct qweight){w, copy};
    return w;
}
static void q_weight_free(hllm_proc *p, hllm_pweight *w) {
    qimpl *c = impl_of(p);
    hllm_proc *in = c->inner;
    in->ops->weight_free(in, w);
    for (int i = 0; i < c->n_wts; i++)
        if (c->wts[i].w == w) {
            free(c->wts[i].copy);
            c->wts[i] = c->wts[--c->n_wts];
            break;
        }
}
static int q_run(hllm_proc *p, const hllm_op *op) {
    qaction a = {.kind = QA_OP, .op = *op};
    return push(impl_of(p), &a);
}
static void q_signal(hllm_proc *p, volatile uint32_t *flag, uint32_t value) {
    qaction a = {.kind = QA_SIGNAL, .flag = flag, .value = value};
    push(impl_of(p), &a);
}
static void q_wait(hllm_proc *p, volatile uint32_t *flag, uint32_t value) {
    qaction a = {.kind = QA_WAIT, .flag = flag, .value = value};
    push(impl_of(p), &a);
}
static int q_finish(hllm_proc *p) {
    qimpl *c = impl_of(p);
    pthread_mutex_lock(&c->mu);
    while (c->head != c->tail) pthread_cond_wait(&c->idle, &c->mu);
    int err = c->err;
    c->err = 0;
    pthread_mutex_unlock(&c->mu);
    return err ? hllm_fail("queue processor: an op failed") : 0;
}
static void q_destroy(hllm_proc *p) {
    qimpl *c = impl_of(p);
    pthread_mutex_lock(&c->mu);
    c->quit = true;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    hllm_proc_free(c->inner);
    for (int i = 0; i < c->n_wts; i++) free(c->wts[i].copy);
    free(c->wts);
    free(c->pend);
    free(c->q);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->idle);
    free(c);
    free(p);
}

static const hllm_proc_ops k_queue_ops = {
    .name = "queue",
    .alloc = q_alloc,
    .free = q_free,
    .copy_in = q_copy,
    .copy_out = q_copy,
    .weight_load = q_weight_load,
    .weight_free = q_weight_free,
    .run = q_run,
    .signal = q_signal,
    .wait = q_wait,
    .finish = q_finish,
    .destroy = q_destroy,
};
static hllm_proc_ops k_queue_held_ops; /* the same with step_begin / step_end */

hllm_proc *test_queue_proc_new(int max_delay_us, unsigned seed) {
    hllm_proc *p = calloc(1, sizeof *p);
    qimpl *c = calloc(1, sizeof *c);
    if (!p || !c || !(c->inner = hllm_proc_cpu_new(1))) {
        free(p);
        free(c);
        return NULL;
    }
    c->seed = seed;
    c->max_delay_us = max_delay_us;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->idle, NULL);
    if (pthread_create(&c->th, NULL, worker, c)) {
        hllm_proc_free(c->inner);
        free(c);
        free(p);
        return NULL;
    }
    p->ops = &k_queue_ops;
    p->name = "queue";
    p->n_threads = 0; /* a device: its work completes after run() returns */
    p->impl = c;
    return p;
}

void test_queue_proc_set_held(hllm_proc *p, int mode) {
    qimpl *c = impl_of(p);
    c->held_mode = mode;
    c->shapes_seen = 0;
    if (!k_queue_held_ops.name) {
        k_queue_held_ops = k_queue_ops;
        k_queue_held_ops.step_begin = q_step_begin;
        k_queue_held_ops.step_end = q_step_end;
    }
    p->ops = mode ? &k_queue_held_ops : &k_queue_ops;
}

long test_queue_proc_held_steps(hllm_proc *p, long *early) {
    qimpl *c = impl_of(p);
    if (early) *early = c->n_early;
    return c->n_held;
}
