/* The profiler with a CPU and a device: every two-processor measurement (copies, the sync round
 * trip, concurrent host reads by GEMVs and by the copy engine, the handoff of a cut matmul) runs
 * through the processor interface, against the queued test processor standing in for a GPU (its
 * work runs on another thread after it is issued, as a GPU's does). The numbers say nothing about
 * a real GPU; what is checked is that each measurement completes, saves a positive figure under
 * its documented key, and that the profile file reads back as written. */
#include "testutil.h"
#include "queue_proc.h"
#include "core/error.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "plan/profile.h"
#include "proc/proc.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void positive(const hllm_profile *pf, const char *key) {
    const double v = hllm_profile_get(pf, key, -1);
    CHECKF(v > 0 && isfinite(v), "%s = %g", key, v);
}

static void test_two_processors(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/hllm_test_profile_%d.gguf", (int)getpid());
    hllm_synth_opts so = {.arch = "llama", .preset = "tiny", .type = HLLM_TYPE_Q4_0, .seed = 3, .n_threads = 2};
    CHECKF(hllm_synth_write(&so, path) == 0, "synth: %s", hllm_error());
    hllm_gguf_file *f = hllm_gguf_open(path);
    CHECKF(f != NULL, "open: %s", hllm_error());
    hllm_model_s *m = f ? hllm_model_from_gguf(f) : NULL;
    CHECKF(m != NULL, "model: %s", hllm_error());
    hllm_proc *procs[2] = {hllm_proc_cpu_new(2), test_queue_proc_new(0, 99u)};
    CHECK(procs[0] && procs[1]);
    hllm_profile *pf = hllm_profile_new();
    if (m && procs[0] && procs[1] && pf) {
        /* small working sets and short timings: the test checks the measurements run, not speed */
        hllm_profile_opts o = {.budget_s = 0.002, .quick = true, .working_set = (size_t)8 << 20};
        CHECKF(hllm_profile_measure(m, procs, 2, &o, pf) == 0, "measure: %s", hllm_error());
        positive(pf, "cpu.threads");
        positive(pf, "queue.h2d_gbs");
        positive(pf, "queue.d2h_gbs");
        positive(pf, "sync.round_trip_us");
        positive(pf, "cpu.concurrent_host_gbs");
        positive(pf, "queue.concurrent_host_gbs");
        positive(pf, "cpu.concurrent_h2d_cpu_gbs");
        positive(pf, "queue.concurrent_h2d_gbs");
        positive(pf, "cpu.matmul.dev.q4_0.b1");
        positive(pf, "queue.matmul.host.q4_0.b1");

        char ppath[256];
        snprintf(ppath, sizeof ppath, "/tmp/hllm_test_profile_%d.txt", (int)getpid());
        CHECKF(hllm_profile_save(pf, ppath) == 0, "save: %s", hllm_error());
        hllm_profile *back = hllm_profile_load(ppath);
        CHECKF(back != NULL, "load: %s", hllm_error());
        if (back) {
            CHECKF(back->n == pf->n, "%d values read back of %d", back->n, pf->n);
            for (int i = 0; i < pf->n; i++) {
                const double v = pf->kv[i].val, w = hllm_profile_get(back, pf->kv[i].key, -1);
                CHECKF(fabs(w - v) <= 1e-5 * fabs(v), "%s: %g read back as %g", pf->kv[i].key, v, w);
            }
            hllm_profile_free(back);
        }
        unlink(ppath);
    }
    hllm_profile_free(pf);
    for (int i = 0; i < 2; i++)
        if (procs[i]) hllm_proc_free(procs[i]);
    if (m) hllm_model_destroy(m);
    else if (f) hllm_gguf_close(f);
    unlink(path);
}

int main(void) {
    test_two_processors();
    return test_summary("test_profile");
}
