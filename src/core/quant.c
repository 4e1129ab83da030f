/* Scalar reference quantization formats (GGUF block layouts). These are the ground truth
 * the SIMD kernels are tested against, so they favour clarity over speed. */
#include "core/quant.h"
#include "core/fp16.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

_Static_assert(sizeof(hllm_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(hllm_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(hllm_block_q4_K) == 144, "q4_K block size");
_Static_assert(sizeof(hllm_block_q6_K) == 210, "q6_K block size");
_Static_assert(sizeof(hllm_block_q8_K) == 292, "q8_K block size");

/* Round half to even, as ggml's nearest_int (valid for |f| < 2^22). lrintf is a libm call
 * unless built with -fno-math-errno; cvtss2si is the same rounding (MXCSR default), inline. */
#if defined(__x86_64__)
static inline int round_even(float f) { return _mm_cvtss_si32(_mm_set_ss(f)); }
#else
static inline int round_even(float f) { return (int)lrintf(f); }
#endif
/* (int)roundf(f) (half away from zero) for |f| < 2^23, without the libm call: a - (int)a is exact. */
static inline int round_away(float f) {
    const float a = fabsf(f);
    int i = (int)a;
    if (a - (float)i >= 0.5f) i++;
    return f < 0 ? -i : i;
}
/* fminf/fmaxf are libm calls too; no NaNs reach the quantizers' fits. */
static inline float minf(float a, float b) { return b < a ? b : a; }
static inline float maxf(float a, float b) { return b > a ? b : a; }

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- 6-bit scale/min packing of Q4_K (12 bytes for 8 pairs) ---- */

void hllm_q4_K_get_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void q4_K_put_scale_min(int j, uint8_t *q, int sc, int m) {
    if (j < 4) {
        q[j] = (uint8_t)((q[j] & 0xC0) | sc);
        q[j + 4] = (uint8_t)((q[j + 4] & 0xC0) | m);
    } else {
        q[j + 4] = (uint8_t)((sc & 0x0F) | ((m & 0x0F) << 4));
        q[j - 4] = (uint8_t)((q[j - 4] & 0x3F) | ((sc >> 4) << 6));
        q[j] = (uint8_t)((q[j] & 0x3F) | ((m >> 4) << 6));
    }
}

/* ---- dequantization ---- */

static void deq_q4_0(const hllm_block_q4_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += HLLM_QK4_0) {
        const float d = hllm_fp16_to_f32(b[i].d);
        for (int j = 0; j < HLLM_QK4_0 / 2; j++) {
            y[j] = (float)((b[i].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q8_0(const hllm_block_q8_0 *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += HLLM_QK8_0) {
        const float d = hllm_fp16_to_f32(b[i].d);
        for (int j = 0; j < HLLM_QK8_0; j++) y[j] = (float)b[i].qs[j] * d;
    }
}

static void deq_q4_K(const hllm_block_q4_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = hllm_fp16_to_f32(b[i].d), dmin = hllm_fp16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        /* Each 32 bytes of qs hold two 32-element sub-blocks: low nibbles then high nibbles. */
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            hllm_q4_K_get_scale_min(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            hllm_q4_K_get_scale_min(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* 6-bit value of element k (0..255) of a Q6_K block, 0..63. */
static inline int q6_K_get(const hllm_block_q6_K *b, int k) {
    const int half = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
    const uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
    const int lo = (quarter & 1) ? ql[l + 32] : ql[l];
    const int nib = (quarter & 2) ? lo >> 4 : lo & 0x0F;
    return nib | (((qh[l] >> (2 * quarter)) & 3) << 4);
}

int hllm_q6_K_value(const hllm_block_q6_K *b, int k) { return q6_K_get(b, k); }

static inline void q6_K_set(hllm_block_q6_K *b, int k, int v) {
    const int half = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
    uint8_t *ql = b->ql + 64 * half, *qh = b->qh + 32 * half;
    uint8_t *lo = (quarter & 1) ? &ql[l + 32] : &ql[l];
    if (quarter & 2) *lo = (uint8_t)((*lo & 0x0F) | ((v & 0x0F) << 4));
    else *lo = (uint8_t)((*lo & 0xF0) | (v & 0x0F));
    qh[l] = (uint8_t)((qh[l] & ~(3 << (2 * quarter))) | (((v >> 4) & 3) << (2 * quarter)));
}

static void deq_q6_K(const hllm_block_q6_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += HLLM_QK_K) {
        const float d = hllm_fp16_to_f32(b[i].d);
        /* Scale index is k/16 in element order. */
        for (int k = 0; k < HLLM_QK_K; k++) y[k] = d * (float)b[i].scales[k / 16] * (float)(q6_K_get(&b[i], k) - 32);
    }
}

static void deq_q8_K(const hllm_block_q8_K *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, y += HLLM_QK_K)
        for (int k = 0; k < HLLM_QK_K; k++) y[k] = b[i].d * (float)b[i].qs[k];
}

void hllm_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case HLLM_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case HLLM_TYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = hllm_fp16_to_f32(s[i]);
        break;
    }
    case HLLM_TYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = hllm_bf16_to_f32(s[i]);
        break;
    }
    case HLLM_TYPE_Q4_0: deq_q4_0(src, dst, n / HLLM_QK4_0); break;
    case HLLM_TYPE_Q8_0: deq_q8_0(src, dst, n / HLLM_QK8_0); break;
    case HLLM_TYPE_Q4_K: deq_q4_K(src, dst, n / HLLM_QK_K); break;
    case HLLM_TYPE_Q6_K: deq_q6_K(src, dst, n / HLLM_QK_K); break;
    case HLLM_TYPE_Q8_K: deq_q8_K(src, dst, n / HLLM_QK_K); break;
    default: memset(dst, 0, (size_t)n * sizeof(float)); break;
    }
}

/* ---- quantization ---- */

static void quant_q4_0(const float *x, hllm_block_q4_0 *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HLLM_QK4_0) {
        /* Scale from the signed value of largest magnitude so it maps exactly to -8. */
        float amax = 0, vmax = 0;
        for (int j = 0; j < HLLM_QK4_0; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), vmax = x[j];
        const float d = vmax / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hllm_f32_to_fp16(d);
        for (int j = 0; j < HLLM_QK4_0 / 2; j++) {
            const int q0 = (int)(int8_t)(x[j] * id + 8.5f), q1 = (int)(int8_t)(x[j + 16] * id + 8.5f);
            b[i].qs[j] = (uint8_t)((q0 > 15 ? 15 : q0) | ((q1 > 15 ? 15 : q1) << 4));
        }
    }
}

static void quant_q8_0(const float *x, hllm_block_q8_0 *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HLLM_QK8_0) {
        float amax = 0;
        for (int j = 0; j < HLLM_QK8_0; j++) amax = maxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = hllm_f32_to_fp16(d);
        for (int j = 0; j < HLLM_QK8_0; j++) b[i].qs[j] = (int8_t)round_away(x[j] * id);
    }
}

static void quant_q8_K(const float *x, hllm_block_q8_K *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HLLM_QK_K) {
        float amax = 0, vmax = 0;
        for (int j = 0; j < HLLM_QK_K; j++)
            if (fabsf(x[j]) > amax) amax = fabsf(x[j]), vmax = x[j];
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        const float iscale = -127.0f / vmax;
        for (int j = 0; j < HLLM_QK_K; j++) {
            const int v = round_even(iscale * x[j]);
            b[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < HLLM_QK_K / 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += b[i].qs[16 * j + l];
            b[i].bsums[j] = (int16_t)s;
        }
        b[i].d = 1.0f / iscale;
    }
}

/* Weighted asymmetric fit of n values to levels 0..nmax: x ~ scale*L - dmin. Starts from the
 * min/max fit and tries a sweep of slightly different scales, each refined by weighted least
 * squares, keeping the one with the smallest weighted squared error. Returns scale, sets *dmin
 * (>= 0) and L. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *dmin) {
    float lo = x[0], hi = x[0], sw = w[0], sx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = minf(lo, x[i]);
        hi = maxf(hi, x[i]);
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *dmin = -lo;
        return 0.0f;
    }
    float iscale = nmax / (hi - lo), scale = 1.0f / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(round_even(iscale * (x[i] - lo)), 0, nmax);
        const float e = scale * L[i] + lo - x[i];
        best += w[i] * e * e;
    }
    uint8_t Lt[32];
    for (int step = 0; step <= 20; step++) {
        iscale = (-1.0f + 0.1f * step + nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(round_even(iscale * (x[i] - lo)), 0, nmax);
            Lt[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        const float D = sw * sl2 - sl * sl;
        if (D <= 0) continue;
        float s = (sw * sxl - sx * sl) / D, m = (sl2 * sx - sl * sxl) / D;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            const float e = s * Lt[i] + m - x[i];
            err += w[i] * e * e;
        }
        if (err < best) {
            best = err;
            memcpy(L, Lt, (size_t)n);
            scale = s;
            lo = m;
        }
    }
    *dmin = -lo;
    return scale;
}

static void quant_q4_K(const float *x, hllm_block_q4_K *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HLLM_QK_K) {
        uint8_t L[HLLM_QK_K];
        float w[32], scales[8], mins[8], max_scale = 0, max_min = 0, sum_x2 = 0;
        for (int k = 0; k < HLLM_QK_K; k++) sum_x2 += x[k] * x[k];
        const float av_x = sqrtf(sum_x2 / HLLM_QK_K);
        for (int j = 0; j < 8; j++) {
            /* Weight larger magnitudes more: they dominate the dot products. */
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = fit_scale_min(32, 15, x + 32 * j, w, L + 32 * j, &mins[j]);
            max_scale = maxf(max_scale, scales[j]);
            max_min = maxf(max_min, mins[j]);
        }
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        memset(b[i].scales, 0, sizeof b[i].scales);
        for (int j = 0; j < 8; j++) {
            const int ls = clampi(round_even(inv_scale * scales[j]), 0, 63);
            const int lm = clampi(round_even(inv_min * mins[j]), 0, 63);
            q4_K_put_scale_min(j, b[i].scales, ls, lm);
        }
        b[i].d = hllm_f32_to_fp16(max_scale / 63.0f);
        b[i].dmin = hllm_f32_to_fp16(max_min / 63.0f);
        /* Requantize against the scales as they will be decoded. */
        const float d = hllm_fp16_to_f32(b[i].d), dmin = hllm_fp16_to_f32(b[i].dmin);
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            hllm_q4_K_get_scale_min(j, b[i].scales, &sc, &m);
            const float ds = d * sc, dm = dmin * m;
            for (int l = 0; l < 32; l++)
                L[32 * j + l] = ds != 0.0f ? (uint8_t)clampi(round_even((x[32 * j + l] + dm) / ds), 0, 15) : 0;
        }
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

/* Symmetric fit of n values to levels -nmax..nmax-1 weighted by x^2: tries scales around
 * the one that maps the largest-magnitude value to -nmax. Returns the scale; L gets l + nmax. */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), vmax = x[i];
    if (amax < 1e-30f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / vmax, sxl = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (uint8_t)(l + nmax);
        const float w = x[i] * x[i];
        sxl += w * x[i] * l;
        sl2 += w * l * l;
    }
    float scale = sl2 > 0 ? sxl / sl2 : 0.0f, best = scale * sxl;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / vmax;
        float txl = 0, tl2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clampi(round_even(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            txl += w * x[i] * l;
            tl2 += w * l * l;
        }
        if (tl2 > 0 && txl * txl > best * tl2) {
            for (int i = 0; i < n; i++) L[i] = (uint8_t)(nmax + clampi(round_even(iscale * x[i]), -nmax, nmax - 1));
            scale = txl / tl2;
            best = scale * txl;
        }
    }
    return scale;
}

static void quant_q6_K(const float *x, hllm_block_q6_K *b, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += HLLM_QK_K) {
        uint8_t L[HLLM_QK_K];
        float scales[16], amax = 0, vmax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) amax = fabsf(scales[j]), vmax = scales[j];
        }
        memset(&b[i], 0, sizeof b[i]);
        if (amax < 1e-30f) continue;
        const float iscale = -128.0f / vmax;
        b[i].d = hllm_f32_to_fp16(1.0f / iscale);
        for (int j = 0; j < 16; j++) b[i].scales[j] = (int8_t)clampi(round_even(iscale * scales[j]), -128, 127);
        const float d = hllm_fp16_to_f32(b[i].d);
        for (int k = 0; k < HLLM_QK_K; k++) {
            const float ds = d * b[i].scales[k / 16];
            const int l = ds != 0.0f ? clampi(round_even(x[k] / ds), -32, 31) : 0;
            q6_K_set(&b[i], k, l + 32);
        }
    }
}

void hllm_quantize_row(int type, const float *src, void *dst, int64_t n) {
    switch (type) {
    case HLLM_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case HLLM_TYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = hllm_f32_to_fp16(src[i]);
        break;
    }
    case HLLM_TYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = hllm_f32_to_bf16(src[i]);
        break;
    }
    case HLLM_TYPE_Q4_0: quant_q4_0(src, dst, n / HLLM_QK4_0); break;
    case HLLM_TYPE_Q8_0: quant_q8_0(src, dst, n / HLLM_QK8_0); break;
    case HLLM_TYPE_Q4_K: quant_q4_K(src, dst, n / HLLM_QK_K); break;
    case HLLM_TYPE_Q6_K: quant_q6_K(src, dst, n / HLLM_QK_K); break;
    case HLLM_TYPE_Q8_K: quant_q8_K(src, dst, n / HLLM_QK_K); break;
    default: break;
    }
}

/* ---- reference dot products ---- */

int hllm_vec_dot_type(int type) {
    switch (type) {
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: return HLLM_TYPE_Q8_0;
    case HLLM_TYPE_Q4_K:
    case HLLM_TYPE_Q6_K: return HLLM_TYPE_Q8_K;
    default: return HLLM_TYPE_F32;
    }
}

float hllm_vec_dot_ref(int type, const void *w, const void *xq, int64_t n) {
    float sum = 0;
    switch (type) {
    case HLLM_TYPE_F32: {
        const float *a = w, *x = xq;
        for (int64_t i = 0; i < n; i++) sum += a[i] * x[i];
        break;
    }
    case HLLM_TYPE_F16: {
        const uint16_t *a = w;
        const float *x = xq;
        for (int64_t i = 0; i < n; i++) sum += hllm_fp16_to_f32(a[i]) * x[i];
        break;
    }
    case HLLM_TYPE_BF16: {
        const uint16_t *a = w;
        const float *x = xq;
        for (int64_t i = 0; i < n; i++) sum += hllm_bf16_to_f32(a[i]) * x[i];
        break;
    }
    case HLLM_TYPE_Q4_0: {
        const hllm_block_q4_0 *a = w;
        const hllm_block_q8_0 *x = xq;
        for (int64_t i = 0; i < n / HLLM_QK4_0; i++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += ((a[i].qs[j] & 0x0F) - 8) * x[i].qs[j] + ((a[i].qs[j] >> 4) - 8) * x[i].qs[j + 16];
            sum += (float)s * (hllm_fp16_to_f32(a[i].d) * hllm_fp16_to_f32(x[i].d));
        }
        break;
    }
    case HLLM_TYPE_Q8_0: {
        const hllm_block_q8_0 *a = w, *x = xq;
        for (int64_t i = 0; i < n / HLLM_QK8_0; i++) {
            int s = 0;
            for (int j = 0; j < 32; j++) s += a[i].qs[j] * x[i].qs[j];
            sum += (float)s * (hllm_fp16_to_f32(a[i].d) * hllm_fp16_to_f32(x[i].d));
        }
        break;
    }
    case HLLM_TYPE_Q4_K: {
        const hllm_block_q4_K *a = w;
        const hllm_block_q8_K *x = xq;
        for (int64_t i = 0; i < n / HLLM_QK_K; i++) {
            int sumi = 0, summ = 0;
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                hllm_q4_K_get_scale_min(j, a[i].scales, &sc, &m);
                const uint8_t *q = a[i].qs + 32 * (j / 2);
                const int8_t *p = x[i].qs + 32 * j;
                int s = 0;
                for (int l = 0; l < 32; l++) s += ((j & 1) ? q[l] >> 4 : q[l] & 0x0F) * p[l];
                sumi += sc * s;
                summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
            }
            const float dx = x[i].d;
            sum += dx * hllm_fp16_to_f32(a[i].d) * (float)sumi - dx * hllm_fp16_to_f32(a[i].dmin) * (float)summ;
        }
        break;
    }
    case HLLM_TYPE_Q6_K: {
        const hllm_block_q6_K *a = w;
        const hllm_block_q8_K *x = xq;
        for (int64_t i = 0; i < n / HLLM_QK_K; i++) {
            int sumi = 0;
            for (int j = 0; j < 16; j++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += (q6_K_get(&a[i], 16 * j + l) - 32) * x[i].qs[16 * j + l];
                sumi += a[i].scales[j] * s;
            }
            sum += x[i].d * hllm_fp16_to_f32(a[i].d) * (float)sumi;
        }
        break;
    }
    default: break;
    }
    return sum;
}
