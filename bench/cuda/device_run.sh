#!/usr/bin/env bash
# Device-side script for the CUDA processor (run through the `run` tool from the repo root):
#   bench/cuda/device_run.sh test    build, unit tests, end-to-end cpu-vs-cuda greedy runs
#   bench/cuda/device_run.sh bench   synth llama3.2-1b (q4_0, q8_0, f16) and hllm bench on cuda
# Logs go to $OUT (when set). Needs .carry/stories260K.gguf (carried) for the e2e part.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
what=${1:-test}
B=build-dev
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ ! -x $B/hllm ] || [ ! -x $B/test_cuda ]; then
  cmake -S . -B $B -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
fi
cmake --build $B -j16 2>&1 | grep -E "error|warning" ; test -x $B/test_cuda || exit 1

cmp_run() { # model label extra-args...
  local m=$1 l=$2; shift 2
  timeout 10 $B/hllm run -m "$m" -p "Once upon a time" --temp 0 -n 64 --proc cpu "$@" >"$OUT/$l.cpu.txt" 2>"$OUT/$l.cpu.err"
  timeout 20 $B/hllm run -m "$m" -p "Once upon a time" --temp 0 -n 64 --proc cuda "$@" >"$OUT/$l.cuda.txt" 2>"$OUT/$l.cuda.err"
  local rc=$?
  if cmp -s "$OUT/$l.cpu.txt" "$OUT/$l.cuda.txt"; then s=SAME; else s=DIFF; fi
  printf '%-28s rc=%d %s  cuda: %s\n' "$l" $rc $s "$(grep -h generation "$OUT/$l.cuda.err" | tr -d '\n')"
  [ $s = DIFF ] && { echo "  cpu : $(head -c 160 $OUT/$l.cpu.txt | tr '\n' ' ')"; echo "  cuda: $(head -c 160 $OUT/$l.cuda.txt | tr '\n' ' ')"; tail -2 $OUT/$l.cuda.err; }
}

if [ "$what" = test ] && [ -z "${SKIP_UNIT:-}" ]; then
  set -o pipefail
  ( time ./$B/test_cuda ) 2>&1 | tee "$OUT/test_cuda.log" | grep -v "^FAIL" | tail -15
  echo "failures: $(grep -c ^FAIL "$OUT/test_cuda.log")"; grep ^FAIL "$OUT/test_cuda.log" | head -25
fi
if [ "$what" = test ]; then
  cmp_run .carry/stories260K.gguf stories260K
  cmp_run .carry/stories260K.gguf stories260K-kvf32 --kv-type f32
  for a in ${ARCHS:-llama qwen2 qwen3}; do for t in ${TTYPES:-f32 f16 bf16 q8_0 q4_0 q4_k q6_k}; do
    $B/hllm synth --preset tiny --arch $a --type $t -o /tmp/tiny-$a-$t.gguf -q || continue
    cmp_run /tmp/tiny-$a-$t.gguf tiny-$a-$t
  done; done
  # prefill through the GEMM + flash path, and batched decode: a long prompt
  python3 -c "print(' '.join(['the quick brown fox jumps over the lazy dog']*40))" > /tmp/long.txt
  timeout 20 $B/hllm run -m .carry/stories260K.gguf -f /tmp/long.txt --temp 0 -n 32 --proc cpu >"$OUT/long.cpu.txt" 2>/dev/null
  timeout 20 $B/hllm run -m .carry/stories260K.gguf -f /tmp/long.txt --temp 0 -n 32 --proc cuda >"$OUT/long.cuda.txt" 2>"$OUT/long.cuda.err"
  cmp -s "$OUT/long.cpu.txt" "$OUT/long.cuda.txt" && echo "long prompt: SAME" || { echo "long prompt: DIFF"; tail -c 300 $OUT/long.cpu.txt; echo; tail -c 300 $OUT/long.cuda.txt; tail -3 $OUT/long.cuda.err; }
fi

if [ "$what" = bench ]; then
  for t in ${TYPES:-q4_0 q8_0 f16}; do
    ( time $B/hllm synth --preset llama3.2-1b --type $t -o /tmp/l1b-$t.gguf -q ) 2>&1 | grep real
    timeout 120 $B/hllm bench -m /tmp/l1b-$t.gguf --proc cuda -p ${PP:-512} -n ${TG:-128} -r 2 2>&1 | tee -a "$OUT/bench.md" | grep -E "\|"
    timeout 30 $B/hllm run -m /tmp/l1b-$t.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda --verbose 2>&1 | tail -25 > "$OUT/verbose-$t.txt"
    rm -f /tmp/l1b-$t.gguf
  done
fi
