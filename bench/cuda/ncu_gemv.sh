#!/usr/bin/env bash
# Kernel-level DRAM bandwidth of the decode GEMV kernels on a synth llama3.2-1b (per type), via
# Nsight Compute: bench/cuda/ncu_gemv.sh [types...]  (after device_run.sh built build-dev)
set -u
B=build-dev
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
for t in ${@:-q4_0 q8_0 q4_k f16}; do
  $B/hllm synth --preset llama3.2-1b --type $t -o /tmp/g-$t.gguf -q || continue
  ncu --clock-control none --csv --page raw --print-units base -k regex:k_gemv --launch-skip 150 --launch-count 120 \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum \
      $B/hllm run -m /tmp/g-$t.gguf -p "Once upon a time" --temp 0 -n 12 --proc cuda >$OUT/ncu-$t.csv 2>/dev/null
  python3 - $OUT/ncu-$t.csv $t <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 5]
h = rows[0]; data = rows[2:]
ki, ti, bi = h.index("Kernel Name"), h.index("gpu__time_duration.sum"), h.index("dram__bytes_read.sum")
agg = collections.defaultdict(lambda: [0, 0.0, 0.0])
for r in data:
    try: tm = float(r[ti].replace(',', '')); by = float(r[bi].replace(',', ''))
    except ValueError: continue
    a = agg[r[ki].split('(')[0][:60]]; a[0] += 1; a[1] += tm; a[2] += by
tot_t = sum(a[1] for a in agg.values()); tot_b = sum(a[2] for a in agg.values())
print(f"{sys.argv[2]}: GEMV kernels {len(data)} launches: {tot_b/tot_t:.0f} GB/s overall (time ns, bytes)")
for k, a in sorted(agg.items(), key=lambda x: -x[1][1])[:6]:
    print(f"  {k:60s} n={a[0]:4d} {a[1]/a[0]/1e3:8.1f} us  {a[2]/a[1]:7.0f} GB/s")
PY
  rm -f /tmp/g-$t.gguf
done
