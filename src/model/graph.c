#include "model/graph.h"
#include "core/error.h"
#include <stdlib.h>

static hllm_step *push(hllm_graph *g, hllm_op_kind kind, int layer, const char *label, const hllm_tensor *w,
                       hllm_act dst, hllm_act src, hllm_act src2) {
    hllm_step *s = &g->steps[g->n_steps++];
    *s = (hllm_step){.kind = kind, .layer = layer, .label = label, .w = w, .dst = dst, .src = src, .src2 = src2};
    if (w) s->rows = w->rows;
    return s;
}

static const hllm_tensor *opt(const hllm_tensor *t) { return t->data ? t : NULL; }

int hllm_graph_build(const hllm_model_s *m, hllm_graph *g) {
    const hllm_hparams *hp = &m->hp;
    g->n_steps = 0;
    g->steps = calloc((size_t)hp->n_layer * 20 + 8, sizeof *g->steps);
    if (!g->steps) return hllm_fail("out of memory");
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    g->act_width[HLLM_ACT_X] = hp->n_embd;
    g->act_width[HLLM_ACT_XN] = hp->n_embd > qd ? hp->n_embd : qd;
    g->act_width[HLLM_ACT_Q] = qd;
    g->act_width[HLLM_ACT_K] = kvd;
    g->act_width[HLLM_ACT_V] = kvd;
    g->act_width[HLLM_ACT_ATT] = qd;
    g->act_width[HLLM_ACT_GATE] = hp->n_ff;
    g->act_width[HLLM_ACT_UP] = hp->n_ff;
    g->act_width[HLLM_ACT_LOGITS] = hp->n_vocab;
    for (int a = HLLM_ACT_PART0; a <= HLLM_ACT_PART3; a++) g->act_width[a] = hp->n_embd;
    g->n_head = hp->n_head;
    g->n_head_kv = hp->n_head_kv;
    g->head_dim = hp->head_dim;

    push(g, HLLM_OP_EMBED, -1, "token_embd", &m->tok_embd, HLLM_ACT_X, HLLM_ACT_NONE, HLLM_ACT_NONE);
    for (int l = 0; l < hp->n_layer; l++) {
        const hllm_layer_tensors *L = &m->layers[l];
        hllm_step *s;
        push(g, HLLM_OP_RMSNORM, l, "attn_norm", &L->attn_norm, HLLM_ACT_XN, HLLM_ACT_X, HLLM_ACT_NONE);
        s = push(g, HLLM_OP_MATMUL, l, "attn_q", &L->wq, HLLM_ACT_Q, HLLM_ACT_XN, HLLM_ACT_NONE);
        s->bias = opt(&L->bq);
        s = push(g, HLLM_OP_MATMUL, l, "attn_k", &L->wk, HLLM_ACT_K, HLLM_ACT_XN, HLLM_ACT_NONE);
        s->bias = opt(&L->bk);
        s = push(g, HLLM_OP_MATMUL, l, "attn_v", &L->wv, HLLM_ACT_V, HLLM_ACT_XN, HLLM_ACT_NONE);
        s->bias = opt(&L->bv);
        if (L->q_norm.data) {
            s = push(g, HLLM_OP_RMSNORM, l, "attn_q_norm", &L->q_norm, HLLM_ACT_Q, HLLM_ACT_Q, HLLM_ACT_NONE);
            s->per_head = true;
            s = push(g, HLLM_OP_RMSNORM, l, "attn_k_norm", &L->k_norm, HLLM_ACT_K, HLLM_ACT_K, HLLM_ACT_NONE);
            s->per_head = true;
        }
        push(g, HLLM_OP_ROPE, l, "rope", opt(&m->rope_freqs), HLLM_ACT_Q, HLLM_ACT_NONE, HLLM_ACT_K);
        push(g, HLLM_OP_KV_STORE, l, "kv_store", NULL, HLLM_ACT_NONE, HLLM_ACT_K, HLLM_ACT_V);
        push(g, HLLM_OP_ATTENTION, l, "attention", NULL, HLLM_ACT_ATT, HLLM_ACT_Q, HLLM_ACT_NONE);
        push(g, HLLM_OP_MATMUL, l, "attn_output", &L->wo, HLLM_ACT_XN, HLLM_ACT_ATT, HLLM_ACT_NONE);
        push(g, HLLM_OP_ADD, l, "attn_residual", NULL, HLLM_ACT_X, HLLM_ACT_XN, HLLM_ACT_NONE);
        push(g, HLLM_OP_RMSNORM, l, "ffn_norm", &L->ffn_norm, HLLM_ACT_XN, HLLM_ACT_X, HLLM_ACT_NONE);
        push(g, HLLM_OP_MATMUL, l, "ffn_gate", &L->w_gate, HLLM_ACT_GATE, HLLM_ACT_XN, HLLM_ACT_NONE);
        push(g, HLLM_OP_MATMUL, l, "ffn_up", &L->w_up, HLLM_ACT_UP, HLLM_ACT_XN, HLLM_ACT_NONE);
        push(g, HLLM_OP_SWIGLU, l, "swiglu", NULL, HLLM_ACT_GATE, HLLM_ACT_GATE, HLLM_ACT_UP);
        push(g, HLLM_OP_MATMUL, l, "ffn_down", &L->w_down, HLLM_ACT_XN, HLLM_ACT_GATE, HLLM_ACT_NONE);
        push(g, HLLM_OP_ADD, l, "ffn_residual", NULL, HLLM_ACT_X, HLLM_ACT_XN, HLLM_ACT_NONE);
    }
    hllm_step *s = push(g, HLLM_OP_RMSNORM, -1, "output_norm", &m->output_norm, HLLM_ACT_XN, HLLM_ACT_X, HLLM_ACT_NONE);
    s->last_only = true;
    s = push(g, HLLM_OP_MATMUL, -1, "output", &m->output, HLLM_ACT_LOGITS, HLLM_ACT_XN, HLLM_ACT_NONE);
    s->last_only = true;
    return 0;
}

void hllm_graph_free(hllm_graph *g) {
    free(g->steps);
    g->steps = NULL;
    g->n_steps = 0;
}
