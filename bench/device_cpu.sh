#!/usr/bin/env bash
# CPU side by side on the device host (16 Xeon cores): heterollm vs llama.cpp's prebuilt CPU
# libllama on synth llama3-8b, 16 threads, same run. Run from the repo root on the device with
# .carry/peer carried (build/peer/lib and build/peer/llama-ref from tests/peer/setup.sh). Env: TYPES (q4_0 q8_0), BUDGET (s), OUT.
set -u
OUT=${OUT:-/tmp/out}
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
mkdir -p "$OUT/raw" /tmp/models
cmake -S . -B build -DHLLM_CUDA=off -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j16 --target hllm_cli >/dev/null || exit 1
cc -O3 -march=native -pthread bench/bw_read.c -o /tmp/bw_read
TH=${TH:-16}
echo "$TH $(/tmp/bw_read "$TH" 4096)" >"$OUT/raw/bandwidth.txt"
echo "built, bandwidth $(cat "$OUT/raw/bandwidth.txt") GB/s at $(el)s"
for t in ${TYPES:-q4_0 q8_0}; do
    [ "$(el)" -gt "${BUDGET:-300}" ] && { echo "budget: skip $t"; continue; }
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
python3 bench/report.py "$OUT" "device host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
