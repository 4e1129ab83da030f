/* The CUDA processor's C-visible extras (the processor itself is hllm_proc_cuda_new in
 * proc/proc.h). Everything here is plain C; the CUDA C++ stays behind this boundary. */
#ifndef HLLM_CUDA_PROC_H
#define HLLM_CUDA_PROC_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Path selection, for tests and benchmarks (process-wide; -1 keeps the current value).
 * gemv_max_tok: MATMUL calls with n_tok <= this use the GEMV kernels (default 8, max 8);
 *               larger batches dequantize to f16/bf16 tiles and use cuBLAS.
 * split_max_tok: ATTENTION calls with n_tok <= this use the split-KV decode kernel (default 8);
 *               larger ones use the tiled flash-attention kernel (head_dim <= 256). */
void hllm_cuda_set_paths(int gemv_max_tok, int split_max_tok);
/* Prompt attention on tensor cores where the shape allows (F16 cache, head_dim % 16 == 0, up to
 * 128; default on, HLLM_CUDA_ATTN_MMA=0 turns it off): 0 uses the scalar flash kernel, which
 * tests compare against at f32 precision. -1 keeps the current value. */
void hllm_cuda_set_attn_mma(int on);

/* Row tiles of prompt matmuls over quantized or host-resident weights hold at most this many
 * elements (default 128M: a 256 MiB f16 tile; host-resident rows at most 32M); tests set it
 * small to run many tiles through the staging slots. <= 0 restores the default. Process-wide. */
void hllm_cuda_set_prompt_tile(long long elems);

/* Captured decode steps (proc.h step_begin / step_end): on (1, the default unless the
 * environment sets HLLM_CUDA_GRAPHS=0) or off (0); -1 keeps the current value. Off, every op
 * runs as issued. Process-wide. */
void hllm_cuda_set_graphs(int on);

/* Fusing neighbouring ops of captured steps into one kernel (q/k/v and gate/up matmuls; a
 * matmul and the residual add of its output; rope and the KV store; and, with 1 only, gate/up
 * matmuls + swiglu): 2 (the default, or as the environment's HLLM_CUDA_FUSE says), 1 (all),
 * 0 (off); -1 keeps the current value. Results are the same bit for bit either way.
 * Process-wide. */
void hllm_cuda_set_fusion(int on);

/* How captured steps hand activations to and from a host processor: 0 copy engine and stream
 * memory operations, 1 small copies as kernels, 2 (the default, or as the environment's
 * HLLM_CUDA_HANDOFF says) also each copy with the flag operation beside it as one kernel; -1
 * keeps the current value. Results are the same bit for bit. Process-wide. */
void hllm_cuda_set_handoff(int mode);

/* Counters of a CUDA processor's captured steps: graphs captured, steps replayed from a graph,
 * and steps whose ops differed from their shape's graph (run as issued, then captured anew). */
struct hllm_proc;
void hllm_cuda_graph_stats(struct hllm_proc *p, long *captures, long *replays, long *mismatches);
/* Steps whose graph's first part (the ops before its first wait on another processor) was
 * launched while the rest was still being issued, since the processor was created. */
long hllm_cuda_early_launches(struct hllm_proc *p);
/* 1: a step that waits on another processor is captured in two graphs and the first launched
 * at that wait (the default, unless the environment has HLLM_CUDA_EARLY=0); 0: one graph.
 * Results are the same bit for bit. Process-wide; applies to steps captured afterwards. */
void hllm_cuda_set_early(int on);
/* Ops that ran inside another op's kernel (fusions), since the processor was created. */
long hllm_cuda_fused_ops(struct hllm_proc *p);

/* Number of CUDA devices usable by this build (0 when there is no GPU or driver); when 0 and
 * why != NULL, *why is a one-line reason. Never fails hard. */
int hllm_cuda_device_count(const char **why);

#ifdef __cplusplus
}
#endif
#endif
