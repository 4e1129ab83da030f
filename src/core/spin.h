/* One pause in a spin-wait. PAUSE is the polite spin on bare metal, but in a virtual machine a
 * vCPU that keeps executing PAUSE is taken for a lock waiter and descheduled by the hypervisor
 * (pause-loop exiting), so a worker spinning through a long wait for the GPU may have lost its
 * core when the work arrives. Busy spinning on plain loads instead (the default under a
 * hypervisor; HLLM_SPIN=busy|pause overrides) measured 7% faster decode for a CPU + GPU split
 * and 7% for the CPU alone on the device host, a VM (README). */
#ifndef HLLM_CORE_SPIN_H
#define HLLM_CORE_SPIN_H

extern int hllm_spin_busy; /* set once from HLLM_SPIN by hllm_spin_init */
void hllm_spin_init(void);

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HLLM_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define HLLM_PAUSE() __asm__ __volatile__("yield")
#else
#define HLLM_PAUSE() ((void)0)
#endif

static inline void hllm_spin_relax(void) {
    if (hllm_spin_busy) __asm__ __volatile__("" ::: "memory");
    else HLLM_PAUSE();
}

#endif
