#include "testutil.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int g_test_pass, g_test_fail;

const char *test_shared_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("HLLM_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared", rel);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, g_test_pass, g_test_fail);
    return g_test_fail ? 1 : 0;
}

int test_wanted(const char *name) {
    const char *only = getenv("HLLM_TEST_ONLY");
    if (!only || !*only) return 1;
    const size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}
