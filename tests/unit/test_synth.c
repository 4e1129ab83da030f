/* hllm synth: the tiny preset of every architecture at every type, reopened with the reader:
 * metadata, vocabulary consistency, tensor names, shapes, types and weight statistics. */
#include "testutil.h"
#include "core/error.h"
#include "core/quant.h"
#include "gguf/gguf.h"
#include "model/synth.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *k_arch[] = {"llama", "qwen2", "qwen3"};
static const int k_types[] = {HLLM_TYPE_F32, HLLM_TYPE_F16, HLLM_TYPE_BF16, HLLM_TYPE_Q8_0,
                              HLLM_TYPE_Q4_0, HLLM_TYPE_Q4_K, HLLM_TYPE_Q6_K};

static uint32_t u32(const hllm_gguf_file *f, const char *key) {
    uint32_t v = 0xdeadbeef;
    CHECKF(hllm_gguf_get_u32(f, key, &v) == 0, "key %s", key);
    return v;
}

static float f32(const hllm_gguf_file *f, const char *key) {
    float v = -1;
    CHECKF(hllm_gguf_get_f32(f, key, &v) == 0, "key %s", key);
    return v;
}

/* Mean and std of a tensor's first rows, dequantized. */
static void stats(const hllm_gguf_tensor *t, double *mean, double *sd, bool *finite) {
    int64_t cols = t->ne[0], rows = t->n_dims > 1 ? t->ne[1] : 1;
    if (rows > 8) rows = 8;
    size_t rb = hllm_row_bytes(t->type, cols);
    float *row = malloc((size_t)cols * sizeof(float));
    double s = 0, s2 = 0;
    *finite = true;
    for (int64_t r = 0; r < rows; r++) {
        hllm_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, row, cols);
        for (int64_t c = 0; c < cols; c++) {
            if (!(row[c] == row[c]) || row[c] > 1e6f || row[c] < -1e6f) *finite = false;
            s += row[c];
            s2 += (double)row[c] * row[c];
        }
    }
    double n = (double)(rows * cols);
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
    free(row);
}

static void check_file(const char *path, const hllm_synth_preset *p, int type, bool check_merges) {
    hllm_gguf_file *f = hllm_gguf_open(path);
    CHECKF(f != NULL, "%s", hllm_error());
    if (!f) return;
    char key[128];
    hllm_str s;
    const char *a = p->arch;
    CHECK(hllm_gguf_get_str(f, "general.architecture", &s) == 0 && !strcmp(s.s, a));
    CHECK(u32(f, "general.file_type") == (uint32_t)hllm_synth_file_type(type));
#define AK(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    CHECK(u32(f, AK("embedding_length")) == 256);
    CHECK(u32(f, AK("block_count")) == 2);
    CHECK(u32(f, AK("attention.head_count")) == 4);
    CHECK(u32(f, AK("attention.head_count_kv")) == 2);
    CHECK(u32(f, AK("feed_forward_length")) == (uint32_t)p->n_ff);
    CHECK(u32(f, AK("context_length")) == (uint32_t)p->n_ctx);
    CHECK(f32(f, AK("attention.layer_norm_rms_epsilon")) == p->rms_eps);
    CHECK(f32(f, AK("rope.freq_base")) == p->rope_base);
    if (!strcmp(a, "qwen3")) {
        CHECK(u32(f, AK("attention.key_length")) == 128);
        CHECK(u32(f, AK("attention.value_length")) == 128);
    }
#undef AK

    /* vocabulary */
    const hllm_str *tok;
    uint64_t nv = 0;
    const void *d;
    hllm_gguf_vtype et;
    uint64_t n;
    CHECK(hllm_gguf_get_arr_str(f, "tokenizer.ggml.tokens", &tok, &nv) == 0 && nv == 1000);
    CHECK(hllm_gguf_get_arr(f, "tokenizer.ggml.token_type", &et, &d, &n) == 0 && et == GGUF_TYPE_INT32 && n == nv);
    int32_t *tt = malloc(nv * sizeof *tt);
    memcpy(tt, d, nv * sizeof *tt);
    uint32_t bos = u32(f, "tokenizer.ggml.bos_token_id"), eos = u32(f, "tokenizer.ggml.eos_token_id");
    CHECK(bos < nv && eos < nv && tt[bos] == 3 && tt[eos] == 3);
    if (!strcmp(a, "llama")) {
        CHECK(hllm_gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && !strcmp(s.s, "llama"));
        CHECK(bos == 1 && eos == 2 && !strcmp(tok[1].s, "<s>") && !strcmp(tok[2].s, "</s>"));
        CHECK(!strcmp(tok[0].s, "<unk>") && !strcmp(tok[3].s, "<0x00>") && !strcmp(tok[258].s, "<0xFF>"));
        CHECK(tt[3] == 6 && tt[258] == 6 && tt[259] == 1 && tt[999] == 1);
        CHECK(hllm_gguf_get_arr(f, "tokenizer.ggml.scores", &et, &d, &n) == 0 && et == GGUF_TYPE_FLOAT32 && n == nv);
        CHECK(!strcmp(tok[259].s, "\xe2\x96\x81") && !strcmp(tok[260].s, "a"));
        CHECK(!strcmp(tok[286].s, "\xe2\x96\x81" "a"));
    } else {
        CHECK(hllm_gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && !strcmp(s.s, "gpt2"));
        CHECK(hllm_gguf_get_str(f, "tokenizer.ggml.pre", &s) == 0 && !strcmp(s.s, "qwen2"));
        CHECK(!strcmp(tok[0].s, "!") && !strcmp(tok[255].s, "\xc5\x83")); /* GPT-2 byte order */
        CHECK(!strcmp(tok[bos].s, "<|endoftext|>") && !strcmp(tok[eos].s, "<|im_end|>"));
        CHECK(!strcmp(tok[eos - 1].s, "<|im_start|>") && tt[eos - 1] == 3);
        const hllm_str *mg;
        uint64_t nm = 0;
        CHECK(hllm_gguf_get_arr_str(f, "tokenizer.ggml.merges", &mg, &nm) == 0 && nm == 997 - 256);
        /* Every merge "l r" in rank order makes token 256 + rank, from tokens that come before it. */
        int bad = 0;
        for (uint64_t i = 0; check_merges && i < nm; i++) {
            const char *sp = strchr(mg[i].s, ' ');
            if (!sp) {
                bad++;
                continue;
            }
            size_t ll = (size_t)(sp - mg[i].s);
            const hllm_str *m = &tok[256 + i];
            if (m->n != mg[i].n - 1 || memcmp(m->s, mg[i].s, ll) || strcmp(m->s + ll, sp + 1)) bad++;
            int found = 0;
            for (uint64_t j = 0; j < 256 + i; j++) {
                if (tok[j].n == ll && !memcmp(tok[j].s, mg[i].s, ll)) found |= 1;
                if (!strcmp(tok[j].s, sp + 1)) found |= 2;
            }
            if (found != 3) bad++;
        }
        CHECKF(bad == 0, "%d inconsistent merges", bad);
    }
    free(tt);

    /* tensors */
    const int64_t E = 256, HD = p->head_dim, QD = 4 * HD, KVD = 2 * HD, F = p->n_ff, V = 1000;
    int expect_n = 2 + (p->tied ? 0 : 1) + (p->rope_freqs ? 1 : 0) + 2 * (9 + (p->qkv_bias ? 3 : 0) + (p->qk_norm ? 2 : 0));
    CHECK(hllm_gguf_n_tensors(f) == expect_n);
    const struct {
        const char *name;
        int64_t ne0, ne1;
        bool present;
    } sh[] = {
        {"token_embd.weight", E, V, true},           {"output_norm.weight", E, 1, true},
        {"output.weight", E, V, !p->tied},           {"rope_freqs.weight", HD / 2, 1, p->rope_freqs},           {"blk.0.attn_norm.weight", E, 1, true},
        {"blk.0.attn_q.weight", E, QD, true},        {"blk.0.attn_k.weight", E, KVD, true},
        {"blk.1.attn_v.weight", E, KVD, true},       {"blk.0.attn_v.weight", E, KVD, true},
        {"blk.1.attn_output.weight", QD, E, true},   {"blk.1.ffn_norm.weight", E, 1, true},
        {"blk.0.ffn_gate.weight", E, F, true},       {"blk.1.ffn_up.weight", E, F, true},
        {"blk.0.ffn_down.weight", F, E, true},       {"blk.1.ffn_down.weight", F, E, true},
        {"blk.0.attn_q.bias", QD, 1, p->qkv_bias},   {"blk.1.attn_k.bias", KVD, 1, p->qkv_bias},
        {"blk.1.attn_v.bias", KVD, 1, p->qkv_bias},  {"blk.0.attn_q_norm.weight", HD, 1, p->qk_norm},
        {"blk.1.attn_k_norm.weight", HD, 1, p->qk_norm}, {"blk.2.attn_q.weight", E, QD, false},
    };
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        const hllm_gguf_tensor *t = hllm_gguf_find_tensor(f, sh[i].name);
        if (!sh[i].present) {
            CHECKF(t == NULL, "%s %s: unexpected %s", a, hllm_type_name(type), sh[i].name);
            continue;
        }
        CHECKF(t != NULL, "%s %s: missing %s", a, hllm_type_name(type), sh[i].name);
        if (!t) continue;
        CHECKF(t->ne[0] == sh[i].ne0 && t->ne[1] == sh[i].ne1 && t->n_dims == (sh[i].ne1 == 1 ? 1u : 2u),
               "%s: shape [%lld, %lld]", sh[i].name, (long long)t->ne[0], (long long)t->ne[1]);
        int want = hllm_synth_tensor_type(p, type, sh[i].name, sh[i].ne0);
        CHECKF(t->type == want, "%s %s: %s has type %s", a, hllm_type_name(type), sh[i].name, hllm_type_name(t->type));
        double mean, sd;
        bool fin;
        stats(t, &mean, &sd, &fin);
        CHECKF(fin, "%s: non-finite weights", sh[i].name);
        if (strstr(sh[i].name, "norm")) {
            CHECKF(fabs(mean - 1.0) < 0.05 && sd > 0.01 && sd < 0.2, "%s: mean %g sd %g", sh[i].name, mean, sd);
        } else if (strstr(sh[i].name, "rope_freqs")) { /* frequency divisors around 4, all positive */
            CHECKF(fabs(mean - 4.0) < 0.3 && sd > 0.2 && sd < 1.0, "%s: mean %g sd %g", sh[i].name, mean, sd);
        } else if (strstr(sh[i].name, "bias")) {
            CHECKF(fabs(mean) < 0.02 && sd > 0.002 && sd < 0.1, "%s: mean %g sd %g", sh[i].name, mean, sd);
        } else {
            /* token_embd 0.02, matrices 1/sqrt(fan-in) */
            double want_sd = strstr(sh[i].name, "token_embd") ? 0.02 : 1.0 / sqrt((double)sh[i].ne0);
            CHECKF(fabs(mean) < 0.2 * want_sd && fabs(sd / want_sd - 1.0) < 0.2, "%s: mean %g sd %g (want %g)",
                   sh[i].name, mean, sd, want_sd);
        }
    }
    /* Every tensor of the file is the type the type rule gives. */
    for (int64_t i = 0; i < hllm_gguf_n_tensors(f); i++) {
        const hllm_gguf_tensor *t = hllm_gguf_tensor_at(f, i);
        CHECKF(t->type == hllm_synth_tensor_type(p, type, t->name.s, t->ne[0]), "%s type", t->name.s);
    }
    hllm_gguf_close(f);
}

static void test_types(void) {
    const hllm_synth_preset *p = hllm_synth_find_preset("tiny", "llama");
    CHECK(p && p->n_embd == 256 && p->n_layer == 2 && !p->tied);
    if (!p) return;
    /* Q4_K_M mix as llama.cpp: attn_v / ffn_down Q6_K where use_more_bits, output Q6_K. */
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "blk.0.attn_v.weight", 256) == HLLM_TYPE_Q4_K);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "blk.1.attn_v.weight", 256) == HLLM_TYPE_Q6_K);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "blk.1.ffn_down.weight", 512) == HLLM_TYPE_Q6_K);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "blk.1.ffn_up.weight", 256) == HLLM_TYPE_Q4_K);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "output.weight", 256) == HLLM_TYPE_Q6_K);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "token_embd.weight", 256) == HLLM_TYPE_Q4_K);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q4_K, "blk.0.attn_norm.weight", 256) == HLLM_TYPE_F32);
    CHECK(hllm_synth_tensor_type(p, HLLM_TYPE_Q8_0, "blk.0.attn_q.bias", 256) == HLLM_TYPE_F32);
    const hllm_synth_preset *q = hllm_synth_find_preset("qwen2.5-0.5b", NULL);
    CHECK(q && !strcmp(q->arch, "qwen2") && q->n_embd == 896 && q->n_vocab == 151936 && q->tied && q->qkv_bias);
    if (q) {
        /* 896 is no multiple of 256: K-quants fall back to 32-blocks. */
        CHECK(hllm_synth_tensor_type(q, HLLM_TYPE_Q4_K, "blk.3.attn_q.weight", 896) == HLLM_TYPE_Q4_0);
        CHECK(hllm_synth_tensor_type(q, HLLM_TYPE_Q4_K, "token_embd.weight", 896) == HLLM_TYPE_Q8_0); /* tied */
        CHECK(hllm_synth_tensor_type(q, HLLM_TYPE_Q4_K, "blk.3.ffn_down.weight", 4864) == HLLM_TYPE_Q4_K);
        CHECK(hllm_synth_tensor_type(q, HLLM_TYPE_Q6_K, "blk.0.ffn_up.weight", 896) == HLLM_TYPE_Q8_0);
    }
    const hllm_synth_preset *l8 = hllm_synth_find_preset("llama3-8b", "llama");
    CHECK(l8 && l8->n_embd == 4096 && l8->n_layer == 32 && l8->n_ff == 14336 && l8->n_vocab == 128256 && !l8->tied);
    const hllm_synth_preset *q3 = hllm_synth_find_preset("qwen3-0.6b", NULL);
    CHECK(q3 && q3->head_dim == 128 && q3->n_head == 16 && q3->qk_norm && q3->n_vocab == 151936);
    int n = 0;
    hllm_synth_presets(&n);
    CHECK(n == 8);
    /* errors */
    CHECK(hllm_synth_find_preset("nope", NULL) == NULL && strstr(hllm_error(), "unknown preset 'nope'"));
    CHECK(hllm_synth_find_preset("llama3-8b", "qwen2") == NULL && strstr(hllm_error(), "is a llama model"));
    CHECK(hllm_synth_find_preset("tiny", "gptj") == NULL && strstr(hllm_error(), "unknown architecture"));
    hllm_synth_opts o = {.preset = "tiny", .type = HLLM_TYPE_Q5_0};
    CHECK(hllm_synth_write(&o, "/tmp/never.gguf") == -1 && strstr(hllm_error(), "not offered"));
    o.type = HLLM_TYPE_F16;
    CHECK(hllm_synth_write(&o, "/nonexistent-dir/x.gguf") == -1 && strstr(hllm_error(), "cannot create"));
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

int main(void) {
    test_types();
    char path[128], path2[160];
    for (int ai = 0; ai < 3; ai++) {
        const hllm_synth_preset *p = hllm_synth_find_preset("tiny", k_arch[ai]);
        CHECK(p != NULL);
        if (!p) continue;
        for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
            snprintf(path, sizeof path, "/tmp/hllm_synth_%d_%s_%s.gguf", (int)getpid(), k_arch[ai],
                     hllm_type_name(k_types[ti]));
            hllm_synth_opts o = {.arch = k_arch[ai], .preset = "tiny", .type = k_types[ti], .seed = 7};
            CHECKF(hllm_synth_write(&o, path) == 0, "%s", hllm_error());
            check_file(path, p, k_types[ti], ti == 0);
            if (ti == 0) {
                /* Same seed: same bytes, whatever the thread count; another seed: other bytes. */
                snprintf(path2, sizeof path2, "%s.2", path);
                o.n_threads = 1;
                CHECK(hllm_synth_write(&o, path2) == 0);
                CHECK(same_file(path, path2));
                o.seed = 8;
                CHECK(hllm_synth_write(&o, path2) == 0);
                CHECK(!same_file(path, path2));
                unlink(path2);
            }
            unlink(path);
        }
    }
    return test_summary("test_synth");
}
