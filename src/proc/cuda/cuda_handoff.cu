/* Handoffs between the GPU and a host processor inside a step: flags in pinned mapped memory
 * and the activations they guard.
 *
 * A split decode token crosses between the processors a few times a layer, each time moving a
 * few KiB: the copy engine's setup and its ordering against the compute queue cost more than
 * the bytes. So small copies between device memory and pinned mapped host memory run as
 * kernels on the compute queue, and a copy to the host with the signal after it (or a wait
 * with the copy from the host after it) runs as one kernel: one graph node instead of two. */
#include "proc/cuda/cuda_common.cuh"

__global__ void k_signal(volatile uint32_t *flag, uint32_t value) {
    __threadfence_system();
    *flag = value;
}

__global__ void k_wait(volatile uint32_t *flag, uint32_t value) {
    while ((int32_t)(*flag - value) < 0) __nanosleep(200);
}

/* One block: the copy is a few KiB, and one block lets the signal follow every thread's stores
 * without a grid-wide barrier. */
static __device__ __forceinline__ void copy_block(void *dst, const void *src, size_t bytes, bool from_host) {
    const bool vec = (((uintptr_t)dst | (uintptr_t)src | bytes) & 15u) == 0;
    if (vec) {
        const int4 *s = (const int4 *)src;
        int4 *d = (int4 *)dst;
        /* host memory another processor just wrote: past the caches */
        for (size_t i = threadIdx.x; i < bytes / 16; i += blockDim.x) d[i] = from_host ? __ldcv(s + i) : s[i];
    } else {
        const uint32_t *s = (const uint32_t *)src;
        uint32_t *d = (uint32_t *)dst;
        for (size_t i = threadIdx.x; i < bytes / 4; i += blockDim.x) d[i] = from_host ? __ldcv(s + i) : s[i];
    }
}

__global__ void k_copy(void *dst, const void *src, size_t bytes, int from_host) {
    cu_pdl_wait();
    copy_block(dst, src, bytes, from_host != 0);
    if (!from_host) __threadfence_system(); /* before a signal in a later node */
}

__global__ void k_copy_signal(void *dst, const void *src, size_t bytes, volatile uint32_t *flag, uint32_t value) {
    cu_pdl_wait();
    copy_block(dst, src, bytes, false);
    __threadfence_system(); /* each thread's stores before the flag */
    __syncthreads();
    if (threadIdx.x == 0) *flag = value;
}

__global__ void k_wait_copy(void *dst, const void *src, size_t bytes, const uint32_t *flag, uint32_t value) {
    cu_pdl_wait();
    if (threadIdx.x == 0) {
        uint32_t v;
        for (;;) {
            asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(flag) : "memory");
            if ((int32_t)(v - value) >= 0) break;
            __nanosleep(100);
        }
    }
    __syncthreads();
    copy_block(dst, src, bytes, true);
}

static const int k_threads = 256;

int cu_handoff_signal(cudaStream_t st, volatile uint32_t *flag, uint32_t value) {
    k_signal<<<1, 1, 0, st>>>(flag, value);
    return cu_check(cudaGetLastError(), "signal");
}

int cu_handoff_wait(cudaStream_t st, volatile uint32_t *flag, uint32_t value) {
    k_wait<<<1, 1, 0, st>>>(flag, value);
    return cu_check(cudaGetLastError(), "wait");
}

int cu_handoff_copy(cudaStream_t st, void *dst, const void *src, size_t bytes, bool from_host) {
    cu_launch(k_copy, dim3(1), dim3(k_threads), 0, st, dst, src, bytes, (int)from_host);
    return CU_LAUNCHED("copy kernel");
}

int cu_handoff_copy_signal(cudaStream_t st, void *dst, const void *src, size_t bytes, uint32_t *flag, uint32_t value) {
    cu_launch(k_copy_signal, dim3(1), dim3(k_threads), 0, st, dst, src, bytes, (volatile uint32_t *)flag, value);
    return CU_LAUNCHED("copy + signal kernel");
}

int cu_handoff_wait_copy(cudaStream_t st, void *dst, const void *src, size_t bytes, const uint32_t *flag, uint32_t value) {
    cu_launch(k_wait_copy, dim3(1), dim3(k_threads), 0, st, dst, src, bytes, flag, value);
    return CU_LAUNCHED("wait + copy kernel");
}

/* Loads the handoff kernels now: with lazy loading a kernel's code loads at its first launch,
 * and a load can wait for the queue, which in a split step holds waits on flags the host sets
 * only later. flag: 4 bytes of zeroed device memory (left zero). */
int cu_handoff_preload(cudaStream_t st, uint32_t *flag) {
    if (cu_handoff_copy(st, flag, flag, 0, false) || cu_handoff_copy_signal(st, flag, flag, 0, flag, 0) ||
        cu_handoff_wait_copy(st, flag, flag, 0, flag, 0) || cu_handoff_signal(st, flag, 0) || cu_handoff_wait(st, flag, 0))
        return -1;
    return cu_check(cudaStreamSynchronize(st), "loading the handoff kernels");
}
