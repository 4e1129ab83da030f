/* Pre-tokenizers for byte-level BPE: hand-written matchers equivalent to the split regexes that
 * llama.cpp applies (its unicode_regex_split with the custom GPT-2 / Llama 3 splitters, and the
 * std::regex passes of its "default" sequence). Each pass splits every segment of the previous
 * pass; a pattern never looks across a segment border. Positions are code point indices. */
#include "tokenizer/vocab.h"
#include "tokenizer/unicode.h"
#include "core/error.h"
#include <stdlib.h>
#include <string.h>

#define OOR 0xFFFFFFFFu /* "outside the segment" */

typedef struct {
    size_t *v;
    size_t n, cap;
} lens;

static int push_len(lens *a, size_t x) {
    if (x == 0) return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        size_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return hllm_fail("tokenizer: out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

typedef struct {
    const uint32_t *cp;
    const uint8_t *fl;
    size_t ini, end;  /* current segment */
    size_t prev_end;  /* end of the last emitted word */
    lens *out;
    int err;
} seg;

static inline unsigned F(const seg *s, size_t pos) { return (pos >= s->ini && pos < s->end) ? s->fl[pos] : 0; }
static inline uint32_t CP(const seg *s, size_t pos) { return (pos >= s->ini && pos < s->end) ? s->cp[pos] : OOR; }
static inline bool is_L(unsigned f) { return f & HLLM_UC_L; }
static inline bool is_N(unsigned f) { return f & HLLM_UC_N; }
static inline bool is_WS(unsigned f) { return f & HLLM_UC_WS; }

static size_t add(seg *s, size_t end) {
    size_t n = end - s->prev_end;
    if (push_len(s->out, n) < 0) s->err = 1;
    s->prev_end = end;
    return n;
}

static uint32_t lower_ascii(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* 's|'t|'re|'ve|'m|'ll|'d (case-insensitive if ci); returns the match length or 0. */
static size_t contraction(const seg *s, size_t pos, bool ci) {
    if (CP(s, pos) != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = CP(s, pos + 1);
    if (ci) a = lower_ascii(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 < s->end) {
        uint32_t b = CP(s, pos + 2);
        if (ci) b = lower_ascii(b);
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    return 0;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static void split_gpt2(seg *s) {
    for (size_t pos = s->ini; pos < s->end && !s->err;) {
        uint32_t c = CP(s, pos);
        size_t k = contraction(s, pos, false);
        if (k) {
            pos += add(s, pos + k);
            continue;
        }
        unsigned f2 = c == ' ' ? F(s, pos + 1) : F(s, pos);
        if (is_L(f2)) {
            pos += c == ' ';
            while (is_L(F(s, pos))) pos++;
            add(s, pos);
            continue;
        }
        if (is_N(f2)) {
            pos += c == ' ';
            while (is_N(F(s, pos))) pos++;
            add(s, pos);
            continue;
        }
        if (!(f2 & (HLLM_UC_WS | HLLM_UC_L | HLLM_UC_N)) && f2) {
            pos += c == ' ';
            for (;;) {
                unsigned f = F(s, pos);
                if ((f & (HLLM_UC_WS | HLLM_UC_L | HLLM_UC_N)) || !f) break;
                pos++;
            }
            add(s, pos);
            continue;
        }
        size_t nws = 0;
        while (is_WS(F(s, pos + nws))) nws++;
        if (nws > 1 && CP(s, pos + nws) != OOR) { /* \s+(?!\S): leave the last space to the next word */
            pos += nws - 1;
            add(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add(s, pos);
            continue;
        }
        add(s, ++pos);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+   with D = 3 (llama3) or 1 (qwen2) */
static void split_llama3(seg *s, size_t max_digits) {
    for (size_t pos = s->ini; pos < s->end && !s->err;) {
        uint32_t c = CP(s, pos);
        unsigned f = F(s, pos);
        size_t k = contraction(s, pos, true);
        if (k) {
            pos += add(s, pos + k);
            continue;
        }
        if (!(c == '\r' || c == '\n' || is_N(f)) && (is_L(f) || is_L(F(s, pos + 1)))) {
            pos++;
            while (is_L(F(s, pos))) pos++;
            add(s, pos);
            continue;
        }
        if (is_N(f)) {
            size_t ini = pos;
            while (is_N(F(s, pos))) {
                if (++pos - ini >= max_digits) {
                    add(s, pos);
                    ini = pos;
                }
            }
            add(s, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? F(s, pos + 1) : f;
        if (!(f2 & (HLLM_UC_WS | HLLM_UC_L | HLLM_UC_N)) && f) {
            pos += c == ' ';
            for (;;) {
                unsigned g = F(s, pos);
                if ((g & (HLLM_UC_WS | HLLM_UC_L | HLLM_UC_N)) || !g) break;
                pos++;
            }
            while (CP(s, pos) == '\r' || CP(s, pos) == '\n') pos++;
            add(s, pos);
            continue;
        }
        size_t nws = 0, last_nl = 0;
        while (is_WS(F(s, pos + nws))) {
            uint32_t c2 = CP(s, pos + nws);
            if (c2 == '\r' || c2 == '\n') last_nl = pos + nws + 1;
            nws++;
        }
        if (last_nl > 0) { /* \s*[\r\n]+ */
            pos = last_nl;
            add(s, pos);
            continue;
        }
        if (nws > 1 && CP(s, pos + nws) != OOR) {
            pos += nws - 1;
            add(s, pos);
            continue;
        }
        if (nws > 0) {
            pos += nws;
            add(s, pos);
            continue;
        }
        add(s, ++pos);
    }
}

/* A regex that is one character class repeated (C+): matches and the text between them each
 * become a word. */
typedef bool (*cls_fn)(uint32_t cp, unsigned flags);

static void split_runs(seg *s, cls_fn in) {
    size_t pos = s->ini;
    while (pos < s->end && !s->err) {
        bool m = in(s->cp[pos], s->fl[pos]);
        size_t e = pos + 1;
        while (e < s->end && in(s->cp[e], s->fl[e]) == m) e++;
        add(s, e);
        pos = e;
    }
}

/* [\p{P}\$\+<=>\^~\|]+ */
static bool cls_punct(uint32_t cp, unsigned f) {
    return (f & HLLM_UC_P) || (cp < 128 && strchr("$+<=>^~|", (int)cp) && cp != 0);
}
/* \p{N}+ */
static bool cls_number(uint32_t cp, unsigned f) {
    (void)cp;
    return f & HLLM_UC_N;
}

/* [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits */
static void split_digit3(seg *s) {
    size_t pos = s->ini;
    while (pos + 3 <= s->end && !s->err) {
        const uint32_t *c = s->cp + pos;
        if (c[0] >= '0' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9') {
            add(s, pos); /* the text before it, if any */
            add(s, pos + 3);
            pos += 3;
        } else {
            pos++;
        }
    }
    add(s, s->end);
}

typedef enum { P_GPT2, P_LLAMA3, P_QWEN2, P_PUNCT, P_NUMBER, P_DIGIT3 } pass;

static int run_pass(pass p, const uint32_t *cp, const uint8_t *fl, lens *in, lens *out) {
    out->n = 0;
    size_t start = 0;
    seg s = {.cp = cp, .fl = fl, .out = out};
    for (size_t i = 0; i < in->n; i++) {
        s.ini = s.prev_end = start;
        s.end = start + in->v[i];
        switch (p) {
        case P_GPT2: split_gpt2(&s); break;
        case P_LLAMA3: split_llama3(&s, 3); break;
        case P_QWEN2: split_llama3(&s, 1); break;
        case P_PUNCT: split_runs(&s, cls_punct); break;
        case P_NUMBER: split_runs(&s, cls_number); break;
        case P_DIGIT3: split_digit3(&s); break;
        }
        if (s.err) return -1;
        start = s.end;
    }
    return 0;
}

int hllm_pretokenize(hllm_pre_type pre, const char *text, size_t len, hllm_word_fn cb, void *user) {
    if (len == 0) return 0;
    uint32_t *cp = malloc(len * sizeof *cp);
    uint8_t *fl = malloc(len);
    lens a = {0}, b = {0};
    int rc = -1;
    if (!cp || !fl) {
        hllm_fail("tokenizer: out of memory");
        goto done;
    }
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        uint32_t c = hllm_utf8_decode(text, len, &off);
        cp[n] = c;
        fl[n] = (uint8_t)(hllm_uc_flags(c) | HLLM_UC_IN);
        n++;
    }
    if (push_len(&a, n) < 0) goto done;

    pass seq[4];
    int nseq = 0;
    switch (pre) {
    case HLLM_PRE_GPT2: seq[nseq++] = P_GPT2; break;
    case HLLM_PRE_LLAMA3: seq[nseq++] = P_LLAMA3; break;
    case HLLM_PRE_QWEN2: seq[nseq++] = P_QWEN2; break;
    case HLLM_PRE_DEFAULT:
        seq[nseq++] = P_PUNCT;
        seq[nseq++] = P_GPT2;
        seq[nseq++] = P_NUMBER;
        seq[nseq++] = P_DIGIT3;
        break;
    }
    for (int i = 0; i < nseq; i++) {
        if (run_pass(seq[i], cp, fl, &a, &b) < 0) goto done;
        lens t = a;
        a = b;
        b = t;
    }
    size_t start = 0;
    for (size_t i = 0; i < a.n; i++) {
        if (cb(user, cp + start, a.v[i]) < 0) goto done;
        start += a.v[i];
    }
    rc = 0;
done:
    free(cp);
    free(fl);
    free(a.v);
    free(b.v);
    return rc;
}
