/* heterollm public C API. */
#ifndef HLLM_H
#define HLLM_H
#ifdef __cplusplus
extern "C" {
#endif

/* "0.1.0 (commit abc123) processors: cpu cuda" */
const char *hllm_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
