/* The thread pool: every thread runs every region once, barriers separate phases, and
 * thousands of back-to-back regions lose no wake-up. */
#include "core/threadpool.h"
#include "testutil.h"
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    hllm_pool *pool;
    atomic_int hits;
    int *slots;   /* one per thread, written in phase 1, read by a neighbour in phase 2 */
    int *seen;
    int round;
} region;

static void fn(void *arg, int ith, int nth) {
    region *r = arg;
    atomic_fetch_add(&r->hits, 1);
    r->slots[ith] = r->round * 1000 + ith;
    hllm_pool_barrier(r->pool);
    /* after the barrier every slot of this round must be visible */
    r->seen[ith] = r->slots[(ith + 1) % nth];
    hllm_pool_barrier(r->pool);
}

int main(void) {
    for (int n = 1; n <= 4; n++) {
        hllm_pool *p = hllm_pool_new(n);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK(hllm_pool_size(p) == n);
        region r = {.pool = p, .slots = calloc((size_t)n, sizeof(int)), .seen = calloc((size_t)n, sizeof(int))};
        atomic_init(&r.hits, 0);
        int bad = 0;
        const int rounds = n <= 2 ? 2000 : 300; /* beyond 2 threads this machine is oversubscribed */
        for (r.round = 0; r.round < rounds; r.round++) {
            hllm_pool_run(p, fn, &r);
            for (int i = 0; i < n; i++) bad += r.seen[i] != r.round * 1000 + (i + 1) % n;
        }
        CHECKF(atomic_load(&r.hits) == rounds * n, "threads %d: %d region calls, expected %d", n, atomic_load(&r.hits), rounds * n);
        CHECKF(bad == 0, "threads %d: %d stale reads across the barrier", n, bad);
        free(r.slots);
        free(r.seen);
        hllm_pool_free(p);
    }
    CHECK(hllm_pool_new(0) == NULL);
    CHECK(hllm_physical_cores() >= 1);
    return test_summary("test_threadpool");
}
