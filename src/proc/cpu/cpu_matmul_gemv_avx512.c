/* AVX-512 VNNI decode kernels (one token) for Q4_0, Q4_K and Q8_0, on the 16-row interleaved
 * layout (cpu_matmul_impl.h). Fewer vector uops per weight byte than the prefill tiles:
 *  - the high nibble is kept in place (v & 0xF0 = 16 * q) instead of shifted down, and
 *    accumulated apart from the low nibble; one shift per block merges the two as 16 * dot,
 *    and the 1/16 is folded into the float scale (exact: powers of two), so the results are
 *    bit-identical to the tiles';
 *  - the two nibble chains and up to 4 groups give 8 independent vpdpbusd chains;
 *  - activation broadcasts are shared by the groups of a tile. */
#include "proc/cpu/cpu_matmul_impl.h"
#include "proc/cpu/cpu_avx512_inl.h"

/* One load per weight vector: without the empty asm the compiler folds the load into both
 * the and and the andnot, and decode from L1/L2 is then bound by load slots. */
INL __m512i wload(const uint8_t *p) {
    __m512i v = _mm512_loadu_si512(p);
    __asm__("" : "+v"(v));
    return v;
}
INL void pf(const uint8_t *p, size_t d) {
    if (d) _mm_prefetch((const char *)p + d, _MM_HINT_T0);
}

typedef struct {
    const uint8_t *w, *ax; /* block 0's qs and aux of the first group (the others follow, one stripe) */
    size_t bs;             /* block stride (stripes of 4) */
    size_t gs;             /* group stride (Q8_0's stripes of one) */
    int64_t nb;
    int64_t b0, b1;   /* the blocks summed: all of them, or a column range (a decode split by columns) */
    const uint8_t *x; /* activation row */
    size_t ext;
    float *y;         /* output of the first group's first row */
    __mmask16 mk[4];
} gtile;

/* 16 * dot of one 64-byte nibble vector (8 columns per row) into lo / hi chains. */
#define NIB_DOT(lo, hi, v, a0, a1)                                                      \
    do {                                                                                \
        lo = _mm512_dpbusd_epi32(lo, _mm512_and_si512(v, m4), a0);                     \
        hi = _mm512_dpbusd_epi32(hi, _mm512_andnot_si512(m4, v), a1);                  \
    } while (0)

/* Block b of the q8 activation row, as every kernel here reads it: its 32 int8 values as eight
 * 4-byte broadcasts, and the block's correction term (xc, e.g. -8 * sum for Q4_0). */
INL void xblock(const gtile *a, const uint8_t *xc, int64_t b, __m512i xv[8], __m512i *c) {
    const uint8_t *xb = a->x + 34 * b + 2;
    UNROLL for (int i = 0; i < 8; i++) xv[i] = bcast32(xb + 4 * i);
    *c = bcast32(xc + 4 * b);
}

INL void gemv_q4_0(const gtile *a, const int R) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512 sixteenth = _mm512_set1_ps(1.0f / 16);
    __m512 accf[4];
    UNROLL for (int r = 0; r < R; r++) accf[r] = _mm512_setzero_ps();
    const uint8_t *xd = a->x + a->ext, *xc = xd + 4 * a->nb;
    const size_t d = (size_t)hllm_mm_prefetch;
    for (int64_t b = a->b0; b < a->b1; b++) {
        __m512i xv[8], c;
        xblock(a, xc, b, xv, &c);
        const __m512 dx = _mm512_mul_ps(bcastf(xd + 4 * b), sixteenth);
        UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *wb = a->w + b * a->bs + 256 * r, *aux = a->ax + b * a->bs + 32 * r;
            UNROLL for (int z = 0; z < 4; z++) pf(wb + 64 * z, d);
            if ((r & 1) == 0) pf(aux, d); /* two groups' aux per line */
            __m512i lo = c, hi = _mm512_setzero_si512(); /* -8 * sum(x): q4_0 nibbles are q + 8 */
            UNROLL for (int z = 0; z < 4; z++) {
                const __m512i v = wload(wb + 64 * z);
                NIB_DOT(lo, hi, v, xv[2 * z], xv[2 * z + 1]);
            }
            const __m512i s = _mm512_add_epi32(_mm512_slli_epi32(lo, 4), hi);
            accf[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(load_f16x16(aux), dx), accf[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(a->y + 16 * r, a->mk[r], accf[r]);
}

/* Q8_0: weights' sign bit flipped (w + 128, unsigned for vpdpbusd), the chain starting at
 * -128 * sum(x block) as in the tiles; even and odd 4-column slices in two chains (8 chains
 * over 4 groups), each group's 512-byte block read in one run of 8 lines; each load has one
 * use, so it folds into the xor (no wload). Integer sums are
 * exact and the float steps are the tiles', so the bits match them. */
INL void gemv_q8_0(const gtile *a, const int R) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 accf[4];
    UNROLL for (int r = 0; r < R; r++) accf[r] = _mm512_setzero_ps();
    const uint8_t *xd = a->x + a->ext, *xc = xd + 4 * a->nb;
    const size_t d = (size_t)hllm_mm_prefetch / 4; /* per group stream (stripes of one) */
    for (int64_t b = a->b0; b < a->b1; b++) {
        __m512i xv[8], c;
        xblock(a, xc, b, xv, &c);
        const __m512 dx = bcastf(xd + 4 * b);
        UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *wb = a->w + r * a->gs + 512 * b, *aux = a->ax + r * a->gs + 32 * b;
            UNROLL for (int z = 0; z < 8; z++) pf(wb + 64 * z, d);
            if ((b & 1) == 0) pf(aux, d); /* two blocks' aux per line */
            __m512i s0 = c, s1 = _mm512_setzero_si512();
            UNROLL for (int z = 0; z < 8; z += 2) {
                s0 = _mm512_dpbusd_epi32(s0, _mm512_xor_si512(_mm512_loadu_si512(wb + 64 * z), flip), xv[z]);
                s1 = _mm512_dpbusd_epi32(s1, _mm512_xor_si512(_mm512_loadu_si512(wb + 64 * z + 64), flip), xv[z + 1]);
            }
            const __m512i s = _mm512_add_epi32(s0, s1);
            accf[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(load_f16x16(aux), dx), accf[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(a->y + 16 * r, a->mk[r], accf[r]);
}

/* Q4_K: per 32-column sub-block 16 * dot, times the row's 6-bit scale (fits: |16 * dot *
 * scale * 8| < 2^29); the min term as in the tiles. */
INL void gemv_q4_K(const gtile *a, const int R) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512 sixteenth = _mm512_set1_ps(1.0f / 16);
    __m512 accf[4];
    UNROLL for (int r = 0; r < R; r++) accf[r] = _mm512_setzero_ps();
    const size_t d = (size_t)hllm_mm_prefetch;
    for (int64_t b = a->b0; b < a->b1; b++) {
        const uint8_t *xb = a->x + 292 * b, *xq = xb + 4;
        __m512i isum[4];
        UNROLL for (int r = 0; r < R; r++) {
            isum[r] = _mm512_setzero_si512();
            UNROLL for (int l = 0; l < 5; l++) pf(a->ax + b * a->bs + 320 * r + 64 * l, d);
        }
        for (int j = 0; j < 8; j++) {
            __m512i xv[8];
            UNROLL for (int i = 0; i < 8; i++) xv[i] = bcast32(xq + 32 * j + 4 * i);
            UNROLL for (int r = 0; r < R; r++) {
                const uint8_t *wb = a->w + b * a->bs + 1024 * j + 256 * r; /* unit j of group r */
                __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
                UNROLL for (int z = 0; z < 4; z++) {
                    pf(wb + 64 * z, d);
                    const __m512i v = wload(wb + 64 * z);
                    NIB_DOT(lo, hi, v, xv[2 * z], xv[2 * z + 1]);
                }
                const __m512i sc = _mm512_cvtepu8_epi32(
                    _mm_loadu_si128((const __m128i *)(a->ax + b * a->bs + 320 * r + 16 * j)));
                const __m512i s = _mm512_add_epi32(_mm512_slli_epi32(lo, 4), hi);
                isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(s, sc));
            }
        }
        const uint8_t *bs = a->x + a->ext + 16 * b;
        const __m512 dx = bcastf(xb), dx16 = _mm512_mul_ps(dx, sixteenth);
        UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *ax = a->ax + b * a->bs + 320 * r;
            __m512i ms = _mm512_madd_epi16(_mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(ax + 128))), bcast32(bs));
            UNROLL for (int p = 1; p < 4; p++)
                ms = _mm512_add_epi32(ms, _mm512_madd_epi16(
                                              _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(ax + 128 + 32 * p))),
                                              bcast32(bs + 4 * p)));
            accf[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_mul_ps(load_f16x16(ax + 256), dx16), accf[r]);
            accf[r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(load_f16x16(ax + 288), dx), accf[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(a->y + 16 * r, a->mk[r], accf[r]);
}

typedef void (*gtile_fn)(const gtile *);
static void q4_0_1(const gtile *a) { gemv_q4_0(a, 1); }
static void q4_0_2(const gtile *a) { gemv_q4_0(a, 2); }
static void q4_0_4(const gtile *a) { gemv_q4_0(a, 4); }
static void q8_0_1(const gtile *a) { gemv_q8_0(a, 1); }
static void q8_0_2(const gtile *a) { gemv_q8_0(a, 2); }
static void q8_0_4(const gtile *a) { gemv_q8_0(a, 4); }
static void q4_K_1(const gtile *a) { gemv_q4_K(a, 1); }
static void q4_K_2(const gtile *a) { gemv_q4_K(a, 2); }
static void q4_K_4(const gtile *a) { gemv_q4_K(a, 4); }

static __mmask16 rmask(int64_t grp, int64_t r0, int64_t r1) {
    uint32_t mk = 0xFFFF;
    const int64_t base = grp * HLLM_PK_ROWS;
    if (r0 > base) mk &= 0xFFFFu << (r0 - base);
    if (r1 - base < 16) mk &= (1u << (r1 - base)) - 1;
    return (__mmask16)mk;
}

/* The kernels for a repacked kind (1, 2 and 4 groups a tile); false if it has none. */
static bool gemv_fns(int kind, gtile_fn *f1, gtile_fn *f2, gtile_fn *f4) {
    switch (kind) {
    case HLLM_PK_Q4_0: *f1 = q4_0_1, *f2 = q4_0_2, *f4 = q4_0_4; return true;
    case HLLM_PK_Q8_0: *f1 = q8_0_1, *f2 = q8_0_2, *f4 = q8_0_4; return true;
    case HLLM_PK_Q4_K: *f1 = q4_K_1, *f2 = q4_K_2, *f4 = q4_K_4; return true;
    default: return false;
    }
}

int hllm_gemv_avx512(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y) {
    gtile_fn f1, f2, f4;
    if (!gemv_fns(m->packed_kind, &f1, &f2, &f4)) return 0;
    hllm_pk_geom g;
    hllm_pk_geometry(m->type, m->cols, &g);
    hllm_act_geom ag;
    hllm_act_geometry(m->type, m->cols, &ag);
    if (kb1 < 0) kb0 = 0, kb1 = g.nb;
    gtile a = {.bs = g.block_stride, .gs = g.group_qs, .nb = g.nb, .b0 = kb0, .b1 = kb1, .x = xq, .ext = ag.ext};
    const int64_t g0 = r0 / HLLM_PK_ROWS, g1 = (r1 + HLLM_PK_ROWS - 1) / HLLM_PK_ROWS;
    for (int64_t gi = g0; gi < g1;) {
        int R = hllm_pk_tile_groups(&g, gi, g1, 4);
        if (R == 3) R = 2;
        a.w = hllm_pk_qs(m->packed, &g, gi);
        a.ax = hllm_pk_aux(m->packed, &g, gi);
        a.y = y + gi * HLLM_PK_ROWS;
        for (int i = 0; i < R; i++) a.mk[i] = rmask(gi + i, r0, r1);
        (R == 4 ? f4 : R == 2 ? f2 : f1)(&a);
        gi += R;
    }
    return 1;
}

int64_t hllm_gemv_avx512_kblocks(const hllm_cpu_mat *m) {
    gtile_fn f1, f2, f4;
    if (!m->packed || !gemv_fns(m->packed_kind, &f1, &f2, &f4)) return 0;
    hllm_pk_geom g;
    hllm_pk_geometry(m->type, m->cols, &g);
    return g.nb;
}
