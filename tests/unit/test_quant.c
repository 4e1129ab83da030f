/* Quantized formats: hand-built blocks with known decodings, quantize/dequantize error bounds,
 * and the reference dot products against float dot products of the dequantized rows. */
#include "core/fp16.h"
#include "core/quant.h"
#include "testutil.h"
#include <stdlib.h>
#include <string.h>

static uint32_t g_rng = 12345;
static float frand(void) { /* uniform in [-1, 1) */
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)(g_rng >> 8) / (float)(1u << 23) - 1.0f;
}

static int max_diff_count(const float *a, const float *b, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) bad += a[i] != b[i];
    return bad;
}

static void test_hand_f16_bf16(void) {
    const uint16_t h[] = {0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0001, 0x8000};
    const float hv[] = {1.0f, -2.0f, 0.333251953125f, 65504.0f, 5.9604644775390625e-8f, -0.0f};
    float y[6];
    hllm_dequantize_row(HLLM_TYPE_F16, h, y, 6);
    CHECK(max_diff_count(y, hv, 6) == 0);
    uint16_t back[6];
    hllm_quantize_row(HLLM_TYPE_F16, hv, back, 6);
    CHECK(memcmp(back, h, sizeof h) == 0);

    const uint16_t b[] = {0x3F80, 0xC040, 0x4049};
    const float bv[] = {1.0f, -3.0f, 3.140625f};
    hllm_dequantize_row(HLLM_TYPE_BF16, b, y, 3);
    CHECK(max_diff_count(y, bv, 3) == 0);
    uint16_t bb[3];
    const float pi = 3.14159265f; /* rounds to nearest: 0x4049 */
    hllm_quantize_row(HLLM_TYPE_BF16, &pi, bb, 1);
    CHECK(bb[0] == 0x4049);
}

static void test_hand_q4_0(void) {
    hllm_block_q4_0 b;
    b.d = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32], e[32];
    for (int j = 0; j < 16; j++) {
        e[j] = (float)(j - 8) * 0.5f;
        e[j + 16] = (float)(15 - j - 8) * 0.5f;
    }
    hllm_dequantize_row(HLLM_TYPE_Q4_0, &b, y, 32);
    CHECK(max_diff_count(y, e, 32) == 0);
    /* Requantizing exact grid values gives the same block back (max magnitude -4 maps to -8). */
    hllm_block_q4_0 r;
    hllm_quantize_row(HLLM_TYPE_Q4_0, e, &r, 32);
    CHECK(r.d == b.d && memcmp(r.qs, b.qs, 16) == 0);
}

static void test_hand_q8_0(void) {
    hllm_block_q8_0 b;
    b.d = 0x3400; /* 0.25 */
    for (int j = 0; j < 32; j++) b.qs[j] = (int8_t)(j * 8 - 127 + (j == 31 ? 6 : 0));
    float y[32], e[32];
    for (int j = 0; j < 32; j++) e[j] = (float)b.qs[j] * 0.25f;
    hllm_dequantize_row(HLLM_TYPE_Q8_0, &b, y, 32);
    CHECK(max_diff_count(y, e, 32) == 0);
    hllm_block_q8_0 r;
    hllm_quantize_row(HLLM_TYPE_Q8_0, e, &r, 32);
    CHECK(r.d == b.d && memcmp(r.qs, b.qs, 32) == 0);
}

static void test_hand_q4_K(void) {
    static const int sc[8] = {1, 2, 3, 4, 20, 33, 47, 63}, mn[8] = {5, 6, 7, 8, 16, 35, 50, 62};
    /* 6-bit packing, worked out by hand: bytes 0-3 scales 0-3 (+ top bits of scales 4-7),
     * bytes 4-7 mins 0-3 (+ top bits of mins 4-7), bytes 8-11 low nibbles of scale/min 4-7. */
    static const uint8_t packed[12] = {65, 130, 131, 196, 69, 134, 199, 200, 4, 49, 47, 239};
    hllm_block_q4_K b;
    b.d = 0x3C00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    memcpy(b.scales, packed, 12);
    for (int i = 0; i < 128; i++) b.qs[i] = (uint8_t)((i % 16) | ((15 - i % 16) << 4));
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        hllm_q4_K_get_scale_min(j, b.scales, &s, &m);
        CHECKF(s == sc[j] && m == mn[j], "sub-block %d: scale %d min %d", j, s, m);
    }
    float y[256], e[256];
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            e[64 * c + l] = (float)(sc[2 * c] * (l % 16)) - 0.5f * (float)mn[2 * c];
            e[64 * c + 32 + l] = (float)(sc[2 * c + 1] * (15 - l % 16)) - 0.5f * (float)mn[2 * c + 1];
        }
    hllm_dequantize_row(HLLM_TYPE_Q4_K, &b, y, 256);
    CHECK(max_diff_count(y, e, 256) == 0);
}

static void test_hand_q6_K(void) {
    hllm_block_q6_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j - 8);
    /* Element k = 128h + 32q + l: low nibble in ql[64h + l + 32(q&1)] (high nibble if q >= 2),
     * top two bits at bit 2q of qh[32h + l]. Stored value is k % 64, i.e. q = k % 64 - 32. */
    for (int k = 0; k < 256; k++) {
        const int h = k / 128, q = (k % 128) / 32, l = k % 32, v = k % 64;
        uint8_t *lo = &b.ql[64 * h + l + 32 * (q & 1)];
        *lo |= (uint8_t)((v & 15) << (q >= 2 ? 4 : 0));
        b.qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * q));
    }
    float y[256], e[256];
    for (int k = 0; k < 256; k++) e[k] = 0.5f * (float)(k / 16 - 8) * (float)(k % 64 - 32);
    hllm_dequantize_row(HLLM_TYPE_Q6_K, &b, y, 256);
    CHECK(max_diff_count(y, e, 256) == 0);
    for (int k = 0; k < 256; k++) CHECK(hllm_q6_K_value(&b, k) == k % 64);
}

static void test_hand_q8_K(void) {
    hllm_block_q8_K b;
    memset(&b, 0, sizeof b);
    b.d = 0.125f;
    for (int k = 0; k < 256; k++) b.qs[k] = (int8_t)(k - 128);
    float y[256];
    hllm_dequantize_row(HLLM_TYPE_Q8_K, &b, y, 256);
    int bad = 0;
    for (int k = 0; k < 256; k++) bad += y[k] != 0.125f * (float)(k - 128);
    CHECK(bad == 0);
    /* Quantizer: largest magnitude maps to -127 via a negative scale, bsums are 16-sums. */
    float x[256];
    for (int k = 0; k < 256; k++) x[k] = (float)(k - 100) / 155.0f; /* max 1.0 at k = 255 */
    hllm_block_q8_K q;
    hllm_quantize_row(HLLM_TYPE_Q8_K, x, &q, 256);
    CHECK(q.qs[255] == -127);
    CHECK_NEAR(q.d, -1.0f / 127.0f, 1e-9);
    int bs_ok = 1;
    for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += q.qs[16 * j + l];
        bs_ok &= s == q.bsums[j];
    }
    CHECK(bs_ok);
}

/* Quantize random rows, dequantize, and bound the error relative to the signal. */
static void test_roundtrip(int type, float max_rel_rmse, float max_abs_over_amax) {
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++) x[i] = frand() * (i % 97 == 0 ? 4.0f : 1.0f) + 0.1f * (float)(i % 7);
    hllm_quantize_row(type, x, q, N);
    hllm_dequantize_row(type, q, y, N);
    double se = 0, sx = 0, amax = 0, emax = 0;
    for (int i = 0; i < N; i++) {
        se += (double)(y[i] - x[i]) * (y[i] - x[i]);
        sx += (double)x[i] * x[i];
        amax = fmax(amax, fabs(x[i]));
        emax = test_max_err(emax, fabs(y[i] - x[i]));
    }
    const double rel = sqrt(se / sx);
    if (getenv("VERBOSE")) printf("%s rel rmse %.4g max/amax %.4g\n", hllm_type_name(type), rel, emax / amax);
    CHECKF(rel <= max_rel_rmse, "%s: relative rmse %g > %g", hllm_type_name(type), rel, (double)max_rel_rmse);
    CHECKF(emax <= max_abs_over_amax * amax, "%s: max error %g > %g * %g", hllm_type_name(type), emax,
           (double)max_abs_over_amax, amax);
    /* All-zero input stays zero (no NaN from a zero scale). */
    memset(x, 0, sizeof x);
    hllm_quantize_row(type, x, q, 512);
    hllm_dequantize_row(type, q, y, 512);
    int nz = 0;
    for (int i = 0; i < 512; i++) nz += y[i] != 0.0f;
    CHECKF(nz == 0, "%s: zero row decodes to %d nonzeros", hllm_type_name(type), nz);
}

/* The reference dot equals the exact dot of the two dequantized rows (integer math inside),
 * and is within the activation-quantization error of the float dot. */
static void test_dot(int type) {
    enum { N = 1024 };
    static float w[N], x[N], wd[N], xd[N];
    static uint8_t wq[N * 4], xq[N * 4];
    for (int i = 0; i < N; i++) {
        w[i] = frand() + 0.2f;
        x[i] = frand() * 3.0f;
    }
    const int vt = hllm_vec_dot_type(type);
    hllm_quantize_row(type, w, wq, N);
    hllm_quantize_row(vt, x, xq, N);
    hllm_dequantize_row(type, wq, wd, N);
    hllm_dequantize_row(vt, xq, xd, N);
    double exact = 0, fdot = 0, mag = 0, qerr = 0;
    for (int i = 0; i < N; i++) {
        exact += (double)wd[i] * xd[i];
        fdot += (double)wd[i] * x[i];
        mag += fabs((double)wd[i] * xd[i]);
        qerr += fabs((double)wd[i]) * fabs((double)x[i] - xd[i]);
    }
    const float r = hllm_vec_dot_ref(type, wq, xq, N);
    CHECKF(fabs(r - exact) <= 2e-6 * mag, "%s: ref dot %g vs exact %g (mag %g)", hllm_type_name(type), r, exact, mag);
    CHECKF(fabs(r - fdot) <= qerr + 2e-6 * mag, "%s: ref dot %g vs float dot %g (bound %g)", hllm_type_name(type), r,
           fdot, qerr);
}

int main(void) {
    test_hand_f16_bf16();
    test_hand_q4_0();
    test_hand_q8_0();
    test_hand_q4_K();
    test_hand_q6_K();
    test_hand_q8_K();
    test_roundtrip(HLLM_TYPE_F16, 1e-3f, 1e-3f);
    test_roundtrip(HLLM_TYPE_BF16, 5e-3f, 5e-3f);
    test_roundtrip(HLLM_TYPE_Q8_0, 0.01f, 0.01f);
    test_roundtrip(HLLM_TYPE_Q8_K, 0.02f, 0.01f);
    test_roundtrip(HLLM_TYPE_Q6_K, 0.03f, 0.04f);
    test_roundtrip(HLLM_TYPE_Q4_K, 0.10f, 0.10f);
    test_roundtrip(HLLM_TYPE_Q4_0, 0.15f, 0.15f);
    const int types[] = {HLLM_TYPE_F32, HLLM_TYPE_F16, HLLM_TYPE_BF16, HLLM_TYPE_Q4_0,
                         HLLM_TYPE_Q8_0, HLLM_TYPE_Q4_K, HLLM_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) test_dot(types[i]);
    return test_summary("test_quant");
}
