#!/usr/bin/env bash
# Heterogeneous (CPU + GPU) side by side on the device host: heterollm with a VRAM cap against
# llama.cpp's CUDA llama-bench with the -ngl that holds the same weight bytes in VRAM.
# Run from the repo root, one stage per device call (each must fit in one call):
#   bash bench/hetero/device_run.sh prep          start the llama.cpp build (detached), build
#                                                 hllm with CUDA, synth the models, then wait
#                                                 for llama.cpp while BUDGET allows
#   bash bench/hetero/device_run.sh run q4_0      profile + every cap for these types (one call
#   bash bench/hetero/device_run.sh run q8_0      each: ~4-6 min for llama3-8b)
#   bash bench/hetero/device_run.sh report        only the table of what is in $W/hetero.jsonl
# State lives in $W (/tmp/hetero: models, profiles, results) and survives between calls while
# the machine stays warm; each stage writes the cumulative hetero.jsonl, hetero.md and raw.tgz
# (all logs) to $OUT, so the last call's $OUT holds everything. Needs .carry/gitRelease.bundle (carried)
# for llama.cpp; without it (or if its build fails) only heterollm is measured.
# Env: BUDGET (s, default 530), PRESET (llama3-8b), TYPES (q4_0 q8_0), NGLS (default: a quarter,
# half and three quarters of the layers: 8 16 24 for 32), TH (16), PP (512), TG (64), REPS (2),
# HLLM_CUDA (on), LLAMA_CUDA (ON), LLAMA_ARGS (extra llama-bench flags, e.g. "-fa off"),
# BUNDLE (.carry/gitRelease.bundle), LLAMA_BENCH (a llama-bench built elsewhere for this host and
# carried: no build), W (/tmp/hetero), OUT, COMMIT (the commit the results name;
# default git rev-parse, which in the device's copy of the tree can name an older commit: pass
# the hash literally, e.g. COMMIT=07e44a7).
set -u
STAGE=${1:-}
[ $# -gt 0 ] && shift
OUT=${OUT:-/tmp/out}
W=${W:-/tmp/hetero}
BUDGET=${BUDGET:-530}
PRESET=${PRESET:-llama3-8b}
TH=${TH:-16} PP=${PP:-512} TG=${TG:-64} REPS=${REPS:-2}
BUNDLE=${BUNDLE:-.carry/gitRelease.bundle}
B=build-dev
HLLM=$B/hllm
LL=$W/llama                     # llama.cpp source + build
LLB=${LLAMA_BENCH:-$LL/build/bin/llama-bench} # LLAMA_BENCH: a carried llama-bench (no build here)
NCPU=$(nproc)
T0=$(date +%s)
el() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET - $(el))); }
mkdir -p "$OUT" "$W/raw" "$W/models"
say() { echo "[$(el)s] $*" | tee -a "$W/stages.log"; }
say "stage ${STAGE:-?} $* on $(hostname), $NCPU CPUs, budget ${BUDGET}s"

# --- the detached llama.cpp build: pid in $W/llama.pid, exit status in $W/llama.rc when done ---
llama_building() { [ -f "$W/llama.pid" ] && [ ! -f "$W/llama.rc" ] && kill -0 "$(cat "$W/llama.pid")" 2>/dev/null; }
llama_start() {
    # not again once built, while building, or after a failed build (llama.rc holds its status);
    # a build killed between calls (pid gone, no status) is restarted and resumes where it was
    if [ -x "$LLB" ] || [ -f "$W/llama.rc" ] || llama_building; then return; fi
    rm -f "$W/llama.pid"
    if [ ! -f "$BUNDLE" ]; then say "no $BUNDLE: llama.cpp skipped"; return; fi
    [ -d "$LL/.git" ] || git -c advice.detachedHead=false clone -q "$BUNDLE" "$LL" || { say "clone of $BUNDLE failed"; return; }
    local gen=""
    command -v ninja >/dev/null && gen="-G Ninja"
    # setsid + nohup: the build outlives this call (it takes ~5.5 min on 16 cores)
    setsid nohup bash -c "echo \$\$ >'$W/llama.pid'; cd '$LL' && cmake -S . -B build $gen -DGGML_CUDA=${LLAMA_CUDA:-ON} \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DGGML_CUDA_NCCL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DCMAKE_BUILD_TYPE=Release && cmake --build build -j$NCPU --target llama-bench; echo \$? >'$W/llama.rc'" \
        >>"$W/llama_build.log" 2>&1 </dev/null &
    # the build's shell writes its pid: it leads its own process group (setsid), see llama_signal
    for _ in 1 2 3 4 5; do [ -s "$W/llama.pid" ] && break; sleep 1; done
    say "llama.cpp build started (pid $(cat "$W/llama.pid" 2>/dev/null))"
}
# waits for the build until only $1 seconds of BUDGET are left
llama_wait() {
    while llama_building && [ "$(left)" -gt "$1" ]; do sleep 5; done
    if llama_building; then say "llama.cpp still building"
    elif [ -x "$LLB" ]; then say "llama.cpp built"
    elif [ -f "$W/llama.pid" ]; then say "llama.cpp build failed (rc $(cat "$W/llama.rc" 2>/dev/null)):"; tail -5 "$W/llama_build.log"
    fi
}
# pauses (STOP) or resumes (CONT) a build still running, so it does not disturb measurements:
# the whole session setsid made (ninja gives each compiler its own process group)
llama_signal() {
    llama_building || return 1
    pkill -"$1" -s "$(cat "$W/llama.pid")" 2>/dev/null || kill -"$1" -- -"$(cat "$W/llama.pid")" 2>/dev/null
}

model() { echo "$W/models/$PRESET-$1.gguf"; }
synth() { # type: writes the model once
    [ -s "$(model "$1")" ] && return 0
    $HLLM synth --preset "$PRESET" --type "$1" -o "$(model "$1").tmp" -q && mv "$(model "$1").tmp" "$(model "$1")"
}
save() { # results to $OUT (emptied before each call; at most 8 files come back): the cumulative
    # hetero.jsonl, the report, and every raw log, plan, profile and build log in one tarball
    [ -f "$W/hetero.jsonl" ] && cp "$W/hetero.jsonl" "$OUT/"
    (cd "$W" && tar czf "$OUT/raw.tgz" raw ./*.profile ./*.log 2>/dev/null)
    say "stage $STAGE done in $(el)s"
}

# --- prep ---
if [ "$STAGE" = prep ]; then
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    llama_start
    cmake -S . -B $B -DHLLM_CUDA="${HLLM_CUDA:-on}" -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release \
        >"$W/hllm_build.log" 2>&1 && cmake --build $B -j"$NCPU" --target hllm_cli >>"$W/hllm_build.log" 2>&1 \
        || { tail -20 "$W/hllm_build.log"; save; exit 1; }
    say "hllm built"
    for t in ${TYPES:-q4_0 q8_0}; do
        [ "$(left)" -lt 60 ] && { say "budget: no synth of $t"; continue; }
        synth "$t" && say "synth $PRESET $t: $(du -h "$(model "$t")" | cut -f1)"
    done
    llama_wait 15
    save
    exit 0
fi

# --- helpers for run ---
pget() { awk -F' = ' -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; } # profile value
num() { [ -n "$1" ] && echo "$1" || echo null; }                       # JSON number or null
# "avg sd" of the test (n_prompt $2, n_gen $3) in a file of one JSON object per line (hllm -o json,
# llama-bench -o jsonl)
ts() { grep -h "\"n_prompt\": $2, \"n_gen\": $3," "$1" 2>/dev/null | head -1 |
    sed -n 's/.*"avg_ts": \([-0-9.e+]*\), "stddev_ts": \([-0-9.e+]*\).*/\1 \2/p'; }
jts() { # "NAME": avg, "NAME_sd": sd from "avg sd" (nulls when not measured)
    local a=${2%% *} d=${2#* }
    printf '"%s": %s, "%s_sd": %s, ' "$1" "$(num "$a")" "$1" "$(num "$d")"
}
tmo() { # timeout for one command: what the budget leaves, at most 240 s
    local l=$(($(left) - 10))
    [ $l -gt 240 ] && l=240
    echo $l
}

run_type() { # type
    local t=$1 f p
    f=$(model "$t")
    synth "$t" || { say "no model for $t"; return; }
    p="$W/$PRESET-$t.profile"
    # the profile measures this machine for this model's shapes and type (~15 s)
    if [ ! -s "$p" ]; then
        $HLLM profile -m "$f" -t "$TH" -o "$p" 2>"$W/raw/profile-$t.log" || { say "profile failed:"; tail -3 "$W/raw/profile-$t.log"; }
        say "profile $t: $(grep concurrent "$W/raw/profile-$t.log" | sed 's/.*] //')"
    fi
    # llama.cpp -ngl N offloads N of the repeating layers (all tensors blk.I.*, equal sizes);
    # the output matrix and norm go to the GPU only when N > n_layer, token_embd never does.
    $HLLM info -m "$f" -n 1 >"$W/raw/info-$t.txt"
    local nl lb wb
    nl=$(awk '/block_count/ { print $NF; exit }' "$W/raw/info-$t.txt")
    lb=$(awk '$1 == "tensor" && $3 ~ /^blk\.0\./ { s += $(NF-1) } END { printf "%.0f", s }' "$W/raw/info-$t.txt")
    wb=$(awk '$1 == "tensor" && $3 != "token_embd.weight" { s += $(NF-1) } END { printf "%.0f", s }' "$W/raw/info-$t.txt")
    say "$PRESET $t: $nl layers of $lb bytes, $wb bytes of weights besides token_embd"
    local ngls=${NGLS:-"$((nl / 4)) $((nl / 2)) $((3 * nl / 4))"}
    local cg gg h2d hbm bw
    cg=$(pget "$p" cpu.concurrent_host_gbs) gg=$(pget "$p" cuda.concurrent_host_gbs)
    h2d=$(pget "$p" cuda.h2d_gbs) hbm=$(pget "$p" cuda.read_gbs)
    bw=$(cat "$W/bw_read.txt" 2>/dev/null)
    for n in $ngls 99; do
        [ "$(left)" -lt 40 ] && { say "budget: skip $t -ngl $n"; continue; }
        local tag="$t-ngl$n" cap hargs pargs
        if [ "$n" -ge "$nl" ]; then # no cap: heterollm GPU only, llama.cpp everything offloaded
            cap=$wb hargs="--proc cuda" pargs=""
        else # the bytes of n layers, as llama.cpp -ngl n holds
            cap=$((n * lb)) hargs="--gpu-mem $cap --profile $p" pargs="--gpu-mem $cap"
        fi
        # the solver's prediction for this cap (no cap: the unlimited plan)
        # shellcheck disable=SC2086
        $HLLM plan -m "$f" $pargs --profile "$p" -p "$PP" >"$W/raw/plan-$tag.txt" 2>&1
        local pl pd pf why
        pl=$(grep -m1 '^plan: ' "$W/raw/plan-$tag.txt")
        pd=$(echo "$pl" | sed -n 's/.*predicted \([0-9.]*\) ms\/token decode.*/\1/p')
        pf=$(echo "$pl" | sed -n 's/.*decode, \([0-9.]*\) ms per .*/\1/p')
        why=$(echo "$pl" | sed 's/^plan: //; s/ (predicted.*//; s/["\\]//g')
        local hrc=0 lrc=skipped
        # shellcheck disable=SC2086
        timeout -k 5 "$(tmo)" $HLLM bench -m "$f" -t "$TH" -p "$PP" -n "$TG" -r "$REPS" $hargs -o json \
            >"$W/raw/hllm-$tag.json" 2>"$W/raw/hllm-$tag.err" || hrc=$?
        local hp htg lp ltg
        hp=$(ts "$W/raw/hllm-$tag.json" "$PP" 0) htg=$(ts "$W/raw/hllm-$tag.json" 0 "$TG")
        say "hllm $tag (rc $hrc): pp ${hp:-?} tg ${htg:-?}; predicted ${pd:-?} ms/token ($why)"
        if [ -x "$LLB" ] && [ "$(left)" -gt 30 ]; then
            lrc=0
            # shellcheck disable=SC2086
            timeout -k 5 "$(tmo)" "$LLB" -m "$f" -ngl "$n" -t "$TH" -p "$PP" -n "$TG" -r "$REPS" ${LLAMA_ARGS:-} -o jsonl \
                >"$W/raw/llama-$tag.jsonl" 2>"$W/raw/llama-$tag.err" || lrc=$?
            lp=$(ts "$W/raw/llama-$tag.jsonl" "$PP" 0) ltg=$(ts "$W/raw/llama-$tag.jsonl" 0 "$TG")
            say "llama.cpp $tag (rc $lrc): pp ${lp:-?} tg ${ltg:-?}"
        fi
        {
            printf '{"preset": "%s", "type": "%s", "n_layer": %s, "ngl": %s, "layer_bytes": %s, "weights_bytes": %s, ' \
                "$PRESET" "$t" "$nl" "$n" "$lb" "$wb"
            printf '"cap_bytes": %s, "threads": %s, "pp": %s, "tg": %s, "reps": %s, ' "$cap" "$TH" "$PP" "$TG" "$REPS"
            jts hllm_pp "$hp"; jts hllm_tg "$htg"; jts llama_pp "${lp:-}"; jts llama_tg "${ltg:-}"
            printf '"hllm_rc": %s, "llama_rc": "%s", "pred_decode_ms": %s, "pred_prefill_ms": %s, "plan": "%s", ' \
                "$hrc" "$lrc" "$(num "$pd")" "$(num "$pf")" "$why"
            printf '"cpu_host_gbs": %s, "gpu_host_gbs": %s, "h2d_gbs": %s, "hbm_gbs": %s, "cpu_bw_read_gbs": %s, ' \
                "$(num "$cg")" "$(num "$gg")" "$(num "$h2d")" "$(num "$hbm")" "$(num "$bw")"
            printf '"commit": "%s", "date": "%s"}\n' "${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo ?)}" "$(date -u +%FT%TZ)"
        } >>"$W/hetero.jsonl"
    done
}

case "$STAGE" in
run)
    [ -x "$HLLM" ] || { echo "no $HLLM: run the prep stage first (the machine may have been handed back)"; exit 1; }
    llama_signal CONT # in case an earlier stage was cut off while it had the build paused
    llama_start
    # measurements need the machine to themselves: wait for the build while at least 240 s
    # would be left to measure; a build still running then is paused until this stage ends
    llama_wait 240
    llama_signal STOP && say "llama.cpp build paused for the measurements (no llama.cpp numbers this stage)"
    if [ ! -s "$W/bw_read.txt" ]; then # CPU-alone host read bandwidth, for reference
        cc -O3 -march=native -pthread bench/bw_read.c -o "$W/bw_read" && "$W/bw_read" "$TH" 4096 >"$W/bw_read.txt"
        say "bw_read $TH threads: $(cat "$W/bw_read.txt") GB/s"
    fi
    # shellcheck disable=SC2048
    for t in ${*:-${TYPES:-q4_0}}; do run_type "$t"; done
    llama_signal CONT
    command -v python3 >/dev/null && python3 bench/hetero/report.py "$W/hetero.jsonl" "$OUT" --no-chart
    save
    ;;
report)
    python3 bench/hetero/report.py "$W/hetero.jsonl" "$OUT"
    save
    ;;
*)
    sed -n '2,19p' "$0"
    exit 2
    ;;
esac
