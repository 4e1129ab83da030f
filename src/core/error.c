#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_err[1024];

int hllm_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return -1;
}

const char *hllm_error(void) { return g_err; }
void hllm_error_clear(void) { g_err[0] = 0; }
