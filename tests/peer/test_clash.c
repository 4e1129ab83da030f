/* Symbol-clash check for llama_ref.
 *
 * libggml-base.so exports gguf_* functions, and libllama calls two of them that
 * heterollm's src/gguf/gguf.h also defines, with other signatures:
 * gguf_find_tensor and gguf_get_arr_str. This program defines both (as traps),
 * exports them (built with -rdynamic, as a program linking libhllm.so would),
 * then loads stories260K through llama_ref and greedily generates. With
 * llama_ref's dlopen(RTLD_LOCAL | RTLD_DEEPBIND) libllama must bind to ggml's
 * own gguf_* and never reach the traps.
 *   usage: test_clash MODEL            exit 0 = pass
 * (HLLM_LLAMA_NO_DEEPBIND=1 shows the failure mode: the trap fires.) */
#include "llama_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* same names as ggml's and ours; deliberately not the ggml signatures */
void *gguf_find_tensor(const void *f, const char *name);
void *gguf_get_arr_str(const void *f, const char *key);

void *gguf_find_tensor(const void *f, const char *name) {
    (void)f;
    fprintf(stderr, "test_clash: FAIL: libllama called the program's gguf_find_tensor(%s)\n", name ? "..." : "NULL");
    exit(3);
}

void *gguf_get_arr_str(const void *f, const char *key) {
    (void)f;
    (void)key;
    fprintf(stderr, "test_clash: FAIL: libllama called the program's gguf_get_arr_str\n");
    exit(3);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_clash MODEL\n");
        return 2;
    }
    llama_ref_params p;
    llama_ref_default_params(&p);
    p.n_ctx = 64;
    llama_ref *r = llama_ref_open(argv[1], &p);
    if (!r) {
        fprintf(stderr, "test_clash: %s\n", llama_ref_last_error());
        return 1;
    }
    int32_t *ids = NULL;
    int n = llama_ref_tokenize_alloc(r, "Once upon a time", -1, 1, 0, &ids);
    int32_t out[8];
    int k = n > 0 ? llama_ref_generate_greedy(r, ids, n, 8, 0, out, NULL, NULL) : -1;
    static const int32_t want[8] = {432, 383, 286, 261, 376, 298, 315, 421};
    int ok = k == 8 && memcmp(out, want, sizeof want) == 0;
    printf("test_clash: %s (libllama bound to its own gguf_* despite same-named exported symbols)\n",
           ok ? "ok" : "FAIL: unexpected tokens");
    free(ids);
    llama_ref_close(r);
    return ok ? 0 : 1;
}
