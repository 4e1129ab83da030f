#!/usr/bin/env bash
# Device-side script for the CUDA decode work (issue 5), run through the `run` tool from the repo
# root: build, unit tests, end-to-end greedy checks (graphs on vs off, cpu vs cuda on tiny
# models), then hllm bench tg128 / pp512 on synth llama3.2-1b (q4_0, q8_0, f16; q4_0 also with
# HLLM_CUDA_PDL=0 and HLLM_CUDA_GRAPHS=0) and, while time is left, llama3-8b q4_0. Stays inside BUDGET seconds.
# Env: BUDGET (default 230), SKIP_TEST=1, TYPES, BIG=0 (no 8b).
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
B=build-dev
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
left() { echo $((${BUDGET:-230} - $(el))); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
cmake -S . -B $B -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build $B -j16 2>&1 | grep -E "error|warning"
test -x $B/test_cuda || exit 1
echo "built at $(el)s"

if [ -z "${SKIP_TEST:-}" ]; then
  timeout 120 ./$B/test_cuda >"$OUT/test_cuda.log" 2>&1
  echo "test_cuda rc=$? at $(el)s"
  grep -v "^FAIL" "$OUT/test_cuda.log" | tail -14
  echo "failures: $(grep -c ^FAIL "$OUT/test_cuda.log")"
  grep ^FAIL "$OUT/test_cuda.log" | head -20
  # end to end through the executor (hooks on): cpu vs cuda on tiny models
  for t in q4_0 q8_0 f16; do
    $B/hllm synth --preset tiny --type $t -o /tmp/tiny-$t.gguf -q || continue
    timeout 20 $B/hllm run -m /tmp/tiny-$t.gguf -p "Once upon a time" --temp 0 -n 48 --proc cpu >/tmp/c.txt 2>/dev/null
    timeout 20 $B/hllm run -m /tmp/tiny-$t.gguf -p "Once upon a time" --temp 0 -n 48 --proc cuda >/tmp/g.txt 2>/tmp/g.err
    cmp -s /tmp/c.txt /tmp/g.txt && echo "tiny $t cpu vs cuda: SAME" || { echo "tiny $t cpu vs cuda: DIFF"; tail -2 /tmp/g.err; }
  done
  if [ -f .carry/stories260K.gguf ]; then
    timeout 20 $B/hllm run -m .carry/stories260K.gguf -p "Once upon a time" --temp 0 -n 64 --proc cpu >/tmp/c.txt 2>/dev/null
    timeout 20 $B/hllm run -m .carry/stories260K.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda >/tmp/g.txt 2>/dev/null
    cmp -s /tmp/c.txt /tmp/g.txt && echo "stories260K cpu vs cuda: SAME" || echo "stories260K cpu vs cuda: DIFF"
  fi
fi

echo "bench from $(el)s"
for t in ${TYPES:-q4_0 q8_0 f16}; do
  [ "$(left)" -lt 25 ] && { echo "out of time before $t"; break; }
  $B/hllm synth --preset llama3.2-1b --type $t -o /tmp/l1b-$t.gguf -q || continue
  ls -l /tmp/l1b-$t.gguf | awk '{printf "size %s bytes\n", $5}'
  timeout 60 $B/hllm bench -m /tmp/l1b-$t.gguf --proc cuda -p 512 -n 128 -r 3 2>&1 | tee -a "$OUT/bench.md" | grep -E "pp|tg"
  if [ $t = q4_0 ]; then
    HLLM_CUDA_PDL=0 timeout 30 $B/hllm bench -m /tmp/l1b-$t.gguf --proc cuda -p 0 -n 128 -r 3 2>&1 | grep tg | sed 's/$/  (pdl off)/'
    HLLM_CUDA_GRAPHS=0 timeout 30 $B/hllm bench -m /tmp/l1b-$t.gguf --proc cuda -p 0 -n 128 -r 3 2>&1 | grep tg | sed 's/$/  (graphs off)/'
    # graphs on and off must give the same text
    timeout 30 $B/hllm run -m /tmp/l1b-$t.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda >/tmp/on.txt 2>/dev/null
    HLLM_CUDA_GRAPHS=0 timeout 30 $B/hllm run -m /tmp/l1b-$t.gguf -p "Once upon a time" --temp 0 -n 64 --proc cuda >/tmp/off.txt 2>/dev/null
    cmp -s /tmp/on.txt /tmp/off.txt && echo "l1b $t graphs on vs off: SAME" || echo "l1b $t graphs on vs off: DIFF"
  fi
  rm -f /tmp/l1b-$t.gguf
done
if [ "${BIG:-1}" = 1 ] && [ "$(left)" -gt 90 ]; then
  echo "8b from $(el)s"
  timeout $(($(left) - 40)) $B/hllm synth --preset llama3-8b --type q4_0 -o /tmp/l8b.gguf -q && ls -l /tmp/l8b.gguf | awk '{printf "size %s bytes\n", $5}' &&
    timeout $(($(left) - 5)) $B/hllm bench -m /tmp/l8b.gguf --proc cuda -p 512 -n 128 -r 2 2>&1 | tee -a "$OUT/bench.md" | grep -E "pp|tg"
  rm -f /tmp/l8b.gguf
fi
echo "done at $(el)s"
