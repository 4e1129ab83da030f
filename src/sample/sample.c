/* Samplers with llama.cpp's names, defaults and order: repeat penalty, top-k, top-p, min-p,
 * temperature, then a draw (or argmax when temp <= 0). */
#include "hllm.h"
#include "core/error.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct hllm_sampler {
    hllm_sampler_params p;
    uint64_t rng;
    hllm_token *history; /* ring of the last repeat_last_n tokens */
    int n_hist, hist_pos;
    struct cand { hllm_token id; float logit; } *cands;
    int cap;
};

hllm_sampler_params hllm_sampler_default_params(void) {
    return (hllm_sampler_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                 .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0xC0FFEE};
}

hllm_sampler *hllm_sampler_new(const hllm_sampler_params *p) {
    hllm_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        hllm_fail("out of memory");
        return NULL;
    }
    s->p = p ? *p : hllm_sampler_default_params();
    if (s->p.repeat_last_n < 0) s->p.repeat_last_n = 0;
    s->rng = s->p.seed ^ 0x9E3779B97F4A7C15ull;
    if (s->p.repeat_last_n > 0) {
        s->history = calloc((size_t)s->p.repeat_last_n, sizeof *s->history);
        if (!s->history) {
            free(s);
            hllm_fail("out of memory");
            return NULL;
        }
    }
    return s;
}

void hllm_sampler_free(hllm_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->cands);
    free(s);
}

void hllm_sampler_accept(hllm_sampler *s, hllm_token t) {
    if (!s->p.repeat_last_n) return;
    s->history[s->hist_pos] = t;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->n_hist < s->p.repeat_last_n) s->n_hist++;
}

/* splitmix64: a small, well-mixed generator; uniform in [0, 1). */
static double next_uniform(hllm_sampler *s) {
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static int cmp_desc(const void *a, const void *b) {
    float x = ((const struct cand *)a)->logit, y = ((const struct cand *)b)->logit;
    return (x < y) - (x > y);
}

hllm_token hllm_sampler_sample(hllm_sampler *s, const float *logits, int n_vocab) {
    if (n_vocab > s->cap) {
        free(s->cands);
        s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
        s->cap = s->cands ? n_vocab : 0;
        if (!s->cands) return -1;
    }
    struct cand *c = s->cands;
    for (int i = 0; i < n_vocab; i++) c[i] = (struct cand){i, logits[i]};
    if (s->p.repeat_penalty != 1.0f && s->n_hist > 0) {
        for (int i = 0; i < s->n_hist; i++) {
            hllm_token t = s->history[i];
            bool seen = false; /* penalize each distinct token once */
            for (int j = 0; j < i; j++) seen |= s->history[j] == t;
            if (seen || t < 0 || t >= n_vocab) continue;
            c[t].logit = c[t].logit > 0 ? c[t].logit / s->p.repeat_penalty : c[t].logit * s->p.repeat_penalty;
        }
    }
    if (s->p.temp <= 0.0f) {
        int best = 0;
        for (int i = 1; i < n_vocab; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }
    int n = n_vocab;
    qsort(c, (size_t)n, sizeof *c, cmp_desc);
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
    /* probabilities of what is left */
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)(c[i].logit - c[0].logit));
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += exp((double)(c[i].logit - c[0].logit)) / sum;
            if (cum >= s->p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        const float floor_logit = c[0].logit + logf(s->p.min_p);
        int keep = 1;
        while (keep < n && c[keep].logit >= floor_logit) keep++;
        n = keep;
    }
    sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)(c[i].logit - c[0].logit) / s->p.temp);
    double r = next_uniform(s) * sum, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += exp((double)(c[i].logit - c[0].logit) / s->p.temp);
        if (r < acc) return c[i].id;
    }
    return c[n - 1].id;
}
