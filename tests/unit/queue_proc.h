/* A test processor that behaves like a GPU: run(), copies, signal() and wait() only enqueue;
 * a worker thread executes the queue in order (with an inner one-thread CPU processor doing the
 * arithmetic), optionally after random delays. The executor must treat it as a device: its
 * work runs later than it is issued, so every cross-processor hazard shows up as a wrong result. */
#ifndef HLLM_TEST_QUEUE_PROC_H
#define HLLM_TEST_QUEUE_PROC_H
#include "proc/proc.h"

/* max_delay_us: each queued action waits 0..max_delay_us microseconds before it runs (0: none). */
hllm_proc *test_queue_proc_new(int max_delay_us, unsigned seed);

#endif
