/* Samplers: greedy is argmax, filters keep what llama.cpp's would, draws follow the seed. */
#include "hllm.h"
#include "testutil.h"
#include <string.h>

static hllm_sampler *mk(float temp, int top_k, float top_p, float min_p, float rp, uint64_t seed) {
    hllm_sampler_params p = hllm_sampler_default_params();
    p.temp = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repeat_penalty = rp;
    p.seed = seed;
    return hllm_sampler_new(&p);
}

int main(void) {
    float logits[8] = {1.0f, 3.0f, -2.0f, 2.5f, 0.0f, 2.9f, -1.0f, 0.5f};
    hllm_sampler *s = mk(0, 40, 0.95f, 0.05f, 1.0f, 1);
    CHECK(hllm_sampler_sample(s, logits, 8) == 1);
    hllm_sampler_free(s);

    /* top-k 1 is greedy whatever the temperature */
    s = mk(5.0f, 1, 1.0f, 0.0f, 1.0f, 7);
    int all_one = 1;
    for (int i = 0; i < 200; i++) all_one &= hllm_sampler_sample(s, logits, 8) == 1;
    CHECK(all_one);
    hllm_sampler_free(s);

    /* top-k 3 at high temperature only ever yields the three best: 1, 5, 3 */
    s = mk(10.0f, 3, 1.0f, 0.0f, 1.0f, 9);
    int hist[8] = {0};
    for (int i = 0; i < 3000; i++) hist[hllm_sampler_sample(s, logits, 8)]++;
    CHECK(hist[1] > 0 && hist[5] > 0 && hist[3] > 0);
    CHECK(hist[0] + hist[2] + hist[4] + hist[6] + hist[7] == 0);
    /* near-uniform at temp 10 over logits 3, 2.9, 2.5: each about a third */
    CHECKF(hist[1] > 800 && hist[3] > 800 && hist[5] > 800, "%d %d %d", hist[1], hist[3], hist[5]);
    hllm_sampler_free(s);

    /* min-p 0.5 keeps tokens with p >= 0.5 * p_max: logit >= 3 + ln 0.5 = 2.31 -> 1, 5, 3 */
    s = mk(1.0f, 0, 1.0f, 0.5f, 1.0f, 3);
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < 2000; i++) hist[hllm_sampler_sample(s, logits, 8)]++;
    CHECK(hist[0] + hist[2] + hist[4] + hist[6] + hist[7] == 0);
    CHECK(hist[1] > hist[3]);
    hllm_sampler_free(s);

    /* top-p 0.5 at temp 1: p(1) = 0.37, p(5) = 0.34 -> the two together pass 0.5 */
    s = mk(1.0f, 0, 0.5f, 0.0f, 1.0f, 4);
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < 2000; i++) hist[hllm_sampler_sample(s, logits, 8)]++;
    CHECK(hist[1] > 0 && hist[5] > 0);
    CHECK(hist[0] + hist[2] + hist[3] + hist[4] + hist[6] + hist[7] == 0);
    hllm_sampler_free(s);

    /* the same seed gives the same draws; another seed (almost surely) differs */
    hllm_sampler *a = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 11), *b = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 11),
                 *c = mk(1.0f, 0, 1.0f, 0.0f, 1.0f, 12);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        hllm_token x = hllm_sampler_sample(a, logits, 8), y = hllm_sampler_sample(b, logits, 8),
                   z = hllm_sampler_sample(c, logits, 8);
        same &= x == y;
        diff |= x != z;
    }
    CHECK(same);
    CHECK(diff);
    hllm_sampler_free(a);
    hllm_sampler_free(b);
    hllm_sampler_free(c);

    /* repeat penalty 2: token 1 (logit 3 -> 1.5) falls behind 5 (2.9) for greedy */
    s = mk(0, 40, 1.0f, 0.0f, 2.0f, 1);
    hllm_sampler_accept(s, 1);
    CHECK(hllm_sampler_sample(s, logits, 8) == 5);
    /* a negative logit is multiplied: token 5 penalized too -> 3 (2.5) wins */
    hllm_sampler_accept(s, 5);
    CHECK(hllm_sampler_sample(s, logits, 8) == 3);
    hllm_sampler_free(s);
    return test_summary("test_sample");
}
