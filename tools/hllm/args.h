/* Flag-value parsing shared by the subcommands: every bad value is refused with one line. */
#ifndef HLLM_ARGS_H
#define HLLM_ARGS_H
#include <stdbool.h>
#include <stdint.h>

/* The value after flag argv[*i] (advancing *i), or NULL after printing an error. */
const char *arg_value(const char *cmd, int argc, char **argv, int *i);
bool arg_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out);
bool arg_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out);
bool arg_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
/* One of n names (e.g. --split none|layer|tensor): *index = its position. */
bool arg_choice(const char *cmd, const char *flag, const char *s, const char *const *names, int n, int *index);
/* Comma-separated ints ("512,1024"); at most max values. */
int arg_int_list(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out, int max);

#endif
