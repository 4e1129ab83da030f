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

/* Elements first, first + stride, ... of [0, n): four loads in flight per thread before their
 * stores (host memory is a PCIe round trip away). from_host: memory another processor just
 * wrote, read past the caches. */
template <typename T>
static __device__ __forceinline__ void copy_span(T *__restrict__ d, const T *__restrict__ s, size_t n, size_t first,
                                                 size_t stride, bool from_host) {
    size_t i = first;
    for (; i + 3 * stride < n; i += 4 * stride) {
        T v[4];
#pragma unroll
        for (int k = 0; k < 4; k++) v[k] = from_host ? __ldcv(s + i + k * stride) : s[i + k * stride];
#pragma unroll
        for (int k = 0; k < 4; k++) d[i + k * stride] = v[k];
    }
    for (; i < n; i += stride) d[i] = from_host ? __ldcv(s + i) : s[i];
}

/* This thread's share of the copy: 16-byte elements when everything is 16-byte aligned. */
static __device__ __forceinline__ void copy_part(void *dst, const void *src, size_t bytes, size_t first, size_t stride,
                                                 bool from_host) {
    if ((((uintptr_t)dst | (uintptr_t)src | bytes) & 15u) == 0)
        copy_span((int4 *)dst, (const int4 *)src, bytes / 16, first, stride, from_host);
    else copy_span((uint32_t *)dst, (const uint32_t *)src, bytes / 4, first, stride, from_host);
}

__global__ void k_copy(void *dst, const void *src, size_t bytes, int from_host) {
    cu_pdl_wait();
    copy_part(dst, src, bytes, (size_t)blockIdx.x * blockDim.x + threadIdx.x, (size_t)gridDim.x * blockDim.x, from_host != 0);
    if (!from_host) __threadfence_system(); /* before a signal in a later node */
}

/* The fused kernels are one block: the signal then follows every thread's stores without a
 * grid-wide barrier (the caller keeps them to copies one block moves in a round trip or few). */
static __device__ __forceinline__ void copy_block(void *dst, const void *src, size_t bytes, bool from_host) {
    copy_part(dst, src, bytes, threadIdx.x, blockDim.x, from_host);
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
    /* enough blocks for four 16-byte loads a thread, at most four an SM */
    const size_t per_block = (size_t)k_threads * 64, max_blocks = (size_t)cu_n_sm * 4;
    size_t blocks = (bytes + per_block - 1) / per_block;
    blocks = blocks < 1 ? 1 : blocks > max_blocks ? max_blocks : blocks;
    cu_launch(k_copy, dim3((unsigned)blocks), dim3(k_threads), 0, st, dst, src, bytes, (int)from_host);
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
