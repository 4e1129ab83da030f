#!/usr/bin/env bash
# Peer test suite (make peer): sets up the llama.cpp harness, checks that the
# pinned llama.cpp reproduces the known stories260K results, checks the
# gguf_* symbol-clash guard, then runs the colleagues' peer suites if present.
# Env: MODEL (default ../shared/models/stories260K.gguf beside the repo).
set -euo pipefail

PEER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$PEER_DIR/../.." && pwd)"
MODEL="${MODEL:-$ROOT/../shared/models/stories260K.gguf}"
REF="$ROOT/build/peer/llama-ref"
fail=0
ok()  { echo "peer: ok   $*"; }
bad() { echo "peer: FAIL $*"; fail=1; }

bash "$PEER_DIR/setup.sh"
[ -x "$REF" ] || { echo "peer: llama-ref was not built" >&2; exit 1; }

if [ ! -f "$MODEL" ]; then
  echo "peer: model $MODEL not found; set MODEL=path/to/stories260K.gguf" >&2
  exit 1
fi

# 1. tokenizer: BOS + "Once upon a time"
ids="$("$REF" tokenize -m "$MODEL" -p "Once upon a time")"
[ "$ids" = "1 403 407 261 378" ] && ok "llama.cpp tokenize 'Once upon a time' = $ids" \
                                 || bad "llama.cpp tokenize 'Once upon a time' = $ids (want 1 403 407 261 378)"

# 2. greedy decoding against the README reference and the stored 256-token golden ids
want_ids="$(cat "$PEER_DIR/golden/stories260K_once_upon_a_time_greedy256.ids")"
want_txt=", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
for cfg in "--kv f32" "--kv f16" "--kv f32 -t 2"; do
  # shellcheck disable=SC2086
  out="$("$REF" generate -m "$MODEL" -p "Once upon a time" -n 256 --text $cfg)"
  got_ids="$(printf '%s\n' "$out" | head -n 1)"
  got_txt="$(printf '%s\n' "$out" | tail -n +2)"
  if [ "$got_ids" = "$want_ids" ] && [ "${got_txt:0:${#want_txt}}" = "$want_txt" ]; then
    ok "llama.cpp greedy 256 tokens ($cfg) = golden; starts '${want_txt:0:40}...'"
  else
    bad "llama.cpp greedy 256 tokens ($cfg): got '${got_txt:0:120}'"
  fi
done

# 3. a program exporting same-named gguf_* symbols still gets ggml's inside libllama
if "$ROOT/build/peer/test_clash" "$MODEL" >/dev/null; then ok "gguf_* symbol clash guard (RTLD_DEEPBIND)"
else bad "gguf_* symbol clash guard"; fi

# 4. colleagues' peer suites
for s in "$PEER_DIR"/vocab/run.sh "$PEER_DIR"/compare/run.sh; do
  if [ -f "$s" ]; then
    if bash "$s"; then ok "$(basename "$(dirname "$s")")"; else bad "$(basename "$(dirname "$s")")"; fi
  fi
done

[ $fail = 0 ] && echo "peer: all passed" || { echo "peer: FAILED"; exit 1; }
