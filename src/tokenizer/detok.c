/* Token -> text: per-token pieces (llama.cpp's token_to_piece, cached at load with special =
 * true), whole-sequence detokenization (llama_detokenize) and a streaming UTF-8 assembler. */
#include "tokenizer/vocab.h"
#include "tokenizer/unicode.h"
#include "core/error.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *v;
    size_t n, cap;
} buf;

static int put(buf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        char *v = realloc(b->v, cap);
        if (!v) return hllm_fail("tokenizer: out of memory");
        b->v = v;
        b->cap = cap;
    }
    memcpy(b->v + b->n, s, n);
    b->n += n;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xXX>" -> the byte; like llama.cpp's strtol on text[3..4] (0 when not hex). */
static char token_byte(const char *s, size_t n) {
    int v = 0;
    for (size_t i = 3; i < 5 && i < n; i++) {
        int h = hexval(s[i]);
        if (h < 0) break;
        v = v * 16 + h;
    }
    return (char)v;
}

/* Piece of one token as llama.cpp renders it with special = true. */
static int render(const hllm_tokenizer *t, int32_t id, buf *b) {
    const hllm_token *tk = &t->tok[id];
    const char *s = hllm_tok_text(t, id);
    size_t n = tk->len;
    if (tk->attr & (HLLM_ATTR_UNKNOWN | HLLM_ATTR_CONTROL | HLLM_ATTR_USER_DEFINED)) return put(b, s, n);
    if (tk->attr & HLLM_ATTR_NORMAL) {
        if (t->type == HLLM_VOCAB_SPM) {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    if (put(b, " ", 1) < 0) return -1;
                    i += 3;
                } else {
                    if (put(b, s + i, 1) < 0) return -1;
                    i++;
                }
            }
            return 0;
        }
        /* byte-level BPE: each code point is one byte; others are shown as llama.cpp does */
        for (size_t off = 0; off < n;) {
            uint32_t cp = hllm_utf8_decode(s, n, &off);
            int byte = hllm_gpt2_cp_to_byte(cp);
            if (byte >= 0) {
                char c = (char)byte;
                if (put(b, &c, 1) < 0) return -1;
            } else {
                char u[4], hex[16];
                int k = hllm_utf8_encode(cp, u);
                if (put(b, "[UNK_BYTE_0x", 12) < 0) return -1;
                for (int j = 0; j < k; j++) {
                    static const char digits[] = "0123456789abcdef";
                    hex[2 * j] = digits[(unsigned char)u[j] >> 4];
                    hex[2 * j + 1] = digits[(unsigned char)u[j] & 15];
                }
                if (put(b, hex, 2 * (size_t)k) < 0 || put(b, s, n) < 0 || put(b, "]", 1) < 0) return -1;
            }
        }
        return 0;
    }
    if (tk->attr & HLLM_ATTR_BYTE) {
        char c = token_byte(s, n);
        return put(b, &c, 1);
    }
    return 0; /* unused / undefined tokens render as nothing */
}

int hllm_build_pieces(hllm_tokenizer *t) {
    buf b = {0};
    for (int32_t id = 0; id < t->n_tokens; id++) {
        size_t start = b.n;
        if (render(t, id, &b) < 0) {
            free(b.v);
            return -1;
        }
        if (b.n > UINT32_MAX) {
            free(b.v);
            return hllm_fail("tokenizer: pieces too large");
        }
        t->tok[id].poff = (uint32_t)start;
        t->tok[id].plen = (uint32_t)(b.n - start);
    }
    t->pieces = b.v ? b.v : malloc(1);
    if (!t->pieces) return hllm_fail("tokenizer: out of memory");
    return 0;
}

/* The piece of id (special: also control/unknown tokens), or NULL with *n = 0. */
static const char *piece_of(const hllm_tokenizer *t, int32_t id, bool special, size_t *n) {
    *n = 0;
    if (!t || id < 0 || id >= t->n_tokens) return NULL;
    const hllm_token *tk = &t->tok[id];
    if (!special && (tk->attr & (HLLM_ATTR_UNKNOWN | HLLM_ATTR_CONTROL))) return NULL;
    *n = tk->plen;
    return t->pieces + tk->poff;
}

int hllm_token_to_piece(const hllm_tokenizer *t, int32_t id, char *out, int size, bool special) {
    size_t n;
    const char *p = piece_of(t, id, special, &n);
    if (n > (size_t)INT_MAX) return INT_MIN;
    if ((int)n > size) return -(int)n;
    if (n) memcpy(out, p, n);
    return (int)n;
}

int hllm_detokenize(const hllm_tokenizer *t, const int32_t *ids, int n_ids, char *out, int size,
                    bool remove_special, bool unparse_special) {
    if (!t || n_ids < 0 || (n_ids && !ids) || size < 0) {
        hllm_fail("hllm_detokenize: bad arguments");
        return INT_MIN;
    }
    bool remove_space = t->add_space_prefix;
    if (remove_special && t->add_bos && n_ids > 0 && ids[0] == t->special[HLLM_SP_BOS]) {
        remove_space = false; /* llama.cpp: a leading BOS keeps the first space */
        ids++;
        n_ids--;
    }
    if (remove_special && t->add_eos && n_ids > 0 && ids[n_ids - 1] == t->special[HLLM_SP_EOS]) n_ids--;

    buf b = {0};
    for (int i = 0; i < n_ids; i++) {
        size_t n;
        const char *p = piece_of(t, ids[i], unparse_special, &n);
        if (remove_space && n && p[0] == ' ') p++, n--;
        remove_space = false;
        if (n && put(&b, p, n) < 0) {
            free(b.v);
            return INT_MIN;
        }
    }
    if (b.n > (size_t)INT_MAX) {
        free(b.v);
        hllm_fail("hllm_detokenize: text too long");
        return INT_MIN;
    }
    size_t total = b.n;
    char *s = b.v;
    if (t->clean_spaces && total) {
        /* llama.cpp's clean_up_tokenization_spaces: " ?" " !" " ." " ," lose the space, " ' "
         * becomes "'", and " 's" " 'm" " 're" " 've" lose the space. */
        size_t n1 = total, k = 1;
        for (size_t i = 1; i < n1; i++) {
            char x = s[i];
            if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) k--;
            s[k++] = x;
        }
        size_t n2 = k;
        k = 1;
        for (size_t i = 1; i < n2; i++) {
            char x = s[i];
            if (x == '\'' && i + 1 < n2 && s[i - 1] == ' ' && s[i + 1] == ' ') {
                k--;
                s[++i] = 0;
            }
            s[k++] = x;
        }
        size_t n3 = k;
        k = 1;
        for (size_t i = 1; i < n3; i++) {
            char x = s[i];
            if (s[i - 1] == ' ' && x == '\'' && i + 1 < n3) {
                char x1 = s[i + 1];
                if (x1 == 's' || x1 == 'm') k--;
                else if (i + 2 < n3 && ((x1 == 'r' && s[i + 2] == 'e') || (x1 == 'v' && s[i + 2] == 'e'))) k--;
            }
            s[k++] = x;
        }
        total = k;
    }
    int rc;
    if (total > (size_t)size) {
        rc = -(int)total;
    } else {
        if (total) memcpy(out, s, total);
        rc = (int)total;
    }
    free(b.v);
    return rc;
}

/* ---- streaming ---- */

/* Length of the valid UTF-8 sequence at s[0..n): > 0 complete, 0 valid but incomplete,
 * < 0: -(bytes of the maximal invalid prefix to replace with U+FFFD). */
static int utf8_check(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return 0;
        if (s[i] < lo || s[i] > hi) return -i;
        lo = 0x80;
        hi = 0xBF;
    }
    return len;
}

/* Emits the complete characters of in[0..n) into out; keeps an incomplete tail in s (if
 * final, it is replaced by U+FFFD instead). Returns bytes written, or -(needed) if out is short. */
static int assemble(hllm_detok_stream *s, const unsigned char *in, size_t n, char *out, int size, bool final) {
    /* worst case: every byte becomes U+FFFD (3 bytes) */
    size_t need = 0, i = 0;
    int tail = -1;
    while (i < n) {
        int r = utf8_check(in + i, n - i);
        if (r > 0) need += (size_t)r, i += (size_t)r;
        else if (r < 0) need += 3, i += (size_t)-r;
        else {
            if (final) need += 3;
            else tail = (int)i;
            break;
        }
    }
    if (need > (size_t)INT_MAX || (int)need > size) return -(int)(need > (size_t)INT_MAX ? INT_MAX : need);
    size_t k = 0;
    size_t end = tail >= 0 ? (size_t)tail : n;
    for (i = 0; i < end;) {
        int r = utf8_check(in + i, end - i);
        if (r > 0) {
            memcpy(out + k, in + i, (size_t)r);
            k += (size_t)r;
            i += (size_t)r;
        } else {
            memcpy(out + k, "\xef\xbf\xbd", 3);
            k += 3;
            i += r < 0 ? (size_t)-r : end - i;
        }
    }
    s->n_pending = 0;
    if (tail >= 0) {
        s->n_pending = (int)(n - (size_t)tail);
        memcpy(s->pending, in + tail, (size_t)s->n_pending);
    }
    return (int)k;
}

int hllm_detok_push_ex(const hllm_tokenizer *t, hllm_detok_stream *s, int32_t id, bool special, char *out,
                       int size) {
    if (!s || !out || size < 0) {
        hllm_fail("hllm_detok_push: bad arguments");
        return INT_MIN;
    }
    if (s->n_pending < 0 || s->n_pending > 3) s->n_pending = 0; /* never trust a corrupt state */
    size_t n;
    const char *p = piece_of(t, id, special, &n);
    unsigned char small[64];
    unsigned char *in = n + 3 <= sizeof small ? small : malloc(n + 3);
    if (!in) {
        hllm_fail("tokenizer: out of memory");
        return INT_MIN;
    }
    memcpy(in, s->pending, (size_t)s->n_pending);
    if (n) memcpy(in + s->n_pending, p, n);
    hllm_detok_stream saved = *s;
    int r = assemble(s, in, (size_t)s->n_pending + n, out, size, false);
    if (r < 0) {
        *s = saved;
        hllm_fail("hllm_detok_push: output buffer too small (%d bytes, need %d)", size, -r);
    }
    if (in != small) free(in);
    return r;
}

int hllm_detok_push(const hllm_tokenizer *t, hllm_detok_stream *s, int32_t id, char *out, int size) {
    return hllm_detok_push_ex(t, s, id, false, out, size);
}

int hllm_detok_flush(hllm_detok_stream *s, char *out, int size) {
    if (!s || !out || size < 0) {
        hllm_fail("hllm_detok_flush: bad arguments");
        return INT_MIN;
    }
    if (s->n_pending <= 0 || s->n_pending > 3) {
        s->n_pending = 0;
        return 0;
    }
    unsigned char in[8];
    memcpy(in, s->pending, (size_t)s->n_pending);
    hllm_detok_stream saved = *s;
    int r = assemble(s, in, (size_t)s->n_pending, out, size, true);
    if (r < 0) {
        *s = saved;
        hllm_fail("hllm_detok_flush: output buffer too small (%d bytes, need %d)", size, -r);
    }
    return r;
}
