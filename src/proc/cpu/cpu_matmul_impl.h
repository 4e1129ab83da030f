/* Private to the CPU matmul kernels: the repacked weight layout and the activation row layout
 * that cpu_matmul.c builds and the per-ISA kernel files consume. */
#ifndef HLLM_CPU_MATMUL_IMPL_H
#define HLLM_CPU_MATMUL_IMPL_H
#include "core/quant.h"
#include "proc/cpu/cpu_matmul.h"
#include <string.h>

/* Quantized weights are repacked in groups of 16 rows ("lanes = rows"): within a group, each
 * 64-byte vector holds one 32-bit lane per row, and each lane holds 4 consecutive columns
 * (8 for 4-bit data: low nibbles are columns c..c+3, high nibbles c+4..c+7). A 16-lane
 * integer dot (vpdpbusd, or maddubs+madd on AVX2 halves) against a broadcast 4-byte slice of
 * the activation then yields 16 row partial sums with no horizontal reductions.
 *
 * Groups of quantized types are stored 4 to a "stripe" (64 rows), interleaved by block and
 * within a block by "unit" (the qs a kernel reads for one group before moving to the next):
 *   block = [aux of group 0..3][unit 0 of group 0..3][unit 1 of group 0..3]...,
 *   stripe = block 0, block 1, ..., padded to 64 B,
 * so a 4-group decode tile reads one sequential stream (aux first: the K-quant kernels read
 * the scales before the quants they scale): one core streamed ~10% more from
 * DRAM that way than from 8 (4 qs + 4 aux) streams restarting at every tile, and up to 25%
 * more on 1536-column rows. Rows past m->rows (up to a whole stripe) are zero. Q8_0 keeps
 * stripes of one group, [qs of block 0..nb-1][aux of block 0..nb-1]: its 4-group tiles read
 * 8 streams, which streamed ~15% more than one here (twice the bytes per instruction of Q4_0:
 * more in flight per stream). Per block:
 *   Q4_0 (32 cols):  qs 4 x 64 B nibbles;        aux: f16 d[16]
 *   Q8_0 (32 cols):  qs 8 x 64 B int8;           aux: f16 d[16]
 *   Q4_K (256 cols): qs 32 x 64 B nibbles (0..15), units of 4 vectors (32 columns);
 *                    aux: u8 sc[8][16], u8 min[4][16][2] (mins pairwise, for madd),
 *                    f16 d[16], f16 dmin[16]
 *   Q6_K (256 cols): 16 units of 16 columns: ql 2 x 64 B low nibbles, qh 64 B (lane byte e,
 *                    bits 2s..2s+1 = top bits of column 16j+4s+e); aux: i8 sc[8][16][2]
 *                    (sub-block scales pairwise, for madd), f16 d[16]
 * Values are stored unsigned (Q4: 0..15, Q6: 0..63; Q8_0 as signed int8).
 * Float types (F32/F16/BF16) use stripes of one group and one column per "block": the 16
 * rows' values of column k are contiguous (64 or 32 bytes), so a vector load is 16 rows of one
 * column and the kernel is an outer product with a broadcast activation value. */
#define HLLM_PK_ROWS 16

enum {
    HLLM_PK_NONE = 0, HLLM_PK_Q4_0 = 1, HLLM_PK_Q8_0 = 2, HLLM_PK_Q4_K = 3, HLLM_PK_Q6_K = 4,
    HLLM_PK_F32 = 5, HLLM_PK_F16 = 6, HLLM_PK_BF16 = 7
};

static inline size_t hllm_pad64(size_t n) { return (n + 63) & ~(size_t)63; }

typedef struct {
    int64_t nb;          /* blocks per row */
    int block;           /* columns per block */
    size_t qs_bytes;     /* qs bytes per block per group */
    size_t aux_bytes;    /* aux bytes per block per group */
    size_t unit;         /* qs bytes of a group before the next group's (the unit stride is stripe * unit) */
    int stripe;          /* groups per stripe: 4, or 1 (Q8_0, float) */
    size_t block_stride; /* stride between one group's blocks' qs (stripe 4: stripe * (qs_bytes + aux_bytes)) */
    size_t aux_stride;   /* stride between one group's blocks' aux */
    size_t group_qs;     /* from one group's qs to the next group's (within a stripe of 4: unit) */
    size_t stripe_bytes; /* stride between stripes */
} hllm_pk_geom;

static inline int hllm_pk_geometry(int type, int64_t cols, hllm_pk_geom *g) {
    memset(g, 0, sizeof *g);
    g->stripe = 4;
    switch (type) {
    case HLLM_TYPE_Q4_0: g->block = 32, g->qs_bytes = 256, g->aux_bytes = 32; break;
    case HLLM_TYPE_Q8_0: g->block = 32, g->qs_bytes = 512, g->aux_bytes = 32, g->stripe = 1; break;
    case HLLM_TYPE_Q4_K: g->block = 256, g->qs_bytes = 2048, g->aux_bytes = 320; break;
    case HLLM_TYPE_Q6_K: g->block = 256, g->qs_bytes = 3072, g->aux_bytes = 288; break;
    case HLLM_TYPE_F32: g->block = 1, g->qs_bytes = 64, g->stripe = 1; break;
    case HLLM_TYPE_F16:
    case HLLM_TYPE_BF16: g->block = 1, g->qs_bytes = 32, g->stripe = 1; break;
    default: return HLLM_PK_NONE;
    }
    g->nb = cols / g->block;
    g->unit = type == HLLM_TYPE_Q4_K ? 256 : type == HLLM_TYPE_Q6_K ? 192 : g->qs_bytes;
    if (g->stripe == 4) {
        g->block_stride = g->aux_stride = 4 * (g->qs_bytes + g->aux_bytes);
        g->stripe_bytes = hllm_pad64((size_t)g->nb * g->block_stride);
        g->group_qs = g->unit;
    } else {
        g->block_stride = g->qs_bytes, g->aux_stride = g->aux_bytes;
        g->stripe_bytes = hllm_pad64((size_t)g->nb * (g->qs_bytes + g->aux_bytes));
        g->group_qs = g->stripe_bytes;
    }
    switch (type) {
    case HLLM_TYPE_Q4_0: return HLLM_PK_Q4_0;
    case HLLM_TYPE_Q8_0: return HLLM_PK_Q8_0;
    case HLLM_TYPE_Q4_K: return HLLM_PK_Q4_K;
    case HLLM_TYPE_Q6_K: return HLLM_PK_Q6_K;
    case HLLM_TYPE_F32: return HLLM_PK_F32;
    case HLLM_TYPE_F16: return HLLM_PK_F16;
    default: return HLLM_PK_BF16;
    }
}

/* Block 0's (unit 0's) qs / aux of group grp; block b's are b * block_stride (aux_stride) further. */
static inline const uint8_t *hllm_pk_aux(const void *packed, const hllm_pk_geom *g, int64_t grp) {
    const uint8_t *s = (const uint8_t *)packed + (size_t)(grp / g->stripe) * g->stripe_bytes;
    return g->stripe == 1 ? s + (size_t)g->nb * g->qs_bytes : s + (size_t)(grp % g->stripe) * g->aux_bytes;
}
static inline const uint8_t *hllm_pk_qs(const void *packed, const hllm_pk_geom *g, int64_t grp) {
    const uint8_t *s = (const uint8_t *)packed + (size_t)(grp / g->stripe) * g->stripe_bytes;
    return g->stripe == 1 ? s : s + 4 * g->aux_bytes + (size_t)(grp % g->stripe) * g->unit;
}
/* Groups a tile starting at group grp may take (at most `want`, within [grp, g1) and, for
 * stripes of 4, one stripe: a tile steps from group to group by group_qs). */
static inline int hllm_pk_tile_groups(const hllm_pk_geom *g, int64_t grp, int64_t g1, int want) {
    int64_t n = g->stripe == 1 ? want : g->stripe - grp % g->stripe;
    if (n > g1 - grp) n = g1 - grp;
    return n < want ? (int)n : want;
}

/* An activation row is the standard row of hllm_vec_dot_type blocks (what the scalar path
 * reads), then at `ext` (64-aligned) extras precomputed once per token for the kernels:
 *   Q8_0 acts (Q4_0, Q8_0 weights): f32 d[nb], then i32 corr[nb] = -off * sum(block qs),
 *       off = 8 for Q4_0 (nibbles stored unsigned), 128 for Q8_0 (AVX-512 flips the sign bit)
 *   Q8_K acts for Q4_K: i16 bsum32[nb][8] (sums of 32-column sub-blocks, for the min term)
 *   Q8_K acts for Q6_K: i32 corr16[nb][16] = -32 * bsums (Q6 values stored as q + 32)
 * Float activations have no extras. Rows are padded to 64 bytes. */
typedef struct {
    size_t ext;       /* offset of the extras */
    size_t row_bytes; /* stride between token rows */
} hllm_act_geom;

static inline void hllm_act_geometry(int type, int64_t cols, hllm_act_geom *a) {
    const int vt = hllm_vec_dot_type(type);
    const size_t std = hllm_row_bytes(vt, cols);
    a->ext = hllm_pad64(std);
    switch (type) {
    case HLLM_TYPE_Q4_0:
    case HLLM_TYPE_Q8_0: a->row_bytes = hllm_pad64(a->ext + (size_t)(cols / 32) * 8); break;
    case HLLM_TYPE_Q4_K: a->row_bytes = hllm_pad64(a->ext + (size_t)(cols / 256) * 16); break;
    case HLLM_TYPE_Q6_K: a->row_bytes = hllm_pad64(a->ext + (size_t)(cols / 256) * 64); break;
    default: a->row_bytes = hllm_pad64(std); break;
    }
}

/* Per-ISA kernels; each returns 0 if it cannot handle this matrix (the caller then runs the
 * scalar path). */
int hllm_matmul_avx2(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                     int64_t ldy);
int hllm_matmul_avx512(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                       int64_t ldy);
/* One-token kernels for Q4_0, Q4_K, Q8_0 (cpu_matmul_gemv_avx512.c); 0 = not handled. */
/* One-token kernels: rows [r0, r1), blocks [kb0, kb1) of the row's kernel blocks (kb1 < 0: all);
 * 0 if the matrix has no such kernel. */
int hllm_gemv_avx512(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y);
/* The kernel blocks of a row hllm_gemv_avx512 can split by, or 0 if it has no kernel for m. */
int64_t hllm_gemv_avx512_kblocks(const hllm_cpu_mat *m);
/* Q8_K activation rows (nb blocks), the same bytes as hllm_quantize_row (cpu_quant_avx512.c). */
void hllm_quantize_q8_K_avx512(const float *x, void *dst, int64_t nb);
int hllm_matmul_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, const void *xq, int n_tok, float *y,
                     int64_t ldy);
/* The NEON counterparts of hllm_gemv_avx512 / _kblocks on the file's layout (every type of
 * hllm_matmul_neon, which runs over a range of blocks for them). */
int hllm_gemv_neon(const hllm_cpu_mat *m, int64_t r0, int64_t r1, int64_t kb0, int64_t kb1, const void *xq, float *y);
int64_t hllm_gemv_neon_kblocks(const hllm_cpu_mat *m);

/* Software prefetch distance of the decode kernels, bytes ahead in the stripe stream (the
 * float tiles, reading 4 group streams, use a quarter in each); 0 = off. HLLM_PREFETCH=bytes overrides it (a tuning knob for the device host). */
extern int hllm_mm_prefetch;

/* Cache-blocking overrides (hllm_cpu_matmul_set_blocking); 0 = default. */
extern int hllm_mm_token_chunk, hllm_mm_col_chunk;

/* Token-chunk size that keeps a chunk of activation rows within ~L2 budget, a multiple of t. */
static inline int hllm_token_chunk(size_t act_row_bytes, int t) {
    size_t c = (size_t)(256 * 1024) / (act_row_bytes ? act_row_bytes : 1);
    if (hllm_mm_token_chunk > 0) c = (size_t)hllm_mm_token_chunk;
    c = c / (size_t)t * (size_t)t;
    if (c < (size_t)t) c = (size_t)t;
    if (c > 4096) c = 4096;
    return (int)c;
}

/* Column chunk of the float kernels in prefill: a 4-group tile's chunk of weights stays in L2
 * while the token tiles sweep over it (512 measured better than an L1-sized 128 for f32). */
static inline int64_t hllm_col_chunk(void) { return hllm_mm_col_chunk > 0 ? hllm_mm_col_chunk : 512; }

#endif
