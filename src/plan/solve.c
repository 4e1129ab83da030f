#include "plan/solve.h"
#include "plan/solve_model.h"
#include "core/error.h"
#include "core/types.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

double hllm_parse_mem(const char *s, double total) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    if (*end == '%') return end[1] ? -1 : total * v / 100.0;
    double mul = 1;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mul = 1024.0; end++; break;
    case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    default: return -1;
    }
    if (*end == 'i' && end[1] == 'B') end += 2;
    else if (*end == 'B') end++;
    return *end ? -1 : v * mul;
}

/* ---- candidates ---- */

/* GPU parts for rows [a, rows): VRAM rows first (up to dev_rows of them), then host rows. */
static int gpu_parts(hllm_part *parts, int gpu, int64_t a, int64_t rows, int64_t dev_rows) {
    int n = 0;
    int64_t d_end = a + dev_rows < rows ? a + dev_rows : rows;
    if (d_end > a) parts[n++] = (hllm_part){.proc = gpu, .r0 = a, .r1 = d_end, .mem = HLLM_MEM_DEVICE};
    if (rows > d_end) parts[n++] = (hllm_part){.proc = gpu, .r0 = d_end, .r1 = rows, .mem = HLLM_MEM_HOST};
    return n;
}

static int64_t align_down(int64_t v, int64_t a) { return v / a * a; }

static double total_gpu_bytes(const hllm_graph *g, bool with_embed) {
    double t = 0;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (s->kind == HLLM_OP_MATMUL || (with_embed && s->kind == HLLM_OP_EMBED)) t += solve_step_bytes(s, 0, s->w->rows);
    }
    return t;
}

/* Everything on the GPU; matmul rows beyond the budget's fraction read from host memory. */
static hllm_plan *cand_gpu(const hllm_graph *g, const hllm_solve_opts *o, int n_procs) {
    hllm_plan *p = hllm_plan_single(g, o->gpu, n_procs, "GPU only");
    if (!p) return NULL;
    const double total = total_gpu_bytes(g, false);
    double f = o->gpu_mem < 0 || total <= 0 ? 1.0 : o->gpu_mem / total;
    if (f >= 1) return p;
    /* the embedding then stays on the CPU (one row per token), when there is one */
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (s->kind == HLLM_OP_EMBED && o->cpu >= 0) p->steps[i].parts[0].proc = o->cpu;
        if (s->kind != HLLM_OP_MATMUL) continue;
        int64_t dev = align_down((int64_t)(f * (double)s->rows), o->align);
        p->steps[i].n_parts = gpu_parts(p->steps[i].parts, o->gpu, 0, s->rows, dev);
    }
    snprintf(p->why, sizeof p->why, "GPU only, %.0f%% of matmul rows in VRAM, the rest read from host memory", 100 * f);
    return p;
}

/* Bytes of layer l's matrices. */
static double layer_bytes(const hllm_graph *g, int l) {
    double b = 0;
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].layer == l && g->steps[i].kind == HLLM_OP_MATMUL) b += solve_step_bytes(&g->steps[i], 0, g->steps[i].rows);
    return b;
}

/* Whole layers in VRAM from the first on; the rest (and the head, if it does not fit) on the CPU. */
static hllm_plan *cand_layers(const hllm_graph *g, const hllm_solve_opts *o, int n_procs, int n_layer) {
    int *lp = calloc((size_t)n_layer, sizeof *lp);
    if (!lp) return NULL;
    double used = 0, budget = o->gpu_mem < 0 ? INFINITY : o->gpu_mem;
    int n_gpu = 0;
    for (int l = 0; l < n_layer; l++) {
        const double b = layer_bytes(g, l);
        lp[l] = used + b <= budget ? o->gpu : o->cpu;
        if (lp[l] == o->gpu) used += b, n_gpu++;
    }
    double head = 0;
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].layer < 0 && g->steps[i].kind == HLLM_OP_MATMUL) head += solve_step_bytes(&g->steps[i], 0, g->steps[i].rows);
    int head_proc = used + head <= budget ? o->gpu : o->cpu;
    char why[128];
    snprintf(why, sizeof why, "layer-level: %d of %d layers on the GPU, head on %s", n_gpu, n_layer, head_proc == o->gpu ? "GPU" : "CPU");
    hllm_plan *p = hllm_plan_layers(g, lp, o->cpu, head_proc, n_procs, why);
    free(lp);
    /* the KV caches live in VRAM, also for the CPU's layers: attention is a small part of a
     * decode step, and it lets prompts run wholly on the GPU (see prefill_variant) */
    if (p && n_gpu < n_layer)
        for (int i = 0; i < g->n_steps; i++) {
            hllm_op_kind k = g->steps[i].kind;
            if (k == HLLM_OP_ROPE || k == HLLM_OP_KV_STORE || k == HLLM_OP_ATTENTION) p->steps[i].parts[0].proc = o->gpu;
        }
    return p;
}

static bool is_attn_matmul(const hllm_step *s) {
    return s->kind == HLLM_OP_MATMUL && s->layer >= 0 && strncmp(s->label, "attn_", 5) == 0;
}

/* Whole layers from the first on that fit in `budget` bytes; -1 when none or all do (the uniform
 * fill covers those). */
static int vram_layer_count(const hllm_graph *g, int n_layer, double budget) {
    double used = 0;
    int n = 0;
    for (; n < n_layer && used + layer_bytes(g, n) <= budget; n++) used += layer_bytes(g, n);
    return n == 0 || n == n_layer ? -1 : n;
}

/* Bytes of layer l's attention projections; l < 0: of every layer's. */
static double attn_bytes(const hllm_graph *g, int l) {
    double b = 0;
    for (int i = 0; i < g->n_steps; i++)
        if ((l < 0 || g->steps[i].layer == l) && is_attn_matmul(&g->steps[i]))
            b += solve_step_bytes(&g->steps[i], 0, g->steps[i].rows);
    return b;
}

/* VRAM_ATTN_LAYERS: whole layers from the first on, as many as fit beside the attention
 * projections of all the others; -1 when those projections do not fit, or every layer does.
 * *f_rest: the fraction of the remaining matrices (the other layers' FFNs, the head) that the
 * budget left over holds. */
static int vram_attn_layer_count(const hllm_graph *g, int n_layer, double budget, double total, double *f_rest) {
    double used = attn_bytes(g, -1);
    if (used <= 0 || used > budget) return -1;
    int n = 0;
    for (; n < n_layer; n++) {
        const double ffn = layer_bytes(g, n) - attn_bytes(g, n);
        if (used + ffn > budget) break;
        used += ffn;
    }
    *f_rest = total > used ? (budget - used) / (total - used) : 0;
    return n == n_layer ? -1 : n;
}

/* Bytes of the attention projections when they fit in `budget` with room for more, else -1. */
static double vram_attn_bytes(const hllm_graph *g, double budget, double total) {
    const double attn = attn_bytes(g, -1);
    return attn <= 0 || attn > budget || total <= attn ? -1 : attn;
}

/* How a tensor-level plan spends the VRAM budget. */
typedef enum {
    VRAM_UNIFORM, /* the same fraction of every matrix's rows */
    VRAM_ATTN,    /* the attention projections wholly, the rest spread over the other matrices */
    VRAM_LAYERS,  /* whole layers from the first on (as layer-level), the other layers' rows cut */
    VRAM_ATTN_LAYERS, /* the attention projections of every layer, then whole layers from the
                       * first on; the other layers' FFN matrices and the head on the host but
                       * for the budget's last bytes, spread over them (H100 host, 75% cap:
                       * +9% q4_0, +12% q8_0 decode against whole layers; equal at 25-50%) */
} vram_fill;

/* With HLLM_SPLIT_SWIGLU=1 (an experiment, off by default): where the CPU has rows of the matmul
 * after a SwiGLU (ffn_down), the SwiGLU runs on the CPU as well as on the GPU when that is
 * predicted faster: each processor then gets the other's gate/up rows side by side (one
 * handoff) instead of the GPU computing it and the CPU waiting for its copy (two in turn). The
 * model counts ~1% a token; alternated runs on the device measured no difference beyond their
 * noise (q4_0 25%: 33.3 / 33.9 off, 34.7 / 31.6 on; bench/hetero/notes.md). */
static void replicate_swiglu(const model_ctx *c, const hllm_graph *g, const hllm_solve_opts *o, hllm_plan *p) {
    const char *env = getenv("HLLM_SPLIT_SWIGLU");
    if (!env || env[0] != '1' || o->cpu < 0 || o->gpu < 0) return;
    for (int i = 0; i + 1 < g->n_steps; i++) {
        if (g->steps[i].kind != HLLM_OP_SWIGLU || p->steps[i].n_parts != 1) continue;
        const hllm_step_plan *down = &p->steps[i + 1];
        bool cpu_reads = false;
        for (int k = 0; k < down->n_parts; k++) cpu_reads |= down->parts[k].proc == o->cpu;
        if (!cpu_reads || g->steps[i + 1].src != g->steps[i].dst) continue;
        const hllm_step_plan keep = p->steps[i];
        const double t0 = solve_plan_time(c, p, g, 1);
        const int procs[2] = {keep.parts[0].proc, keep.parts[0].proc == o->cpu ? o->gpu : o->cpu};
        if (hllm_plan_replicate(p, g, i, 2, procs) || solve_plan_time(c, p, g, 1) >= t0) p->steps[i] = keep;
    }
}

/* Matmul step i row-cut between CPU (rows [0, cut), first) and GPU (the rest: up to dev_max
 * rows in VRAM, then host rows), cut so both finish together (bisection on predicted times). */
static hllm_step_plan balanced_cut(const model_ctx *c, const hllm_graph *g, const hllm_solve_opts *o, int i, int64_t dev_max) {
    const hllm_step *s = &g->steps[i];
    const int64_t rows = s->rows;
    /* CPU takes [0, cut); GPU [cut, rows): VRAM rows then host rows */
    int64_t lo = 0, hi = rows;
    for (int it = 0; it < 40 && hi - lo > o->align; it++) {
        int64_t cut = align_down((lo + hi) / 2, o->align);
        if (cut <= lo) cut = lo + o->align;
        int64_t gdev = rows - cut < dev_max ? rows - cut : dev_max;
        bool host = rows - cut > gdev;
        double tc = solve_mm_time(c, s, o->cpu, HLLM_MEM_DEVICE, 0, cut, 1, host);
        double tg = solve_mm_time(c, s, o->gpu, HLLM_MEM_DEVICE, 0, gdev, 1, false) +
                    (host ? solve_mm_time(c, s, o->gpu, HLLM_MEM_HOST, 0, rows - cut - gdev, 1, true) : 0);
        if (tc < tg) lo = cut;
        else hi = cut;
    }
    /* the balanced cut, or no CPU part at all when that is faster (no sync) */
    int64_t cut = align_down(hi, o->align);
    if (cut >= rows) cut = rows - o->align > 0 ? rows - o->align : rows;
    hllm_step_plan best = {0};
    double best_t = INFINITY;
    int64_t cands[3] = {cut, lo, 0};
    for (int k = 0; k < 3; k++) {
        hllm_step_plan sp = {0};
        int64_t cu = cands[k];
        if (cu > 0) sp.parts[sp.n_parts++] = (hllm_part){.proc = o->cpu, .r0 = 0, .r1 = cu};
        int64_t gdev = rows - cu < dev_max ? rows - cu : dev_max;
        if (rows > cu) sp.n_parts += gpu_parts(sp.parts + sp.n_parts, o->gpu, cu, rows, gdev);
        unsigned holder[HLLM_ACT_COUNT];
        for (int a = 0; a < HLLM_ACT_COUNT; a++) holder[a] = 1u << o->gpu;
        double t = solve_step_time(c, g, NULL, i, &sp, 1, holder);
        if (sp.n_parts > 1 && sp.parts[0].proc == o->cpu) t += c->sync_s; /* gathering the output */
        if (t < best_t) best_t = t, best = sp;
    }
    return best;
}

/* Row-cut every matmul: GPU share gs of the rows (VRAM rows first, up to the step's VRAM
 * fraction), CPU the rest, gs chosen per step so both finish together (bisection on predicted
 * step times); non-matmul steps run on the GPU.
 * VRAM_ATTN: every matrix with host rows costs a handoff between the processors in decode; the
 * attention projections are a fifth of a layer's bytes but four of its seven matrices, so this
 * leaves two cut steps a layer instead of seven. NULL when they do not fit.
 * VRAM_LAYERS: the layers that layer-level would put on the CPU are cut between the CPU and the
 * GPU reading host memory (two processors streaming host memory at once), the others run from
 * VRAM. */
static hllm_plan *cand_tensor(const model_ctx *c, const hllm_graph *g, const hllm_solve_opts *o, int n_procs,
                              int n_layer, vram_fill fill) {
    const bool attn_first = fill == VRAM_ATTN;
    const double total = total_gpu_bytes(g, false);
    double f = o->gpu_mem < 0 || total <= 0 ? 1.0 : o->gpu_mem / total, f_attn = f;
    if (f > 1) f = f_attn = 1;
    int n_vram_layers = -1; /* VRAM_LAYERS, VRAM_ATTN_LAYERS: layers [0, n) wholly in VRAM */
    if (fill == VRAM_LAYERS && (f >= 1 || (n_vram_layers = vram_layer_count(g, n_layer, o->gpu_mem)) < 0)) return NULL;
    double f_rest = 0; /* VRAM_ATTN_LAYERS: the fraction of the other matrices in VRAM */
    if (fill == VRAM_ATTN_LAYERS &&
        (f >= 1 || (n_vram_layers = vram_attn_layer_count(g, n_layer, o->gpu_mem, total, &f_rest)) < 0))
        return NULL;
    if (attn_first) {
        const double attn = f >= 1 ? -1 : vram_attn_bytes(g, o->gpu_mem, total);
        if (attn < 0) return NULL;
        f_attn = 1;
        f = (o->gpu_mem - attn) / (total - attn);
    }
    hllm_plan *p = hllm_plan_single(g, o->gpu, n_procs, "tensor-level");
    if (!p) return NULL;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (s->kind == HLLM_OP_EMBED) p->steps[i].parts[0].proc = o->cpu;
        if (s->kind != HLLM_OP_MATMUL) continue;
        double fs = is_attn_matmul(s) ? f_attn : f;
        if (n_vram_layers >= 0) fs = s->layer >= 0 && s->layer < n_vram_layers ? 1 : fill == VRAM_ATTN_LAYERS ? f_rest : 0;
        if (fill == VRAM_ATTN_LAYERS && is_attn_matmul(s)) fs = 1;
        const int64_t rows = s->rows, dev_max = fs >= 1 ? rows : align_down((int64_t)(fs * (double)rows), o->align);
        p->steps[i] = balanced_cut(c, g, o, i, dev_max);
    }
    replicate_swiglu(c, g, o, p);
    if (fill == VRAM_ATTN_LAYERS)
        snprintf(p->why, sizeof p->why, "tensor-level row-cut of the host FFNs: attention projections and %d whole layers in VRAM",
                 n_vram_layers);
    else if (n_vram_layers >= 0)
        snprintf(p->why, sizeof p->why, "tensor-level row-cut of the host layers: layers 0-%d in VRAM", n_vram_layers - 1);
    else if (attn_first)
        snprintf(p->why, sizeof p->why, "tensor-level row-cut, attention projections in VRAM, %.0f%% of the other rows", 100 * f);
    else
        snprintf(p->why, sizeof p->why, "tensor-level row-cut, %.0f%% of matmul rows may sit in VRAM", 100 * f);
    return p;
}

/* ---- tensor-parallel by heads: each processor runs its share of every step of a layer ---- */

/* A llama layer's steps, in graph order. */
enum { L_NORM, L_Q, L_K, L_V, L_ROPE, L_KV, L_ATT, L_O, L_RES1, L_FNORM, L_GATE, L_UP, L_GLU, L_DOWN, L_RES2, L_N };
static const char *const k_layer_labels[L_N] = {"attn_norm", "attn_q", "attn_k", "attn_v", "rope", "kv_store", "attention",
                                                "attn_output", "attn_residual", "ffn_norm", "ffn_gate", "ffn_up", "swiglu",
                                                "ffn_down", "ffn_residual"};

/* Layer l's steps by label into idx[L_N]; false when one is missing, a norm is per head, or a
 * column-cut matmul is not followed by its residual. */
static bool layer_steps(const hllm_graph *g, int l, int idx[L_N]) {
    for (int k = 0; k < L_N; k++) idx[k] = -1;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (s->layer != l) continue;
        if (s->per_head) return false;
        for (int k = 0; k < L_N; k++)
            if (!strcmp(s->label, k_layer_labels[k])) idx[k] = i;
    }
    for (int k = 0; k < L_N; k++)
        if (idx[k] < 0) return false;
    return idx[L_RES1] == idx[L_O] + 1 && idx[L_RES2] == idx[L_DOWN] + 1;
}

static int64_t gcd64(int64_t a, int64_t b) { return b ? gcd64(b, a % b) : a; }
static int64_t lcm64(int64_t a, int64_t b) { return a / gcd64(a, b) * b; }
static int64_t block_of(const hllm_step *s) {
    const int64_t b = hllm_type_info(s->w->type)->block_size;
    return b > 1 ? b : 1;
}

typedef struct {
    const model_ctx *c;
    const hllm_graph *g;
    const hllm_solve_opts *o;
    double f_attn, f_ffn; /* fraction of each attention / other matrix's bytes that may sit in VRAM */
} heads_ctx;

/* Matmul step i cut (rows or columns) at `share`: the GPU takes [0, share), its VRAM part first
 * (at most the fraction f), then host memory; the CPU the rest. */
static int heads_matmul(const heads_ctx *h, hllm_plan *p, int i, int cut, int64_t share) {
    const hllm_step *s = &h->g->steps[i];
    const int64_t units = cut == HLLM_CUT_COLS ? s->w->cols : s->rows;
    const int64_t al = cut == HLLM_CUT_COLS ? lcm64(block_of(s), h->o->align) : h->o->align;
    const double f = is_attn_matmul(s) ? h->f_attn : h->f_ffn;
    const int64_t dev = f >= 1 ? units : align_down((int64_t)(f * (double)units), al);
    const int procs[3] = {h->o->gpu, h->o->gpu, h->o->cpu}, mems[3] = {HLLM_MEM_DEVICE, HLLM_MEM_HOST, HLLM_MEM_DEVICE};
    const int64_t cuts[3] = {dev < share ? dev : share, share, units};
    if (cut == HLLM_CUT_COLS) return hllm_plan_cut_cols(p, h->g, i, 3, procs, cuts, mems);
    return hllm_plan_cut_rows(p, h->g, i, 3, procs, cuts, mems);
}

/* The attention block of a layer with the GPU on query heads [0, hg), the CPU on the rest. */
static int heads_attn(const heads_ctx *h, hllm_plan *p, const int idx[L_N], int64_t hg) {
    const hllm_graph *g = h->g;
    const int64_t hd = g->head_dim, grp = g->n_head / g->n_head_kv;
    const int procs[2] = {h->o->gpu, h->o->cpu};
    const int64_t cuts[2] = {hg, g->n_head};
    int rc = heads_matmul(h, p, idx[L_Q], HLLM_CUT_ROWS, hg * hd) | heads_matmul(h, p, idx[L_K], HLLM_CUT_ROWS, hg / grp * hd) |
             heads_matmul(h, p, idx[L_V], HLLM_CUT_ROWS, hg / grp * hd) | heads_matmul(h, p, idx[L_O], HLLM_CUT_COLS, hg * hd);
    for (int k = L_ROPE; k <= L_ATT; k++) rc |= hllm_plan_slice(p, g, idx[k], 2, procs, cuts);
    return rc ? -1 : 0;
}

/* The FFN of a layer with the GPU on inner columns [0, fg), the CPU on the rest. */
static int heads_ffn(const heads_ctx *h, hllm_plan *p, const int idx[L_N], int64_t fg) {
    const int procs[2] = {h->o->gpu, h->o->cpu};
    const int64_t cuts[2] = {fg, h->g->steps[idx[L_GATE]].rows};
    int rc = heads_matmul(h, p, idx[L_GATE], HLLM_CUT_ROWS, fg) | heads_matmul(h, p, idx[L_UP], HLLM_CUT_ROWS, fg) |
             heads_matmul(h, p, idx[L_DOWN], HLLM_CUT_COLS, fg) | hllm_plan_slice(p, h->g, idx[L_GLU], 2, procs, cuts);
    return rc ? -1 : 0;
}

/* Predicted decode seconds of steps [a, b] of p, every activation held by both processors before. */
static double block_secs(const heads_ctx *h, const hllm_plan *p, int a, int b) {
    unsigned holder[HLLM_ACT_COUNT];
    for (int k = 0; k < HLLM_ACT_COUNT; k++) holder[k] = (1u << h->o->cpu) | (1u << h->o->gpu);
    double t = 0;
    for (int i = a; i <= b; i++) t += solve_step_time(h->c, h->g, p, i, &p->steps[i], 1, holder);
    return t;
}

/* The GPU's query heads in layer idx: whole GQA groups (whose columns of attn_output start on a
 * block), the count with the fastest predicted attention block. -1 on failure. */
static int64_t choose_heads(const heads_ctx *h, hllm_plan *p, const int idx[L_N]) {
    const hllm_graph *g = h->g;
    const int64_t grp = g->n_head / g->n_head_kv, blk = block_of(&g->steps[idx[L_O]]);
    int64_t best = -1;
    double best_t = INFINITY;
    for (int64_t hg = 0; hg <= g->n_head; hg += grp) {
        if (hg * g->head_dim % blk) continue;
        if (heads_attn(h, p, idx, hg)) return -1;
        const double t = block_secs(h, p, idx[L_Q], idx[L_RES1]);
        if (t < best_t) best_t = t, best = hg;
    }
    return best < 0 || heads_attn(h, p, idx, best) ? -1 : best;
}

/* Predicted decode seconds of the FFN matmuls' parts on the CPU (*tc) and on the GPU (*tg). */
static void ffn_procs(const heads_ctx *h, const hllm_plan *p, const int idx[L_N], double *tc, double *tg) {
    const int steps[3] = {idx[L_GATE], idx[L_UP], idx[L_DOWN]};
    *tc = *tg = 0;
    for (int k = 0; k < 3; k++) {
        double per[HLLM_MAX_PROCS];
        solve_matmul_per_proc(h->c, &h->g->steps[steps[k]], &p->steps[steps[k]], 1, per);
        *tc += per[h->o->cpu];
        *tg += per[h->o->gpu];
    }
}

/* The GPU's FFN columns in layer idx: a multiple of 256 (K-quant blocks), of ffn_down's block
 * and of the row granularity, bisected so CPU and GPU finish the FFN matmuls together, then the
 * fastest predicted FFN block among the neighbours and the ends. -1 on failure. */
static int64_t choose_ffn(const heads_ctx *h, hllm_plan *p, const int idx[L_N]) {
    const int64_t n_ff = h->g->steps[idx[L_GATE]].rows;
    const int64_t al = lcm64(lcm64(256, h->o->align), block_of(&h->g->steps[idx[L_DOWN]]));
    int64_t lo = 0, hi = n_ff;
    while (hi - lo > al) {
        int64_t mid = align_down((lo + hi) / 2, al);
        if (mid <= lo) mid = lo + al;
        if (mid >= hi) break;
        double tc, tg;
        if (heads_ffn(h, p, idx, mid)) return -1;
        ffn_procs(h, p, idx, &tc, &tg);
        if (tc > tg) lo = mid;
        else hi = mid;
    }
    const int64_t cands[6] = {lo, hi, lo - al, hi + al, 0, n_ff};
    int64_t best = -1;
    double best_t = INFINITY;
    for (int k = 0; k < 6; k++) {
        const int64_t fg = cands[k];
        if (fg < 0 || fg > n_ff || (fg % al && fg != n_ff)) continue;
        if (heads_ffn(h, p, idx, fg)) return -1;
        const double t = block_secs(h, p, idx[L_GATE], idx[L_RES2]);
        if (t < best_t) best_t = t, best = fg;
    }
    return best < 0 || heads_ffn(h, p, idx, best) ? -1 : best;
}

/* Can the graph's attention be split by heads: GQA groups of whole heads, no per-head norms
 * (their q/k norms), every layer in the llama shape. */
static bool heads_splittable(const hllm_graph *g, int n_layer) {
    if (g->n_head <= 0 || g->n_head_kv <= 0 || g->head_dim <= 0 || g->n_head % g->n_head_kv) return false;
    int idx[L_N];
    for (int l = 0; l < n_layer; l++)
        if (!layer_steps(g, l, idx)) return false;
    return n_layer > 0;
}

/* HLLM_VRAM_FILL=uniform|attn|layers|attn-layers keeps only the tensor-level candidates that
 * fill VRAM so (to compare them on a machine). */
static bool fill_wanted(vram_fill f) {
    static const char *const names[] = {"uniform", "attn", "layers", "attn-layers"};
    const char *env = getenv("HLLM_VRAM_FILL");
    return !env || !env[0] || strcmp(env, names[f]) == 0;
}

/* HLLM_SPLIT_HEADS=0 leaves the heads-split candidate out, =2 the other tensor-level ones (to
 * compare them on a machine). */
static int heads_mode(void) {
    const char *env = getenv("HLLM_SPLIT_HEADS");
    return env && (env[0] == '0' || env[0] == '2') ? env[0] - '0' : 1;
}

/* Megatron-style tensor parallelism between the GPU and the CPU: per layer the norms and
 * residual adds run on both; attn_q/k/v are row-cut at a head boundary (GPU query heads
 * [0, hg), whole GQA groups), rope, kv_store and attention sliced there, attn_output cut by
 * the same columns; ffn_gate/up are row-cut at fg, swiglu sliced and ffn_down column-cut there.
 * A layer then crosses processors twice (the residual adds sum the partials), and neither
 * processor waits while the other runs a step alone. VRAM as in cand_tensor: the same fraction
 * of every matrix (the GPU's VRAM part first), the attention projections wholly, or whole
 * layers from the first on (run by the GPU alone; the other layers split with the GPU reading
 * host memory). The embedding runs on the CPU, the output head as in cand_tensor. NULL when the
 * graph cannot be split so, or the fill does not apply. */
static hllm_plan *cand_heads(const model_ctx *c, const hllm_graph *g, const hllm_solve_opts *o, int n_procs, int n_layer,
                             vram_fill fill) {
    if (!heads_splittable(g, n_layer)) return NULL;
    const double total = total_gpu_bytes(g, false);
    const double f = o->gpu_mem < 0 || total <= 0 ? 1.0 : fmin(o->gpu_mem / total, 1.0);
    heads_ctx h = {.c = c, .g = g, .o = o, .f_attn = f, .f_ffn = f};
    int n_vram_layers = 0; /* VRAM_LAYERS: layers [0, n) wholly in VRAM, none elsewhere */
    if (fill == VRAM_ATTN) {
        const double attn = f >= 1 ? -1 : vram_attn_bytes(g, o->gpu_mem, total);
        if (attn < 0) return NULL;
        h.f_attn = 1;
        h.f_ffn = (o->gpu_mem - attn) / (total - attn);
    } else if (fill == VRAM_LAYERS) {
        if (f >= 1 || (n_vram_layers = vram_layer_count(g, n_layer, o->gpu_mem)) < 0) return NULL;
        h.f_attn = h.f_ffn = 0;
    } else if (fill == VRAM_ATTN_LAYERS) {
        if (f >= 1 || (n_vram_layers = vram_attn_layer_count(g, n_layer, o->gpu_mem, total, &h.f_ffn)) < 0) return NULL;
        h.f_attn = 1;
    }
    hllm_plan *p = hllm_plan_single(g, o->gpu, n_procs, "tensor-level, heads");
    if (!p) return NULL;
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        if (s->kind == HLLM_OP_EMBED) p->steps[i].parts[0].proc = o->cpu;
        if (s->kind != HLLM_OP_MATMUL || s->layer >= 0) continue;
        p->steps[i] = balanced_cut(c, g, o, i, h.f_ffn >= 1 ? s->rows : align_down((int64_t)(h.f_ffn * (double)s->rows), o->align));
    }
    const int procs[2] = {o->gpu, o->cpu};
    double heads = 0, ffn = 0;
    for (int l = n_vram_layers; l < n_layer; l++) {
        int idx[L_N];
        layer_steps(g, l, idx);
        const int rep[4] = {idx[L_NORM], idx[L_RES1], idx[L_FNORM], idx[L_RES2]};
        for (int k = 0; k < 4; k++)
            if (hllm_plan_replicate(p, g, rep[k], 2, procs)) goto fail;
        const int64_t hg = choose_heads(&h, p, idx), fg = choose_ffn(&h, p, idx);
        if (hg < 0 || fg < 0) goto fail;
        heads += (double)hg / (n_layer - n_vram_layers);
        ffn += (double)fg / (double)g->steps[idx[L_GATE]].rows / (n_layer - n_vram_layers);
    }
    const char *vram = fill == VRAM_ATTN     ? "attention projections in VRAM"
                       : fill == VRAM_UNIFORM ? "VRAM spread"
                                              : "";
    char lay[96] = "";
    if (fill == VRAM_LAYERS) snprintf(lay, sizeof lay, "layers 0-%d in VRAM", n_vram_layers - 1);
    if (fill == VRAM_ATTN_LAYERS) snprintf(lay, sizeof lay, "attention projections and %d whole layers in VRAM", n_vram_layers);
    snprintf(p->why, sizeof p->why, "tensor-level, heads and FFN columns split (GPU %d of %d heads, %.0f%% of the FFN), %s%s",
             (int)lround(heads), g->n_head, 100 * ffn, vram, lay);
    return p;
fail:
    hllm_plan_free(p);
    return NULL;
}

/* Adjacent parts on one processor and memory joined into one. */
static void merge_parts(hllm_step_plan *sp) {
    int n = 0;
    for (int k = 0; k < sp->n_parts; k++) {
        hllm_part *prev = n ? &sp->parts[n - 1] : NULL;
        if (prev && prev->proc == sp->parts[k].proc && prev->mem == sp->parts[k].mem && prev->r1 == sp->parts[k].r0)
            prev->r1 = sp->parts[k].r1;
        else sp->parts[n++] = sp->parts[k];
    }
    sp->n_parts = n;
}

/* The prompt plan for a decode plan: the CPU's matmul rows read by the GPU from host memory
 * instead (the GPU is compute-rich, and a prompt reads each weight once for many tokens), and
 * the other steps on the GPU too, except the embedding; the KV cache's steps too unless the GPU
 * holds them already (it reads the CPU's part of the cache from pinned host memory). VRAM holds
 * what it holds in decode. NULL when the CPU has no matmul rows. */
static hllm_plan *prefill_variant(const hllm_plan *dec, const hllm_graph *g, const hllm_solve_opts *o) {
    if (o->cpu < 0 || o->gpu < 0) return NULL;
    bool any = false;
    for (int i = 0; i < g->n_steps && !any; i++)
        for (int k = 0; k < dec->steps[i].n_parts; k++)
            any |= g->steps[i].kind == HLLM_OP_MATMUL && dec->steps[i].parts[k].proc == o->cpu;
    if (!any) return NULL;
    hllm_plan *p = hllm_plan_clone(dec);
    if (!p) return NULL;
    hllm_plan_free(p->prefill);
    p->prefill = NULL;
    for (int i = 0; i < g->n_steps; i++) {
        hllm_step_plan *sp = &p->steps[i];
        const hllm_op_kind kind = g->steps[i].kind;
        const bool kv = kind == HLLM_OP_KV_STORE || kind == HLLM_OP_ATTENTION;
        if (kind == HLLM_OP_MATMUL) {
            for (int k = 0; k < sp->n_parts; k++)
                if (sp->parts[k].proc == o->cpu)
                    sp->parts[k] = (hllm_part){.proc = o->gpu, .r0 = sp->parts[k].r0, .r1 = sp->parts[k].r1, .mem = HLLM_MEM_HOST};
            if (sp->cut == HLLM_CUT_COLS) merge_parts(sp); /* fewer partial sums */
        } else if (kind != HLLM_OP_EMBED && (!kv || sp->cut == HLLM_CUT_SLICE || sp->parts[0].proc == o->cpu)) {
            /* whole on the GPU: not replicated, not sliced (a KV cache on the CPU, or the CPU's
             * heads of a sliced one, read from host memory) */
            sp->n_parts = 1;
            sp->cut = HLLM_CUT_ROWS;
            sp->parts[0] = (hllm_part){.proc = o->gpu, .r0 = 0, .r1 = g->steps[i].rows};
        }
    }
    snprintf(p->why, sizeof p->why, "prompts: the CPU's matmul rows read by the GPU from host memory");
    return p;
}

/* Attaches the prompt plan to `dec` when it is predicted faster for a prompt of n_prompt tokens,
 * from the smallest batch where it wins. */
static void attach_prefill(const model_ctx *c, hllm_plan *dec, const hllm_graph *g, const hllm_solve_opts *o, FILE *explain) {
    hllm_plan *pf = prefill_variant(dec, g, o);
    if (!pf) return;
    const double t_dec = solve_plan_time(c, dec, g, o->n_prompt), t_pf = solve_plan_time(c, pf, g, o->n_prompt);
    if (explain)
        fprintf(explain, "prompt of %d tokens: %s %.1f ms, decode plan %.1f ms\n", o->n_prompt, pf->why, t_pf * 1e3, t_dec * 1e3);
    if (t_pf >= t_dec) {
        hllm_plan_free(pf);
        return;
    }
    int from = o->n_prompt;
    for (int n = 2; n < o->n_prompt; n *= 2)
        if (solve_plan_time(c, pf, g, n) < solve_plan_time(c, dec, g, n)) {
            from = n;
            break;
        }
    dec->prefill = pf;
    dec->prefill_min = from;
    if (explain) fprintf(explain, "  chosen for batches of %d tokens or more\n", from);
}

static void explain_steps(const model_ctx *c, const hllm_graph *g, const hllm_plan *p, FILE *f) {
    const hllm_solve_opts *o = c->o;
    fprintf(f, "per-step decode choices (layer 0 and the head; predicted us: chosen | GPU only | CPU only):\n");
    for (int i = 0; i < g->n_steps; i++) {
        const hllm_step *s = &g->steps[i];
        const hllm_step_plan *sp = &p->steps[i];
        if (s->kind != HLLM_OP_MATMUL || s->layer > 0) continue;
        /* shares of what the cut cuts: rows, or input columns */
        const bool cols = sp->cut == HLLM_CUT_COLS;
        const int64_t units = cols ? s->w->cols : s->rows;
        unsigned h[HLLM_ACT_COUNT];
        for (int a = 0; a < HLLM_ACT_COUNT; a++) h[a] = ~0u;
        double tc = solve_step_time(c, g, p, i, sp, 1, h);
        hllm_step_plan gp = {.cut = sp->cut}, cp = {.n_parts = 1, .parts = {{.proc = o->cpu, .r0 = 0, .r1 = s->rows}}};
        int64_t gdev = 0;
        for (int k = 0; k < sp->n_parts; k++)
            if (sp->parts[k].proc == o->gpu && sp->parts[k].mem == HLLM_MEM_DEVICE) gdev += sp->parts[k].r1 - sp->parts[k].r0;
        gp.n_parts = gpu_parts(gp.parts, o->gpu, 0, units, gdev);
        for (int a = 0; a < HLLM_ACT_COUNT; a++) h[a] = ~0u;
        double tg = solve_step_time(c, g, p, i, &gp, 1, h);
        for (int a = 0; a < HLLM_ACT_COUNT; a++) h[a] = ~0u;
        double tcpu = o->cpu >= 0 ? solve_step_time(c, g, p, i, &cp, 1, h) : INFINITY;
        char d[256];
        int off = snprintf(d, sizeof d, "%s", cols ? "cols: " : "");
        for (int k = 0; k < sp->n_parts; k++) {
            const hllm_part *pt = &sp->parts[k];
            off += snprintf(d + off, sizeof d - (size_t)off, "%s%s%s %.0f%%", k ? " + " : "", solve_pname(o, pt->proc),
                            pt->proc != o->cpu && pt->mem == HLLM_MEM_HOST ? "(host)" : "",
                            100.0 * (double)(pt->r1 - pt->r0) / (double)units);
        }
        fprintf(f, "  %-12s %-40s %9.1f | %9.1f | %9.1f\n", s->label, d, tc * 1e6, tg * 1e6, tcpu * 1e6);
    }
}

/* The decode bound a VRAM budget leaves (the yardstick for a split): the matmul bytes
 * beyond the budget, read from host memory by CPU and GPU together at the profile's pooled
 * rate (each one's rate while both read), the VRAM part assumed to run alongside. */
static void explain_bound(const model_ctx *c, const hllm_graph *g, const hllm_solve_opts *o, double pred_s) {
    const double gc = c->conc_cpu_gbs, gg = c->conc_gpu_gbs, host = total_gpu_bytes(g, false) - o->gpu_mem;
    if (o->gpu < 0 || o->cpu < 0 || o->gpu_mem < 0 || host <= 0 || gc <= 0 || gg <= 0 || pred_s <= 0) return;
    const double bound_s = host / ((gc + gg) * 1e9);
    const bool gib = host >= 1073741824.0;
    fprintf(o->explain, "decode bound: %.2f %s of weights beyond VRAM / %.1f GB/s of CPU + GPU host reads (%.1f + %.1f) = %.3f ms"
            " a token; the chosen plan is predicted at %.0f%% of it\n", host / (gib ? 1073741824.0 : 1048576.0), gib ? "GiB" : "MiB",
            gc + gg, gc, gg, bound_s * 1e3, 100.0 * bound_s / pred_s);
}

hllm_plan *hllm_solve(const hllm_graph *g, const hllm_profile *prof, const hllm_solve_opts *oin, hllm_prediction *pred) {
    hllm_solve_opts o = *oin;
    if (o.align <= 0) o.align = 64;
    if (o.n_prompt <= 0) o.n_prompt = 512;
    if (o.n_batch <= 0) o.n_batch = 512;
    int n_procs = (o.cpu > o.gpu ? o.cpu : o.gpu) + 1;
    if (o.cpu < 0 && o.gpu < 0) {
        hllm_fail("solver: no processors");
        return NULL;
    }
    int n_layer = 0;
    for (int i = 0; i < g->n_steps; i++)
        if (g->steps[i].layer + 1 > n_layer) n_layer = g->steps[i].layer + 1;
    model_ctx c;
    solve_ctx_init(&c, prof, &o);
    hllm_plan *cand[3 + 2 * (VRAM_ATTN_LAYERS + 1)] = {0};
    int n = 0;
    const bool both = o.gpu >= 0 && o.cpu >= 0, auto_ = o.split == HLLM_SPLIT_AUTO;
    /* a forced kind that needs both processors falls back to one processor without them */
    const bool single = auto_ || o.split == HLLM_SPLIT_NONE || !both;
    if (single && o.cpu >= 0) cand[n++] = hllm_plan_single(g, o.cpu, n_procs, "CPU only");
    if (single && o.gpu >= 0) cand[n++] = cand_gpu(g, &o, n_procs);
    if (both && (auto_ || o.split == HLLM_SPLIT_LAYER)) cand[n++] = cand_layers(g, &o, n_procs, n_layer);
    if (both && (auto_ || o.split == HLLM_SPLIT_TENSOR)) {
        const int hm = heads_mode();
        for (int fill = VRAM_UNIFORM; fill <= VRAM_ATTN_LAYERS; fill++) {
            if (!fill_wanted((vram_fill)fill)) continue;
            if (hm != 2) cand[n++] = cand_tensor(&c, g, &o, n_procs, n_layer, (vram_fill)fill);
            if (hm != 0) cand[n++] = cand_heads(&c, g, &o, n_procs, n_layer, (vram_fill)fill);
        }
    }
    int best = -1;
    hllm_prediction pr[3 + 2 * (VRAM_ATTN_LAYERS + 1)];
    for (int k = 0; k < n; k++) {
        if (!cand[k]) continue;
        pr[k] = hllm_plan_predict(cand[k], g, prof, &o);
        if (best < 0 || pr[k].decode_s < pr[best].decode_s * 0.999) best = k;
    }
    if (best < 0) {
        for (int k = 0; k < n; k++) hllm_plan_free(cand[k]);
        return NULL;
    }
    if (o.explain) {
        fprintf(o.explain, "candidates (predicted decode per token, prefill of %d tokens; weights GiB in VRAM / host via GPU / CPU):\n",
                o.n_prompt);
        for (int k = 0; k < n; k++)
            if (cand[k])
                fprintf(o.explain, "  %s %-72s decode %8.3f ms  prefill %9.1f ms  [%.2f / %.2f / %.2f]\n", k == best ? "*" : " ",
                        cand[k]->why, pr[k].decode_s * 1e3, pr[k].prefill_s * 1e3, pr[k].gpu_dev_bytes / 1073741824.0,
                        pr[k].gpu_host_bytes / 1073741824.0, pr[k].cpu_bytes / 1073741824.0);
        explain_bound(&c, g, &o, pr[best].decode_s);
        if (o.gpu >= 0 && o.cpu >= 0) explain_steps(&c, g, cand[best], o.explain);
    }
    hllm_plan *p = cand[best];
    attach_prefill(&c, p, g, &o, o.explain);
    if (p->prefill) pr[best].prefill_s = solve_plan_time(&c, p->prefill, g, o.n_prompt);
    char why[400];
    snprintf(why, sizeof why, "%.180s (predicted %.2f ms/token decode, %.0f ms per %d-token prompt)", p->why,
             pr[best].decode_s * 1e3, pr[best].prefill_s * 1e3, o.n_prompt);
    memcpy(p->why, why, sizeof p->why - 1);
    p->why[sizeof p->why - 1] = 0;
    if (pred) *pred = pr[best];
    for (int k = 0; k < n; k++)
        if (k != best) hllm_plan_free(cand[k]);
    return p;
}
