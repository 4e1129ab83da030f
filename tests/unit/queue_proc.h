/* A test processor that behaves like a GPU: run(), copies, signal() and wait() only enqueue;
 * a worker thread executes the queue in order (with an inner one-thread CPU processor doing the
 * arithmetic), optionally after random delays. The executor must treat it as a device: its
 * work runs later than it is issued, so every cross-processor hazard shows up as a wrong result. */
#ifndef HLLM_TEST_QUEUE_PROC_H
#define HLLM_TEST_QUEUE_PROC_H
#include "proc/proc.h"

/* max_delay_us: each queued action waits 0..max_delay_us microseconds before it runs (0: none). */
hllm_proc *test_queue_proc_new(int max_delay_us, unsigned seed);

/* Held steps, as a GPU replaying captured graphs: 0 off (the default); 1 a step's actions are
 * queued at step_end (the first step of each batch size runs as issued); 2 as 1, and the ones
 * before its first wait that follows work of its own are queued when that wait is issued (the
 * CUDA processor's HLLM_CUDA_EARLY). */
void test_queue_proc_set_held(hllm_proc *p, int mode);
/* Steps held so far; *early: how many of them launched their start early (mode 2). */
long test_queue_proc_held_steps(hllm_proc *p, long *early);

#endif
