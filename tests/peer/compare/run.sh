#!/usr/bin/env bash
# heterollm against llama.cpp (run by tests/peer/run.sh, i.e. make peer; runs alone too):
#   (a) stories260K: greedy tokens (F32 KV, F16 KV) and first-step logits, 7 prompts;
#   (b) synth tiny llama/qwen2/qwen3 x f32 f16 bf16 q8_0 q4_0 q4_k q6_k: teacher-forced logits
#       and top-1 tokens (models generated into build/peer/models/), plus negative controls
#       (deliberately broken copies that must fail);
#   (c) tokenization and detokenization of tests/peer/vocab/strings.txt and compare/strings.txt
#       with stories260K, the synth vocabularies and tests/peer/vocab/make_vocabs.sh's GGUFs
#       (Llama 2 SPM 32K, Llama 3 BPE 128K; built into build/peer/vocab, redone when vocab/ changes).
# Needs build/libhllm.a and build/hllm (make build) and the harness (tests/peer/setup.sh).
# Prints "peer: ok|FAIL|skip ..." per case and ends with "peer: tally P passed, F failed, S skipped".
# Env: MODEL (stories260K.gguf; default ../shared/models/ beside the repo), CC.
set -uo pipefail

CMP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEER_DIR="$(cd "$CMP_DIR/.." && pwd)"
ROOT="$(cd "$PEER_DIR/../.." && pwd)"
OUT="$ROOT/build/peer"
BIN="$OUT/peer-compare"
HLLM="$ROOT/build/hllm"
LIB="$ROOT/build/libhllm.a"
MODEL="${MODEL:-$ROOT/../shared/models/stories260K.gguf}"
CC="${CC:-cc}"
pass=0 fail=0 skipped=0
bad()  { echo "peer: FAIL $*"; fail=$((fail + 1)); }
skip() { echo "peer: skip $*"; skipped=$((skipped + 1)); }
finish() { echo "peer: tally $pass passed, $fail failed, $skipped skipped"; [ "$fail" = 0 ]; exit; }

# Runs peer-compare, shows its output, adds its tally (no tally line: it crashed = one failure).
cmp() {
  local log rc t
  log="$(mktemp)"
  "$BIN" "$@" >"$log" 2>&1
  rc=$?
  grep -v '^peer: tally ' "$log"
  t="$(sed -n 's/^peer: tally \([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' "$log" | tail -n 1)"
  if [ -n "$t" ]; then
    pass=$((pass + ${t% *})); fail=$((fail + ${t#* }))
  else
    bad "peer-compare $* exited with status $rc without a result"
  fi
  rm -f "$log"
}

# ---- build peer-compare: libhllm.a (static: the .so would export gguf_* beside ggml's) + llama_ref ----
PEER_QUIET=1 bash "$PEER_DIR/setup.sh" || { bad "tests/peer/setup.sh failed"; finish; }
if [ ! -f "$LIB" ] || [ ! -x "$HLLM" ]; then
  bad "build/libhllm.a or build/hllm missing: run make build first"
  finish
fi
need=0
[ -x "$BIN" ] || need=1
for s in "$CMP_DIR/peer_compare.c" "$PEER_DIR/llama_ref.h" "$OUT/libllama_ref.a" "$LIB" "$ROOT/include/hllm.h"; do
  [ "$s" -nt "$BIN" ] && need=1
done
if [ $need = 1 ]; then
  # Link as CMake links build/hllm (its driver and libraries: g++ and the CUDA runtime when the
  # CUDA processor is built), with our objects in place of the CLI's.
  link_cmd=() ours=("$OUT/peer_compare.o" "$OUT/libllama_ref.a")
  read -ra words <<<"$(head -n 1 "$ROOT/build/CMakeFiles/hllm_cli.dir/link.txt" 2>/dev/null | tr -d '"')"
  if [ "${#words[@]}" -gt 0 ]; then
    link_cmd=("${words[0]}")
    for ((i = 1; i < ${#words[@]}; i++)); do
      w="${words[i]}"
      case "$w" in
        -o) i=$((i + 1)) ;;
        @*objects*) link_cmd+=("${ours[@]}"); ours=() ;;
        @*) read -ra more <<<"$(tr -d '"' <"$ROOT/build/${w#@}")"; link_cmd+=("${more[@]}") ;;
        *.o) [ ${#ours[@]} -gt 0 ] && link_cmd+=("${ours[@]}"); ours=() ;;
        *) link_cmd+=("$w") ;;
      esac
    done
  fi
  [ ${#link_cmd[@]} -gt 0 ] && [ ${#ours[@]} = 0 ] || link_cmd=("$CC" "${ours[@]}" libhllm.a -lm -lpthread)
  errs="$(mktemp)"
  if ! "$CC" -std=c11 -O2 -g -Wall -Wextra -I"$ROOT/include" -I"$ROOT/src" -I"$PEER_DIR" \
         -c "$CMP_DIR/peer_compare.c" -o "$OUT/peer_compare.o" >"$errs" 2>&1 ||
     ! (cd "$ROOT/build" && "${link_cmd[@]}" -ldl -lm -lpthread -o "$BIN") >>"$errs" 2>&1; then
    cat "$errs"; rm -f "$errs" "$BIN"
    bad "cannot build build/peer/peer-compare (against build/libhllm.a): ${link_cmd[*]}"
    finish
  fi
  [ -s "$errs" ] && cat "$errs"
  rm -f "$errs"
fi

# ---- (a) stories260K ----
t_sec=$SECONDS
took() { echo "peer: info $1 took $((SECONDS - t_sec)) s"; t_sec=$SECONDS; }
if [ -f "$MODEL" ]; then
  cmp greedy -m "$MODEL" --name stories260K -n 64
else
  skip "(a) stories260K: $MODEL not found (set MODEL=path/to/stories260K.gguf)"
fi

took "(a) stories260K"

# ---- (b) synthetic tiny models of each architecture and weight type ----
MODELS="$OUT/models"
mkdir -p "$MODELS"
synth() { # arch type -> path (regenerated when build/hllm is newer: synth output may change)
  local f="$MODELS/synth-$1-tiny-$2.gguf"
  if [ ! -s "$f" ] || [ "$HLLM" -nt "$f" ]; then
    local try
    for try in 1 2 3; do # (a colleague's build may be relinking build/hllm right now)
      "$HLLM" synth --arch "$1" --preset tiny --type "$2" --seed 42 -o "$f.tmp" >"$f.log" 2>&1 && break
      [ $try = 3 ] && { sed 's/^/    /' "$f.log" >&2; rm -f "$f.tmp"; return 1; }
      sleep 2
    done
    mv "$f.tmp" "$f"
  fi
  echo "$f"
}
for arch in llama qwen2 qwen3; do
  for type in f32 f16 bf16 q8_0 q4_0 q4_k q6_k; do
    if f="$(synth "$arch" "$type")"; then
      cmp forced -m "$f" --type "$type" --name "synth $arch $type" --steps 32
    else
      bad "synth $arch $type: build/hllm synth --arch $arch --preset tiny --type $type failed"
    fi
  done
done
took "(b) synth models"
# Negative controls: llama.cpp gets a deliberately broken copy; the comparison must fail.
#  rope            Q/K rows permuted per head: the other rope layout (NEOX <-> interleaved)
#  norm:1.01       output_norm scaled by 1%: a slightly wrong scale
#  wscale:T:1.25   every block scale of the T weights x1.25: a quant kernel's wrong scale
#                  (attn_q: also a wrong attention temperature)
for c in "llama f32 rope" "qwen2 f16 rope" "qwen3 q4_k rope" "llama f32 norm:1.01" "qwen3 f16 norm:1.01" \
         "llama q4_0 wscale:ffn_down:1.25" "qwen2 q8_0 wscale:attn_v:1.25" "qwen3 q6_k wscale:ffn_down:1.25" \
         "llama bf16 wscale:attn_q:1.25"; do
  # shellcheck disable=SC2086
  set -- $c
  f="$MODELS/synth-$1-tiny-$2.gguf"
  if [ -s "$f" ]; then
    cmp forced -m "$f" --type "$2" --name "negative control: synth $1 $2" --perturb "$3" --expect-fail
  else
    bad "negative control synth $1 $2 $3: no model"
  fi
done

took "(b) negative controls"

# ---- (c) tokenization ----
# the colleague's tricky strings (the spec) and ours (chat templates, invalid UTF-8, ...)
strings=(--strings "$CMP_DIR/strings.txt")
if [ -f "$PEER_DIR/vocab/strings.txt" ]; then strings+=(--strings "$PEER_DIR/vocab/strings.txt")
else echo "peer: info tests/peer/vocab/strings.txt absent: only tests/peer/compare/strings.txt"; fi
vocabs=()
if [ -f "$MODEL" ]; then vocabs+=("stories260K=$MODEL"); else skip "(c) stories260K vocab: $MODEL not found"; fi
for arch in llama qwen2; do
  f="$MODELS/synth-$arch-tiny-f32.gguf"
  if [ -s "$f" ]; then vocabs+=("synth-$arch=$f"); else bad "(c) synth $arch vocab: no model"; fi
done
MAKE_VOCABS="$PEER_DIR/vocab/make_vocabs.sh"
if [ -f "$MAKE_VOCABS" ]; then
  VOUT="$OUT/vocab"
  stamp="$(cd "$PEER_DIR/vocab" && find . -type f ! -name '*.gguf' -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$VOUT/.stamp" 2>/dev/null)" != "$stamp" ] || ! ls "$VOUT"/*.gguf >/dev/null 2>&1; then
    rm -rf "$VOUT"; mkdir -p "$VOUT"
    if bash "$MAKE_VOCABS" "$VOUT" >"$OUT/make_vocabs.log" 2>&1; then echo "$stamp" > "$VOUT/.stamp"
    else sed 's/^/    /' "$OUT/make_vocabs.log"; bad "(c) tests/peer/vocab/make_vocabs.sh $VOUT failed"; fi
  fi
  for f in "$VOUT"/*.gguf; do [ -f "$f" ] && vocabs+=("$(basename "$f" .gguf)=$f"); done
else
  skip "(c) real vocabularies: tests/peer/vocab/make_vocabs.sh does not exist (yet)"
fi
for v in "${vocabs[@]}"; do
  cmp tokenize -m "${v#*=}" --name "${v%%=*}" "${strings[@]}"
done
took "(c) tokenization"

finish
