/* A minimal test harness: CHECK records a failure with its location and goes on;
 * each test program ends with test_summary(), which prints "N passed, N failed". */
#ifndef HLLM_TESTUTIL_H
#define HLLM_TESTUTIL_H
#include <stdio.h>
#include <math.h>

extern int g_test_pass, g_test_fail;

#define CHECK(cond) CHECKF(cond, "%s", #cond)
#define CHECKF(cond, ...)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            g_test_pass++;                                                  \
        } else {                                                            \
            g_test_fail++;                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)
#define CHECK_NEAR(a, b, tol) \
    CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%s = %g, %s = %g, tol %g", #a, (double)(a), #b, (double)(b), (double)(tol))

/* The larger of a running error and a new difference, keeping a NaN (fmax would drop it), so
 * that a kernel writing NaN fails an `err <= tol` check instead of passing it. */
static inline double test_max_err(double err, double d) {
    if (isnan(err) || isnan(d)) return NAN;
    return d > err ? d : err;
}

/* Path of a file in ../shared (HLLM_SHARED env var, else ../shared); NULL if it does not exist. */
const char *test_shared_path(const char *rel);
/* Whether test group `name` runs: all do unless HLLM_TEST_ONLY lists names (comma-separated),
 * e.g. to run one group under compute-sanitizer, where the whole program would take too long. */
int test_wanted(const char *name);
/* Prints the summary line and returns the process exit code. */
int test_summary(const char *name);

#endif
