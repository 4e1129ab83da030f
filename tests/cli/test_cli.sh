#!/usr/bin/env bash
# The CLI as a user meets it: exit codes, one-line errors, stdout holding only the continuation.
set -u
cd "$(dirname "$0")/../.."
HLLM=${HLLM:-./build/hllm} # HLLM="qemu-aarch64 ... build-arm/base/hllm": the aarch64 build (make arm)
MODEL=${HLLM_SHARED:-../shared}/models/stories260K.gguf
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { # check NAME CONDITION...
    local name=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name" >&2; fi
}
expect_rc() { # expect_rc WANT CMD... ; stderr to $TMP/err, stdout to $TMP/out
    local want=$1
    shift
    "$@" >"$TMP/out" 2>"$TMP/err"
    [ $? -eq "$want" ]
}
one_line_err() { [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "$1" "$TMP/err"; }

check "version" expect_rc 0 $HLLM --version
check "version names processors" grep -q "processors: cpu" "$TMP/out"
check "no command" expect_rc 2 $HLLM
check "unknown command" expect_rc 2 $HLLM frobnicate
check "unknown command message" one_line_err "unknown command"
for cmd in run bench synth info; do
    check "$cmd --help" expect_rc 0 $HLLM $cmd --help
    check "$cmd --help prints usage" grep -q "usage: hllm $cmd" "$TMP/out"
    check "$cmd unknown flag" expect_rc 2 $HLLM $cmd --no-such-flag
    check "$cmd unknown flag message" one_line_err "unknown option"
done
check "run missing value" expect_rc 2 $HLLM run -m
check "run missing value message" one_line_err "needs a value"
check "run bad number" expect_rc 2 $HLLM run -m x -n abc
check "run bad number message" one_line_err "bad value 'abc' for -n"
check "run bad kv type" expect_rc 2 $HLLM run -m x --kv-type q4
check "run no model" expect_rc 2 $HLLM run -p hi
check "run missing file" expect_rc 1 $HLLM run -m "$TMP/none.gguf" -p hi
check "run missing file message" grep -q "none.gguf" "$TMP/err"
printf 'GGUF\003\000\000\000garbage' >"$TMP/bad.gguf"
check "run truncated gguf" expect_rc 1 $HLLM run -m "$TMP/bad.gguf" -p hi
check "truncated gguf: one error line" one_line_err "bad.gguf"
check "info truncated gguf" expect_rc 1 $HLLM info -m "$TMP/bad.gguf"

if [ -f "$MODEL" ]; then
    check "run unknown proc" expect_rc 1 $HLLM run -m "$MODEL" -p hi --proc tpu
    check "unknown proc message" grep -q "unknown processor 'tpu'" "$TMP/err"
    check "run greedy" expect_rc 0 $HLLM run -m "$MODEL" -p "Once upon a time" -n 24 --temp 0
    # stdout is exactly the continuation (no prompt, no logs): llama.cpp's greedy text
    check "run stdout is the continuation" grep -q "^, there was a little girl named Lily" "$TMP/out"
    check "run timings on stderr" grep -q "generation: " "$TMP/err"
    check "run sampling with seed is repeatable" bash -c "
        $HLLM run -m '$MODEL' -p 'Once' -n 30 --temp 1 --seed 7 2>/dev/null >'$TMP/a' &&
        $HLLM run -m '$MODEL' -p 'Once' -n 30 --temp 1 --seed 7 2>/dev/null >'$TMP/b' && cmp -s '$TMP/a' '$TMP/b'"
    check "prompt too long" expect_rc 1 $HLLM run -m "$MODEL" -c 8 -p "Once upon a time there was a girl who liked cats"
    check "prompt too long message" grep -q "prompt is too long" "$TMP/err"
    check "bench json" expect_rc 0 $HLLM bench -m "$MODEL" -p 16 -n 4 -r 2 -t 1 -o json
    check "bench json fields" bash -c "grep -q '\"n_prompt\": 16' '$TMP/out' && grep -q '\"avg_ts\"' '$TMP/out' && grep -q '\"stddev_ts\"' '$TMP/out' && grep -q '\"model_size\"' '$TMP/out'"
    check "bench table" expect_rc 0 $HLLM bench -m "$MODEL" -p 16 -n 4 -r 2 -t 1
    check "bench table rows" bash -c "grep -q 'pp16' '$TMP/out' && grep -q 'tg4' '$TMP/out'"
    check "run placed by the solver, verbose" expect_rc 0 $HLLM run -m "$MODEL" -p "Once upon a time" -n 8 --temp 0 --gpu-mem 50% --verbose
    check "verbose prints the plan" grep -q "^plan: " "$TMP/err"
    check "verbose prints predicted vs measured" bash -c "grep -q 'predicted vs measured per generated token' '$TMP/err' && grep -Eq '^  total +predicted +[0-9.]+ ms +measured +[0-9.]+ ms' '$TMP/err'"
    check "profile quick" expect_rc 0 $HLLM profile -m "$MODEL" --quick --working-set 4M -t 1 -o "$TMP/p.profile"
    check "profile has the model's shapes" bash -c "grep -q '^cpu.matmul.dev.f32.*b1.us = ' '$TMP/p.profile' && grep -q '^cpu.op_us = ' '$TMP/p.profile'"
    check "plan reads the profile" expect_rc 0 $HLLM plan -m "$MODEL" --gpu-mem 50% --profile "$TMP/p.profile"
    check "plan with a VRAM budget" expect_rc 0 $HLLM plan -m "$MODEL" --gpu-mem 50%
    check "plan gives the decode bound" grep -Eq '^decode bound: [0-9.]+ [MG]iB .* = [0-9.]+ ms a token; the chosen plan is predicted at [0-9]+% of it$' "$TMP/out"
    check "profile bad working set" expect_rc 2 $HLLM profile -m "$MODEL" --working-set lots
    check "info" expect_rc 0 $HLLM info -m "$MODEL"
    check "info lists tensors" grep -q "blk.0.attn_q.weight" "$TMP/out"
else
    echo "SKIP: $MODEL not found: model runs not checked"
fi
echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
