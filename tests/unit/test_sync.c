/* Flag synchronization between processors (proc.h signal/wait), as the executor uses it:
 * thousands of ping-pong round trips between two CPU processors driven from two threads, with
 * random delays on either side. Each message is many plain (non-atomic) words written before the
 * signal; after the wait the receiver must see all of them (no lost wake-up: every wait ends;
 * no early wake-up: nothing is seen before it is written). With a CUDA device the same round
 * trips run CPU -> GPU (wait, copy) -> CPU through flags in pinned host memory. */
#include "testutil.h"
#include "core/error.h"
#include "proc/proc.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef HLLM_HAVE_CUDA
#include "proc/cuda/cuda_proc.h"
#endif

#define ROUNDS 3000
#define WORDS 64

typedef struct {
    hllm_proc *pa, *pb;
    volatile uint32_t *ab, *ba;  /* a -> b and b -> a flags */
    uint32_t *msg_ab, *msg_ba;   /* plain words */
    int bad_b, bad_a;
} pingpong;

static void delay(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    unsigned r = (*seed >> 16) & 1023;
    if (r < 700) return;                      /* most rounds: no delay */
    if (r < 1000) {                           /* a short spin */
        for (volatile unsigned i = 0; i < (r - 700) * 20; i++) {
        }
    } else if (r < 1016) sched_yield();
    else {
        struct timespec ts = {0, 20000};      /* rarely: sleep 20 us */
        nanosleep(&ts, NULL);
    }
}

static void *side_b(void *arg) {
    pingpong *pp = arg;
    unsigned seed = 99;
    for (uint32_t i = 1; i <= ROUNDS; i++) {
        pp->pb->ops->wait(pp->pb, pp->ab, i);
        if (*pp->ab < i) pp->bad_b++; /* early wake-up */
        for (int w = 0; w < WORDS; w++)
            if (pp->msg_ab[w] != i * 1000u + (uint32_t)w) {
                pp->bad_b++;
                break;
            }
        delay(&seed);
        for (int w = 0; w < WORDS; w++) pp->msg_ba[w] = i * 7u + (uint32_t)w;
        pp->pb->ops->signal(pp->pb, pp->ba, i);
        delay(&seed);
    }
    return NULL;
}

static void test_cpu_cpu(void) {
    pingpong pp = {.pa = hllm_proc_cpu_new(1), .pb = hllm_proc_cpu_new(1)};
    CHECK(pp.pa && pp.pb);
    if (!pp.pa || !pp.pb) return;
    uint32_t *flags = aligned_alloc(64, 256);
    memset(flags, 0, 256);
    pp.ab = flags;
    pp.ba = flags + 16;
    pp.msg_ab = calloc(WORDS, 4);
    pp.msg_ba = calloc(WORDS, 4);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, side_b, &pp) == 0);
    unsigned seed = 7;
    for (uint32_t i = 1; i <= ROUNDS; i++) {
        for (int w = 0; w < WORDS; w++) pp.msg_ab[w] = i * 1000u + (uint32_t)w;
        pp.pa->ops->signal(pp.pa, pp.ab, i);
        delay(&seed);
        pp.pa->ops->wait(pp.pa, pp.ba, i);
        if (*pp.ba < i) pp.bad_a++;
        for (int w = 0; w < WORDS; w++)
            if (pp.msg_ba[w] != i * 7u + (uint32_t)w) {
                pp.bad_a++;
                break;
            }
        delay(&seed);
    }
    pthread_join(th, NULL);
    CHECKF(pp.bad_a == 0 && pp.bad_b == 0, "cpu<->cpu: %d bad rounds seen by a, %d by b", pp.bad_a, pp.bad_b);
    CHECK(*pp.ab == ROUNDS && *pp.ba == ROUNDS);
    free(flags);
    free(pp.msg_ab);
    free(pp.msg_ba);
    hllm_proc_free(pp.pa);
    hllm_proc_free(pp.pb);
}

/* The CPU processor's wait returns only once the flag reaches the value, also when signalled
 * from another thread long after the wait began (a lost wake-up would hang here). */
typedef struct {
    hllm_proc *p;
    volatile uint32_t *f;
} late_arg;
static void *late_signal(void *arg) {
    late_arg *a = arg;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    a->p->ops->signal(a->p, a->f, 5);
    return NULL;
}
static void test_late(void) {
    hllm_proc *p = hllm_proc_cpu_new(1);
    uint32_t *f = aligned_alloc(64, 64);
    *f = 4;
    late_arg a = {p, f};
    pthread_t th;
    pthread_create(&th, NULL, late_signal, &a);
    p->ops->wait(p, f, 5);
    CHECK(*f == 5);
    pthread_join(th, NULL);
    free(f);
    hllm_proc_free(p);
}

#ifdef HLLM_HAVE_CUDA
static void test_cpu_gpu(void) {
    const char *why = NULL;
    if (hllm_cuda_device_count(&why) < 1) {
        printf("SKIP cpu<->gpu: %s\n", why ? why : "no CUDA device");
        return;
    }
    hllm_proc *c = hllm_proc_cpu_new(1), *g = hllm_proc_cuda_new(0);
    CHECKF(g != NULL, "cuda: %s", hllm_error());
    if (!g || !c) {
        hllm_proc_free(c);
        hllm_proc_free(g);
        return;
    }
    const int rounds = 2000;
    uint32_t *flags = g->ops->alloc(g, 256, HLLM_MEM_HOST);
    uint32_t *in = g->ops->alloc(g, WORDS * 4, HLLM_MEM_HOST), *out = g->ops->alloc(g, WORDS * 4, HLLM_MEM_HOST);
    uint32_t *dev = g->ops->alloc(g, WORDS * 4, HLLM_MEM_DEVICE);
    memset(flags, 0, 256);
    memset(out, 0, WORDS * 4);
    volatile uint32_t *c2g = flags, *g2c = flags + 16;
    unsigned seed = 3;
    int bad = 0;
    double t0 = (double)clock();
    for (uint32_t i = 1; i <= (uint32_t)rounds; i++) {
        /* the GPU's work is enqueued before the CPU has written the message */
        g->ops->wait(g, c2g, i);
        g->ops->copy_in(g, dev, in, WORDS * 4);
        g->ops->copy_out(g, out, dev, WORDS * 4);
        g->ops->signal(g, g2c, i);
        delay(&seed);
        for (int w = 0; w < WORDS; w++) in[w] = i * 1000u + (uint32_t)w;
        c->ops->signal(c, c2g, i);
        c->ops->wait(c, g2c, i);
        for (int w = 0; w < WORDS; w++)
            if (out[w] != i * 1000u + (uint32_t)w) {
                bad++;
                break;
            }
    }
    double us = ((double)clock() - t0) / CLOCKS_PER_SEC * 1e6 / rounds;
    printf("cpu->gpu->cpu round trip with a 256-byte copy each way: %.1f us (cpu time)\n", us);
    CHECKF(bad == 0, "cpu<->gpu: %d rounds saw stale data", bad);
    CHECK(g->ops->finish(g) == 0);
    g->ops->free(g, dev);
    g->ops->free(g, in);
    g->ops->free(g, out);
    g->ops->free(g, flags);
    hllm_proc_free(g);
    hllm_proc_free(c);
}
#endif

int main(void) {
    test_late();
    test_cpu_cpu();
#ifdef HLLM_HAVE_CUDA
    test_cpu_gpu();
#endif
    return test_summary("test_sync");
}
