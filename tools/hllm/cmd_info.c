/* hllm info: a llama.cpp-style dump of a GGUF's metadata and tensors, and a size summary. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "core/error.h"
#include "gguf/gguf.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: hllm info -m FILE [options]\n"
            "\n"
            "Prints a GGUF's header, metadata (arrays summarized), tensors and a summary\n"
            "(file size, parameter count, bits per weight).\n"
            "\n"
            "  -m, --model FILE   GGUF file (may also be given without -m)\n"
            "  -n, --elements N   array elements to show (default 5)\n"
            "      --no-tensors   skip the tensor list\n"
            "  -h, --help\n");
}

/* Prints s (n bytes) quoted, escaping non-printables, at most max bytes. */
static void print_str(const char *s, uint64_t n, uint64_t max) {
    putchar('"');
    for (uint64_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c); /* UTF-8 bytes pass through */
    }
    putchar('"');
    if (n > max) printf("... (%" PRIu64 " bytes)", n);
}

static void print_elem(hllm_gguf_vtype t, const uint8_t *p) {
    uint64_t u = 0;
    size_t sz = t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_BOOL ? 1
                : t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_INT16                    ? 2
                : t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_FLOAT32 ? 4
                                                                                           : 8;
    for (size_t i = 0; i < sz; i++) u |= (uint64_t)p[i] << (8 * i); /* GGUF is little-endian */
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        printf("%" PRIu64, u);
        break;
    case GGUF_TYPE_INT8: printf("%d", (int8_t)u); break;
    case GGUF_TYPE_INT16: printf("%d", (int16_t)u); break;
    case GGUF_TYPE_INT32: printf("%" PRId32, (int32_t)u); break;
    case GGUF_TYPE_INT64: printf("%" PRId64, (int64_t)u); break;
    case GGUF_TYPE_FLOAT32: {
        uint32_t b = (uint32_t)u;
        float x;
        memcpy(&x, &b, 4);
        printf("%g", x);
        break;
    }
    case GGUF_TYPE_FLOAT64: {
        double x;
        memcpy(&x, &u, 8);
        printf("%g", x);
        break;
    }
    case GGUF_TYPE_BOOL: fputs(u ? "true" : "false", stdout); break;
    default: fputs("?", stdout); break;
    }
}

static size_t elem_size(hllm_gguf_vtype t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    default: return 8;
    }
}

static void print_kv(int64_t i, const hllm_gguf_kv *kv, int n_elems) {
    char type[48];
    if (kv->type == GGUF_TYPE_ARRAY)
        snprintf(type, sizeof type, "arr[%s,%" PRIu64 "]", hllm_gguf_vtype_name(kv->arr_type), kv->arr_n);
    else
        snprintf(type, sizeof type, "%s", hllm_gguf_vtype_name(kv->type));
    printf("  kv %3" PRId64 ": %-42s %-16s = ", i, kv->key.s, type);
    switch (kv->type) {
    case GGUF_TYPE_STRING: print_str(kv->v.str.s, kv->v.str.n, 120); break;
    case GGUF_TYPE_ARRAY: {
        putchar('[');
        uint64_t shown = kv->arr_n < (uint64_t)n_elems ? kv->arr_n : (uint64_t)n_elems;
        for (uint64_t j = 0; j < shown; j++) {
            if (j) fputs(", ", stdout);
            if (kv->arr_type == GGUF_TYPE_STRING) print_str(kv->v.arr_str[j].s, kv->v.arr_str[j].n, 40);
            else print_elem(kv->arr_type, (const uint8_t *)kv->v.arr + j * elem_size(kv->arr_type));
        }
        if (shown < kv->arr_n) fputs(", ...", stdout);
        putchar(']');
        break;
    }
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
        printf("%" PRIu64, kv->v.u64);
        break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        printf("%" PRId64, kv->v.i64);
        break;
    case GGUF_TYPE_FLOAT32: printf("%g", kv->v.f64); break;
    case GGUF_TYPE_FLOAT64: printf("%.17g", kv->v.f64); break;
    case GGUF_TYPE_BOOL: fputs(kv->v.b ? "true" : "false", stdout); break;
    default: break;
    }
    putchar('\n');
}

static void human_bytes(char *buf, size_t n, double b) {
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) snprintf(buf, n, "%.2f MiB", b / (1024.0 * 1024));
    else if (b >= 1024.0) snprintf(buf, n, "%.2f KiB", b / 1024.0);
    else snprintf(buf, n, "%.0f B", b);
}

static void human_count(char *buf, size_t n, double c) {
    if (c >= 1e9) snprintf(buf, n, "%.2f B", c / 1e9);
    else if (c >= 1e6) snprintf(buf, n, "%.2f M", c / 1e6);
    else if (c >= 1e3) snprintf(buf, n, "%.2f K", c / 1e3);
    else snprintf(buf, n, "%.0f", c);
}

int hllm_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int n_elems = 5, tensors = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(v = arg_value("info", argc, argv, &i))) return 2;
            path = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--elements")) {
            if (!(v = arg_value("info", argc, argv, &i))) return 2;
            if (!arg_int("info", a, v, 0, 1 << 20, &n_elems)) return 2;
        } else if (!strcmp(a, "--no-tensors")) {
            tensors = 0;
        } else if (a[0] == '-' || path) {
            fprintf(stderr, "hllm info: unknown option '%s' (see hllm info --help)\n", a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "hllm info: no model given (-m FILE)\n");
        return 2;
    }
    hllm_gguf_file *f = hllm_gguf_open(path);
    if (!f) {
        fprintf(stderr, "hllm: %s\n", hllm_error());
        return 1;
    }
    char sz[32], cnt[32];
    human_bytes(sz, sizeof sz, (double)hllm_gguf_file_size(f));
    printf("file: %s\n", path);
    printf("format: GGUF v%u, little-endian, alignment %u, %" PRId64 " key-value pairs, %" PRId64
           " tensors, tensor data at offset %zu\n",
           hllm_gguf_version(f), hllm_gguf_alignment(f), hllm_gguf_n_kv(f), hllm_gguf_n_tensors(f), hllm_gguf_data_offset(f));
    printf("\nmetadata:\n");
    for (int64_t i = 0; i < hllm_gguf_n_kv(f); i++) print_kv(i, hllm_gguf_kv_at(f, i), n_elems);

    uint64_t n_params = 0, n_bytes = 0;
    int64_t per_type[HLLM_TYPE_COUNT] = {0};
    uint64_t bytes_type[HLLM_TYPE_COUNT] = {0};
    if (tensors) printf("\ntensors:\n");
    for (int64_t i = 0; i < hllm_gguf_n_tensors(f); i++) {
        const hllm_gguf_tensor *t = hllm_gguf_tensor_at(f, i);
        int64_t nel = 1;
        char shape[96];
        int k = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++) {
            nel *= t->ne[d];
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%" PRId64, d ? ", " : "", t->ne[d]);
        }
        snprintf(shape + k, sizeof shape - (size_t)k, "]");
        n_params += (uint64_t)nel;
        n_bytes += t->nbytes;
        if (t->type >= 0 && t->type < HLLM_TYPE_COUNT) {
            per_type[t->type]++;
            bytes_type[t->type] += t->nbytes;
        }
        if (tensors) {
            const hllm_type_traits *tr = hllm_type_info(t->type);
            printf("  tensor %4" PRId64 ": %-34s %-7s %-22s offset %12zu  %12zu bytes%s\n", i, t->name.s,
                   hllm_type_name(t->type), shape, hllm_gguf_data_offset(f) + (size_t)t->offset, t->nbytes,
                   tr->supported ? "" : "  (type not supported by heterollm)");
        }
    }
    printf("\nsummary:\n");
    for (int ty = 0; ty < HLLM_TYPE_COUNT; ty++) {
        if (!per_type[ty]) continue;
        char b[32];
        human_bytes(b, sizeof b, (double)bytes_type[ty]);
        printf("  type %-5s: %4" PRId64 " tensors, %s\n", hllm_type_name(ty), per_type[ty], b);
    }
    human_count(cnt, sizeof cnt, (double)n_params);
    char tb[32];
    human_bytes(tb, sizeof tb, (double)n_bytes);
    printf("  file size      : %zu bytes (%s)\n", hllm_gguf_file_size(f), sz);
    printf("  tensor data    : %" PRIu64 " bytes (%s)\n", n_bytes, tb);
    printf("  parameters     : %" PRIu64 " (%s)\n", n_params, cnt);
    printf("  bits per weight: %.2f\n", n_params ? (double)n_bytes * 8.0 / (double)n_params : 0.0);
    hllm_gguf_close(f);
    return 0;
}
