#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_err[1024];

int hllm_fail(const char *fmt, ...) {
    char msg[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line, whatever a file put in the names and keys it quotes: control bytes as \xNN. */
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && k + 1 < sizeof g_err; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            g_err[k++] = (char)*p;
        } else {
            if (k + 5 > sizeof g_err) break;
            snprintf(g_err + k, 5, "\\x%02x", *p);
            k += 4;
        }
    }
    g_err[k] = 0;
    return -1;
}

const char *hllm_error(void) { return g_err; }
void hllm_error_clear(void) { g_err[0] = 0; }
