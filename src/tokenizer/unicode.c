#include "tokenizer/unicode.h"

unsigned hllm_uc_flags(uint32_t cp) {
    if (cp >= 0x110000) return 0;
    /* Binary search for the last range starting at or before cp. */
    int lo = 0, hi = hllm_ucat_n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (hllm_ucat_start[mid] <= cp) lo = mid;
        else hi = mid - 1;
    }
    return hllm_ucat_flags[lo];
}

static bool is_cont(const char *s, size_t n, size_t i) {
    return i < n && ((unsigned char)s[i] & 0xC0) == 0x80;
}

uint32_t hllm_utf8_decode(const char *s, size_t n, size_t *off) {
    size_t i = *off;
    unsigned c = (unsigned char)s[i];
    uint32_t cp;
    if (!(c & 0x80)) {
        *off = i + 1;
        return c;
    }
    if (!(c & 0x40)) goto bad;               /* stray continuation byte */
    if (!(c & 0x20)) {
        if (!is_cont(s, n, i + 1)) goto bad;
        cp = ((c & 0x1Fu) << 6) | ((unsigned char)s[i + 1] & 0x3Fu);
        *off = i + 2;
        return cp;
    }
    if (!(c & 0x10)) {
        if (!is_cont(s, n, i + 1) || !is_cont(s, n, i + 2)) goto bad;
        cp = ((c & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6) | ((unsigned char)s[i + 2] & 0x3Fu);
        *off = i + 3;
        return cp;
    }
    if (!(c & 0x08)) {
        if (!is_cont(s, n, i + 1) || !is_cont(s, n, i + 2) || !is_cont(s, n, i + 3)) goto bad;
        cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12) |
             (((unsigned char)s[i + 2] & 0x3Fu) << 6) | ((unsigned char)s[i + 3] & 0x3Fu);
        *off = i + 4;
        return cp > 0x10FFFF ? 0xFFFD : cp;
    }
bad:
    *off = i + 1;
    return 0xFFFD;
}

int hllm_utf8_encode(uint32_t cp, char *out) {
    if (cp <= 0x7F) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp <= 0x7FF) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp <= 0xFFFF) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | ((cp >> 18) & 0x07));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 keeps the printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) as themselves and
 * maps the other 68 bytes, in byte order, to U+0100.. so that every byte is a visible char. */
static bool gpt2_keeps(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t hllm_gpt2_byte_to_cp(uint8_t b) {
    if (gpt2_keeps(b)) return b;
    unsigned k = 0; /* rank of b among the remapped bytes */
    for (unsigned x = 0; x < b; x++)
        if (!gpt2_keeps(x)) k++;
    return 0x100 + k;
}

int hllm_gpt2_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return gpt2_keeps(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    unsigned k = cp - 0x100;
    for (unsigned x = 0; x < 256; x++)
        if (!gpt2_keeps(x) && k-- == 0) return (int)x;
    return -1;
}
