/* tok_compare: checks hllm's tokenizer against llama.cpp (through tests/peer/llama_ref, vocab
 * only) and optionally against the ids the npm packages produce.
 *
 *   tok_compare MODEL.gguf STRINGS.txt [--js IDS.txt --js-special 0|1] [--fuzz N [--seed S]]
 *
 * For every string of STRINGS.txt (escapes as described in README.md) and every combination
 * of add_special / parse_special, the token ids must be equal; every token's piece (special
 * 0 and 1) must be equal; detokenizing hllm's ids must give back the text where the round trip
 * is exact. --fuzz adds N random strings made of tricky fragments. Prints "N passed, N failed".
 * Built by make_vocabs.sh --compare. */
#include "llama_ref.h"
#include "tokenizer/tokenizer.h"
#include "core/error.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_pass, g_fail, g_shown;

static void fail(const char *what, const char *s, size_t n, const int32_t *a, int na, const int32_t *b, int nb) {
    g_fail++;
    if (g_shown++ >= 40) return;
    printf("FAIL %s: \"", what);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c == '\r') printf("\\r");
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    printf("\"\n  hllm:");
    for (int i = 0; i < na; i++) printf(" %d", a[i]);
    printf("\n  ref: ");
    for (int i = 0; i < nb; i++) printf(" %d", b[i]);
    printf("\n");
}

static int hexv(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t put_utf8(unsigned cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63)); return 3; }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63)); o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* \n \r \t \\ \xHH \u{HEX} */
static size_t unescape(const char *in, char *out) {
    size_t k = 0;
    for (size_t i = 0; in[i]; i++) {
        if (in[i] != '\\' || !in[i + 1]) { out[k++] = in[i]; continue; }
        char d = in[++i];
        if (d == 'n') out[k++] = '\n';
        else if (d == 'r') out[k++] = '\r';
        else if (d == 't') out[k++] = '\t';
        else if (d == '\\') out[k++] = '\\';
        else if (d == 'x' && hexv(in[i + 1]) >= 0 && hexv(in[i + 2]) >= 0) {
            out[k++] = (char)(hexv(in[i + 1]) * 16 + hexv(in[i + 2]));
            i += 2;
        } else if (d == 'u' && in[i + 1] == '{') {
            unsigned cp = (unsigned)strtoul(in + i + 2, NULL, 16);
            k += put_utf8(cp, out + k);
            i = (size_t)(strchr(in + i, '}') - in);
        } else {
            out[k++] = '\\';
            out[k++] = d;
        }
    }
    return k;
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n) return false;
        for (size_t j = 1; j < len; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

static int32_t A[1 << 16], B[1 << 16];

static void check_text(llama_ref *r, const hllm_tokenizer *t, const char *s, size_t n) {
    for (int as = 0; as < 2; as++) {
        for (int ps = 0; ps < 2; ps++) {
            int na = hllm_tokenize(t, s, n, as, ps, A, 1 << 16);
            int nb = llama_ref_tokenize(r, s, (int)n, as, ps, B, 1 << 16);
            char what[64];
            snprintf(what, sizeof what, "tokenize add_special=%d parse_special=%d", as, ps);
            if (na == nb && na >= 0 && memcmp(A, B, (size_t)na * sizeof *A) == 0) g_pass++;
            else fail(what, s, n, A, na, B, nb);
        }
    }
    /* round trip: without special parsing, valid UTF-8 text comes back unchanged */
    if (valid_utf8(s, n)) {
        int na = hllm_tokenize(t, s, n, false, false, A, 1 << 16);
        static char buf[1 << 20];
        int m = na >= 0 ? hllm_detokenize(t, A, na, buf, sizeof buf, false, false) : -1;
        bool spm = strcmp(hllm_tokenizer_model(t), "llama") == 0;
        /* "gpt2" vocabs clean up spaces before punctuation; only check texts without it */
        bool cleanable = false;
        for (size_t i = 1; i < n; i++)
            if (s[i - 1] == ' ' && strchr("?!.,'", s[i])) cleanable = true;
        /* SPM renders U+2581 as a space, so such texts cannot come back */
        bool has_2581 = false;
        for (size_t i = 0; i + 2 < n; i++)
            if (!memcmp(s + i, "\xe2\x96\x81", 3)) has_2581 = true;
        if (spm ? !has_2581 : !cleanable) {
            if (m == (int)n && memcmp(buf, s, n) == 0) g_pass++;
            else fail("round trip", s, n, A, na, NULL, 0);
        }
    }
}

static unsigned long long g_rng = 88172645463325252ull;
static unsigned rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng >> 11);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tok_compare MODEL.gguf STRINGS.txt [--js IDS.txt --js-special 0|1] [--fuzz N] [--seed S]\n");
        return 2;
    }
    const char *js = NULL;
    int js_special = 0, fuzz = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--js") && i + 1 < argc) js = argv[++i];
        else if (!strcmp(argv[i], "--js-special") && i + 1 < argc) js_special = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fuzz") && i + 1 < argc) fuzz = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) g_rng = strtoull(argv[++i], NULL, 10) | 1;
    }
    hllm_gguf_file *f = hllm_gguf_open(argv[1]);
    hllm_tokenizer *t = f ? hllm_tokenizer_from_gguf(f) : NULL;
    if (!t) {
        fprintf(stderr, "tok_compare: %s\n", hllm_error());
        return 1;
    }
    llama_ref_params p;
    llama_ref_default_params(&p);
    p.vocab_only = 1;
    llama_ref *r = llama_ref_open(argv[1], &p);
    if (!r) {
        fprintf(stderr, "tok_compare: %s\n", llama_ref_last_error());
        return 1;
    }

    /* pieces of every token */
    int nv = hllm_tokenizer_n_vocab(t);
    if (nv == llama_ref_n_vocab(r)) g_pass++;
    else g_fail++, printf("FAIL n_vocab %d vs %d\n", nv, llama_ref_n_vocab(r));
    if (hllm_tokenizer_bos(t) == llama_ref_bos(r) && hllm_tokenizer_eos(t) == llama_ref_eos(r) &&
        hllm_tokenizer_add_bos(t) == (llama_ref_add_bos(r) != 0))
        g_pass++;
    else
        g_fail++, printf("FAIL bos/eos/add_bos\n");
    int piece_fail = 0, eog_fail = 0;
    for (int32_t id = 0; id < nv; id++) {
        if (hllm_tokenizer_is_eog(t, id) != (llama_ref_is_eog(r, id) != 0)) {
            if (eog_fail++ < 5) printf("FAIL is_eog(%d)\n", id);
        }
        for (int sp = 0; sp < 2; sp++) {
            char a[512], b[512];
            int na = hllm_token_to_piece(t, id, a, sizeof a, sp);
            int nb = llama_ref_token_to_piece(r, id, b, sizeof b, sp);
            if (na != nb || (na > 0 && memcmp(a, b, (size_t)na))) {
                if (piece_fail++ < 5) printf("FAIL piece(%d, special=%d): %d vs %d bytes\n", id, sp, na, nb);
            }
        }
    }
    if (piece_fail) g_fail++; else g_pass++;
    if (eog_fail) g_fail++; else g_pass++;

    FILE *sf = fopen(argv[2], "r");
    FILE *jf = js ? fopen(js, "r") : NULL;
    if (!sf || (js && !jf)) {
        fprintf(stderr, "tok_compare: cannot open %s\n", !sf ? argv[2] : js);
        return 1;
    }
    static char line[1 << 16], text[1 << 18], jline[1 << 18];
    int lines = 0;
    while (fgets(line, sizeof line, sf)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        size_t n = unescape(line, text);
        check_text(r, t, text, n);
        lines++;
        if (jf && fgets(jline, sizeof jline, jf)) {
            if (!valid_utf8(text, n)) continue; /* the JS side saw U+FFFD instead */
            int nb = 0;
            for (char *p2 = strtok(jline, " \n"); p2; p2 = strtok(NULL, " \n")) B[nb++] = atoi(p2);
            int na = hllm_tokenize(t, text, n, true, js_special, A, 1 << 16);
            if (na == nb && memcmp(A, B, (size_t)na * sizeof *A) == 0) g_pass++;
            else fail("vs npm package", text, n, A, na, B, nb);
        }
    }
    fclose(sf);
    if (jf) fclose(jf);

    static const char *frags[] = {" ", "  ", "\n", "\r\n", "\t", "a", "Hello", " world", "'s", "'LL", "'",
                                  "1", "23", "4567", ".", "!?", "...", "(", ")", "-", "_", "$", "+", "<", ">",
                                  "|", "~", "^", "é", "ñ", "中文", "日本", "😀", "👍🏽", "‍", "️", "\xc2\xa0",
                                  "\xe3\x80\x80", "\xe2\x96\x81", "\xcc\x81", "\xff", "\xe2\x82", "\x80", "<s>",
                                  "</s>", "<unk>", "<|eot_id|>", "<|begin_of_text|>", "٣", "Ⅻ", "²", "\x0b",
                                  "\x0c", "\xc2\x85", "A", "Z", "zz", "x86", "3rd", "co-op", "#", "@", "€"};
    const int nfr = (int)(sizeof frags / sizeof frags[0]);
    for (int k = 0; k < fuzz; k++) {
        size_t n = 0;
        int parts = 1 + (int)(rnd() % 12);
        for (int i = 0; i < parts; i++) {
            const char *fr = frags[rnd() % (unsigned)nfr];
            memcpy(text + n, fr, strlen(fr));
            n += strlen(fr);
        }
        check_text(r, t, text, n);
    }
    printf("tok_compare %s: %d strings + %d fuzz\n", argv[1], lines, fuzz);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    llama_ref_close(r);
    hllm_tokenizer_free(t);
    hllm_gguf_close(f);
    return g_fail ? 1 : 0;
}
