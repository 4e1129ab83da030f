#!/usr/bin/env bash
# VRAM fills forced against each other on the device host, alternated, with the solver's
# prediction for each, then the chosen plan's greedy tokens against the CPU alone. One device
# call (~2.5 min for one type and two caps with a carried build-dev/hllm; add ~35 s to build).
# Run from the repo root:  bash bench/hetero/fill_ab.sh
# Env: TYPES (q4_0), CAPS (50 75), FILLS (layers attn-layers), REPS (2), TH (16), PRESET
# (llama3-8b), W (/tmp/hetero: models and profiles, kept while the machine stays warm), OUT,
# ENVS ("-": none; else settings alternated within each fill, e.g. "HLLM_CUDA_PRELOAD=1
# HLLM_CUDA_PRELOAD=2").
# Prints one line per run: type, cap, fill, tok/s, and the host's trace (HLLM_EXEC_TRACE=1).
set -u
TYPES=${TYPES:-q4_0} CAPS=${CAPS:-50 75} FILLS=${FILLS:-layers attn-layers} REPS=${REPS:-2} TH=${TH:-16} ENVS=${ENVS:--}
PRESET=${PRESET:-llama3-8b} W=${W:-/tmp/hetero} OUT=${OUT:-/tmp/out}
B=build-dev
T0=$(date +%s)
el() { echo "[$(($(date +%s) - T0))s]"; }
mkdir -p "$W/models" "$OUT"
if ! $B/hllm --version >/dev/null 2>&1; then
    cmake -S . -B $B -DHLLM_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 &&
        cmake --build $B -j"$(nproc)" --target hllm_cli >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
fi
echo "$(el) $($B/hllm --version | head -1) on $(nvidia-smi --query-gpu=name --format=csv,noheader)"
for t in $TYPES; do
    M=$W/models/$PRESET-$t.gguf P=$W/$t.profile
    [ -s "$M" ] || $B/hllm synth --preset "$PRESET" --type "$t" -o "$M" -q || exit 1
    [ -s "$P" ] || timeout 120 $B/hllm profile -m "$M" -t "$TH" -o "$P" 2>"$OUT/profile-$t.log" || exit 1
    cp "$P" "$OUT/"
    echo "$(el) $t: $(grep -E 'concurrent_host_gbs' "$P" | tr '\n' ' ')"
    for cap in $CAPS; do
        # every candidate's prediction (the fills named here among them)
        $B/hllm plan -m "$M" --gpu-mem "$cap%" --profile "$P" 2>/dev/null | grep -E "decode .* ms|^decode bound" | sed 's/  */ /g' \
            >"$OUT/plan-$t-$cap.txt"
        grep -E "^ \*|bound" "$OUT/plan-$t-$cap.txt"
        for rep in $(seq 1 "$REPS"); do
            for f in $FILLS; do for v in $ENVS; do
                tag=$(printf '%s' "${v#-}" | tr -c 'A-Za-z0-9' '_')
                e="$OUT/run-$t-$cap-$f-$rep${tag:+-$tag}.err"
                r=$(env ${v#-} HLLM_VRAM_FILL=$f HLLM_EXEC_TRACE=1 timeout 60 $B/hllm bench -m "$M" -t "$TH" -p 0 -n 64 -r 2 \
                    --gpu-mem "$cap%" --split tensor --profile "$P" 2>"$e" | grep tg64)
                echo "$(el) $t $cap% $f ${v#-}: $(echo "$r" | awk -F'|' '{print $8}') | $(grep -o 'per token.*' "$e" | head -1)"
            done; done
        done
        # the solver's own choice: its greedy tokens against the CPU alone's
        timeout 60 $B/hllm run -m "$M" -t "$TH" -p "Once upon a time" --temp 0 -n 24 --gpu-mem "$cap%" --profile "$P" \
            >"$OUT/tokens-$t-$cap.txt" 2>"$OUT/tokens-$t-$cap.err"
        [ -s "$OUT/tokens-$t-cpu.txt" ] || timeout 120 $B/hllm run -m "$M" -t "$TH" -p "Once upon a time" --temp 0 -n 24 \
            --proc cpu >"$OUT/tokens-$t-cpu.txt" 2>/dev/null
        plan=$(grep -o 'processor[^,]*, [0-9]* threads' "$OUT/tokens-$t-$cap.err" | head -1)
        if cmp -s "$OUT/tokens-$t-$cap.txt" "$OUT/tokens-$t-cpu.txt"; then echo "$(el) $t $cap%: greedy tokens = the CPU's ($plan)"
        else # random synth weights leave near-ties, so say how far the two texts agree
            same=$(cmp "$OUT/tokens-$t-$cap.txt" "$OUT/tokens-$t-cpu.txt" 2>/dev/null | grep -o 'byte [0-9]*' | grep -o '[0-9]*')
            echo "$(el) $t $cap%: greedy tokens DIFFER from the CPU's after $((${same:-1} - 1)) of $(wc -c <"$OUT/tokens-$t-cpu.txt") bytes ($plan)"; fi
    done
done
echo "$(el) end"
