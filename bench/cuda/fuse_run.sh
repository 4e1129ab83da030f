#!/usr/bin/env bash
# Device-side script for the decode fusions (issue 5), run through the `run` tool from the repo
# root: build, test_cuda + test_cuda_fuse, greedy cpu-vs-cuda on tiny models, then hllm bench
# tg128 on synth llama3.2-1b and llama3-8b with the fusions and the GEMV's L2 prefetch on and
# off (HLLM_CUDA_FUSE=0 / 1 with gate-up-swiglu, HLLM_CUDA_PREFETCH=0), pp512 once per model, and last (NCU=1) the
# per-kernel times of decode steps under Nsight Compute. Stays inside BUDGET seconds.
# Env: BUDGET (default 330), SKIP_TEST=1, NCU=0, EARLY=1 (also build and time HLLM_PDL_EARLY), TYPES1B (default "q4_0 q8_0"), TYPES8B (default "q4_0"),
# BASE=path of another build's hllm (the code before, for side-by-side numbers and checks).
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
B=build-dev
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
left() { echo $((${BUDGET:-330} - $(el))); }
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
cmake -S . -B $B -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build $B -j16 2>&1 | grep -E "error|warning"
test -x $B/test_cuda || exit 1
echo "built at $(el)s"
if [ -n "${EARLY:-}" ]; then # the PDL experiment: dependents launched before the wait (HLLM_PDL_EARLY)
  cmake -S . -B build-early -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_FLAGS=-DHLLM_PDL_EARLY >/dev/null &&
    cmake --build build-early -j16 2>&1 | grep -E "error|warning"
  echo "built early at $(el)s"
fi

if [ -z "${SKIP_TEST:-}" ]; then
  for t in test_cuda_fuse test_cuda; do
    timeout 150 ./$B/$t >"$OUT/$t.log" 2>&1
    echo "$t rc=$? at $(el)s: $(tail -1 "$OUT/$t.log")"
    grep ^FAIL "$OUT/$t.log" | head -10
  done
  grep -E "^graph model|^fused|^rope" "$OUT/test_cuda.log" "$OUT/test_cuda_fuse.log" | sed 's/^[^:]*://' | head -30
  HLLM_CUDA_FUSE=1 timeout 150 ./$B/test_cuda >"$OUT/test_cuda-fuse1.log" 2>&1
  echo "test_cuda (HLLM_CUDA_FUSE=1) rc=$? at $(el)s: $(tail -1 "$OUT/test_cuda-fuse1.log")"
  grep ^FAIL "$OUT/test_cuda-fuse1.log" | head -5
  if [ -x build-early/test_cuda ]; then
    for t in test_cuda_fuse test_cuda; do
      timeout 150 ./build-early/$t >"$OUT/$t-early.log" 2>&1
      echo "$t (early PDL) rc=$? at $(el)s: $(tail -1 "$OUT/$t-early.log")"
      grep ^FAIL "$OUT/$t-early.log" | head -5
    done
  fi
  for t in q4_0 q8_0; do
    $B/hllm synth --preset tiny --type $t -o /tmp/tiny-$t.gguf -q || continue
    timeout 20 $B/hllm run -m /tmp/tiny-$t.gguf -p "Once upon a time" --temp 0 -n 48 --proc cpu >/tmp/c.txt 2>/dev/null
    timeout 20 $B/hllm run -m /tmp/tiny-$t.gguf -p "Once upon a time" --temp 0 -n 48 --proc cuda >/tmp/g.txt 2>/tmp/g.err
    cmp -s /tmp/c.txt /tmp/g.txt && echo "tiny $t cpu vs cuda: SAME" || { echo "tiny $t cpu vs cuda: DIFF"; tail -2 /tmp/g.err; }
    if [ -n "${BASE:-}" ]; then
      timeout 20 $BASE run -m /tmp/tiny-$t.gguf -p "Once upon a time" --temp 0 -n 48 --proc cuda >/tmp/b.txt 2>/dev/null
      cmp -s /tmp/c.txt /tmp/b.txt && echo "tiny $t cpu vs cuda (base): SAME" || echo "tiny $t cpu vs cuda (base): DIFF"
      cmp -s /tmp/g.txt /tmp/b.txt && echo "tiny $t cuda vs cuda (base): SAME" || echo "tiny $t cuda vs cuda (base): DIFF"
    fi
  done
  if [ -f ../stories260K.gguf ]; then
    timeout 20 $B/hllm run -m ../stories260K.gguf -p "Once upon a time" --temp 0 -n 64 --proc cpu >/tmp/c.txt 2>/dev/null
    timeout 20 $B/hllm run -m ../stories260K.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda >/tmp/g.txt 2>/dev/null
    cmp -s /tmp/c.txt /tmp/g.txt && echo "stories260K cpu vs cuda: SAME" || echo "stories260K cpu vs cuda: DIFF"
  fi
fi

tg() { # label, model, env... (HLLM_BIN: another hllm)
  local lab=$1 m=$2
  shift 2
  env "$@" timeout 40 ${HLLM_BIN:-$B/hllm} bench -m $m --proc cuda -p 0 -n 128 -r 3 2>&1 | grep tg | sed "s|\$|  ($lab)|" | tee -a "$OUT/bench.md"
}

echo "bench from $(el)s"
for t in ${TYPES1B:-q4_0 q8_0}; do
  [ "$(left)" -lt 60 ] && { echo "out of time before 1b $t"; break; }
  $B/hllm synth --preset llama3.2-1b --type $t -o /tmp/l1b-$t.gguf -q || continue
  echo "1b $t size $(stat -c %s /tmp/l1b-$t.gguf)"
  timeout 40 $B/hllm bench -m /tmp/l1b-$t.gguf --proc cuda -p 512 -n 0 -r 3 2>&1 | grep pp | tee -a "$OUT/bench.md"
  tg "1b $t" /tmp/l1b-$t.gguf
  tg "1b $t fuse off" /tmp/l1b-$t.gguf HLLM_CUDA_FUSE=0
  tg "1b $t fuse with gate-up-swiglu" /tmp/l1b-$t.gguf HLLM_CUDA_FUSE=1
  [ -x build-early/hllm ] && HLLM_BIN=build-early/hllm tg "1b $t early PDL" /tmp/l1b-$t.gguf
  if [ $t = q4_0 ]; then
    tg "1b $t prefetch off" /tmp/l1b-$t.gguf HLLM_CUDA_PREFETCH=0
    tg "1b $t gemv warps 8" /tmp/l1b-$t.gguf HLLM_CUDA_GEMV_WARPS=8
    tg "1b $t gemv warps 32" /tmp/l1b-$t.gguf HLLM_CUDA_GEMV_WARPS=32
  fi
  [ -n "${BASE:-}" ] && HLLM_BIN=$BASE tg "1b $t BASE" /tmp/l1b-$t.gguf
  if [ $t = q4_0 ]; then
    timeout 30 $B/hllm run -m /tmp/l1b-$t.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda >/tmp/on.txt 2>/dev/null
    HLLM_CUDA_GRAPHS=0 timeout 30 $B/hllm run -m /tmp/l1b-$t.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda >/tmp/off.txt 2>/dev/null
    cmp -s /tmp/on.txt /tmp/off.txt && echo "l1b $t graphs (fused) vs op by op: SAME" || echo "l1b $t graphs (fused) vs op by op: DIFF"
  fi
  [ "${NCU:-0}" = 1 ] || rm -f /tmp/l1b-$t.gguf
done
for t in ${TYPES8B:-q4_0}; do
  [ "$(left)" -lt 100 ] && { echo "out of time before 8b $t"; break; }
  echo "8b $t from $(el)s"
  timeout $(($(left) - 40)) $B/hllm synth --preset llama3-8b --type $t -o /tmp/l8b.gguf -q || continue
  echo "8b $t size $(stat -c %s /tmp/l8b.gguf) at $(el)s"
  tg "8b $t" /tmp/l8b.gguf
  [ "$(left)" -gt 40 ] && tg "8b $t fuse off" /tmp/l8b.gguf HLLM_CUDA_FUSE=0
  [ "$(left)" -gt 40 ] && tg "8b $t fuse with gate-up-swiglu" /tmp/l8b.gguf HLLM_CUDA_FUSE=1
  [ "$(left)" -gt 40 ] && [ -x build-early/hllm ] && HLLM_BIN=build-early/hllm tg "8b $t early PDL" /tmp/l8b.gguf
  if [ $t = q4_0 ]; then
    [ "$(left)" -gt 40 ] && tg "8b $t prefetch off" /tmp/l8b.gguf HLLM_CUDA_PREFETCH=0
    [ "$(left)" -gt 40 ] && tg "8b $t gemv warps 8" /tmp/l8b.gguf HLLM_CUDA_GEMV_WARPS=8
    [ "$(left)" -gt 40 ] && tg "8b $t gemv warps 32" /tmp/l8b.gguf HLLM_CUDA_GEMV_WARPS=32
  fi
  [ "$(left)" -gt 40 ] && [ -n "${BASE:-}" ] && HLLM_BIN=$BASE tg "8b $t BASE" /tmp/l8b.gguf
  [ "$(left)" -gt 40 ] && [ $t = q4_0 ] && timeout 40 $B/hllm bench -m /tmp/l8b.gguf --proc cuda -p 512 -n 0 -r 2 2>&1 | grep pp | tee -a "$OUT/bench.md"
  rm -f /tmp/l8b.gguf
done
if [ "${NCU:-0}" = 1 ] && [ -f /tmp/l1b-q4_0.gguf ] && [ "$(left)" -gt 30 ]; then
  echo "ncu from $(el)s"
  timeout $(($(left) - 5)) ncu --clock-control none --csv --page raw --print-units base --metrics gpu__time_duration.sum \
    $B/hllm run -m /tmp/l1b-q4_0.gguf -p "Once upon a time" --temp 0 -n 6 --proc cuda >$OUT/ncu.csv 2>/dev/null
  rm -f /tmp/l1b-*.gguf
  python3 - $OUT/ncu.csv <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 5]
if not rows: sys.exit("no ncu rows")
h = rows[0]; data = rows[2:]
ki, ti = h.index("Kernel Name"), h.index("gpu__time_duration.sum")
last = data[-150:]  # about the last decode step: replayed, fused
agg = collections.defaultdict(lambda: [0, 0.0])
for r in last:
    a = agg[r[ki].split('(')[0].split('<')[0][:40]]; a[0] += 1; a[1] += float(r[ti].replace(',', ''))
for k, a in sorted(agg.items(), key=lambda x: -x[1][1]):
    print(f"  {k:40s} n={a[0]:4d} {a[1]/a[0]/1e3:7.2f} us avg")
PY
fi
echo "done at $(el)s"
