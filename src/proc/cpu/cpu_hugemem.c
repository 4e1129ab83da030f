/* Decode streams every weight once per token. On 4 KiB pages that is a TLB miss per page
 * and the hardware prefetcher stops at each page boundary; on 2 MiB pages one core streamed
 * the Q6_K output matrix of qwen2.5-1.5b at ~30 GB/s instead of ~24. With THP in "madvise"
 * mode (common) only madvised mappings get huge pages, so matrices of 1 MiB and more get
 * their own 2 MiB-aligned mapping. */
#include "proc/cpu/cpu_hugemem.h"
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *hllm_huge_alloc(size_t bytes, size_t *map_bytes) {
    *map_bytes = 0;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_PAGE / 2) {
        /* rounded up to whole huge pages (< 2 MiB more a matrix): 1-2 MiB matrices left on
         * small pages between huge-paged ones streamed at half speed (qwen2.5-1.5b's
         * 1536x1536 q4_K, 10-14 GB/s against 25-27 on huge pages) */
        const size_t len = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        uint8_t *raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw != MAP_FAILED) {
            uint8_t *p = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
            if (p > raw) munmap(raw, (size_t)(p - raw));
            munmap(p + len, (size_t)(raw + HUGE_PAGE - p)); /* the rest of the slack, > 0 */
            madvise(p, len, MADV_HUGEPAGE); /* advice only: without THP the pages stay small */
            *map_bytes = len;
            return p;
        }
    }
#endif
    return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
}

void hllm_huge_free(void *p, size_t map_bytes) {
    if (!p) return;
    if (map_bytes) munmap(p, map_bytes);
    else free(p);
}
