/* AVX-512 (F/BW/VL/DQ + VNNI) matmul kernels.
 * Quantized types use the 16-row interleaved layout (cpu_matmul_impl.h): one vpdpbusd per
 * 4 columns yields 16 rows' partial dots, the activation slice is a broadcast dword. Tiles are
 * RV groups (16 rows each) x T tokens; each weight vector loaded is used for T tokens, each
 * activation broadcast for RV groups. Decode (one token) uses 4 groups per tile so 4
 * independent dependency chains run side by side while the weights stream through once. */
#include "proc/cpu/cpu_matmul_impl.h"
#include "proc/cpu/cpu_avx512_inl.h"

#define PREFETCH(p)                                                               \
    do {                                                                          \
        if (T == 1 && pf) _mm_prefetch((const char *)(p) + pf, _MM_HINT_T0);      \
    } while (0)

typedef struct {
    const uint8_t *w;  /* block 0's qs of the tile's first group (the others follow, one stripe) */
    const uint8_t *ax; /* block 0's aux of the first group */
    size_t bs;         /* block stride (stripes of 4) */
    size_t gs;         /* group stride (Q8_0's stripes of one) */
    int64_t nb;        /* blocks per row */
    const uint8_t *x; /* first token's activation row */
    size_t xs;        /* activation row stride */
    size_t ext;       /* offset of the activation extras */
    float *y;         /* output of the first token, first row of the tile */
    int64_t ldy;
    __mmask16 mk[4]; /* rows of each group to store */
} qtile;

INL void store_tile(const qtile *a, __m512 acc[4][4], const int RV, const int T) {
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++)
        _mm512_mask_storeu_ps(a->y + t * a->ldy + 16 * rv, a->mk[rv], acc[rv][t]);
}

/* Q4_0 x Q8_0: nibbles are unsigned (q + 8), so the accumulator starts at -8 * sum(x block). */
INL void tile_q4_0(const qtile *a, const int RV, const int T) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm512_setzero_ps();
    const uint8_t *xd = a->x + a->ext, *xc = xd + 4 * a->nb;
    const int pf = hllm_mm_prefetch;
    for (int64_t b = 0; b < a->nb; b++) {
        __m512i acc[4][4];
        UNROLL for (int t = 0; t < T; t++) {
            const __m512i c = bcast32(xc + t * a->xs + 4 * b);
            UNROLL for (int rv = 0; rv < RV; rv++) acc[rv][t] = c;
        }
        const uint8_t *wb = a->w + b * a->bs, *xb = a->x + b * 34 + 2;
        UNROLL for (int rv = 0; rv < RV; rv++) PREFETCH(a->ax + b * a->bs + 32 * rv);
        UNROLL for (int z = 0; z < 4; z++) {
            __m512i lo[4], hi[4];
            UNROLL for (int rv = 0; rv < RV; rv++) {
                PREFETCH(wb + rv * 256 + 64 * z);
                const __m512i v = _mm512_loadu_si512(wb + rv * 256 + 64 * z);
                lo[rv] = _mm512_and_si512(v, m4);
                hi[rv] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
            UNROLL for (int t = 0; t < T; t++) {
                const __m512i a0 = bcast32(xb + t * a->xs + 8 * z), a1 = bcast32(xb + t * a->xs + 8 * z + 4);
                UNROLL for (int rv = 0; rv < RV; rv++) {
                    acc[rv][t] = _mm512_dpbusd_epi32(acc[rv][t], lo[rv], a0);
                    acc[rv][t] = _mm512_dpbusd_epi32(acc[rv][t], hi[rv], a1);
                }
            }
        }
        __m512 dw[4];
        UNROLL for (int rv = 0; rv < RV; rv++) dw[rv] = load_f16x16(a->ax + b * a->bs + 32 * rv);
        UNROLL for (int t = 0; t < T; t++) {
            const __m512 dx = bcastf(xd + t * a->xs + 4 * b);
            UNROLL for (int rv = 0; rv < RV; rv++)
                accf[rv][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[rv][t]), _mm512_mul_ps(dw[rv], dx), accf[rv][t]);
        }
    }
    store_tile(a, accf, RV, T);
}

/* Q8_0 x Q8_0: vpdpbusd wants one unsigned operand, so weights get their sign bit flipped
 * (w + 128) and the accumulator starts at -128 * sum(x block). */
INL void tile_q8_0(const qtile *a, const int RV, const int T) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm512_setzero_ps();
    const uint8_t *xd = a->x + a->ext, *xc = xd + 4 * a->nb;
    const int pf = hllm_mm_prefetch / 4; /* per group stream (stripes of one) */
    for (int64_t b = 0; b < a->nb; b++) {
        __m512i acc[4][4];
        UNROLL for (int t = 0; t < T; t++) {
            const __m512i c = bcast32(xc + t * a->xs + 4 * b);
            UNROLL for (int rv = 0; rv < RV; rv++) acc[rv][t] = c;
        }
        const uint8_t *wb = a->w + b * 512, *xb = a->x + b * 34 + 2;
        UNROLL for (int rv = 0; rv < RV; rv++) PREFETCH(a->ax + rv * a->gs + 32 * b);
        UNROLL for (int z = 0; z < 8; z++) {
            __m512i wv[4];
            UNROLL for (int rv = 0; rv < RV; rv++) {
                PREFETCH(wb + rv * a->gs + 64 * z);
                wv[rv] = _mm512_xor_si512(_mm512_loadu_si512(wb + rv * a->gs + 64 * z), flip);
            }
            UNROLL for (int t = 0; t < T; t++) {
                const __m512i x4 = bcast32(xb + t * a->xs + 4 * z);
                UNROLL for (int rv = 0; rv < RV; rv++) acc[rv][t] = _mm512_dpbusd_epi32(acc[rv][t], wv[rv], x4);
            }
        }
        __m512 dw[4];
        UNROLL for (int rv = 0; rv < RV; rv++) dw[rv] = load_f16x16(a->ax + rv * a->gs + 32 * b);
        UNROLL for (int t = 0; t < T; t++) {
            const __m512 dx = bcastf(xd + t * a->xs + 4 * b);
            UNROLL for (int rv = 0; rv < RV; rv++)
                accf[rv][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[rv][t]), _mm512_mul_ps(dw[rv], dx), accf[rv][t]);
        }
    }
    store_tile(a, accf, RV, T);
}

/* Q4_K x Q8_K: per 32-column sub-block an integer dot, times the row's 6-bit scale (vpmulld);
 * the min term uses pairwise mins against the activation's 32-column sums (vpmaddwd). */
INL void tile_q4_K(const qtile *a, const int RV, const int T) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm512_setzero_ps();
    const int pf = hllm_mm_prefetch;
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *wb = a->w + b * a->bs, *auxb = a->ax + b * a->bs, *xb = a->x + b * 292;
        UNROLL for (int l = 0; l < 5 * RV; l++) PREFETCH(auxb + 64 * l);
        __m512i isum[4][4];
        UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) isum[rv][t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            __m512i acc[4][4];
            UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) acc[rv][t] = _mm512_setzero_si512();
            UNROLL for (int zz = 0; zz < 4; zz++) {
                const int z = 4 * j + zz;
                __m512i lo[4], hi[4];
                UNROLL for (int rv = 0; rv < RV; rv++) {
                    PREFETCH(wb + 1024 * j + rv * 256 + 64 * zz); /* unit j of group rv */
                    const __m512i v = _mm512_loadu_si512(wb + 1024 * j + rv * 256 + 64 * zz);
                    lo[rv] = _mm512_and_si512(v, m4);
                    hi[rv] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
                UNROLL for (int t = 0; t < T; t++) {
                    const uint8_t *xq = xb + t * a->xs + 4 + 8 * z;
                    const __m512i a0 = bcast32(xq), a1 = bcast32(xq + 4);
                    UNROLL for (int rv = 0; rv < RV; rv++) {
                        acc[rv][t] = _mm512_dpbusd_epi32(acc[rv][t], lo[rv], a0);
                        acc[rv][t] = _mm512_dpbusd_epi32(acc[rv][t], hi[rv], a1);
                    }
                }
            }
            UNROLL for (int rv = 0; rv < RV; rv++) {
                const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(auxb + rv * 320 + 16 * j)));
                UNROLL for (int t = 0; t < T; t++) isum[rv][t] = _mm512_add_epi32(isum[rv][t], _mm512_mullo_epi32(acc[rv][t], sc));
            }
        }
        UNROLL for (int rv = 0; rv < RV; rv++) {
            const uint8_t *ax = auxb + rv * 320;
            __m512i mn[4];
            UNROLL for (int p = 0; p < 4; p++) mn[p] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(ax + 128 + 32 * p)));
            const __m512 d = load_f16x16(ax + 256), dmin = load_f16x16(ax + 288);
            UNROLL for (int t = 0; t < T; t++) {
                const uint8_t *bs = a->x + t * a->xs + a->ext + 16 * b;
                __m512i ms = _mm512_madd_epi16(mn[0], bcast32(bs));
                UNROLL for (int p = 1; p < 4; p++) ms = _mm512_add_epi32(ms, _mm512_madd_epi16(mn[p], bcast32(bs + 4 * p)));
                const __m512 dx = bcastf(xb + t * a->xs);
                accf[rv][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[rv][t]), _mm512_mul_ps(d, dx), accf[rv][t]);
                accf[rv][t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dmin, dx), accf[rv][t]);
            }
        }
    }
    store_tile(a, accf, RV, T);
}

/* Q6_K x Q8_K: 6-bit values rebuilt from nibble + 2 high bits (one vpternlogd), stored as
 * q + 32; each 16-column sub-block's accumulator starts at -32 * sum(x sub-block) and is then
 * scaled by the row's int8 scale. */
INL void tile_q6_K(const qtile *a, const int RV, const int T) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    __m512 accf[4][4];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) accf[rv][t] = _mm512_setzero_ps();
    /* one token: 3x the default distance (one core streamed ~10% more from DRAM at 12 KiB ahead
     * than at 4, the others' best) */
    const int pf = 3 * hllm_mm_prefetch;
    for (int64_t b = 0; b < a->nb; b++) {
        const uint8_t *wb = a->w + b * a->bs, *auxb = a->ax + b * a->bs, *xb = a->x + b * 292;
        UNROLL for (int l = 0; l < (288 * RV + 63) / 64; l++) PREFETCH(auxb + 64 * l);
        const uint8_t *xc = a->x + a->ext + 64 * b;
        __m512i isum[4][4];
        UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) isum[rv][t] = _mm512_setzero_si512();
        for (int j2 = 0; j2 < 16; j2 += 2) UNROLL for (int e = 0; e < 2; e++) {
            const int j = j2 + e;
            UNROLL for (int rv = 0; rv < RV; rv++) {
                const uint8_t *wr = wb + 768 * j + rv * 192; /* unit j of group rv */
                PREFETCH(wr);
                PREFETCH(wr + 64);
                PREFETCH(wr + 128);
                const __m512i l0 = _mm512_loadu_si512(wr), l1 = _mm512_loadu_si512(wr + 64);
                const __m512i h = _mm512_loadu_si512(wr + 128);
                /* (qh_shifted & 0x30) | nibble */
                const __m512i q0 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(h, 4), m30, _mm512_and_si512(l0, m4), 0xEA);
                const __m512i q1 = _mm512_ternarylogic_epi32(_mm512_slli_epi32(h, 2), m30,
                                                             _mm512_and_si512(_mm512_srli_epi16(l0, 4), m4), 0xEA);
                const __m512i q2 = _mm512_ternarylogic_epi32(h, m30, _mm512_and_si512(l1, m4), 0xEA);
                const __m512i q3 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(h, 2), m30,
                                                             _mm512_and_si512(_mm512_srli_epi16(l1, 4), m4), 0xEA);
                /* scale pairs (sc[j2], sc[j2+1]) per lane: pick one, sign-extended */
                const __m512i sp = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(auxb + rv * 288 + 16 * j2)));
                const __m512i sc = e ? _mm512_srai_epi32(sp, 16) : _mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16);
                UNROLL for (int t = 0; t < T; t++) {
                    const uint8_t *xq = xb + t * a->xs + 4 + 16 * j;
                    __m512i acc = bcast32(xc + t * a->xs + 4 * j);
                    acc = _mm512_dpbusd_epi32(acc, q0, bcast32(xq));
                    acc = _mm512_dpbusd_epi32(acc, q1, bcast32(xq + 4));
                    acc = _mm512_dpbusd_epi32(acc, q2, bcast32(xq + 8));
                    acc = _mm512_dpbusd_epi32(acc, q3, bcast32(xq + 12));
                    isum[rv][t] = _mm512_add_epi32(isum[rv][t], _mm512_mullo_epi32(acc, sc));
                }
            }
        }
        UNROLL for (int rv = 0; rv < RV; rv++) {
            const __m512 d = load_f16x16(auxb + rv * 288 + 256);
            UNROLL for (int t = 0; t < T; t++) {
                const __m512 dx = bcastf(xb + t * a->xs);
                accf[rv][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[rv][t]), _mm512_mul_ps(d, dx), accf[rv][t]);
            }
        }
    }
    store_tile(a, accf, RV, T);
}

typedef void (*qtile_fn)(const qtile *);

/* Instantiations: RV in {1, 2} x T in 1..4, plus 4 x 1 for decode. */
#define QTILES(name)                                                                              \
    static void name##_1_1(const qtile *a) { name(a, 1, 1); }                                     \
    static void name##_1_2(const qtile *a) { name(a, 1, 2); }                                     \
    static void name##_1_3(const qtile *a) { name(a, 1, 3); }                                     \
    static void name##_1_4(const qtile *a) { name(a, 1, 4); }                                     \
    static void name##_2_1(const qtile *a) { name(a, 2, 1); }                                     \
    static void name##_2_2(const qtile *a) { name(a, 2, 2); }                                     \
    static void name##_2_3(const qtile *a) { name(a, 2, 3); }                                     \
    static void name##_2_4(const qtile *a) { name(a, 2, 4); }                                     \
    static void name##_4_1(const qtile *a) { name(a, 4, 1); }                                     \
    static const qtile_fn name##_fns[3][4] = {{name##_1_1, name##_1_2, name##_1_3, name##_1_4}, \
                                              {name##_2_1, name##_2_2, name##_2_3, name##_2_4}, \
                                              {name##_4_1, NULL, NULL, NULL}};
QTILES(tile_q4_0)
QTILES(tile_q8_0)
QTILES(tile_q4_K)
QTILES(tile_q6_K)

static __mmask16 row_mask(int64_t grp, int64_t r0, int64_t r1) {
    uint32_t mk = 0xFFFF;
    const int64_t base = grp * HLLM_PK_ROWS;
    if (r0 > base) mk &= 0xFFFFu << (r0 - base);
    if (r1 - base < 16) mk &= (1u << (r1 - base)) - 1;
    return (__mmask16)mk;
}

static void run_quant(const hllm_cpu_mat *m, const qtile_fn fns[3][4], int64_t r0, int64_t r1, const uint8_t *xq,
                      int n_tok, float *y, int64_t ldy) {
    enum { TM = 4 };
    hllm_pk_geom g;
    hllm_pk_geometry(m->type, m->cols, &g);
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    qtile a = {.bs = g.block_stride, .gs = g.group_qs, .nb = g.nb, .xs = ag.row_bytes, .ext = ag.ext, .ldy = ldy};
    const int64_t g0 = r0 / HLLM_PK_ROWS, g1 = (r1 + HLLM_PK_ROWS - 1) / HLLM_PK_ROWS;
    /* Tokens in chunks that stay in L2 while every row tile sweeps over them. */
    const int tc = n_tok == 1 ? 1 : hllm_token_chunk(ag.row_bytes, TM);
    for (int t0 = 0; t0 < n_tok; t0 += tc) {
        const int t1 = n_tok - t0 < tc ? n_tok : t0 + tc;
        for (int64_t gi = g0; gi < g1;) {
            int rv = hllm_pk_tile_groups(&g, gi, g1, n_tok == 1 ? 4 : 2);
            if (rv == 3) rv = 2;
            const int ri = rv == 4 ? 2 : rv - 1;
            a.w = hllm_pk_qs(m->packed, &g, gi);
            a.ax = hllm_pk_aux(m->packed, &g, gi);
            for (int i = 0; i < rv; i++) a.mk[i] = row_mask(gi + i, r0, r1);
            for (int t = t0; t < t1; t += TM) {
                const int T = t1 - t < TM ? t1 - t : TM;
                a.x = xq + (size_t)t * ag.row_bytes;
                a.y = y + t * ldy + gi * HLLM_PK_ROWS;
                fns[ri][T - 1](&a);
            }
            gi += rv;
        }
    }
}

/* ---- float weights: outer products on the column-major 16-row groups, FMA in f32 ----
 * Tile RV groups x T tokens (4 x 6 = 24 accumulators): per column, RV weight vectors and
 * T broadcasts feed RV*T FMAs. Columns are processed in chunks so the tile's activation
 * slice stays in L1 and the weight chunk in L2 while the token tiles sweep over it; partial
 * sums of later chunks are added into y. */
typedef struct {
    const uint8_t *w; /* first group of the tile */
    size_t gs;
    int64_t k0, k1;   /* column range */
    const float *x;   /* first token */
    size_t xs;        /* floats between token rows */
    float *y;
    int64_t ldy;
    int accum;        /* add into y (not the first column chunk) */
    __mmask16 mk[4];
} ftile;

INL __m512 wload16(const uint8_t *p, const int type) {
    if (type == HLLM_TYPE_F32) return _mm512_loadu_ps(p);
    const __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (type == HLLM_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16 */
}

INL void tile_float(const ftile *a, const int type, const int RV, const int T) {
    const size_t cs = type == HLLM_TYPE_F32 ? 64 : 32; /* bytes per column of a group */
    __m512 acc[4][6];
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) acc[rv][t] = _mm512_setzero_ps();
    const uint8_t *w = a->w + (size_t)a->k0 * cs;
    const int pf = hllm_mm_prefetch / 4; /* the distance is per 4 group streams */
#pragma GCC unroll 2
    for (int64_t k = a->k0; k < a->k1; k++, w += cs) {
        __m512 wv[4];
        UNROLL for (int rv = 0; rv < RV; rv++) {
            if (type == HLLM_TYPE_F32 || (k & 1) == 0) PREFETCH(w + rv * a->gs);
            wv[rv] = wload16(w + rv * a->gs, type);
        }
        UNROLL for (int t = 0; t < T; t++) {
            const __m512 xb = _mm512_set1_ps(a->x[t * a->xs + k]);
            UNROLL for (int rv = 0; rv < RV; rv++) acc[rv][t] = _mm512_fmadd_ps(wv[rv], xb, acc[rv][t]);
        }
    }
    UNROLL for (int rv = 0; rv < RV; rv++) UNROLL for (int t = 0; t < T; t++) {
        float *y = a->y + t * a->ldy + 16 * rv;
        __m512 v = acc[rv][t];
        if (a->accum) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(a->mk[rv], y));
        _mm512_mask_storeu_ps(y, a->mk[rv], v);
    }
}

typedef void (*ftile_fn)(const ftile *);
#define FTILE(ty, tn, RV, T) \
    static void ft_##tn##_##RV##_##T(const ftile *a) { tile_float(a, ty, RV, T); }
#define FTILES(ty, tn)                                                                                   \
    FTILE(ty, tn, 1, 1) FTILE(ty, tn, 1, 2) FTILE(ty, tn, 1, 3) FTILE(ty, tn, 1, 4) FTILE(ty, tn, 1, 5)  \
    FTILE(ty, tn, 1, 6) FTILE(ty, tn, 4, 1) FTILE(ty, tn, 4, 2) FTILE(ty, tn, 4, 3) FTILE(ty, tn, 4, 4)  \
    FTILE(ty, tn, 4, 5) FTILE(ty, tn, 4, 6)                                                              \
    static const ftile_fn ft_##tn##_fns[2][6] = {                                                        \
        {ft_##tn##_1_1, ft_##tn##_1_2, ft_##tn##_1_3, ft_##tn##_1_4, ft_##tn##_1_5, ft_##tn##_1_6},      \
        {ft_##tn##_4_1, ft_##tn##_4_2, ft_##tn##_4_3, ft_##tn##_4_4, ft_##tn##_4_5, ft_##tn##_4_6}};
FTILES(HLLM_TYPE_F32, f32)
FTILES(HLLM_TYPE_F16, f16)
FTILES(HLLM_TYPE_BF16, bf16)

static void run_float(const hllm_cpu_mat *m, const ftile_fn fns[2][6], int64_t r0, int64_t r1, const uint8_t *xq,
                      int n_tok, float *y, int64_t ldy) {
    enum { TM = 6 };
    const int TC = hllm_mm_token_chunk > 0 ? hllm_token_chunk(1, TM) : 96; /* 96 x 2 KiB of x per chunk */
    hllm_pk_geom g;
    hllm_pk_geometry(m->type, m->cols, &g);
    const size_t xs = hllm_cpu_act_row_bytes(m) / sizeof(float);
    ftile a = {.gs = g.stripe_bytes, .xs = xs, .ldy = ldy}; /* float stripes are one group */
    const int64_t g0 = r0 / HLLM_PK_ROWS, g1 = (r1 + HLLM_PK_ROWS - 1) / HLLM_PK_ROWS;
    const int64_t kc = n_tok == 1 ? m->cols : hllm_col_chunk(); /* decode: one pass, no partial sums */
    for (int t0 = 0; t0 < n_tok; t0 += TC) {
        const int t1 = n_tok - t0 < TC ? n_tok : t0 + TC;
        for (int64_t k0 = 0; k0 < m->cols; k0 += kc) {
            a.k0 = k0;
            a.k1 = m->cols - k0 < kc ? m->cols : k0 + kc;
            a.accum = k0 > 0;
            for (int64_t gi = g0; gi < g1;) {
                const int rv = g1 - gi >= 4 ? 4 : 1;
                a.w = hllm_pk_qs(m->packed, &g, gi);
                for (int i = 0; i < rv; i++) a.mk[i] = row_mask(gi + i, r0, r1);
                for (int t = t0; t < t1; t += TM) {
                    const int T = t1 - t < TM ? t1 - t : TM;
                    a.x = (const float *)xq + (size_t)t * xs;
                    a.y = y + t * ldy + gi * HLLM_PK_ROWS;
                    fns[rv == 4][T - 1](&a);
                }
                gi += rv;
            }
        }
    }
}

int hllm_matmul_avx512(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                       int64_t ldy) {
    if (!m->packed) return 0;
    if (n_tok == 1 && hllm_gemv_avx512(m, r0, r1, 0, -1, xq, y)) return 1;
    switch (m->packed_kind) {
    case HLLM_PK_F32: run_float(m, ft_f32_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_F16: run_float(m, ft_f16_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_BF16: run_float(m, ft_bf16_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q4_0: run_quant(m, tile_q4_0_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q8_0: run_quant(m, tile_q8_0_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q4_K: run_quant(m, tile_q4_K_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    case HLLM_PK_Q6_K: run_quant(m, tile_q6_K_fns, r0, r1, xq, n_tok, y, ldy); return 1;
    default: return 0;
    }
}
