#!/usr/bin/env bash
# One device call for the decode launch experiments (sessions 13-14; run from the repo root): the
# GEMV lab (bench/cuda/gemv_lab.cu); GPU tests with HLLM_CUDA_PASS=1 (small kernels trigger the
# next launch before their wait) and at the defaults; greedy text with PASS off and on; then
# llama3-8b tg128, the timed configurations alternated (CFGS): the preload off
# (HLLM_CUDA_PRELOAD=0, the L2 prefetch instead), the default, PASS=1, HLLM_CUDA_PREFETCH=0 (the
# K-quants keep the L2 prefetch the lab found costly between GEMVs back to back), and the GEMVs
# alone (HLLM_CUDA_SKIP: every other op left out, timing only) against the lab's GEMV-only step.
# Uses a carried build-dev (hllm and the test programs), else builds it (~2 min on 16 cores).
# About 8 minutes with a carried build: give it the whole call (timeout_s 600), or TYPES=q4_0.
# Env: TYPES (q4_0 q8_0 q4_k), REPS (2), TEST_ENVS and CFGS (';'-separated environments of the
# test runs and of the timed runs; TEST_ENVS= none), LAB (1; 0: no lab), W (/tmp/w), OUT.
set -u
TYPES=${TYPES:-q4_0 q8_0 q4_k} REPS=${REPS:-2} W=${W:-/tmp/w} OUT=${OUT:-/tmp/out}
B=build-dev
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0))s]"; }
mkdir -p "$W" "$OUT"
if ! [ -x $B/test_cuda ] || ! $B/hllm --version >/dev/null 2>&1; then
    cmake -S . -B $B -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 &&
        cmake --build $B -j"$(nproc)" >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
fi
echo "$(el) $($B/hllm --version | head -1) on $(nvidia-smi --query-gpu=name --format=csv,noheader)"
(for t in $TYPES; do [ -s "$W/l8-$t.gguf" ] || $B/hllm synth --preset llama3-8b --type "$t" -o "$W/l8-$t.gguf" -q; done
    echo ok >"$W/synth.done") >"$W/synth.log" 2>&1 &
# the tests read ../shared/models/stories260K.gguf: the device has it only where it was carried
[ -f ../shared/models/stories260K.gguf ] || { [ -f .carry/stories260K.gguf ] && mkdir -p ../shared/models &&
    cp .carry/stories260K.gguf ../shared/models/; }
# the GEMV lab first (standalone: nvcc here): with small kernels between the GEMVs, PASS or not
if [ "${LAB:-1}" = 1 ]; then
    nvcc -O3 -arch=sm_90 -Isrc -o /tmp/gemv_lab bench/cuda/gemv_lab.cu && timeout 120 /tmp/gemv_lab 32 >"$OUT/lab.txt" 2>&1
    rc=$?
    echo "$(el) lab rc=$rc, rows that differ: $(grep -c "^MISMATCH" "$OUT/lab.txt")"
    grep -vE "^MISMATCH" "$OUT/lab.txt" | tail -30
fi
IFS=";" read -r -a tenvs <<<"${TEST_ENVS-HLLM_CUDA_PASS=1;HLLM_CUDA_PASS=0}"
for env in "${tenvs[@]}"; do
    for t in test_cuda test_cuda_fuse test_exec_cuda; do
        env $env timeout 240 ./$B/$t >"$OUT/$t.log" 2>&1
        rc=$?
        echo "$(el) $env $t rc=$rc: $(tail -1 "$OUT/$t.log")"
        grep '^FAIL' "$OUT/$t.log" | head -5
    done
done
for i in $(seq 1 90); do [ -f "$W/synth.done" ] && break; sleep 2; done
S="Once upon a time"
M0=../shared/models/stories260K.gguf
$B/hllm run -m $M0 -p "$S" --temp 0 -n 48 --proc cpu >/tmp/s0.txt 2>/dev/null
HLLM_CUDA_PASS=1 $B/hllm run -m $M0 -p "$S" --temp 0 -n 48 --proc cuda >/tmp/s1.txt 2>/dev/null
cmp -s /tmp/s0.txt /tmp/s1.txt && echo "stories260K cpu vs cuda (PASS=1): SAME" || echo "stories260K cpu vs cuda (PASS=1): DIFF"
IFS=";" read -r -a cfgs <<<"${CFGS:-HLLM_CUDA_PRELOAD=0;HLLM_CUDA_PASS=0;HLLM_CUDA_PASS=1;HLLM_CUDA_PREFETCH=0;HLLM_CUDA_SKIP=rmsnorm,rope,kv,attention,swiglu,add}"
for t in $TYPES; do
    M=$W/l8-$t.gguf
    for p in 0 1; do HLLM_CUDA_PASS=$p timeout 60 $B/hllm run -m "$M" -p "$S" --temp 0 -n 32 --proc cuda >/tmp/t-$p.txt 2>/dev/null; done
    if ! [ -s /tmp/t-0.txt ]; then echo "$t: no text (the run failed)"
    elif cmp -s /tmp/t-0.txt /tmp/t-1.txt; then echo "$t PASS 0 vs 1: SAME text"; else echo "$t PASS 0 vs 1: DIFF"; fi
    for rep in $(seq 1 "$REPS"); do
        for cfg in "${cfgs[@]}"; do
            r=$(env $cfg timeout 60 $B/hllm bench -m "$M" --proc cuda -p 0 -n 128 -r 3 2>/dev/null | grep tg128)
            echo "$(el) $t $cfg: $(echo "$r" | awk -F'|' 'NF > 1 {print $(NF-1)}')"
        done
    done
done
echo "$(el) end"
