/* Error reporting: the failing function records one clear line (thread-local) and returns
 * an error code or NULL; callers up the stack pass it on, and the CLI prints it. */
#ifndef HLLM_CORE_ERROR_H
#define HLLM_CORE_ERROR_H

#if defined(__GNUC__)
#define HLLM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HLLM_PRINTF(a, b)
#endif

/* Records the error message (replaces any earlier one). Always returns -1, so `return hllm_fail(...)`. */
int hllm_fail(const char *fmt, ...) HLLM_PRINTF(1, 2);
/* The last recorded message of this thread ("" if none). */
const char *hllm_error(void);
void hllm_error_clear(void);

#endif
