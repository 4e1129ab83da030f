/* CPU matmul: instruction-set selection, weight repacking, activation quantization, the
 * scalar reference path and dispatch to the SIMD kernels. */
#include "proc/cpu/cpu_matmul.h"
#include "core/error.h"
#include "core/fp16.h"
#include "core/quant.h"
#include "core/threadpool.h"
#include "proc/cpu/cpu_hugemem.h"
#include "proc/cpu/cpu_matmul_impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HLLM_X86 1
#endif

/* ---- instruction set ---- */

#ifdef HLLM_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

hllm_isa hllm_cpu_isa_detect(void) {
#ifdef HLLM_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return HLLM_ISA_SCALAR;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return HLLM_ISA_SCALAR;
    /* The OS must save the YMM state (XCR0 bits 1-2) and for AVX-512 also opmask/ZMM (5-7). */
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return HLLM_ISA_SCALAR;
    if (__get_cpuid_max(0, NULL) < 7) return HLLM_ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const int vnni = (c >> 11) & 1;
    if (!(avx2 && fma && f16c)) return HLLM_ISA_SCALAR;
    if (f && dq && bw && vl && vnni && (xcr0 & 0xE0) == 0xE0) return HLLM_ISA_AVX512;
    return HLLM_ISA_AVX2;
#elif defined(__aarch64__)
    return HLLM_ISA_NEON;
#else
    return HLLM_ISA_SCALAR;
#endif
}

static int isa_supported(hllm_isa isa) {
    const hllm_isa best = hllm_cpu_isa_detect();
    if (isa == HLLM_ISA_SCALAR) return 1;
    if (best == HLLM_ISA_NEON) return isa == HLLM_ISA_NEON;
    if (isa == HLLM_ISA_NEON) return 0;
    return (int)isa <= (int)best;
}

static int g_isa = -1; /* resolved lazily; a benign race: every thread computes the same value */

hllm_isa hllm_cpu_isa(void) {
    int isa = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (isa >= 0) return (hllm_isa)isa;
    isa = (int)hllm_cpu_isa_detect();
    const char *env = getenv("HLLM_ISA");
    if (env && *env) {
        int want = -1;
        for (int i = 0; i <= HLLM_ISA_NEON; i++)
            if (strcmp(env, hllm_isa_name((hllm_isa)i)) == 0) want = i;
        if (want >= 0 && isa_supported((hllm_isa)want)) isa = want;
        else fprintf(stderr, "hllm: HLLM_ISA=%s not available here, using %s\n", env, hllm_isa_name((hllm_isa)isa));
    }
    const char *pf = getenv("HLLM_PREFETCH");
    if (pf && *pf) hllm_mm_prefetch = atoi(pf) < 0 ? 0 : atoi(pf);
    __atomic_store_n(&g_isa, isa, __ATOMIC_RELAXED);
    return (hllm_isa)isa;
}

int hllm_cpu_set_isa(hllm_isa isa) {
    if ((int)isa < 0 || (int)isa > HLLM_ISA_NEON || !isa_supported(isa)) return -1;
    __atomic_store_n(&g_isa, (int)isa, __ATOMIC_RELAXED);
    return 0;
}

const char *hllm_isa_name(hllm_isa isa) {
    switch (isa) {
    case HLLM_ISA_SCALAR: return "scalar";
    case HLLM_ISA_AVX2: return "avx2";
    case HLLM_ISA_AVX512: return "avx512";
    case HLLM_ISA_NEON: return "neon";
    }
    return "unknown";
}

/* ---- weights ---- */

/* Writes 4-bit values v[0..7] of one row into lane `lane` of a 64-byte vector: nibble pairs
 * (c, c+4) share a byte. */
static inline void put_nib8(uint8_t *vec, int lane, const uint8_t *v) {
    for (int e = 0; e < 4; e++) vec[4 * lane + e] = (uint8_t)((v[e] & 15) | ((v[e + 4] & 15) << 4));
}

/* Writes group grp into its slots of a zeroed packed buffer. */
static void pack_group(const hllm_cpu_mat *m, const hllm_pk_geom *g, int64_t grp) {
    uint8_t *dst = (uint8_t *)hllm_pk_qs(m->packed, g, grp);
    if (g->block == 1) { /* float: column-major within the group; written sequentially */
        const uint8_t *rows[HLLM_PK_ROWS];
        int nl = 0;
        for (; nl < HLLM_PK_ROWS && grp * HLLM_PK_ROWS + nl < m->rows; nl++)
            rows[nl] = (const uint8_t *)m->data + (size_t)(grp * HLLM_PK_ROWS + nl) * m->row_bytes;
        if (m->type == HLLM_TYPE_F32) {
            for (int64_t k = 0; k < m->cols; k++)
                for (int lane = 0; lane < nl; lane++) memcpy(dst + 64 * k + 4 * lane, rows[lane] + 4 * k, 4);
        } else {
            for (int64_t k = 0; k < m->cols; k++)
                for (int lane = 0; lane < nl; lane++) memcpy(dst + 32 * k + 2 * lane, rows[lane] + 2 * k, 2);
        }
        return;
    }
    uint8_t *aux0 = (uint8_t *)hllm_pk_aux(m->packed, g, grp);
    for (int lane = 0; lane < HLLM_PK_ROWS; lane++) {
        const int64_t r = grp * HLLM_PK_ROWS + lane;
        if (r >= m->rows) break;
        const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int64_t b = 0; b < g->nb; b++) {
            uint8_t *qs = dst + (size_t)b * g->block_stride, *aux = aux0 + (size_t)b * g->aux_stride;
            uint8_t v[256];
            switch (m->type) {
            case HLLM_TYPE_Q4_0: {
                const hllm_block_q4_0 *blk = (const hllm_block_q4_0 *)row + b;
                for (int j = 0; j < 16; j++) v[j] = blk->qs[j] & 15, v[j + 16] = blk->qs[j] >> 4;
                for (int z = 0; z < 4; z++) put_nib8(qs + 64 * z, lane, v + 8 * z);
                memcpy(aux + 2 * lane, &blk->d, 2);
                break;
            }
            case HLLM_TYPE_Q8_0: {
                const hllm_block_q8_0 *blk = (const hllm_block_q8_0 *)row + b;
                for (int z = 0; z < 8; z++) memcpy(qs + 64 * z + 4 * lane, blk->qs + 4 * z, 4);
                memcpy(aux + 2 * lane, &blk->d, 2);
                break;
            }
            case HLLM_TYPE_Q4_K: {
                const hllm_block_q4_K *blk = (const hllm_block_q4_K *)row + b;
                for (int c = 0; c < 4; c++)
                    for (int l = 0; l < 32; l++)
                        v[64 * c + l] = blk->qs[32 * c + l] & 15, v[64 * c + 32 + l] = blk->qs[32 * c + l] >> 4;
                for (int z = 0; z < 32; z++) put_nib8(qs + (z / 4) * 4 * g->unit + 64 * (z % 4), lane, v + 8 * z);
                for (int j = 0; j < 8; j++) {
                    uint8_t sc, mn;
                    hllm_q4_K_get_scale_min(j, blk->scales, &sc, &mn);
                    aux[16 * j + lane] = sc;
                    aux[128 + 32 * (j / 2) + 2 * lane + (j & 1)] = mn;
                }
                memcpy(aux + 256 + 2 * lane, &blk->d, 2);
                memcpy(aux + 288 + 2 * lane, &blk->dmin, 2);
                break;
            }
            case HLLM_TYPE_Q6_K: {
                const hllm_block_q6_K *blk = (const hllm_block_q6_K *)row + b;
                for (int k = 0; k < 256; k++) v[k] = (uint8_t)hllm_q6_K_value(blk, k);
                for (int z = 0; z < 32; z++) put_nib8(qs + (z / 2) * 4 * g->unit + 64 * (z % 2), lane, v + 8 * z);
                for (int h = 0; h < 16; h++)
                    for (int e = 0; e < 4; e++) {
                        uint8_t bits = 0;
                        for (int s = 0; s < 4; s++) bits |= (uint8_t)((v[16 * h + 4 * s + e] >> 4) << (2 * s));
                        qs[h * 4 * g->unit + 128 + 4 * lane + e] = bits;
                    }
                for (int j = 0; j < 16; j++) aux[32 * (j / 2) + 2 * lane + (j & 1)] = (uint8_t)blk->scales[j];
                memcpy(aux + 256 + 2 * lane, &blk->d, 2);
                break;
            }
            }
        }
    }
}

typedef struct {
    const hllm_cpu_mat *m;
    const hllm_pk_geom *g;
    int64_t nstripes;
} pack_job;

/* Stripes are independent: each thread zeroes and packs a contiguous share. */
static void pack_task(void *arg, int ith, int nth) {
    const pack_job *j = arg;
    const int64_t a = j->nstripes * ith / nth, b = j->nstripes * (ith + 1) / nth;
    const int64_t ngroups = (j->m->rows + HLLM_PK_ROWS - 1) / HLLM_PK_ROWS;
    for (int64_t s = a; s < b; s++) {
        memset((uint8_t *)j->m->packed + (size_t)s * j->g->stripe_bytes, 0, j->g->stripe_bytes);
        for (int64_t i = s * j->g->stripe; i < (s + 1) * j->g->stripe && i < ngroups; i++) pack_group(j->m, j->g, i);
    }
}

int hllm_cpu_mat_init(hllm_cpu_mat *m, int type, int64_t rows, int64_t cols, const void *data) {
    return hllm_cpu_mat_init_pool(m, type, rows, cols, data, NULL);
}

int hllm_cpu_mat_init_pool(hllm_cpu_mat *m, int type, int64_t rows, int64_t cols, const void *data, hllm_pool *pool) {
    memset(m, 0, sizeof *m);
    if (!hllm_type_info(type)->supported) return hllm_fail("CPU matmul: weight type %s is not supported", hllm_type_name(type));
    const size_t rb = hllm_row_bytes(type, cols);
    if (rows <= 0 || cols <= 0 || rb == 0)
        return hllm_fail("CPU matmul: bad shape %lld x %lld for %s", (long long)rows, (long long)cols,
                         hllm_type_name(type));
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->data = data;
    m->row_bytes = rb;
    /* Repack for the SIMD kernels (x86 only for now); the scalar path keeps using `data`. */
    hllm_pk_geom g;
    const int kind = hllm_pk_geometry(type, cols, &g);
    const hllm_isa isa = hllm_cpu_isa();
    if (kind != HLLM_PK_NONE && (isa == HLLM_ISA_AVX2 || isa == HLLM_ISA_AVX512)) {
        const int64_t ngroups = (rows + HLLM_PK_ROWS - 1) / HLLM_PK_ROWS;
        const int64_t nstripes = (ngroups + g.stripe - 1) / g.stripe;
        const size_t bytes = (size_t)nstripes * g.stripe_bytes;
        m->packed = hllm_huge_alloc(bytes, &m->packed_map);
        if (!m->packed) return hllm_fail("CPU matmul: out of memory repacking %zu bytes", bytes);
        pack_job job = {m, &g, nstripes};
        if (pool && nstripes > 1) hllm_pool_run(pool, pack_task, &job);
        else pack_task(&job, 0, 1);
        m->packed_kind = kind;
    }
    return 0;
}

void hllm_cpu_mat_free(hllm_cpu_mat *m) {
    hllm_huge_free(m->packed, m->packed_map);
    m->packed = NULL;
    m->packed_map = 0;
    m->packed_kind = HLLM_PK_NONE;
}

/* ---- activations ---- */

size_t hllm_cpu_act_row_bytes(const hllm_cpu_mat *m) {
    hllm_act_geom a;
    hllm_act_geometry(m->type, m->cols, &a);
    return a.row_bytes;
}

void hllm_cpu_quantize_act(const hllm_cpu_mat *m, const float *x, void *xq) {
    const int vt = hllm_vec_dot_type(m->type);
    hllm_act_geom a;
    hllm_act_geometry(m->type, m->cols, &a);
#ifdef HLLM_X86
    if (vt == HLLM_TYPE_Q8_K && hllm_cpu_isa() == HLLM_ISA_AVX512) hllm_quantize_q8_K_avx512(x, xq, m->cols / 256);
    else
#endif
        hllm_quantize_row(vt, x, xq, m->cols);
    uint8_t *ext = (uint8_t *)xq + a.ext;
    switch (m->type) {
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: {
        const int64_t nb = m->cols / 32;
        const hllm_block_q8_0 *blk = xq;
        float *d = (float *)ext;
        int32_t *corr = (int32_t *)(ext + 4 * nb);
        const int off = m->type == HLLM_TYPE_Q4_0 ? 8 : 128;
        for (int64_t b = 0; b < nb; b++) {
            int s = 0;
            for (int j = 0; j < 32; j++) s += blk[b].qs[j];
            d[b] = hllm_fp16_to_f32(blk[b].d);
            corr[b] = -off * s;
        }
        break;
    }
    case HLLM_TYPE_Q4_K: {
        const hllm_block_q8_K *blk = xq;
        int16_t *bs = (int16_t *)ext;
        for (int64_t b = 0; b < m->cols / 256; b++)
            for (int j = 0; j < 8; j++) bs[8 * b + j] = (int16_t)(blk[b].bsums[2 * j] + blk[b].bsums[2 * j + 1]);
        break;
    }
    case HLLM_TYPE_Q6_K: {
        const hllm_block_q8_K *blk = xq;
        int32_t *c = (int32_t *)ext;
        for (int64_t b = 0; b < m->cols / 256; b++)
            for (int j = 0; j < 16; j++) c[16 * b + j] = -32 * blk[b].bsums[j];
        break;
    }
    default: break;
    }
}

/* ---- matmul ---- */

int hllm_mm_token_chunk, hllm_mm_col_chunk;
int hllm_mm_prefetch = 4096;

void hllm_cpu_matmul_set_blocking(int token_chunk, int col_chunk) {
    hllm_mm_token_chunk = token_chunk > 0 ? token_chunk : 0;
    hllm_mm_col_chunk = col_chunk > 0 ? col_chunk : 0;
}

static void matmul_scalar(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                          int64_t ldy) {
    const size_t xs = hllm_cpu_act_row_bytes(m);
    for (int64_t r = r0; r < r1; r++) {
        const void *w = (const uint8_t *)m->data + (size_t)r * m->row_bytes;
        for (int t = 0; t < n_tok; t++)
            y[t * ldy + r] = hllm_vec_dot_ref(m->type, w, (const uint8_t *)xq + (size_t)t * xs, m->cols);
    }
}

void hllm_cpu_matmul_rows(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                          int64_t ldy) {
    if (r0 >= r1 || n_tok <= 0) return;
    switch (hllm_cpu_isa()) {
#ifdef HLLM_X86
    case HLLM_ISA_AVX512:
        if (hllm_matmul_avx512(m, r0, r1, xq, n_tok, y, ldy)) return;
        break;
    case HLLM_ISA_AVX2:
        if (hllm_matmul_avx2(m, r0, r1, xq, n_tok, y, ldy)) return;
        break;
#endif
#if defined(__aarch64__)
    case HLLM_ISA_NEON:
        if (hllm_matmul_neon(m, r0, r1, xq, n_tok, y, ldy)) return;
        break;
#endif
    default: break;
    }
    matmul_scalar(m, r0, r1, xq, n_tok, y, ldy);
}

int64_t hllm_cpu_gemv_kblocks(const hllm_cpu_mat *m) {
    (void)m; /* unused on a build with neither kernel */
    switch (hllm_cpu_isa()) {
#ifdef HLLM_X86
    case HLLM_ISA_AVX512: return hllm_gemv_avx512_kblocks(m);
#endif
#if defined(__aarch64__)
    case HLLM_ISA_NEON: return hllm_gemv_neon_kblocks(m);
#endif
    default: return 0;
    }
}

void hllm_cpu_gemv_partial(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y) {
    (void)m, (void)r0, (void)r1, (void)kb0, (void)kb1, (void)xq, (void)y;
    switch (hllm_cpu_isa()) {
#ifdef HLLM_X86
    case HLLM_ISA_AVX512:
        if (hllm_gemv_avx512(m, r0, r1, kb0, kb1, xq, y)) return;
        break;
#endif
#if defined(__aarch64__)
    case HLLM_ISA_NEON:
        if (hllm_gemv_neon(m, r0, r1, kb0, kb1, xq, y)) return;
        break;
#endif
    default: break;
    }
    hllm_fail("internal: a column-split product on a matrix without a split kernel");
}
