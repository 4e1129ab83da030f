/* AVX2 + FMA + F16C matmul kernels. Same 16-row interleaved layout as AVX-512, taken as two
 * 8-row halves (the low/high 32 bytes of each 64-byte vector). The integer dot is maddubs
 * (u8 x s8 -> pairs of s16) summed in int16 as long as it cannot overflow, then vpmaddwd with
 * ones or with the sub-block scale pair to int32. Tiles: RV halves x T tokens. */
#include "proc/cpu/cpu_matmul_impl.h"
#include <immintrin.h>

#define INL static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

INL __m256i bcast32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
INL __m256 bcastf(const uint8_t *p) {
    float v;
    memcpy(&v, p, 4);
    return _mm256_set1_ps(v);
}
INL __m256 load_f16x8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
INL __m256i loadv(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }

typedef struct {
    const uint8_t *w[4];  /* block 0's qs of each half's group */
    const uint8_t *ax[4]; /* block 0's aux of each half's group */
    int h[4];             /* which half (0/1) */
    size_t bs, abs;       /* block strides of qs, aux */
    int64_t nb;
    const uint8_t *x;
    size_t xs, ext;
    float *y[4]; /* output of the first token, first row of each half */
    int64_t ldy;
    uint8_t mk[4]; /* rows of each half to store */
} qtile;

INL void store_tile(const qtile *a, __m256 acc[4][4], const int RV, const int T) {
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) {
        float *y = a->y[rv] + t * a->ldy;
        if (a->mk[rv] == 0xFF) {
            _mm256_storeu_ps(y, acc[rv][t]);
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc[rv][t]);
            for (int i = 0; i < 8; i++)
                if (a->mk[rv] >> i & 1) y[i] = tmp[i];
        }
    }
}

/* Q4_0: nibbles unsigned; 8 maddubs of one block fit int16 (16 products of <= 15 * 128). */
INL void tile_q4_0(const qtile *a, const int RV, const int T) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm256_setzero_ps();
    const uint8_t *xd = a->x + a->ext, *xc = xd + 4 * a->nb;
    for (int64_t b = 0; b < a->nb; b++) {
        __m256i acc[4][4];
        UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) acc[rv][t] = _mm256_setzero_si256();
        const uint8_t *xb = a->x + b * 34 + 2;
        UNROLL for (int z = 0; z < 4; z++) {
            __m256i lo[4], hi[4];
            UNROLL for (int rv = 0; rv < RV; rv++) {
                const __m256i v = loadv(a->w[rv] + b * a->bs + 64 * z + 32 * a->h[rv]);
                lo[rv] = _mm256_and_si256(v, m4);
                hi[rv] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
            UNROLL for (int t = 0; t < T; t++) {
                const __m256i a0 = bcast32(xb + t * a->xs + 8 * z), a1 = bcast32(xb + t * a->xs + 8 * z + 4);
                UNROLL for (int rv = 0; rv < RV; rv++)
                    acc[rv][t] = _mm256_add_epi16(acc[rv][t], _mm256_add_epi16(_mm256_maddubs_epi16(lo[rv], a0),
                                                                                 _mm256_maddubs_epi16(hi[rv], a1)));
            }
        }
        UNROLL for (int rv = 0; rv < RV; rv++) {
            const __m256 dw = load_f16x8(a->ax[rv] + b * a->abs + 16 * a->h[rv]);
            UNROLL for (int t = 0; t < T; t++) {
                const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(acc[rv][t], ones), bcast32(xc + t * a->xs + 4 * b));
                const __m256 dx = bcastf(xd + t * a->xs + 4 * b);
                accf[rv][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, dx), accf[rv][t]);
            }
        }
    }
    store_tile(a, accf, RV, T);
}

/* Q8_0: signed x signed via the sign trick (|w| as unsigned, x carrying w's sign). */
INL void tile_q8_0(const qtile *a, const int RV, const int T) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm256_setzero_ps();
    const uint8_t *xd = a->x + a->ext;
    for (int64_t b = 0; b < a->nb; b++) {
        __m256i acc[4][4];
        UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) acc[rv][t] = _mm256_setzero_si256();
        const uint8_t *xb = a->x + b * 34 + 2;
        UNROLL for (int z = 0; z < 8; z++) {
            __m256i wv[4], aw[4];
            UNROLL for (int rv = 0; rv < RV; rv++) {
                wv[rv] = loadv(a->w[rv] + b * a->bs + 64 * z + 32 * a->h[rv]);
                aw[rv] = _mm256_sign_epi8(wv[rv], wv[rv]);
            }
            UNROLL for (int t = 0; t < T; t++) {
                const __m256i x4 = bcast32(xb + t * a->xs + 4 * z);
                UNROLL for (int rv = 0; rv < RV; rv++)
                    acc[rv][t] = _mm256_add_epi32(
                        acc[rv][t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw[rv], _mm256_sign_epi8(x4, wv[rv])), ones));
            }
        }
        UNROLL for (int rv = 0; rv < RV; rv++) {
            const __m256 dw = load_f16x8(a->ax[rv] + b * a->abs + 16 * a->h[rv]);
            UNROLL for (int t = 0; t < T; t++) {
                const __m256 dx = bcastf(xd + t * a->xs + 4 * b);
                accf[rv][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[rv][t]), _mm256_mul_ps(dw, dx), accf[rv][t]);
            }
        }
    }
    store_tile(a, accf, RV, T);
}

/* (v, v) int16 pairs from 8 unsigned bytes. */
INL __m256i scale_pairs_u8(const uint8_t *p) {
    const __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    return _mm256_or_si256(s, _mm256_slli_epi32(s, 16));
}

/* Q4_K: one 32-column sub-block (8 maddubs) fits int16; vpmaddwd with (sc, sc) applies the
 * scale; mins pairwise against the activation's 32-column sums. */
INL void tile_q4_K(const qtile *a, const int RV, const int T) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *xb = a->x + b * 292;
        __m256i isum[4][4];
        UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) isum[rv][t] = _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            __m256i acc[4][4];
            UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) acc[rv][t] = _mm256_setzero_si256();
            UNROLL for (int zz = 0; zz < 4; zz++) {
                const int z = 4 * j + zz;
                __m256i lo[4], hi[4];
                UNROLL for (int rv = 0; rv < RV; rv++) {
                    const __m256i v = loadv(a->w[rv] + b * a->bs + 1024 * j + 64 * zz + 32 * a->h[rv]);
                    lo[rv] = _mm256_and_si256(v, m4);
                    hi[rv] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
                UNROLL for (int t = 0; t < T; t++) {
                    const uint8_t *xq = xb + t * a->xs + 4 + 8 * z;
                    const __m256i a0 = bcast32(xq), a1 = bcast32(xq + 4);
                    UNROLL for (int rv = 0; rv < RV; rv++)
                        acc[rv][t] = _mm256_add_epi16(acc[rv][t], _mm256_add_epi16(_mm256_maddubs_epi16(lo[rv], a0),
                                                                                     _mm256_maddubs_epi16(hi[rv], a1)));
                }
            }
            UNROLL for (int rv = 0; rv < RV; rv++) {
                const __m256i sc = scale_pairs_u8(a->ax[rv] + b * a->abs + 16 * j + 8 * a->h[rv]);
                UNROLL for (int t = 0; t < T; t++) isum[rv][t] = _mm256_add_epi32(isum[rv][t], _mm256_madd_epi16(acc[rv][t], sc));
            }
        }
        UNROLL for (int rv = 0; rv < RV; rv++) {
            const uint8_t *ax = a->ax[rv] + b * a->abs;
            __m256i mn[4];
            UNROLL for (int p = 0; p < 4; p++)
                mn[p] = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(ax + 128 + 32 * p + 16 * a->h[rv])));
            const __m256 d = load_f16x8(ax + 256 + 16 * a->h[rv]), dmin = load_f16x8(ax + 288 + 16 * a->h[rv]);
            UNROLL for (int t = 0; t < T; t++) {
                const uint8_t *bs = a->x + t * a->xs + a->ext + 16 * b;
                __m256i ms = _mm256_madd_epi16(mn[0], bcast32(bs));
                UNROLL for (int p = 1; p < 4; p++) ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mn[p], bcast32(bs + 4 * p)));
                const __m256 dx = bcastf(xb + t * a->xs);
                accf[rv][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[rv][t]), _mm256_mul_ps(d, dx), accf[rv][t]);
                accf[rv][t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_mul_ps(dmin, dx), accf[rv][t]);
            }
        }
    }
    store_tile(a, accf, RV, T);
}

/* Q6_K: values stored as q + 32 (0..63); two maddubs fit int16. The -32 offset is applied
 * once per sub-block pair: sum_j sc_j * bsum_j via vpmaddwd of the (sc_j, sc_j+1) pairs with
 * the activation's (bsum_j, bsum_j+1), times 32. */
INL void tile_q6_K(const qtile *a, const int RV, const int T) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    /* per 128-bit lane, int16 pair (a, b) -> (a, a) and (b, b) */
    const __m256i dup_lo = _mm256_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13, 0, 1, 0, 1, 4, 5, 4, 5,
                                            8, 9, 8, 9, 12, 13, 12, 13);
    const __m256i dup_hi = _mm256_add_epi8(dup_lo, _mm256_set1_epi8(2));
    __m256 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *xb = a->x + b * 292;
        __m256i isum[4][4], osum[4][4];
        UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) {
            isum[rv][t] = _mm256_setzero_si256();
            osum[rv][t] = _mm256_setzero_si256();
        }
        for (int p = 0; p < 8; p++) {
            UNROLL for (int rv = 0; rv < RV; rv++) {
                const uint8_t *wq = a->w[rv] + b * a->bs + 32 * a->h[rv];
                const __m256i sp = _mm256_cvtepi8_epi16(
                    _mm_loadu_si128((const __m128i *)(a->ax[rv] + b * a->abs + 32 * p + 16 * a->h[rv])));
                UNROLL for (int e = 0; e < 2; e++) {
                    const int j = 2 * p + e;
                    const __m256i l0 = loadv(wq + 768 * j), l1 = loadv(wq + 768 * j + 64), h = loadv(wq + 768 * j + 128);
                    const __m256i q0 = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(h, 4), m30), _mm256_and_si256(l0, m4));
                    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_slli_epi32(h, 2), m30),
                                                       _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4));
                    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(h, m30), _mm256_and_si256(l1, m4));
                    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(h, 2), m30),
                                                       _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4));
                    const __m256i sc = _mm256_shuffle_epi8(sp, e ? dup_hi : dup_lo);
                    UNROLL for (int t = 0; t < T; t++) {
                        const uint8_t *xq = xb + t * a->xs + 4 + 16 * j;
                        const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(q0, bcast32(xq)),
                                                             _mm256_maddubs_epi16(q1, bcast32(xq + 4)));
                        const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(q2, bcast32(xq + 8)),
                                                             _mm256_maddubs_epi16(q3, bcast32(xq + 12)));
                        isum[rv][t] = _mm256_add_epi32(isum[rv][t], _mm256_add_epi32(_mm256_madd_epi16(s01, sc),
                                                                                     _mm256_madd_epi16(s23, sc)));
                    }
                }
                UNROLL for (int t = 0; t < T; t++)
                    osum[rv][t] = _mm256_add_epi32(osum[rv][t], _mm256_madd_epi16(sp, bcast32(xb + t * a->xs + 260 + 4 * p)));
            }
        }
        UNROLL for (int rv = 0; rv < RV; rv++) {
            const __m256 d = load_f16x8(a->ax[rv] + b * a->abs + 256 + 16 * a->h[rv]);
            UNROLL for (int t = 0; t < T; t++) {
                const __m256i s = _mm256_sub_epi32(isum[rv][t], _mm256_slli_epi32(osum[rv][t], 5));
                const __m256 dx = bcastf(xb + t * a->xs);
                accf[rv][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(d, dx), accf[rv][t]);
            }
        }
    }
    store_tile(a, accf, RV, T);
}

typedef void (*qtile_fn)(const qtile *);

/* Instantiations: 1 half x T in 1..4, 2 halves x T in 1..2, 4 halves x 1 (decode). */
#define QTILES(name)                                                                              \
    static void name##_1_1(const qtile *a) { name(a, 1, 1); }                                     \
    static void name##_1_2(const qtile *a) { name(a, 1, 2); }                                     \
    static void name##_1_3(const qtile *a) { name(a, 1, 3); }                                     \
    static void name##_1_4(const qtile *a) { name(a, 1, 4); }                                     \
    static void name##_4_1(const qtile *a) { name(a, 4, 1); }                                     \
    static const qtile_fn name##_fns[2][4] = {{name##_1_1, name##_1_2, name##_1_3, name##_1_4}, \
                                              {name##_4_1, NULL, NULL, NULL}};
QTILES(tile_q4_0)
QTILES(tile_q8_0)
QTILES(tile_q4_K)
QTILES(tile_q6_K)

static uint8_t half_mask(int64_t half, int64_t r0, int64_t r1) {
    uint32_t mk = 0xFF;
    const int64_t base = half * 8;
    if (r0 > base) mk &= 0xFFu << (r0 - base);
    if (r1 - base < 8) mk &= (1u << (r1 - base)) - 1;
    return (uint8_t)mk;
}

static void run_quant(const hllm_cpu_mat *m, const qtile_fn fns[2][4], int tm, int64_t r0, int64_t r1,
                      const uint8_t *xq, int n_tok, float *y, int64_t ldy) {
    hllm_pk_geom g;
    hllm_pk_geometry(m->type, m->cols, &g);
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    qtile a = {.bs = g.block_stride, .abs = g.aux_stride, .nb = g.nb, .xs = ag.row_bytes, .ext = ag.ext, .ldy = ldy};
    const int64_t h0 = r0 / 8, h1 = (r1 + 7) / 8;
    const int tc = n_tok == 1 ? 1 : hllm_token_chunk(ag.row_bytes, tm);
    for (int t0 = 0; t0 < n_tok; t0 += tc) {
        const int t1 = n_tok - t0 < tc ? n_tok : t0 + tc;
        for (int64_t hi = h0; hi < h1;) {
            const int rv = (n_tok == 1 && h1 - hi >= 4) ? 4 : 1;
            for (int i = 0; i < rv; i++) {
                a.w[i] = hllm_pk_qs(m->packed, &g, (hi + i) / 2);
                a.ax[i] = hllm_pk_aux(m->packed, &g, (hi + i) / 2);
                a.h[i] = (int)((hi + i) & 1);
                a.mk[i] = half_mask(hi + i, r0, r1);
            }
            for (int t = t0; t < t1; t += tm) {
                const int T = t1 - t < tm ? t1 - t : tm;
                a.x = xq + (size_t)t * ag.row_bytes;
                for (int i = 0; i < rv; i++) a.y[i] = y + t * ldy + (hi + i) * 8;
                fns[rv == 4][T - 1](&a);
            }
            hi += rv;
        }
    }
}

/* ---- float weights: outer products on the column-major 16-row groups (8-row halves) ----
 * Tile RV halves x T tokens (2 x 6 = 12 accumulators), columns in chunks as on AVX-512. */
typedef struct {
    const uint8_t *w[4]; /* group base of each half */
    int h[4];
    int64_t k0, k1;
    const float *x;
    size_t xs;
    float *y[4];
    int64_t ldy;
    int accum;
    uint8_t mk[4];
} ftile;

INL __m256 wload8(const uint8_t *p, const int type) {
    if (type == HLLM_TYPE_F32) return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (type == HLLM_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16 */
}

INL void tile_float(const ftile *a, const int type, const int RV, const int T) {
    const size_t cs = type == HLLM_TYPE_F32 ? 64 : 32, hs = cs / 2; /* bytes per column: group, half */
    __m256 acc[4][6];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) acc[rv][t] = _mm256_setzero_ps();
    const uint8_t *w[4];
    UNROLL for (int rv = 0; rv < RV; rv++) w[rv] = a->w[rv] + (size_t)a->k0 * cs + hs * a->h[rv];
#pragma GCC unroll 2
    for (int64_t k = a->k0; k < a->k1; k++) {
        __m256 wv[4];
        UNROLL for (int rv = 0; rv < RV; rv++) {
            wv[rv] = wload8(w[rv], type);
            w[rv] += cs;
        }
        UNROLL for (int t = 0; t < T; t++) {
            const __m256 xb = _mm256_broadcast_ss(a->x + t * a->xs + k);
            UNROLL for (int rv = 0; rv < RV; rv++) acc[rv][t] = _mm256_fmadd_ps(wv[rv], xb, acc[rv][t]);
        }
    }
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) {
        float *y = a->y[rv] + t * a->ldy;
        float tmp[8];
        _mm256_storeu_ps(tmp, acc[rv][t]);
        for (int i = 0; i < 8; i++)
            if (a->mk[rv] >> i & 1) y[i] = a->accum ? y[i] + tmp[i] : tmp[i];
    }
}

typedef void (*ftile_fn)(const ftile *);
#define FTILE(ty, tn, RV, T) \
    static void ft_##tn##_##RV##_##T(const ftile *a) { tile_float(a, ty, RV, T); }
#define FTILES(ty, tn)                                                                                   \
    FTILE(ty, tn, 1, 1) FTILE(ty, tn, 1, 2) FTILE(ty, tn, 1, 3) FTILE(ty, tn, 1, 4) FTILE(ty, tn, 1, 5)  \
    FTILE(ty, tn, 1, 6) FTILE(ty, tn, 2, 1) FTILE(ty, tn, 2, 2) FTILE(ty, tn, 2, 3) FTILE(ty, tn, 2, 4)  \
    FTILE(ty, tn, 2, 5) FTILE(ty, tn, 2, 6) FTILE(ty, tn, 4, 1)                                          \
    static const ftile_fn ft_##tn##_fns[3][6] = {                                                        \
        {ft_##tn##_1_1, ft_##tn##_1_2, ft_##tn##_1_3, ft_##tn##_1_4, ft_##tn##_1_5, ft_##tn##_1_6},      \
        {ft_##tn##_2_1, ft_##tn##_2_2, ft_##tn##_2_3, ft_##tn##_2_4, ft_##tn##_2_5, ft_##tn##_2_6},      \
        {ft_##tn##_4_1, NULL, NULL, NULL, NULL, NULL}};
FTILES(HLLM_TYPE_F32, f32)
FTILES(HLLM_TYPE_F16, f16)
FTILES(HLLM_TYPE_BF16, bf16)

static void run_float(const hllm_cpu_mat *m, const ftile_fn fns[3][6], int64_t r0, int64_t r1, const uint8_t *xq,
                      int n_tok, float *y, int64_t ldy) {
    enum { TM = 6 };
    const int TC = hllm_mm_token_chunk > 0 ? hllm_token_chunk(1, TM) : 96; /* 96 x 2 KiB of x per chunk */
    hllm_pk_geom g;
    hllm_pk_geometry(m->type, m->cols, &g);
    const size_t xs = hllm_cpu_act_row_bytes(m) / sizeof(float);
    ftile a = {.xs = xs, .ldy = ldy};
    const int64_t h0 = r0 / 8, h1 = (r1 + 7) / 8;
    const int64_t kc = n_tok == 1 ? m->cols : hllm_col_chunk();
    for (int t0 = 0; t0 < n_tok; t0 += TC) {
        const int t1 = n_tok - t0 < TC ? n_tok : t0 + TC;
        for (int64_t k0 = 0; k0 < m->cols; k0 += kc) {
            a.k0 = k0;
            a.k1 = m->cols - k0 < kc ? m->cols : k0 + kc;
            a.accum = k0 > 0;
            for (int64_t hi = h0; hi < h1;) {
                const int rv = h1 - hi >= 4 && n_tok == 1 ? 4 : h1 - hi >= 2 ? 2 : 1;
                for (int i = 0; i < rv; i++) {
                    a.w[i] = hllm_pk_qs(m->packed, &g, (hi + i) / 2);
                    a.h[i] = (int)((hi + i) & 1);
                    a.mk[i] = half_mask(hi + i, r0, r1);
                }
                for (int t = t0; t < t1; t += TM) {
                    const int T = t1 - t < TM ? t1 - t : TM;
                    a.x = (const float *)xq + (size_t)t * xs;
                    for (int i = 0; i < rv; i++) a.y[i] = y + t * ldy + (hi + i) * 8;
                    fns[rv == 4 ? 2 : rv - 1][T - 1](&a);
                }
                hi += rv;
            }
        }
    }
}

int hllm_matmul_avx2(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                     int64_t ldy) {
    if (!m->packed) return 0;
    switch (m->packed_kind) {
    case HLLM_PK_F32: run_float(m, ft_f32_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_F16: run_float(m, ft_f16_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_BF16: run_float(m, ft_bf16_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q4_0: run_quant(m, tile_q4_0_fns, 4, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q8_0: run_quant(m, tile_q8_0_fns, 4, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q4_K: run_quant(m, tile_q4_K_fns, 3, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q6_K: run_quant(m, tile_q6_K_fns, 3, r0, r1, xq, n_tok, y, ldy); return 1;
    default: return 0;
    }
}
