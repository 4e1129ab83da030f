#!/usr/bin/env bash
# CPU side by side on the device host (16 Xeon cores): heterollm vs llama.cpp's prebuilt CPU
# libllama on synth llama3-8b, 16 threads, same run. Run from the repo root on the device with
# .carry/peer carried (build/peer/lib and build/peer/llama-ref from tests/peer/setup.sh).
# Env: TYPES (q4_0 q8_0 q4_k_m f16: ~8 minutes in all, f16 the longest, so last), BUDGET (s: a
# type starts only before this much time has passed; default 400), OUT, MATMUL=1 (also the
# single-core matmul benchmark, hot and DRAM-streaming GB/s per type, into $OUT/raw/matmul.txt).
set -u
OUT=${OUT:-/tmp/out}
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
mkdir -p "$OUT/raw" /tmp/models
cmake -S . -B build -DHLLM_CUDA=off -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j16 --target hllm_cli bench_matmul >/dev/null || exit 1
cc -O3 -march=native -pthread bench/bw_read.c -o /tmp/bw_read
TH=${TH:-16}
echo "$TH $(/tmp/bw_read "$TH" 4096)" >"$OUT/raw/bandwidth.txt"
echo "built, bandwidth $(cat "$OUT/raw/bandwidth.txt") GB/s at $(el)s"
for t in ${TYPES:-q4_0 q8_0 q4_k_m f16}; do
    [ "$(el)" -gt "${BUDGET:-400}" ] && { echo "budget: skip $t"; continue; }
    m=/tmp/models/llama3-8b-$t.gguf
    ./build/hllm synth --preset llama3-8b --type "$t" -o "$m" -q || continue
    echo "synth $t at $(el)s"
    ./build/hllm bench -m "$m" -p 512 -n 128 -t "$TH" -r 2 -o json >"$OUT/raw/llama3-8b-$t.hllm.json"
    echo "hllm $t at $(el)s"
    HLLM_LLAMA_LIB_DIR=.carry/peer/lib .carry/peer/llama-ref bench -m "$m" -p 512 -n 128 -t "$TH" -r 2 --kv f16 --fa 0 -o json \
        >"$OUT/raw/llama3-8b-$t.llama.json" 2>"$OUT/llama-$t.err"
    echo "llama.cpp $t at $(el)s"
    rm -f "$m"
done
if [ "${MATMUL:-0}" = 1 ]; then
    { ./build/bench_matmul -r 256 -c 4096 -n 1 -t q4_0,q8_0,q4_K,q6_K,f16 -i avx512 -s 0.2 -R 3 -H 1
      ./build/bench_matmul -r 4096 -c 4096 -n 1 -t q4_0,q8_0,q4_K,q6_K,f16 -i avx512 -s 0.3 -R 2 -g 64; } \
        >"$OUT/raw/matmul.txt" 2>&1
    echo "matmul at $(el)s"
fi
python3 bench/report.py "$OUT" "device host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
