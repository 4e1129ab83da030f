/* The CUDA processor's captured decode steps and its handoffs with other processors (see
 * cuda_proc.cu for the design): the ops of a step recorded, captured into a graph and replayed;
 * flags in pinned mapped memory; the copies and flag operations a split step issues between
 * its ops, captured with them (small copies and a copy with its flag as kernels,
 * cuda_handoff.cu). */
#include "proc/cuda/cuda_impl.cuh"
#include "proc/cuda/cuda_proc.h"
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

static int g_graphs = -1; /* -1: not decided yet (HLLM_CUDA_GRAPHS=0 turns them off), 0, 1 */
/* fusing ops of captured steps: 0 off, 1 all, 2 all but the gate/up + swiglu kernel (the
 * default: that kernel made llama3-8b q4_0 tg128 7% slower on H100, its quantization tail
 * holding every block); -1: not decided yet (HLLM_CUDA_FUSE) */
static int g_fuse = -1;
/* Ablation for measurements only (HLLM_CUDA_SKIP=rmsnorm,rope,attention,swiglu,add,matmul):
 * captured decode steps leave out the ops of these kinds, so a run's time without them shows
 * what they cost in the real pipeline; the results are then wrong, and the run says so. */
static unsigned g_skip;
static unsigned skip_mask(const char *e) {
    static const struct {
        const char *name;
        hllm_op_kind kind;
    } k[] = {{"rmsnorm", HLLM_OP_RMSNORM}, {"rope", HLLM_OP_ROPE},   {"kv", HLLM_OP_KV_STORE},
             {"attention", HLLM_OP_ATTENTION}, {"swiglu", HLLM_OP_SWIGLU}, {"add", HLLM_OP_ADD},
             {"matmul", HLLM_OP_MATMUL}};
    unsigned m = 0;
    for (size_t i = 0; e && i < sizeof k / sizeof *k; i++)
        if (strstr(e, k[i].name)) m |= 1u << k[i].kind;
    if (m) fprintf(stderr, "hllm: HLLM_CUDA_SKIP=%s: decode steps leave ops out; results are wrong (timing only)\n", e);
    return m;
}

void cu_steps_configure(void) { g_skip = skip_mask(getenv("HLLM_CUDA_SKIP")); }

extern "C" void hllm_cuda_set_graphs(int on) {
    if (on >= 0) g_graphs = on ? 1 : 0;
}

extern "C" void hllm_cuda_set_fusion(int on) {
    if (on >= 0) g_fuse = on > 2 ? 1 : on;
}

static bool graphs_on(void) {
    if (g_graphs < 0) {
        const char *e = getenv("HLLM_CUDA_GRAPHS");
        g_graphs = e && e[0] == '0' ? 0 : 1;
    }
    return g_graphs != 0;
}

/* Handoffs recorded into steps (cuda_handoff.cu): 0 copy engine and stream memory operations,
 * 1 small copies as kernels, 2 (default) also a copy and the flag operation beside it as one
 * kernel (HLLM_CUDA_HANDOFF). */
static int g_handoff = -1;
extern "C" void hllm_cuda_set_handoff(int mode) {
    if (mode >= 0) g_handoff = mode > 2 ? 2 : mode;
}
static int handoff_mode(void) {
    if (g_handoff < 0) {
        const char *e = getenv("HLLM_CUDA_HANDOFF");
        g_handoff = e && (e[0] == '0' || e[0] == '1') ? e[0] - '0' : 2;
    }
    return g_handoff;
}
/* copies up to this size between device and pinned host memory run as kernels; up to the
 * second, one block copies it beside a flag operation */
#define CU_COPY_KERNEL_MAX ((size_t)1 << 20)
#define CU_COPY_FUSE_MAX ((size_t)64 << 10)

/* ---- captured decode steps (proc.h step_begin / step_end) ---- */

static int run_handoff_pair(cuda_impl *c, const hllm_op *a, const hllm_op *b);

/* Same op apart from pos0 and the ids (what the step state carries). */
static bool op_same(const hllm_op *a, const hllm_op *b) {
    return a->kind == b->kind && a->n_tok == b->n_tok && a->dst == b->dst && a->src == b->src && a->src2 == b->src2 &&
           a->ld_dst == b->ld_dst && a->ld_src == b->ld_src && a->ld_src2 == b->ld_src2 && a->w == b->w &&
           a->bias == b->bias && a->r0 == b->r0 && a->r1 == b->r1 && a->dim == b->dim && a->n_rows == b->n_rows &&
           a->eps == b->eps && a->n_head == b->n_head && a->n_head_kv == b->n_head_kv && a->head_dim == b->head_dim &&
           a->h0 == b->h0 && a->h1 == b->h1 && a->attn_scale == b->attn_scale && a->n_rot == b->n_rot &&
           a->rope_type == b->rope_type && a->freq_base == b->freq_base && a->freq_scale == b->freq_scale &&
           a->freq_factors == b->freq_factors && a->kv == b->kv &&
           (!a->kv || (a->kv->k == b->kv->k && a->kv->v == b->kv->v && a->kv->type == b->kv->type &&
                       a->kv->n_ctx == b->kv->n_ctx));
}

static int record_op(cuda_impl *c, const hllm_op *op) {
    if (c->n_rec == c->cap_rec) {
        const int cap = c->cap_rec ? 2 * c->cap_rec : 512;
        hllm_op *n = (hllm_op *)realloc(c->rec, (size_t)cap * sizeof *n);
        if (!n) return -1;
        c->rec = n;
        c->cap_rec = cap;
    }
    c->rec[c->n_rec++] = *op;
    return 0;
}

static bool fuse_on(void) {
    if (g_fuse < 0) {
        const char *e = getenv("HLLM_CUDA_FUSE");
        g_fuse = e && e[0] == '0' ? 0 : (e && e[0] == '1' ? 1 : 2);
    }
    return g_fuse != 0;
}

/* Runs the recorded ops of a step (into a capture, or as a replayed step that cannot use its
 * graph), merging neighbours where cuda_fuse.cu allows: the same results as one by one. */
static int run_recorded(cuda_impl *c, int from, int to) {
    act_forget(c);
    const hllm_op *ops = c->rec;
    for (int i = from, k = 1; i < to; i += k) {
        if (i + 1 < to && (int)ops[i].kind > HLLM_OP_COUNT) { /* a handoff: maybe two actions as one kernel */
            const int r = run_handoff_pair(c, ops + i, ops + i + 1);
            if (r < 0) return -1;
            if (r) {
                k = 2;
                continue;
            }
        }
        const int f = fuse_on() ? cu_fuse_match(ops + i, to - i, cu_gemv_max_tok, g_fuse == 1, &k) : (k = 1, CU_FUSE_NONE);
        cu_pdl_op = ops[i].n_tok <= 8;
        int rc;
        if (g_skip & (1u << ops[i].kind)) {
            if (ops[i].kind != HLLM_OP_MATMUL) act_forget(c);
            rc = 0;
        } else if (f == CU_FUSE_GEMV) {
            rc = cu_run_gemv(c, ops + i, k, NULL);
        } else if (f == CU_FUSE_GEMV_ADD) {
            rc = cu_run_gemv(c, ops + i, 1, ops + i + 1);
        } else if (f == CU_FUSE_GLU) {
            rc = cu_run_glu(c, ops + i);
        } else if (f == CU_FUSE_ROPE_KV) {
            act_forget(c);
            rc = cu_rope_kv(c->st, ops + i, ops + i + 1, ops[i].freq_factors ? ops[i].freq_factors->vec : NULL, c->dpos);
        } else {
            rc = cu_run_op(c, ops + i);
        }
        if (rc) return -1;
        c->n_fused += k - 1;
    }
    return 0;
}

/* Something other than run() came between step_begin and step_end: a replayed step's ops run
 * now, and this step is not captured. */
void cu_step_interrupt(cuda_impl *c) {
    const int mode = c->mode;
    c->mode = STEP_PLAIN;
    if (mode == STEP_REPLAY) run_recorded(c, c->early ? c->graphs[c->cur].cut : 0, c->n_rec);
    c->early = false;
}

/* Early launch (HLLM_CUDA_EARLY=0 turns it off) captures a step that waits on another processor
 * as two graphs (cu_graph). With host-first (exec.c) it measured +5% at a 50% VRAM cap and +3%
 * at 75% on an H100 host (llama3-8b q4_0 split decode, bench/hetero/notes.md session 12). */
static int g_early = -1;
extern "C" void hllm_cuda_set_early(int on) { g_early = on != 0; }
static bool early_on(void) {
    if (g_early < 0) {
        const char *e = getenv("HLLM_CUDA_EARLY");
        g_early = !(e && e[0] == '0');
    }
    return g_early == 1;
}

/* Where a step's ops split into its two graphs (cu_graph): at its first wait on another
 * processor that follows work of its own (waits before any work, for the embedding the host
 * runs before the device walk say, stay in the first graph); 0 = one graph. */
static int split_point(const cuda_impl *c) {
    if (!early_on()) return 0;
    int i = 0;
    while (i < c->n_rec && (int)c->rec[i].kind == CU_ACT_WAIT) i++;
    for (; i < c->n_rec; i++)
        if ((int)c->rec[i].kind == CU_ACT_WAIT) return i;
    return 0;
}

void cu_free_graph(cu_graph *g) {
    /* a graph destroyed while in flight is freed when it completes */
    if (g->exec) cudaGraphExecDestroy(g->exec);
    if (g->exec2) cudaGraphExecDestroy(g->exec2);
    free(g->ops);
    *g = cu_graph{};
}

/* Captures recorded ops [from, to) into an instantiated graph (NULL on failure). */
static cudaGraphExec_t capture_range(cuda_impl *c, int from, int to) {
    if (cudaStreamBeginCapture(c->st, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    c->capturing = true;
    c->dpos = &c->dstate->pos0;
    c->dtok = c->dstate->tok;
    const int rc = run_recorded(c, from, to);
    cudaGraph_t graph = NULL;
    const cudaError_t e = cudaStreamEndCapture(c->st, &graph);
    c->capturing = false;
    c->dpos = c->dtok = NULL;
    act_forget(c);
    cudaGraphExec_t ex = NULL;
    if (!rc && e == cudaSuccess && graph && cudaGraphInstantiate(&ex, graph, 0) == cudaSuccess) {
        size_t nodes = 0;
        if (cudaGraphGetNodes(graph, NULL, &nodes) == cudaSuccess) c->last_nodes += nodes;
    } else
        ex = NULL;
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    return ex;
}

/* Captures the recorded ops (which already ran) into a graph for this step's shape. A failed
 * capture is not an error: the step simply stays uncaptured. */
static void capture(cuda_impl *c) {
    if (c->n_rec == 0) return;
    int slot = 0;
    for (int i = 0; i < CU_GRAPHS; i++) {
        if (!c->graphs[i].exec) {
            slot = i;
            break;
        }
        if (c->graphs[i].last_use < c->graphs[slot].last_use) slot = i;
    }
    cu_graph *g = &c->graphs[slot];
    cu_free_graph(g);
    /* buffers only fused kernels use: sized now, since nothing may grow while capturing */
    for (int i = 0, k = 1; fuse_on() && i < c->n_rec; i += k)
        if (cu_fuse_match(c->rec + i, c->n_rec - i, cu_gemv_max_tok, g_fuse == 1, &k) == CU_FUSE_GLU &&
            cu_glu_buffers(c, c->rec[i + 2].n_tok, c->rec[i + 2].dim, NULL))
            return;
    hllm_op *ops = (hllm_op *)malloc((size_t)c->n_rec * sizeof *ops);
    if (!ops) return;
    memcpy(ops, c->rec, (size_t)c->n_rec * sizeof *ops);
    const int cut = split_point(c);
    c->last_nodes = 0;
    cudaGraphExec_t ex = capture_range(c, 0, cut ? cut : c->n_rec), ex2 = NULL;
    if (ex && cut && !(ex2 = capture_range(c, cut, c->n_rec))) {
        cudaGraphExecDestroy(ex);
        ex = NULL;
    }
    if (ex) {
        g->shape = c->shape;
        g->n_tok = c->step_ntok;
        g->exec = ex;
        g->exec2 = ex2;
        g->cut = cut;
        g->ops = ops;
        g->n_ops = c->n_rec;
        g->handoff = handoff_mode();
        g->early = early_on();
        g->last_use = ++c->use_clock;
        c->n_captures++;
        ops = NULL;
    } else
        c->n_capture_fail++;
    free(ops);
}

int cu_step_begin(hllm_proc *p, uint64_t shape, int pos0, const int32_t *tokens, int n_tok) {
    cuda_impl *c = impl_of(p);
    use_dev(c->dev);
    c->mode = STEP_PLAIN; /* also ends a step that never reached step_end (an op failed) */
    c->n_rec = 0;
    c->early = false;
    if (!graphs_on() || n_tok < 1 || n_tok > 8 || n_tok > cu_gemv_max_tok || n_tok > cu_split_max_tok || pos0 < 0 ||
        c->n_capture_fail >= 3)
        return 0;
    /* the step state, by one async copy from a pinned slot no earlier copy still reads */
    const int slot = c->ring_i;
    c->ring_i = (c->ring_i + 1) % CU_RING;
    if (cudaEventQuery(c->ring_ev[slot]) != cudaSuccess && cu_check(cudaEventSynchronize(c->ring_ev[slot]), "step state"))
        return -1;
    cu_dstate *h = &c->hstate[slot];
    memset(h, 0, sizeof *h);
    h->pos0 = pos0;
    h->n_tok = n_tok;
    if (tokens) memcpy(h->tok, tokens, (size_t)n_tok * sizeof(int32_t));
    if (cu_check(cudaMemcpyAsync(c->dstate, h, sizeof *h, cudaMemcpyHostToDevice, c->st), "step state") ||
        cu_check(cudaEventRecord(c->ring_ev[slot], c->st), "step state"))
        return -1;
    c->shape = shape;
    c->step_ntok = n_tok;
    c->cur = -1;
    for (int i = 0; i < CU_GRAPHS; i++)
        if (c->graphs[i].exec && c->graphs[i].shape == shape && c->graphs[i].n_tok == n_tok &&
            c->graphs[i].handoff == handoff_mode() && c->graphs[i].early == early_on())
            c->cur = i;
    c->mode = c->cur >= 0 ? STEP_REPLAY : STEP_RECORD;
    return c->mode == STEP_REPLAY ? 1 : 0;
}

static bool ops_same(const cu_graph *g, const hllm_op *rec, int from, int to) {
    for (int i = from; i < to; i++)
        if (!op_same(&g->ops[i], &rec[i])) return false;
    return true;
}

/* Launches graph slot i: its first part unless a replay launched it already, then the rest. */
static int launch(cuda_impl *c, int i, bool first_done) {
    cu_graph *g = &c->graphs[i];
    g->last_use = ++c->use_clock;
    c->n_replays++;
    act_forget(c);
    if (!first_done && cu_check(cudaGraphLaunch(g->exec, c->st), "graph launch")) return -1;
    return g->exec2 ? cu_check(cudaGraphLaunch(g->exec2, c->st), "graph launch") : 0;
}

int cu_step_end(hllm_proc *p) {
    cuda_impl *c = impl_of(p);
    use_dev(c->dev);
    const int mode = c->mode;
    const bool early = c->early;
    c->mode = STEP_NONE;
    c->early = false;
    if (mode == STEP_REPLAY) {
        cu_graph *g = &c->graphs[c->cur];
        if (g->n_ops == c->n_rec && ops_same(g, c->rec, early ? g->cut : 0, c->n_rec)) return launch(c, c->cur, early);
        c->n_mismatch++;
        if (early) { /* the first part runs already: issue the rest one by one, and capture anew next time */
            const int rc = run_recorded(c, g->cut, c->n_rec);
            cu_free_graph(g);
            return rc;
        }
        /* other ops than captured (new buffers, say): capture them and launch that; only if the
         * capture fails, issue them one by one (the queue may then fill while its waits hold) */
        const long before = c->n_captures;
        capture(c);
        if (c->n_captures > before)
            for (int i = 0; i < CU_GRAPHS; i++)
                if (c->graphs[i].exec && c->graphs[i].last_use == c->use_clock) return launch(c, i, false);
        return run_recorded(c, 0, c->n_rec);
    }
    if (mode == STEP_RECORD) capture(c);
    return 0;
}

int cu_run(hllm_proc *p, const hllm_op *op) {
    cuda_impl *c = impl_of(p);
    use_dev(c->dev);
    if (c->mode == STEP_RECORD || c->mode == STEP_REPLAY) {
        if (record_op(c, op)) {
            cu_step_interrupt(c); /* out of memory for the record: run this step as issued */
        } else if (c->mode == STEP_REPLAY) {
            if (op->kind == HLLM_OP_EMBED && op->w && !op->w->vec)
                for (int t = 0; t < op->n_tok; t++)
                    if (op->tokens[t] < op->w->row0 || op->tokens[t] >= op->w->row0 + op->w->rows) {
                        cu_step_interrupt(c);
                        return hllm_fail("CUDA: token %d is outside the embedding rows held", op->tokens[t]);
                    }
            /* the ops before the graph's first wait on another processor start now */
            cu_graph *g = &c->graphs[c->cur];
            if ((int)op->kind == CU_ACT_WAIT && !c->early && g->exec2 && g->cut == c->n_rec - 1 &&
                ops_same(g, c->rec, 0, g->cut)) {
                act_forget(c);
                if (cu_check(cudaGraphLaunch(g->exec, c->st), "graph launch")) {
                    c->mode = STEP_PLAIN;
                    return -1;
                }
                c->early = true;
                c->n_early++;
            }
            return 0; /* runs at step_end, in the graph */
        }
    }
    return cu_run_op(c, op);
}

extern "C" long hllm_cuda_early_launches(hllm_proc *p) { return impl_of(p)->n_early; }

extern "C" void hllm_cuda_graph_stats(hllm_proc *p, long *captures, long *replays, long *mismatches) {
    cuda_impl *c = impl_of(p);
    if (captures) *captures = c->n_captures;
    if (replays) *replays = c->n_replays;
    if (mismatches) *mismatches = c->n_mismatch;
}

extern "C" long hllm_cuda_fused_ops(hllm_proc *p) { return impl_of(p)->n_fused; }

/* ---- synchronization through host flags ---- */

struct host_flag_arg {
    volatile uint32_t *flag;
    uint32_t value;
};

static void CUDART_CB host_signal(void *arg) {
    host_flag_arg *a = (host_flag_arg *)arg;
    __atomic_store_n(a->flag, a->value, __ATOMIC_RELEASE);
    free(a);
}

static void CUDART_CB host_wait(void *arg) {
    host_flag_arg *a = (host_flag_arg *)arg;
    while (__atomic_load_n(a->flag, __ATOMIC_ACQUIRE) < a->value) {
    }
    free(a);
}

static void flag_fallback(cuda_impl *c, volatile uint32_t *flag, uint32_t value, bool wait) {
    host_flag_arg *a = (host_flag_arg *)malloc(sizeof *a);
    if (!a) return;
    a->flag = flag;
    a->value = value;
    cudaLaunchHostFunc(c->st, wait ? host_wait : host_signal, a);
}

/* The device address of a flag in pinned mapped host memory, or NULL. From the processor's own
 * table when it allocated the memory: a split decode token issues hundreds of flag operations,
 * and asking the driver costs microseconds each (traced: ~1.5 ms a token). */
static void *flag_device_ptr(cuda_impl *c, volatile uint32_t *flag) {
    if (void *d = cu_pinned_dev(c, (const void *)flag, sizeof *flag)) return d;
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, (const void *)flag) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return a.type == cudaMemoryTypeHost ? a.devicePointer : NULL;
}

/* A flag operation, recorded into the step (and captured) when the flag is mapped memory. */
static void flag_op(hllm_proc *p, volatile uint32_t *flag, uint32_t value, int kind) {
    cuda_impl *c = impl_of(p);
    use_dev(c->dev);
    void *dp = flag_device_ptr(c, flag);
    if (!dp) { /* not mapped memory: a host callback (never captured) */
        STEP_GUARD(c);
        if (kind == CU_ACT_WAIT) act_forget(c);
        flag_fallback(c, flag, value, kind == CU_ACT_WAIT);
        return;
    }
    hllm_op a = {};
    a.kind = (hllm_op_kind)kind;
    a.src2 = (const float *)dp;
    a.r0 = value;
    cu_run(p, &a);
}

/* A recorded copy that a kernel makes: small, between this device and pinned host memory. */
static bool copy_by_kernel(const hllm_op *op) {
    return handoff_mode() >= 1 && op->kind == (hllm_op_kind)CU_ACT_COPY && op->r1 != 0 &&
           (size_t)op->n_rows <= CU_COPY_KERNEL_MAX && ((uintptr_t)op->dst & 3u) == 0 && ((uintptr_t)op->src & 3u) == 0 &&
           (op->n_rows & 3) == 0;
}

/* Ops i, i + 1 of a step as one handoff kernel: a copy to the host and the signal after it, or
 * a wait and the copy from the host after it. Returns 1 if it launched them, 0 if they do not
 * pair, -1 on error. */
static int run_handoff_pair(cuda_impl *c, const hllm_op *a, const hllm_op *b) {
    const hllm_op_kind COPY = (hllm_op_kind)CU_ACT_COPY;
    const bool out = a->kind == COPY && b->kind == (hllm_op_kind)CU_ACT_SIGNAL && a->r1 == COPY_TO_HOST;
    const bool in = a->kind == (hllm_op_kind)CU_ACT_WAIT && b->kind == COPY && b->r1 == COPY_FROM_HOST;
    const hllm_op *copy = out ? a : b;
    if (handoff_mode() < 2 || !(out || in) || !copy_by_kernel(copy) || (size_t)copy->n_rows > CU_COPY_FUSE_MAX) return 0;
    act_forget(c); /* the host's data may be new */
    cu_pdl_op = true;
    const hllm_op *flag = out ? b : a;
    const int rc = out ? cu_handoff_copy_signal(c->st, a->dst, a->src, (size_t)a->n_rows, (uint32_t *)flag->src2, (uint32_t)flag->r0)
                       : cu_handoff_wait_copy(c->st, b->dst, b->src, (size_t)b->n_rows, (const uint32_t *)flag->src2, (uint32_t)flag->r0);
    return rc ? -1 : 1;
}

int cu_run_action(cuda_impl *c, const hllm_op *op) {
    const uint32_t value = (uint32_t)op->r0;
    CUdeviceptr dp = (CUdeviceptr)(uintptr_t)op->src2;
    switch ((int)op->kind) {
    case CU_ACT_COPY:
        if (copy_by_kernel(op))
            return cu_handoff_copy(c->st, op->dst, op->src, (size_t)op->n_rows, op->r1 == COPY_FROM_HOST);
        return cu_check(cudaMemcpyAsync(op->dst, op->src, (size_t)op->n_rows, cudaMemcpyDefault, c->st), "copy");
    case CU_ACT_SIGNAL:
        if (c->memops && c->write32((CUstream)c->st, dp, value, CU_STREAM_WRITE_VALUE_DEFAULT) == CUDA_SUCCESS) return 0;
        return cu_handoff_signal(c->st, (volatile uint32_t *)op->src2, value);
    case CU_ACT_WAIT: /* another processor may write activations before what follows */
        act_forget(c);
        if (c->memops && c->wait32((CUstream)c->st, dp, value, CU_STREAM_WAIT_VALUE_GEQ) == CUDA_SUCCESS) return 0;
        return cu_handoff_wait(c->st, (volatile uint32_t *)op->src2, value);
    default: return hllm_fail("CUDA processor: unknown action %d", (int)op->kind);
    }
}

void cu_signal(hllm_proc *p, volatile uint32_t *flag, uint32_t value) { flag_op(p, flag, value, CU_ACT_SIGNAL); }

void cu_wait(hllm_proc *p, volatile uint32_t *flag, uint32_t value) { flag_op(p, flag, value, CU_ACT_WAIT); }
