/* A persistent thread pool: workers spin on an epoch counter (falling back to a futex sleep
 * when idle for long), so dispatching a parallel region and its barrier cost well under a
 * microsecond while the model runs, and idle workers do not burn a core. */
#ifndef HLLM_THREADPOOL_H
#define HLLM_THREADPOOL_H

typedef struct hllm_pool hllm_pool;
/* Runs on every thread: ith in [0, nth); thread 0 is the caller. */
typedef void (*hllm_pool_fn)(void *arg, int ith, int nth);

hllm_pool *hllm_pool_new(int n_threads); /* NULL + hllm_fail */
void hllm_pool_free(hllm_pool *p);
int hllm_pool_size(const hllm_pool *p);
/* Calls fn(arg, ith, nth) on all threads and returns when all have returned. Not reentrant. */
void hllm_pool_run(hllm_pool *p, hllm_pool_fn fn, void *arg);
/* Inside fn: waits until every thread of the pool reaches the barrier. */
void hllm_pool_barrier(hllm_pool *p);

/* Physical cores of this machine (for the default -t). */
int hllm_physical_cores(void);

#endif
