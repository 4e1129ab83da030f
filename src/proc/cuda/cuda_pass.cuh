/* The small kernels of a decode step (norms, rope and KV store, attention, SwiGLU, adds, the
 * activation quantization) can let the kernel after them launch before their own PDL wait
 * (HLLM_CUDA_PASS=1, or some of them by group: an experiment, off by default: all of them on
 * made llama3-8b q4_0 decode 3% slower on H100, where the GEMV lab's stand-in gained 9%).
 *
 * Why: between two GEMVs sits one of these kernels, and the next GEMV is launched only once it
 * has passed its wait, i.e. after the GEMV before it has finished; its weight loads (made before
 * its own wait: cu_gemv_multi's preload) then start a launch later than they could. Triggering
 * first lets the next GEMV's blocks take the SM slots the last wave of the one before frees, and
 * load their first weights during that tail. The GEMVs keep wait-then-trigger: their dependents
 * taking slots during their earlier waves is what made an all-early trigger slower (session 3).
 * Waiting is unchanged, so what each kernel sees is too: griddepcontrol.wait still waits for
 * the kernel before to finish, and that one waited for its own (transitively every earlier one).
 *
 * Each translation unit that includes this holds its own copy of the flag: cu_pass_set_<unit>
 * (called when the processor is created) uploads it. */
#pragma once

static __constant__ int cu_c_pass;

static __device__ __forceinline__ void cu_pdl_wait_pass() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (cu_c_pass) {
        asm volatile("griddepcontrol.launch_dependents;" :::);
        asm volatile("griddepcontrol.wait;" ::: "memory");
        return;
    }
#endif
    cu_pdl_wait();
}

static inline bool cu_pass_upload(bool on) {
    const int v = on ? 1 : 0;
    return cudaMemcpyToSymbol(cu_c_pass, &v, sizeof v) == cudaSuccess;
}
