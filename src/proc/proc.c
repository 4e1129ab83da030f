#include "proc/proc.h"
#include "core/error.h"
#include <string.h>

hllm_proc *hllm_proc_new(const char *name, int n_threads) {
    if (!name || !strcmp(name, "cpu")) return hllm_proc_cpu_new(n_threads);
    if (!strcmp(name, "cuda")) {
#ifdef HLLM_HAVE_CUDA
        return hllm_proc_cuda_new(0);
#else
        hllm_fail("processor 'cuda' is not compiled into this build (processors: %s)", HLLM_PROCESSORS);
        return NULL;
#endif
    }
    hllm_fail("unknown processor '%s' (processors: %s)", name, HLLM_PROCESSORS);
    return NULL;
}

void hllm_proc_free(hllm_proc *p) {
    if (p) p->ops->destroy(p);
}
