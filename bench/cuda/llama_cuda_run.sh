#!/usr/bin/env bash
# Device-side: builds llama.cpp's CUDA llama-bench from node-llama-cpp 3.21.1's source bundle
# (carried as .carry/gitRelease.bundle) and runs it next to heterollm on the same synth GGUFs,
# in one call: GPU-only decode/prefill, and the VRAM-capped split (llama.cpp -ngl 16 of 32
# layers vs heterollm --gpu-mem 50%). Results go to $OUT.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
git clone -q .carry/gitRelease.bundle /tmp/llama || exit 1
gen=""
command -v ninja >/dev/null && gen="-G Ninja"
(cd /tmp/llama && cmake -S . -B build $gen -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_CUDA_NCCL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release >"$OUT/llama_cmake.log" 2>&1 &&
    cmake --build build -j16 --target llama-bench >>"$OUT/llama_cmake.log" 2>&1) &
LB=$!
cmake -S . -B build-dev -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null && cmake --build build-dev -j4 --target hllm_cli >/dev/null || exit 1
for m in llama3.2-1b:q4_0 llama3.2-1b:q8_0 llama3-8b:q4_0; do
    ./build-dev/hllm synth --preset "${m%%:*}" --type "${m##*:}" -o "/tmp/${m%%:*}-${m##*:}.gguf" -q
done
echo "hllm built, models at $(el)s"
for f in /tmp/llama3.2-1b-q4_0 /tmp/llama3.2-1b-q8_0 /tmp/llama3-8b-q4_0; do
    ./build-dev/hllm bench -m $f.gguf --proc cuda -p 512 -n 128 -r 3 | tail -2
done
./build-dev/hllm bench -m /tmp/llama3-8b-q4_0.gguf -t 16 -p 512 -n 64 -r 2 --gpu-mem 50% | tail -2
wait $LB
echo "llama.cpp built: rc=$? at $(el)s"
LLB=/tmp/llama/build/bin/llama-bench
if [ -x $LLB ]; then
    for f in /tmp/llama3.2-1b-q4_0 /tmp/llama3.2-1b-q8_0 /tmp/llama3-8b-q4_0; do
        $LLB -m $f.gguf -ngl 99 -p 512 -n 128 -r 3 2>/dev/null | grep -E "pp512|tg128"
    done
    $LLB -m /tmp/llama3-8b-q4_0.gguf -ngl 16 -t 16 -p 512 -n 64 -r 2 2>/dev/null | grep -E "pp512|tg64"
else
    tail -20 "$OUT/llama_cmake.log"
fi
echo "done at $(el)s"
