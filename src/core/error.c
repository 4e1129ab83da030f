#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_err[1024];

/* Bytes of the character at p written as they are (0: escape its first byte): printable ASCII,
 * or a well-formed UTF-8 sequence (no overlong forms, surrogates or code points past U+10FFFF)
 * that is neither a C1 control nor a line or paragraph separator. */
static size_t utf8_keep(const unsigned char *p) {
    const unsigned c = p[0];
    if (c < 0x80) return c >= 0x20 && c != 0x7f;
    size_t n;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    if (cp <= 0x9f || cp == 0x2028 || cp == 0x2029) return 0;
    return n;
}

int hllm_fail(const char *fmt, ...) {
    char msg[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line of valid UTF-8, whatever a file put in the names and keys it quotes: control
     * bytes, bytes of invalid UTF-8, and the characters terminals may break lines at (C1
     * controls, U+2028/2029) as \xNN, one per byte. */
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)msg;
    while (*p) {
        const size_t n = utf8_keep(p);
        if (n) {
            if (k + n + 1 > sizeof g_err) break;
            memcpy(g_err + k, p, n);
            k += n;
            p += n;
        } else {
            if (k + 5 > sizeof g_err) break;
            snprintf(g_err + k, 5, "\\x%02x", *p);
            k += 4;
            p++;
        }
    }
    g_err[k] = 0;
    return -1;
}

const char *hllm_error(void) { return g_err; }
void hllm_error_clear(void) { g_err[0] = 0; }
