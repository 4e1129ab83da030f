/* Memory for repacked weights, on transparent huge pages where the kernel allows them. */
#ifndef HLLM_CPU_HUGEMEM_H
#define HLLM_CPU_HUGEMEM_H
#include <stddef.h>

/* 64-byte aligned; *map_bytes is what hllm_huge_free needs back (0: from malloc). */
void *hllm_huge_alloc(size_t bytes, size_t *map_bytes);
void hllm_huge_free(void *p, size_t map_bytes);

#endif
