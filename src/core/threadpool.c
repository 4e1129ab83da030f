#include "core/threadpool.h"
#include "core/error.h"
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/spin.h"

int hllm_spin_busy;

/* Whether this CPU runs under a hypervisor (CPUID.1:ECX bit 31). */
static bool under_hypervisor(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a = 1, b = 0, c = 0, d = 0;
    __asm__ __volatile__("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
    return (c >> 31) & 1u;
#else
    return false;
#endif
}

/* HLLM_SPIN=busy|pause; by default busy under a hypervisor, where PAUSE loops cost the vCPU its
 * core (see spin.h), else pause. */
void hllm_spin_init(void) {
    const char *v = getenv("HLLM_SPIN");
    if (v && strcmp(v, "busy") == 0) hllm_spin_busy = 1;
    else if (v && strcmp(v, "pause") == 0) hllm_spin_busy = 0;
    else hllm_spin_busy = under_hypervisor();
}

#define cpu_relax() hllm_spin_relax()

/* Spins this many times before a worker sleeps on the futex. */
#define SPIN_BEFORE_SLEEP (1 << 16)
/* Spins in a wait before yielding the core: with more threads than cores, a pure spin would
 * hold the core the awaited thread needs for a whole scheduler slice. */
#define SPIN_BEFORE_YIELD 2048

static inline int yield_every(void) { return hllm_spin_busy ? SPIN_BEFORE_YIELD * 32 : SPIN_BEFORE_YIELD; }

static inline void spin_or_yield(int *spins) {
    if (++*spins < yield_every()) {
        cpu_relax();
    } else {
        sched_yield();
        *spins = 0;
    }
}

struct hllm_pool {
    int n;
    pthread_t *threads;
    _Alignas(64) atomic_uint epoch;    /* bumped once per parallel region */
    _Alignas(64) atomic_int n_done;    /* workers finished with the current region */
    _Alignas(64) atomic_int n_sleeping;
    _Alignas(64) atomic_int bar_count; /* barrier: arrivals in this phase */
    _Alignas(64) atomic_uint bar_phase;
    hllm_pool_fn fn;
    void *arg;
    atomic_bool quit;
};

typedef struct {
    hllm_pool *pool;
    int ith;
} worker_arg;

static void futex_wait(atomic_uint *addr, unsigned val) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void futex_wake_all(atomic_uint *addr) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
}

static void *worker_main(void *varg) {
    worker_arg *wa = varg;
    hllm_pool *p = wa->pool;
    int ith = wa->ith;
    free(wa);
    /* The pool starts at epoch 0; reading it here instead could miss a region that the
     * caller started before this thread got to run. */
    unsigned seen = 0;
    for (;;) {
        unsigned e;
        int spins = 0;
        while ((e = atomic_load_explicit(&p->epoch, memory_order_acquire)) == seen) {
            /* plain-load spins are ~30x shorter than PAUSE ones: about the same time before sleeping */
            if (++spins < (hllm_spin_busy ? SPIN_BEFORE_SLEEP * 32 : SPIN_BEFORE_SLEEP)) {
                if (spins % yield_every()) cpu_relax();
                else sched_yield();
                continue;
            }
            atomic_fetch_add(&p->n_sleeping, 1);
            if (atomic_load(&p->epoch) == seen) futex_wait(&p->epoch, seen);
            atomic_fetch_sub(&p->n_sleeping, 1);
            spins = 0;
        }
        seen = e;
        if (atomic_load_explicit(&p->quit, memory_order_acquire)) break;
        p->fn(p->arg, ith, p->n);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_acq_rel);
    }
    return NULL;
}

hllm_pool *hllm_pool_new(int n_threads) {
    if (n_threads < 1 || n_threads > 1024) {
        hllm_fail("thread count %d out of range (1..1024)", n_threads);
        return NULL;
    }
    hllm_pool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
    if (!p) {
        hllm_fail("out of memory creating a thread pool");
        return NULL;
    }
    memset(p, 0, sizeof *p);
    hllm_spin_init();
    p->n = n_threads;
    atomic_init(&p->epoch, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->bar_count, 0);
    atomic_init(&p->bar_phase, 0);
    atomic_init(&p->quit, false);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        hllm_fail("out of memory creating a thread pool");
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            p->n = i; /* join the ones started */
            hllm_pool_free(p);
            hllm_fail("cannot start thread %d of %d", i, n_threads);
            return NULL;
        }
    }
    return p;
}

void hllm_pool_free(hllm_pool *p) {
    if (!p) return;
    atomic_store_explicit(&p->quit, true, memory_order_release);
    atomic_fetch_add_explicit(&p->epoch, 1, memory_order_acq_rel);
    futex_wake_all(&p->epoch);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p);
}

int hllm_pool_size(const hllm_pool *p) { return p->n; }

void hllm_pool_run(hllm_pool *p, hllm_pool_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->epoch, 1, memory_order_acq_rel);
    if (atomic_load(&p->n_sleeping) > 0) futex_wake_all(&p->epoch);
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->n_done, memory_order_acquire) < p->n - 1) spin_or_yield(&spins);
}

void hllm_pool_barrier(hllm_pool *p) {
    if (p->n == 1) return;
    unsigned phase = atomic_load_explicit(&p->bar_phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->bar_count, 1, memory_order_acq_rel) == p->n - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->bar_phase, 1, memory_order_acq_rel);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&p->bar_phase, memory_order_acquire) == phase) spin_or_yield(&spins);
}

int hllm_physical_cores(void) {
    /* Count distinct (package, core) pairs; fall back to the online CPU count. */
    long n_online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = 0;
    int seen_cap = 4096;
    long *seen = calloc((size_t)seen_cap, sizeof *seen);
    if (!seen) return n_online > 0 ? (int)n_online : 1;
    for (int cpu = 0; cpu < n_online && cpu < seen_cap; cpu++) {
        char path[128];
        long core = -1, pkg = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        FILE *f = fopen(path, "r");
        if (!f) break;
        if (fscanf(f, "%ld", &core) != 1) core = -1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
        f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%ld", &pkg) != 1) pkg = 0;
            fclose(f);
        }
        long key = pkg * 100000 + core;
        int dup = 0;
        for (int i = 0; i < n; i++)
            if (seen[i] == key) dup = 1;
        if (!dup && core >= 0) seen[n++] = key;
    }
    free(seen);
    if (n <= 0) n = n_online > 0 ? (int)n_online : 1;
    return n;
}
