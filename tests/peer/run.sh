#!/usr/bin/env bash
# Peer test suite (make peer): sets up the llama.cpp harness, checks that the pinned llama.cpp
# reproduces the known stories260K results, checks the gguf_* symbol-clash guard, then runs the
# heterollm-vs-llama.cpp comparisons (compare/run.sh) and vocab/run.sh if present.
# Ends with "peer: N passed, N failed" (+ skipped); exit status 1 if anything failed.
# Env: MODEL (default ../shared/models/stories260K.gguf beside the repo; missing = those tests skip).
set -uo pipefail

PEER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$PEER_DIR/../.." && pwd)"
MODEL="${MODEL:-$ROOT/../shared/models/stories260K.gguf}"
export MODEL
REF="$ROOT/build/peer/llama-ref"
pass=0 fail=0 skipped=0 t0=$SECONDS failures=""
ok()   { echo "peer: ok   $*"; pass=$((pass + 1)); }
bad()  { echo "peer: FAIL $*"; fail=$((fail + 1)); failures+="  peer: FAIL $*"$'\n'; }
skip() { echo "peer: skip $*"; skipped=$((skipped + 1)); }
finish() {
  [ "$fail" = 0 ] || printf 'peer: failed cases:\n%s' "$failures"
  echo "peer: $pass passed, $fail failed ($skipped skipped, $((SECONDS - t0)) s)"
  [ "$fail" = 0 ]
  exit
}
if ! bash "$PEER_DIR/setup.sh"; then
  bad "tests/peer/setup.sh failed (it needs git, cc, node, npm, tar and, the first time, the npm registry)"
  finish
fi
[ -x "$REF" ] || { bad "llama-ref was not built"; finish; }

if [ -f "$MODEL" ]; then
  # 1. tokenizer: BOS + "Once upon a time"
  ids="$("$REF" tokenize -m "$MODEL" -p "Once upon a time")"
  if [ "$ids" = "1 403 407 261 378" ]; then ok "llama.cpp tokenize 'Once upon a time' = $ids"
  else bad "llama.cpp tokenize 'Once upon a time' = $ids (want 1 403 407 261 378)"; fi

  # 2. greedy decoding against the README reference and the stored 256-token golden ids
  want_ids="$(cat "$PEER_DIR/golden/stories260K_once_upon_a_time_greedy256.ids")"
  want_txt=", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
  # (2 threads: 64 tokens only; llama.cpp's spinning threads crawl when the 2 cores are busy)
  for cfg in "256 --kv f32" "256 --kv f16" "64 --kv f32 -t 2"; do
    n="${cfg%% *}" cfg="${cfg#* }"
    want="$(printf '%s\n' "$want_ids" | tr ' ' '\n' | head -n "$n" | paste -sd ' ')"
    # shellcheck disable=SC2086
    out="$("$REF" generate -m "$MODEL" -p "Once upon a time" -n "$n" --text $cfg)"
    got_ids="$(printf '%s\n' "$out" | head -n 1)"
    got_txt="$(printf '%s\n' "$out" | tail -n +2)"
    if [ "$got_ids" = "$want" ] && [ "${got_txt:0:${#want_txt}}" = "$want_txt" ]; then
      ok "llama.cpp greedy $n tokens ($cfg) = golden; starts '${want_txt:0:40}...'"
    else
      bad "llama.cpp greedy $n tokens ($cfg): got '${got_txt:0:120}'"
    fi
  done

  # 3. a program exporting same-named gguf_* symbols still gets ggml's inside libllama
  if "$ROOT/build/peer/test_clash" "$MODEL" >/dev/null; then ok "gguf_* symbol clash guard (RTLD_DEEPBIND)"
  else bad "gguf_* symbol clash guard"; fi
else
  skip "llama.cpp self-checks and clash guard: $MODEL not found (set MODEL=path/to/stories260K.gguf)"
fi

# 4. heterollm vs llama.cpp: its cases count one by one (its last line is its tally)
if [ -f "$PEER_DIR/compare/run.sh" ]; then
  tally="$(mktemp)"
  bash "$PEER_DIR/compare/run.sh" | tee "$tally" | grep -v '^peer: tally '
  t="$(sed -n 's/^peer: tally \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped.*/\1 \2 \3/p' "$tally" | tail -n 1)"
  if grep -q '^peer: FAIL' "$tally"; then failures+="$(grep '^peer: FAIL' "$tally" | sed 's/^/  /')"$'\n'; fi
  rm -f "$tally"
  if [ -n "$t" ]; then
    read -r p f s <<<"$t"
    pass=$((pass + p)); fail=$((fail + f)); skipped=$((skipped + s))
  else
    bad "compare/run.sh ended without a tally"
  fi
fi

# 5. a colleague's vocab suite, if present: one case
if [ -f "$PEER_DIR/vocab/run.sh" ]; then
  if bash "$PEER_DIR/vocab/run.sh"; then ok "vocab/run.sh"; else bad "vocab/run.sh"; fi
fi

finish
