/* The model as a list of steps: embedding, the steps of every layer, the final norm and the
 * output head. Each step names its weights and its activation slots, never a processor: the
 * plan says where each step runs and the executor carries it out. */
#ifndef HLLM_MODEL_GRAPH_H
#define HLLM_MODEL_GRAPH_H
#include "model/model.h"

/* Activation slots: each a [n_tok][width] f32 buffer on the processor that uses it. */
typedef enum {
    HLLM_ACT_X,      /* residual stream, n_embd */
    HLLM_ACT_XN,     /* normed input / projection output, n_embd */
    HLLM_ACT_Q,      /* n_head * head_dim */
    HLLM_ACT_K,      /* n_head_kv * head_dim */
    HLLM_ACT_V,      /* n_head_kv * head_dim */
    HLLM_ACT_ATT,    /* attention output, n_head * head_dim */
    HLLM_ACT_GATE,   /* n_ff; after SWIGLU holds the ffn hidden state */
    HLLM_ACT_UP,     /* n_ff */
    HLLM_ACT_LOGITS, /* n_vocab */
    /* partial sums of a matmul cut by input columns, one per part (n_embd); the executor's own */
    HLLM_ACT_PART0,
    HLLM_ACT_PART1,
    HLLM_ACT_PART2,
    HLLM_ACT_PART3,
    HLLM_ACT_COUNT,
    HLLM_ACT_NONE = -1
} hllm_act;

typedef struct {
    hllm_op_kind kind;
    int layer;              /* -1 for the embedding and the output head */
    const char *label;      /* "attn_q", "ffn_down", ... for plans and timings */
    const hllm_tensor *w;   /* matrix, or norm / rope-factor vector; NULL if none */
    const hllm_tensor *bias;
    hllm_act dst, src, src2;
    int64_t rows;           /* MATMUL: output width; norms: vector length */
    bool per_head;          /* RMSNORM over each head (qwen3 q/k norm) */
    bool last_only;         /* output head: only the rows whose logits are wanted */
} hllm_step;

typedef struct {
    hllm_step *steps;
    int n_steps;
    int64_t act_width[HLLM_ACT_COUNT];
    int n_head, n_head_kv, head_dim; /* for plans that split attention by heads */
} hllm_graph;

int hllm_graph_build(const hllm_model_s *m, hllm_graph *g);
void hllm_graph_free(hllm_graph *g);

#endif
