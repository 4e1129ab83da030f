#!/usr/bin/env bash
# Generates the real-vocabulary GGUFs for the tokenizer peer tests (never committed):
#   OUTDIR/llama2-vocab.gguf   Llama 2's 32K SentencePiece vocab (tokenizer.ggml.model "llama")
#   OUTDIR/llama3-vocab.gguf   Llama 3's 128K byte-level BPE vocab + merges ("gpt2", pre "llama-bpe")
#   OUTDIR/llama{2,3}.js-ids.txt  the npm packages' own encodings of strings.txt (BOS, no EOS;
#                                 llama3 with its special tokens parsed), one line per string
# from the pinned npm packages llama-tokenizer-js 1.2.2 and llama3-tokenizer-js 1.2.0.
#
#   tests/peer/vocab/make_vocabs.sh OUTDIR [--compare]
#
# --compare then checks hllm against llama.cpp (tests/peer/llama_ref, vocab_only; runs
# tests/peer/setup.sh if needed) and against the npm packages, on strings.txt plus random
# strings, for both vocabs and stories260K; prints "N passed, N failed" per model, exit 1 on any
# mismatch. Env: HLLM_BUILD (the cmake build dir whose libhllm.a is built and linked;
# default build/), CC (default cc), FUZZ (random strings per model, default 2000).
# Needs: node, npm (registry access for the first npm ci), cc, cmake.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
CC="${CC:-cc}"
die() { echo "make_vocabs: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: make_vocabs.sh OUTDIR [--compare]"
OUT="$1"
COMPARE=0
[ "${2:-}" = "--compare" ] && COMPARE=1
mkdir -p "$OUT/npm"
OUT="$(cd "$OUT" && pwd)"
for t in node npm "$CC"; do command -v "$t" >/dev/null 2>&1 || die "'$t' not found"; done

# 1. the npm packages, installed from the lockfile into OUTDIR (not into the source tree)
stamp="$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$OUT/npm/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  cp "$HERE/package.json" "$HERE/package-lock.json" "$OUT/npm/"
  (cd "$OUT/npm" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
  echo "$stamp" > "$OUT/npm/.stamp"
fi
NM="$OUT/npm/node_modules"

# 2. export tokens/scores/types/merges, and the packages' encodings of strings.txt
node "$HERE/export_vocab.js" "$NM" "$OUT"
node "$HERE/export_vocab.js" "$NM" --encode llama2 "$HERE/strings.txt" "$OUT/llama2.js-ids.txt"
node "$HERE/export_vocab.js" "$NM" --encode llama3 "$HERE/strings.txt" "$OUT/llama3.js-ids.txt"

# 3. the GGUF writer tool, linked against libhllm.a
BUILD="${HLLM_BUILD:-$ROOT/build}"
command -v cmake >/dev/null 2>&1 || die "cmake not found (needed to build $BUILD/libhllm.a)"
[ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DHLLM_CUDA=off >/dev/null
cmake --build "$BUILD" -j2 --target hllm >/dev/null 2>&1 || die "building libhllm.a in $BUILD failed"
"$CC" -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$ROOT/src" "$HERE/make_vocab_gguf.c" "$BUILD/libhllm.a" \
    -lm -lpthread -o "$OUT/make_vocab_gguf"
"$OUT/make_vocab_gguf" "$OUT/llama2.vocab.txt" "$OUT/llama2-vocab.gguf"
"$OUT/make_vocab_gguf" "$OUT/llama3.vocab.txt" "$OUT/llama3-vocab.gguf"
echo "make_vocabs: wrote $OUT/llama2-vocab.gguf and $OUT/llama3-vocab.gguf"

[ $COMPARE = 1 ] || exit 0

# 4. optional: compare with llama.cpp and the npm packages
PEER="$ROOT/build/peer"
if [ ! -f "$PEER/include/llama.h" ] || [ ! -d "$PEER/lib" ]; then
  PEER_QUIET=1 bash "$ROOT/tests/peer/setup.sh" || die "tests/peer/setup.sh failed"
fi
"$CC" -std=c11 -O2 -fPIC -I"$PEER/include" -DLLAMA_REF_LIB_DIR="\"$PEER/lib\"" -c "$ROOT/tests/peer/llama_ref.c" \
    -o "$OUT/llama_ref.o"
"$CC" -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$ROOT/src" -I"$ROOT/tests/peer" "$HERE/tok_compare.c" \
    "$BUILD/libhllm.a" "$OUT/llama_ref.o" -ldl -lm -lpthread -o "$OUT/tok_compare"
rc=0
run() { "$OUT/tok_compare" "$@" --fuzz "${FUZZ:-2000}" 2>/dev/null | grep -v '^llama_\|^load\|^print_info' || rc=1; }
run "$OUT/llama2-vocab.gguf" "$HERE/strings.txt" --js "$OUT/llama2.js-ids.txt" --js-special 0
run "$OUT/llama3-vocab.gguf" "$HERE/strings.txt" --js "$OUT/llama3.js-ids.txt" --js-special 1
STORIES="${HLLM_SHARED:-$ROOT/../shared}/models/stories260K.gguf"
[ -f "$STORIES" ] && run "$STORIES" "$HERE/strings.txt"
exit $rc
