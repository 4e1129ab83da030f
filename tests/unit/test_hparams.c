/* Hyperparameters a file may not carry: a synth model's metadata values patched in place
 * (context_length 0 or past INT32_MAX, an infinite or NaN rope base or RMS epsilon) must be
 * refused at load with one line that names the value, and the unpatched file must load. */
#include "testutil.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *g_file;
static size_t g_size;

/* The value bytes of metadata key `key` (GGUF: length-prefixed key, u32 type, value). */
static unsigned char *value_of(const char *key, uint32_t want_type) {
    const size_t n = strlen(key);
    for (size_t i = 8; i + n + 8 <= g_size; i++) {
        uint64_t len;
        memcpy(&len, g_file + i - 8, 8);
        if (len != n || memcmp(g_file + i, key, n)) continue;
        uint32_t type;
        memcpy(&type, g_file + i + n, 4);
        return type == want_type ? g_file + i + n + 4 : NULL;
    }
    return NULL;
}

/* Loads the patched bytes; returns whether the model loaded, the error in *err. */
static bool loads(char *err, size_t cap) {
    hllm_gguf_file *f = hllm_gguf_open_memory(g_file, g_size, "patched");
    hllm_model_s *m = f ? hllm_model_from_gguf(f) : NULL;
    snprintf(err, cap, "%s", m ? "" : hllm_error());
    if (m) hllm_model_destroy(m);
    else if (f) hllm_gguf_close(f);
    return m != NULL;
}

static void refused(const char *what, const char *expect) {
    char err[1024];
    CHECKF(!loads(err, sizeof err), "%s: loaded", what);
    CHECKF(strstr(err, expect) && !strchr(err, '\n'), "%s: error '%s' (expected '%s')", what, err, expect);
}

/* Sets key's 4-byte value (of the given type) to *v, checks the refusal, restores the value. */
static void patch(const char *key, uint32_t type, const void *v, const char *what, const char *expect) {
    unsigned char *p = value_of(key, type);
    CHECKF(p != NULL, "no key %s of type %u", key, type);
    if (!p) return;
    unsigned char old[4];
    memcpy(old, p, 4);
    memcpy(p, v, 4);
    refused(what, expect);
    memcpy(p, old, 4);
}

static void patch_f32(const char *key, float v, const char *expect) {
    char what[160];
    snprintf(what, sizeof what, "%s = %g", key, v);
    patch(key, GGUF_TYPE_FLOAT32, &v, what, expect);
}

static void patch_u32(const char *key, uint32_t v, const char *expect) {
    char what[160];
    snprintf(what, sizeof what, "%s = %u", key, v);
    patch(key, GGUF_TYPE_UINT32, &v, what, expect);
}

int main(void) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/hllm_test_hparams_%d.gguf", (int)getpid());
    hllm_synth_opts o = {.arch = "llama", .preset = "tiny", .type = HLLM_TYPE_F32, .seed = 5, .n_threads = 1};
    CHECKF(hllm_synth_write(&o, path) == 0, "synth: %s", hllm_error());
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        g_size = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        g_file = malloc(g_size);
        if (g_file && fread(g_file, 1, g_size, f) != g_size) g_size = 0;
        fclose(f);
    }
    unlink(path);
    CHECK(g_file && g_size > 0);
    if (!g_file || !g_size) return test_summary("test_hparams");

    char err[1024];
    CHECKF(loads(err, sizeof err), "the unpatched file: %s", err);
    patch_u32("llama.context_length", 0, "context_length 0 is out of range");
    patch_u32("llama.context_length", UINT32_MAX, "context_length 4294967295 is out of range");
    patch_f32("llama.rope.freq_base", INFINITY, "bad rope base inf");
    patch_f32("llama.rope.freq_base", NAN, "bad rope base nan");
    patch_f32("llama.rope.freq_base", 0.0f, "bad rope base 0");
    patch_f32("llama.attention.layer_norm_rms_epsilon", INFINITY, "rms epsilon inf");
    patch_f32("llama.attention.layer_norm_rms_epsilon", -1e-5f, "rms epsilon -1e-05");
    CHECKF(loads(err, sizeof err), "the file restored: %s", err);
    free(g_file);
    return test_summary("test_hparams");
}
