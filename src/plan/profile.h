/* A measured profile of this machine's processors, as `key = value` lines the planner reads.
 *
 * Keys (PROC is a processor name: cpu, cuda; MEM is dev or host; TYPE a tensor type name):
 *   PROC.threads                    CPU threads used when measuring
 *   PROC.matmul.MEM.TYPE.bN         matmul speed at N tokens, in GB/s of weight bytes
 *                                   (bandwidth at N = 1; compute rate, expressed per weight
 *                                   byte, at large N), over the model's matrix shapes
 *   PROC.matmul.MEM.TYPE.RxC.bN.us  the same per shape, microseconds per call (information)
 *   PROC.read_gbs                   reading its own memory (CPU: DRAM; GPU: HBM), via GEMV
 *   PROC.host_read_gbs              GPU reading pinned host memory directly (zero-copy)
 *   PROC.concurrent_host_gbs        its host-read rate while the other processor reads too
 *                                   (the GPU zero-copy)
 *   cuda.concurrent_h2d_gbs         the GPU's copy engine copying host memory to VRAM while
 *   cpu.concurrent_h2d_cpu_gbs      the CPU reads its weights, and the CPU's rate meanwhile
 *                                   (information: whether staging a decode's host rows through
 *                                   VRAM would draw more than zero-copy; no plan uses it yet)
 *   PROC.h2d_gbs, PROC.d2h_gbs      copy bandwidth host <-> device (pinned)
 *   PROC.op_us                      cost of issuing one small op
 *   sync.round_trip_us              CPU signal -> GPU wait, GPU signal -> CPU wait
 * plus `machine = NAME` and `date = ...` strings. */
#ifndef HLLM_PLAN_PROFILE_H
#define HLLM_PLAN_PROFILE_H
#include "model/model.h"
#include "proc/proc.h"

typedef struct {
    char key[96];
    double val;
} hllm_profile_kv;

typedef struct {
    char machine[128];
    char date[64];
    int n, cap;
    hllm_profile_kv *kv;
} hllm_profile;

hllm_profile *hllm_profile_new(void);
void hllm_profile_free(hllm_profile *p);
double hllm_profile_get(const hllm_profile *p, const char *key, double dflt);
int hllm_profile_set(hllm_profile *p, const char *key, double v);
int hllm_profile_save(const hllm_profile *p, const char *path);
hllm_profile *hllm_profile_load(const char *path); /* NULL + hllm_fail */
/* Built-in estimates for the device host of DESIGN.md, used when no profile file is given. */
hllm_profile *hllm_profile_builtin(void);

/* Matmul speed (GB/s of weights) for a processor / memory / type / batch: the measured value,
 * else the nearest measured batch, else any type's, else dflt. mem: HLLM_MEM_*. */
double hllm_profile_matmul_gbs(const hllm_profile *p, const char *proc, int mem, int type, int batch, double dflt);
/* Seconds for n_rows rows of one token of a rows x cols matrix, from the profile's whole-matrix
 * and slice timings of that shape (a fixed part plus a part per row), or -1 without them. */
double hllm_profile_matmul_slice_s(const hllm_profile *p, const char *proc, int mem, int type, int64_t rows, int64_t cols,
                                   int64_t n_rows);
/* The same for one matrix shape (rows x cols) when the profile measured it (nearest batch),
 * else dflt: small matrices run below a type's average speed. */
double hllm_profile_matmul_shape_gbs(const hllm_profile *p, const char *proc, int mem, int type, int64_t rows, int64_t cols,
                                     int batch, double dflt);

typedef struct {
    double budget_s;      /* target time per measurement (default 0.03) */
    bool quick;           /* batches 1 and 512 only */
    size_t working_set;   /* bytes of weight copies per shape (default 1 GiB: beyond the caches) */
    void (*progress)(const char *line, void *user);
    void *user;
} hllm_profile_opts;

/* Measures procs on the matrix shapes of model m (NULL: llama3-8b's q4_0 shapes). */
int hllm_profile_measure(const hllm_model_s *m, hllm_proc **procs, int n_procs, const hllm_profile_opts *o,
                         hllm_profile *out);

#endif
