/* Shared by the fuzz targets: invariant checks that abort (a crash libFuzzer reports and the
 * replay test fails on), and the project's error contract: every failure records exactly one
 * non-empty line. */
#ifndef HLLM_FUZZ_UTIL_H
#define HLLM_FUZZ_UTIL_H
#include "core/error.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* A failure must have recorded one line: not empty, no newline. */
static inline void fuzz_check_error(void) {
    const char *e = hllm_error();
    if (!e[0] || strchr(e, '\n')) {
        fprintf(stderr, "fuzz: bad error message after a failure: '%s'\n", e);
        abort();
    }
}

/* For functions returning 0 / 1 (absent) / -1 (error, recorded). */
static inline int fuzz_rc(int rc) {
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1);
    if (rc < 0) fuzz_check_error();
    return rc;
}
#define FUZZ_CHECK_RC(expr) (hllm_error_clear(), fuzz_rc(expr))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
