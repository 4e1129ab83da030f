/* llama_ref: reference wrapper over llama.cpp's C API (see llama_ref.h).
 *
 * llama.h (from the source bundle that node-llama-cpp ships, extracted by
 * setup.sh into build/peer/include) is used only for types and prototypes:
 * nothing here links against libllama. The library is dlopen()ed with
 * RTLD_LOCAL (+ RTLD_DEEPBIND) and each function is looked up with dlsym, with
 * its pointer type taken from the header's prototype (__typeof__), so a
 * signature drift between header and code is a compile error. */
#define _GNU_SOURCE /* RTLD_DEEPBIND, dladdr */
#include "llama_ref.h"

#include "llama.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef LLAMA_REF_LIB_DIR
#define LLAMA_REF_LIB_DIR ""
#endif

#define LLAMA_REF_LIBNAME "libllama.v0.4.0.so"

#if defined(__SANITIZE_ADDRESS__)
#define LLAMA_REF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLAMA_REF_ASAN 1
#endif
#endif
#ifndef LLAMA_REF_ASAN
#define LLAMA_REF_ASAN 0
#endif

/* ---- the llama.cpp functions we use, resolved with dlsym ---- */
#define LLAMA_REF_FUNCS(X)                 \
    X(llama_backend_init)                  \
    X(llama_log_set)                       \
    X(llama_version)                       \
    X(llama_print_system_info)             \
    X(llama_model_default_params)          \
    X(llama_context_default_params)        \
    X(llama_model_load_from_file)          \
    X(llama_model_free)                    \
    X(llama_model_desc)                    \
    X(llama_init_from_model)               \
    X(llama_free)                          \
    X(llama_n_ctx)                         \
    X(llama_model_get_vocab)               \
    X(llama_vocab_n_tokens)                \
    X(llama_vocab_bos)                     \
    X(llama_vocab_eos)                     \
    X(llama_vocab_get_add_bos)             \
    X(llama_vocab_is_eog)                  \
    X(llama_tokenize)                      \
    X(llama_token_to_piece)                \
    X(llama_get_memory)                    \
    X(llama_memory_clear)                  \
    X(llama_batch_init)                    \
    X(llama_batch_free)                    \
    X(llama_decode)                        \
    X(llama_synchronize)                   \
    X(llama_get_logits_ith)                \
    X(llama_set_n_threads)                 \
    X(ggml_backend_load_all_from_path)     \
    X(ggml_backend_load)                   \
    X(ggml_backend_dev_count)              \
    X(ggml_backend_dev_get)                \
    X(ggml_backend_dev_name)               \
    X(ggml_backend_dev_description)

static struct {
#define X(name) __typeof__(&name) name;
    LLAMA_REF_FUNCS(X)
#undef X
} L;

static void *g_lib;          /* dlopen handle of libllama, kept for the process */
static int g_refs;           /* open llama_ref objects */
static int g_verbose;        /* log level filter for the llama.cpp logger */
static char g_lib_dir[PATH_MAX];
static char g_cpu_variant[PATH_MAX + 128]; /* the libggml-cpu-*.so ggml picked */
static char g_err[1024];

const char *llama_ref_last_error(void) { return g_err; }

static void set_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}

struct llama_ref {
    struct llama_model *model;
    struct llama_context *ctx;
    const struct llama_vocab *vocab;
    int n_vocab, n_ctx, n_batch, n_threads;
    struct llama_batch batch; /* n_batch slots */
    char backend_desc[256];
};

double llama_ref_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- logging ---- */
static void log_cb(enum ggml_log_level level, const char *text, void *ud) {
    static enum ggml_log_level last = GGML_LOG_LEVEL_INFO;
    (void)ud;
    if (level == GGML_LOG_LEVEL_CONT) level = last;
    else last = level;
    /* remember which CPU variant ggml's loader picked ("... loaded CPU backend from PATH") */
    const char *p = strstr(text, "loaded CPU backend from ");
    if (p) {
        p += strlen("loaded CPU backend from ");
        snprintf(g_cpu_variant, sizeof g_cpu_variant, "%s", p);
        g_cpu_variant[strcspn(g_cpu_variant, "\r\n")] = 0;
    }
    int show = level == GGML_LOG_LEVEL_ERROR || (g_verbose >= 1 && level == GGML_LOG_LEVEL_WARN) ||
               g_verbose >= 2;
    if (show) fputs(text, stderr);
}

/* ---- loading ---- */
static int file_exists(const char *dir, const char *name) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) return 0;
    return access(p, R_OK) == 0;
}

static int exe_dir(char *out, size_t n) {
    char buf[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (k <= 0) return 0;
    buf[k] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(out, n, "%s", buf);
    return 1;
}

static int find_lib_dir(const char *param_dir, char *out, size_t n) {
    const char *cands[8];
    int nc = 0;
    char e1[PATH_MAX], e2[PATH_MAX], e3[PATH_MAX];
    if (param_dir && *param_dir) cands[nc++] = param_dir;
    const char *env = getenv("HLLM_LLAMA_LIB_DIR");
    if (env && *env) cands[nc++] = env;
    if (LLAMA_REF_LIB_DIR[0]) cands[nc++] = LLAMA_REF_LIB_DIR;
    char ed[PATH_MAX];
    if (exe_dir(ed, sizeof ed)) {
        snprintf(e1, sizeof e1, "%.*s/lib", PATH_MAX - 16, ed);
        snprintf(e2, sizeof e2, "%.*s/peer/lib", PATH_MAX - 16, ed);
        snprintf(e3, sizeof e3, "%.*s/../peer/lib", PATH_MAX - 16, ed);
        cands[nc++] = e1;
        cands[nc++] = e2;
        cands[nc++] = e3;
    }
    for (int i = 0; i < nc; i++) {
        if (file_exists(cands[i], LLAMA_REF_LIBNAME)) {
            if (!realpath(cands[i], out)) snprintf(out, n, "%s", cands[i]);
            return 1;
        }
    }
    set_err("llama_ref: %s not found (tried %s%s%s%s%s); run tests/peer/setup.sh or set "
            "HLLM_LLAMA_LIB_DIR",
            LLAMA_REF_LIBNAME, nc > 0 ? cands[0] : "", nc > 1 ? ", " : "", nc > 1 ? cands[1] : "",
            nc > 2 ? ", " : "", nc > 2 ? cands[2] : "");
    return 0;
}

static int load_library(const char *param_dir) {
    if (g_lib) return 0;
    char dir[PATH_MAX];
    if (!find_lib_dir(param_dir, dir, sizeof dir)) return -1;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, LLAMA_REF_LIBNAME);

    int flags = RTLD_NOW | RTLD_LOCAL;
    const char *nodeep = getenv("HLLM_LLAMA_NO_DEEPBIND");
    /* DEEPBIND: libllama's own references (e.g. gguf_find_tensor into libggml-base)
     * bind inside its dependency tree even when the process exports same-named
     * symbols (libhllm.so, -rdynamic). ASan refuses DEEPBIND, so skip it there. */
    if (!LLAMA_REF_ASAN && !(nodeep && *nodeep && strcmp(nodeep, "0") != 0)) flags |= RTLD_DEEPBIND;
    void *h = dlopen(path, flags);
    if (!h) {
        set_err("llama_ref: dlopen(%s): %s", path, dlerror());
        return -1;
    }
#define X(name)                                                              \
    {                                                                        \
        void *sym = dlsym(h, #name);                                         \
        if (!sym) {                                                          \
            set_err("llama_ref: symbol %s not found in %s", #name, path);    \
            dlclose(h);                                                      \
            return -1;                                                       \
        }                                                                    \
        memcpy(&L.name, &sym, sizeof sym);                                   \
    }
    LLAMA_REF_FUNCS(X)
#undef X
    g_lib = h;
    snprintf(g_lib_dir, sizeof g_lib_dir, "%s", dir);

    L.llama_log_set(log_cb, NULL);
    /* The prebuilt ggml uses dynamically loaded backends: register the CPU one
     * (the best libggml-cpu-<variant>.so for this CPU, or the one forced by env). */
    const char *var = getenv("HLLM_LLAMA_CPU_VARIANT");
    if (var && *var) {
        char vp[PATH_MAX + 64];
        snprintf(vp, sizeof vp, "%s/libggml-cpu-%s.so", dir, var);
        if (!L.ggml_backend_load(vp)) {
            set_err("llama_ref: could not load CPU variant %s", vp);
            return -1;
        }
        snprintf(g_cpu_variant, sizeof g_cpu_variant, "%s", vp);
    } else {
        L.ggml_backend_load_all_from_path(dir);
    }
    if (L.ggml_backend_dev_count() == 0) {
        set_err("llama_ref: no ggml backend could be loaded from %s", dir);
        return -1;
    }
    L.llama_backend_init();
    return 0;
}

const char *llama_ref_lib_dir(void) { return g_lib_dir; }
const char *llama_ref_llama_version(void) { return g_lib ? L.llama_version() : ""; }
const char *llama_ref_system_info(void) { return g_lib ? L.llama_print_system_info() : ""; }

void llama_ref_default_params(llama_ref_params *p) {
    memset(p, 0, sizeof *p);
    p->n_ctx = 512;
    p->n_threads = 1;
    p->kv_type = LLAMA_REF_KV_F32;
    p->flash_attn = 0;
    p->use_mmap = 0;
    p->verbose = 0;
}

llama_ref *llama_ref_open(const char *model_path, const llama_ref_params *pp) {
    llama_ref_params p;
    if (pp) p = *pp;
    else llama_ref_default_params(&p);
    g_err[0] = 0;
    g_verbose = p.verbose;
    if (p.n_ctx <= 0) p.n_ctx = 512;
    if (p.n_batch <= 0 || p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    if (p.n_ubatch <= 0 || p.n_ubatch > p.n_batch) p.n_ubatch = p.n_batch;
    if (p.n_threads <= 0) p.n_threads = 1;
    if (load_library(p.lib_dir) != 0) return NULL;

    struct llama_model_params mp = L.llama_model_default_params();
    static ggml_backend_dev_t no_devices[1] = {NULL}; /* CPU only, even if a GPU backend got registered */
    mp.devices = no_devices;
    mp.n_gpu_layers = 0;
    mp.load_mode = p.use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
    mp.lazy_mode = LLAMA_LAZY_MODE_OFF;
    mp.vocab_only = p.vocab_only != 0;
    struct llama_model *model = L.llama_model_load_from_file(model_path, mp);
    if (!model) {
        set_err("llama_ref: failed to load model %s", model_path);
        return NULL;
    }

    struct llama_context *ctx = NULL;
    if (!p.vocab_only) {
        struct llama_context_params cp = L.llama_context_default_params();
        cp.n_ctx = (uint32_t)p.n_ctx;
        cp.n_batch = (uint32_t)p.n_batch;
        cp.n_ubatch = (uint32_t)p.n_ubatch;
        cp.n_seq_max = 1;
        cp.n_threads = p.n_threads;
        cp.n_threads_batch = p.n_threads;
        cp.type_k = p.kv_type == LLAMA_REF_KV_F16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
        cp.type_v = cp.type_k;
        cp.flash_attn_type = p.flash_attn < 0   ? LLAMA_FLASH_ATTN_TYPE_AUTO
                             : p.flash_attn > 0 ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                                                : LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.offload_kqv = false;
        cp.op_offload = false;
        cp.no_perf = true;
        ctx = L.llama_init_from_model(model, cp);
        if (!ctx) {
            L.llama_model_free(model);
            set_err("llama_ref: failed to create context (n_ctx %d)", p.n_ctx);
            return NULL;
        }
    }

    llama_ref *r = calloc(1, sizeof *r);
    if (!r) {
        L.llama_free(ctx);
        L.llama_model_free(model);
        set_err("llama_ref: out of memory");
        return NULL;
    }
    r->model = model;
    r->ctx = ctx;
    r->vocab = L.llama_model_get_vocab(model);
    r->n_vocab = L.llama_vocab_n_tokens(r->vocab);
    r->n_ctx = ctx ? (int)L.llama_n_ctx(ctx) : 0;
    r->n_batch = ctx ? p.n_batch : 0;
    r->n_threads = p.n_threads;
    if (ctx) r->batch = L.llama_batch_init(r->n_batch, 0, 1);

    const char *base = strrchr(g_cpu_variant, '/');
    base = base ? base + 1 : g_cpu_variant;
    char dev[160] = "";
    if (L.ggml_backend_dev_count() > 0) {
        ggml_backend_dev_t d = L.ggml_backend_dev_get(0);
        snprintf(dev, sizeof dev, "%s: %s", L.ggml_backend_dev_name(d),
                 L.ggml_backend_dev_description(d));
    }
    snprintf(r->backend_desc, sizeof r->backend_desc, "%.150s [%.100s]", dev, *base ? base : "?");
    g_refs++;
    return r;
}

void llama_ref_close(llama_ref *r) {
    if (!r) return;
    if (r->ctx) {
        L.llama_batch_free(r->batch);
        L.llama_free(r->ctx);
    }
    L.llama_model_free(r->model);
    free(r);
    g_refs--;
    /* the library stays loaded: ggml's backend registry is process-global */
}

const char *llama_ref_backend_desc(const llama_ref *r) { return r->backend_desc; }
int llama_ref_n_vocab(const llama_ref *r) { return r->n_vocab; }
int llama_ref_n_ctx(const llama_ref *r) { return r->n_ctx; }
int llama_ref_n_threads(const llama_ref *r) { return r->n_threads; }
int32_t llama_ref_bos(const llama_ref *r) { return L.llama_vocab_bos(r->vocab); }
int32_t llama_ref_eos(const llama_ref *r) { return L.llama_vocab_eos(r->vocab); }
int llama_ref_add_bos(const llama_ref *r) { return L.llama_vocab_get_add_bos(r->vocab) ? 1 : 0; }
int llama_ref_is_eog(const llama_ref *r, int32_t tok) { return L.llama_vocab_is_eog(r->vocab, tok) ? 1 : 0; }
int llama_ref_model_desc(const llama_ref *r, char *buf, size_t n) { return L.llama_model_desc(r->model, buf, n); }

void llama_ref_set_threads(llama_ref *r, int n_threads) {
    if (n_threads <= 0) n_threads = 1;
    r->n_threads = n_threads;
    if (r->ctx) L.llama_set_n_threads(r->ctx, n_threads, n_threads);
}

/* ---- tokens ---- */
int llama_ref_tokenize(llama_ref *r, const char *text, int len, int add_special, int parse_special,
                       int32_t *out, int max) {
    if (len < 0) len = (int)strlen(text);
    return L.llama_tokenize(r->vocab, text, len, out, max, add_special != 0, parse_special != 0);
}

int llama_ref_tokenize_alloc(llama_ref *r, const char *text, int len, int add_special,
                             int parse_special, int32_t **out) {
    if (len < 0) len = (int)strlen(text);
    int cap = len + 8;
    int32_t *buf = malloc((size_t)cap * sizeof *buf);
    if (!buf) return -1;
    int n = llama_ref_tokenize(r, text, len, add_special, parse_special, buf, cap);
    if (n < 0) {
        cap = -n;
        int32_t *nb = realloc(buf, (size_t)cap * sizeof *buf);
        if (!nb) {
            free(buf);
            return -1;
        }
        buf = nb;
        n = llama_ref_tokenize(r, text, len, add_special, parse_special, buf, cap);
    }
    if (n < 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return n;
}

int llama_ref_token_to_piece(llama_ref *r, int32_t tok, char *buf, int len, int special) {
    int n = L.llama_token_to_piece(r->vocab, tok, buf, len, 0, special != 0);
    if (n >= 0 && n < len) buf[n] = 0;
    return n;
}

/* ---- evaluation ---- */
void llama_ref_reset(llama_ref *r) {
    if (r->ctx) L.llama_memory_clear(L.llama_get_memory(r->ctx), true);
}

/* decode tokens[0..n) at positions pos0.. ; output flags: want_all or last only */
static int decode(llama_ref *r, const int32_t *tokens, int n, int pos0, int want_all) {
    if (!r->ctx) {
        set_err("llama_ref: opened vocab_only: no context to evaluate with");
        return -1;
    }
    if (n <= 0 || n > r->n_batch) {
        set_err("llama_ref: batch of %d tokens (n_batch %d)", n, r->n_batch);
        return -1;
    }
    if (pos0 + n > r->n_ctx) {
        set_err("llama_ref: %d tokens exceed n_ctx %d", pos0 + n, r->n_ctx);
        return -1;
    }
    struct llama_batch *b = &r->batch;
    b->n_tokens = n;
    for (int i = 0; i < n; i++) {
        b->token[i] = tokens[i];
        b->pos[i] = pos0 + i;
        b->n_seq_id[i] = 1;
        b->seq_id[i][0] = 0;
        b->logits[i] = (int8_t)(want_all || i == n - 1);
    }
    int rc = L.llama_decode(r->ctx, *b);
    if (rc != 0) {
        set_err("llama_ref: llama_decode returned %d", rc);
        return -1;
    }
    return 0;
}

static int copy_logits(llama_ref *r, int i, float *dst) {
    const float *src = L.llama_get_logits_ith(r->ctx, i);
    if (!src) {
        set_err("llama_ref: no logits for output %d", i);
        return -1;
    }
    memcpy(dst, src, (size_t)r->n_vocab * sizeof(float));
    return 0;
}

int llama_ref_eval(llama_ref *r, const int32_t *tokens, int n, float *all_logits, float *last_logits) {
    llama_ref_reset(r);
    if (decode(r, tokens, n, 0, all_logits != NULL) != 0) return -1;
    if (all_logits) {
        for (int i = 0; i < n; i++)
            if (copy_logits(r, i, all_logits + (size_t)i * (size_t)r->n_vocab) != 0) return -1;
        if (last_logits)
            memcpy(last_logits, all_logits + (size_t)(n - 1) * (size_t)r->n_vocab,
                   (size_t)r->n_vocab * sizeof(float));
    } else if (last_logits) {
        if (copy_logits(r, -1, last_logits) != 0) return -1;
    } else {
        L.llama_synchronize(r->ctx);
    }
    return 0;
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int llama_ref_generate_greedy(llama_ref *r, const int32_t *prompt, int n_prompt, int n_gen, int flags,
                              int32_t *out_tokens, float *first_logits, float *step_logits) {
    if (n_prompt <= 0 || n_gen < 0) {
        set_err("llama_ref: empty prompt");
        return -1;
    }
    if (n_prompt + n_gen > r->n_ctx + 1) {
        set_err("llama_ref: prompt %d + %d generated tokens exceed n_ctx %d", n_prompt, n_gen, r->n_ctx);
        return -1;
    }
    if (n_gen == 0 && !first_logits) return 0;
    float *lg = malloc((size_t)r->n_vocab * sizeof(float));
    if (!lg) {
        set_err("llama_ref: out of memory");
        return -1;
    }
    int produced = -1;
    llama_ref_reset(r);
    if (decode(r, prompt, n_prompt, 0, 0) != 0 || copy_logits(r, -1, lg) != 0) goto done;
    if (first_logits) memcpy(first_logits, lg, (size_t)r->n_vocab * sizeof(float));
    produced = 0;
    for (int i = 0; i < n_gen; i++) {
        if (i > 0) {
            if (decode(r, &out_tokens[i - 1], 1, n_prompt + i - 1, 0) != 0 || copy_logits(r, -1, lg) != 0) {
                produced = -1;
                goto done;
            }
        }
        if (step_logits) memcpy(step_logits + (size_t)i * (size_t)r->n_vocab, lg, (size_t)r->n_vocab * sizeof(float));
        out_tokens[i] = argmax(lg, r->n_vocab);
        produced = i + 1;
        if ((flags & LLAMA_REF_GEN_STOP_AT_EOG) && L.llama_vocab_is_eog(r->vocab, out_tokens[i])) break;
    }
done:
    free(lg);
    return produced;
}

/* ---- timing ---- */
static uint32_t next_rand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

double llama_ref_time_pp(llama_ref *r, int n, uint32_t seed) {
    if (n <= 0 || n > r->n_ctx) {
        set_err("llama_ref: pp %d outside 1..n_ctx %d", n, r->n_ctx);
        return -1;
    }
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    if (!tok) return -1;
    uint32_t s = seed;
    for (int i = 0; i < n; i++) tok[i] = (int32_t)(next_rand(&s) % (uint32_t)r->n_vocab);
    if (L.llama_vocab_get_add_bos(r->vocab)) tok[0] = L.llama_vocab_bos(r->vocab);
    llama_ref_reset(r);
    double t0 = llama_ref_now();
    for (int done = 0; done < n;) {
        int k = n - done < r->n_batch ? n - done : r->n_batch;
        if (decode(r, tok + done, k, done, 0) != 0) {
            free(tok);
            return -1;
        }
        done += k;
    }
    L.llama_synchronize(r->ctx);
    double t = llama_ref_now() - t0;
    free(tok);
    return t;
}

double llama_ref_time_tg(llama_ref *r, int n, uint32_t seed) {
    if (n <= 0 || n > r->n_ctx) {
        set_err("llama_ref: tg %d outside 1..n_ctx %d", n, r->n_ctx);
        return -1;
    }
    uint32_t s = seed;
    int32_t tok = L.llama_vocab_get_add_bos(r->vocab) ? L.llama_vocab_bos(r->vocab)
                                                     : (int32_t)(next_rand(&s) % (uint32_t)r->n_vocab);
    llama_ref_reset(r);
    double t0 = llama_ref_now();
    for (int i = 0; i < n; i++) {
        if (decode(r, &tok, 1, i, 0) != 0) return -1;
        L.llama_synchronize(r->ctx);
        tok = (int32_t)(next_rand(&s) % (uint32_t)r->n_vocab);
    }
    return llama_ref_now() - t0;
}
