#!/usr/bin/env bash
# Side-by-side CPU benchmark: heterollm vs llama.cpp (node-llama-cpp 3.21.1's prebuilt
# libllama) on the same synth GGUFs, same threads, same run. Prints a markdown table
# (pp and tg for both, the ratio, decode as a fraction of measured DRAM read bandwidth)
# and writes bench/out/cpu.md, bench/out/cpu.json and bench/out/cpu.png.
#
# Environment: PRESETS (default "llama3.2-1b qwen2.5-1.5b"), TYPES ("q4_0 q8_0 q4_k f16"),
# THREADS ("1,2"), PP (512), TG (128), REPS (3), OUT (bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESETS=${PRESETS:-"llama3.2-1b qwen2.5-1.5b"}
TYPES=${TYPES:-"q4_0 q8_0 q4_k f16"}
THREADS=${THREADS:-"1,2"}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
OUT=${OUT:-bench/out}
mkdir -p "$OUT/models" "$OUT/raw"

make build >/dev/null
bash tests/peer/setup.sh >/dev/null
cc -O3 -march=native -pthread bench/bw_read.c -o "$OUT/bw_read"

echo "measuring DRAM read bandwidth..." >&2
: >"$OUT/raw/bandwidth.txt"
for t in ${THREADS//,/ }; do
    echo "$t $("$OUT/bw_read" "$t" 1024)" >>"$OUT/raw/bandwidth.txt"
done

for preset in $PRESETS; do
    for type in $TYPES; do
        model="$OUT/models/$preset-$type.gguf"
        if [ ! -s "$model" ]; then
            echo "synth $preset $type..." >&2
            ./build/hllm synth --preset "$preset" --type "$type" -o "$model" -q
        fi
        base="$OUT/raw/$preset-$type"
        echo "bench $preset $type (heterollm)..." >&2
        ./build/hllm bench -m "$model" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json >"$base.hllm.json"
        echo "bench $preset $type (llama.cpp)..." >&2
        # F16 KV as llama-bench, flash attention off on both sides (heterollm has none on the CPU)
        build/peer/llama-ref bench -m "$model" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" --kv f16 --fa 0 -o json \
            >"$base.llama.json" 2>/dev/null
    done
done

python3 bench/report.py "$OUT" "$(uname -m) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
