/* End to end through the public API on the real stories260K model: greedy decoding gives the
 * story llama.cpp and llama2.c give; batch prefill equals token-by-token evaluation; bad
 * requests are refused without losing what is loaded. */
#include "hllm.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

static int greedy(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static void gen_text(hllm_model *m, hllm_kv_type kv, int n_threads, int n_batch, char *out, size_t cap) {
    hllm_context_params cp = hllm_context_default_params();
    cp.n_ctx = 256;
    cp.kv_type = kv;
    cp.n_threads = n_threads;
    cp.n_batch = n_batch;
    hllm_context *c = hllm_context_new(m, &cp);
    CHECK(c != NULL);
    out[0] = 0;
    if (!c) return;
    hllm_token toks[64];
    int n = hllm_model_tokenize(m, "Once upon a time", 16, true, false, toks, 64);
    CHECK(n == 5 && toks[0] == 1);
    CHECK(hllm_eval(c, toks, n) == 0);
    size_t len = 0;
    hllm_detok d = {0};
    for (int i = 0; i < 40; i++) {
        hllm_token t = greedy(hllm_get_logits(c), hllm_model_n_vocab(m));
        char piece[256];
        int k = hllm_detok_piece(m, &d, t, piece, sizeof piece);
        if (k > 0 && len + (size_t)k < cap) {
            memcpy(out + len, piece, (size_t)k);
            len += (size_t)k;
        }
        if (hllm_eval(c, &t, 1)) break;
    }
    out[len] = 0;
    hllm_context_free(c);
}

int main(void) {
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        printf("SKIP: ../shared/models/stories260K.gguf not found\n");
        return test_summary("test_model");
    }
    hllm_model *m = hllm_model_load(path, NULL);
    CHECKF(m != NULL, "load: %s", hllm_last_error());
    if (!m) return test_summary("test_model");
    CHECK(hllm_model_n_vocab(m) == 512);
    CHECK(hllm_model_n_layer(m) == 5);
    CHECK(hllm_model_n_embd(m) == 64);

    /* Karpathy's documented greedy sample for stories260K (and llama.cpp's output) */
    const char *want = ", there was a little girl named Lily. She loved to play outside in the park.";
    char text[4096];
    gen_text(m, HLLM_KV_F32, 1, 512, text, sizeof text);
    CHECKF(strncmp(text, want, strlen(want)) == 0, "f32 kv, 1 thread: got '%s'", text);
    gen_text(m, HLLM_KV_F16, 2, 512, text, sizeof text);
    CHECKF(strncmp(text, want, strlen(want)) == 0, "f16 kv, 2 threads: got '%s'", text);
    gen_text(m, HLLM_KV_F32, 2, 2, text, sizeof text); /* prompt in batches of 2 */
    CHECKF(strncmp(text, want, strlen(want)) == 0, "batch 2: got '%s'", text);

    /* prefill of a batch equals evaluating the same tokens one at a time */
    hllm_context_params cp = hllm_context_default_params();
    cp.n_ctx = 64;
    cp.kv_type = HLLM_KV_F32;
    cp.n_threads = 2;
    hllm_context *a = hllm_context_new(m, &cp), *b = hllm_context_new(m, &cp);
    hllm_token toks[16] = {1, 403, 407, 261, 378, 300, 301, 302, 303, 304, 305, 306};
    CHECK(hllm_eval(a, toks, 12) == 0);
    for (int i = 0; i < 12; i++) CHECK(hllm_eval(b, &toks[i], 1) == 0);
    float maxd = 0;
    const float *la = hllm_get_logits(a), *lb = hllm_get_logits(b);
    for (int i = 0; i < 512; i++) {
        maxd = (float)test_max_err(maxd, fabsf(la[i] - lb[i]));
    }
    CHECKF(maxd < 1e-4f, "batch vs one-by-one logits differ by %g", maxd);

    /* refusals keep the context usable */
    hllm_token bad = 100000;
    CHECK(hllm_eval(a, &bad, 1) != 0);
    CHECK(strstr(hllm_last_error(), "out of range") != NULL);
    CHECK(hllm_context_pos(a) == 12);
    hllm_token many[64] = {0};
    CHECK(hllm_eval(a, many, 60) != 0); /* 12 + 60 > 64 */
    CHECK(strstr(hllm_last_error(), "do not fit") != NULL);
    CHECK(hllm_context_pos(a) == 12);
    hllm_token one = 300;
    CHECK(hllm_eval(a, &one, 1) == 0);
    CHECK(hllm_context_pos(a) == 13);
    hllm_context_free(a);
    hllm_context_free(b);

    CHECK(hllm_model_load("/nonexistent/model.gguf", NULL) == NULL);
    CHECK(strlen(hllm_last_error()) > 0);
    hllm_model_free(m);
    return test_summary("test_model");
}
