#include "args.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *arg_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "hllm %s: option '%s' needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hllm %s: bad value '%s' for %s (an integer in %ld..%ld)\n", cmd, s, flag, lo, hi);
        return false;
    }
    *out = (int)v;
    return true;
}

bool arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "hllm %s: bad value '%s' for %s (a number in %g..%g)\n", cmd, s, flag, lo, hi);
        return false;
    }
    *out = (float)v;
    return true;
}

bool arg_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "hllm %s: bad value '%s' for %s (a non-negative integer)\n", cmd, s, flag);
        return false;
    }
    *out = v;
    return true;
}

int arg_int_list(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out, int max) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            fprintf(stderr, "hllm %s: too many values for %s (at most %d)\n", cmd, flag, max);
            return -1;
        }
        if (!arg_int(cmd, flag, tok, lo, hi, &out[n])) return -1;
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "hllm %s: empty value for %s\n", cmd, flag);
        return -1;
    }
    return n;
}

bool arg_choice(const char *cmd, const char *flag, const char *s, const char *const *names, int n, int *index) {
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) {
            *index = i;
            return true;
        }
    char list[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", names[i]);
    fprintf(stderr, "hllm %s: bad value '%s' for %s (%s)\n", cmd, s, flag, list);
    return false;
}
