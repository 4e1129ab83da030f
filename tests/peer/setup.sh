#!/usr/bin/env bash
# Set up the llama.cpp peer harness (idempotent; fast when nothing changed):
#   1. npm ci --ignore-scripts in tests/peer (pinned node-llama-cpp 3.21.1 and its
#      prebuilt @node-llama-cpp/linux-x64 3.21.1) when node_modules is missing or stale;
#   2. copy the prebuilt CPU libraries to build/peer/lib;
#   3. extract llama.h + ggml headers from the package's llama/gitRelease.bundle
#      (llama.cpp source as a git bundle) into build/peer/include (cached per commit);
#   4. compile build/peer/libllama_ref.a and build/peer/llama-ref.
# Needs: bash, git, cc, node, npm, tar, sha256sum. Run from anywhere.
# Env: CC (default cc), PEER_QUIET=1 (print only the summary's last line).
set -euo pipefail

PEER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$PEER_DIR/../.." && pwd)"
OUT="$ROOT/build/peer"
CC="${CC:-cc}"
say() { [ "${PEER_QUIET:-0}" = 1 ] || echo "peer-setup: $*"; }
die() { echo "peer-setup: error: $*" >&2; exit 1; }

for t in git node npm tar sha256sum "$CC"; do
  command -v "$t" >/dev/null 2>&1 || die "'$t' not found (need git, cc, node, npm, tar)"
done
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) die "the pinned prebuilt llama.cpp is @node-llama-cpp/linux-x64: Linux x86_64 only" ;;
esac

NM="$PEER_DIR/node_modules"
BINS="$NM/@node-llama-cpp/linux-x64/bins/linux-x64"
BUNDLE="$NM/node-llama-cpp/llama/gitRelease.bundle"
mkdir -p "$OUT"

# ---- 1. npm ----
want_stamp="$(cat "$PEER_DIR/package.json" "$PEER_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
have_stamp="$(cat "$NM/.hllm-peer-stamp" 2>/dev/null || true)"
if [ "$want_stamp" != "$have_stamp" ] || [ ! -f "$BINS/libllama.v0.4.0.so" ] || [ ! -f "$BUNDLE" ]; then
  say "npm ci (node-llama-cpp 3.21.1, prebuilt linux-x64, optional packages omitted) ..."
  (cd "$PEER_DIR" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --ignore-scripts --omit=optional \
      --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
  [ -f "$BINS/libllama.v0.4.0.so" ] || die "libllama.v0.4.0.so missing after npm ci ($BINS)"
  [ -f "$BUNDLE" ] || die "gitRelease.bundle missing after npm ci"
  echo "$want_stamp" > "$NM/.hllm-peer-stamp"
fi

# ---- 2. runtime libraries (self-contained build/peer/lib; copy only what changed) ----
mkdir -p "$OUT/lib"
for f in "$BINS"/libllama.v0.4.0.so "$BINS"/libggml.v0.4.0.so "$BINS"/libggml-base.so "$BINS"/libggml-cpu-*.so; do
  dst="$OUT/lib/$(basename "$f")"
  if [ ! -f "$dst" ] || ! cmp -s "$f" "$dst"; then cp "$f" "$dst"; fi
done

# ---- 3. headers from the bundle ----
commit="$(git bundle list-heads "$BUNDLE" | awk '$2=="HEAD"{print $1; exit}')"
[ -n "$commit" ] || commit="$(git bundle list-heads "$BUNDLE" | awk '{print $1; exit}')"
[ -n "$commit" ] || die "cannot read $BUNDLE"
if [ "$(cat "$OUT/include/.commit" 2>/dev/null || true)" != "$commit" ]; then
  say "extracting llama.cpp headers from the bundle (commit $commit) ..."
  tmp="$(mktemp -d "$OUT/.bundle.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  git -c init.defaultBranch=main clone -q --bare "$BUNDLE" "$tmp/src.git" || die "git clone of the bundle failed"
  mkdir -p "$tmp/x"
  git --git-dir="$tmp/src.git" archive --format=tar "$commit" include ggml/include | tar -x -C "$tmp/x"
  rm -rf "$OUT/include"
  mkdir -p "$OUT/include"
  # flat: llama.h's  #include "gguf.h"  must resolve next to it, never to src/gguf/gguf.h
  cp "$tmp"/x/include/*.h "$tmp"/x/ggml/include/*.h "$OUT/include/"
  git --git-dir="$tmp/src.git" show "$commit:LICENSE" > "$OUT/include/LICENSE.llama.cpp" 2>/dev/null || true
  echo "$commit" > "$OUT/include/.commit"
  rm -rf "$tmp"
  trap - EXIT
fi

# ---- 4. compile ----
CFLAGS_PEER="-std=c11 -O2 -g -Wall -Wextra -fPIC -I$OUT/include -DLLAMA_REF_LIB_DIR=\"$OUT/lib\""
flag_stamp="$(printf '%s\n%s\n' "$CC" "$CFLAGS_PEER" | sha256sum | cut -d' ' -f1)"
need=0
[ "$(cat "$OUT/.flags" 2>/dev/null || true)" = "$flag_stamp" ] || need=1
for o in "$OUT/llama_ref.o" "$OUT/libllama_ref.a" "$OUT/llama-ref" "$OUT/test_clash"; do [ -f "$o" ] || need=1; done
if [ $need = 0 ]; then
  for s in "$PEER_DIR"/llama_ref.c "$PEER_DIR"/llama_ref.h "$PEER_DIR"/llama_ref_cli.c \
           "$PEER_DIR"/test_clash.c "$OUT/include/.commit"; do
    for o in "$OUT/llama-ref" "$OUT/test_clash"; do [ "$s" -nt "$o" ] && need=1; done
  done
fi
if [ $need = 1 ]; then
  say "compiling llama_ref ..."
  # shellcheck disable=SC2086
  "$CC" $CFLAGS_PEER -c "$PEER_DIR/llama_ref.c" -o "$OUT/llama_ref.o"
  rm -f "$OUT/libllama_ref.a"
  ar rcs "$OUT/libllama_ref.a" "$OUT/llama_ref.o"
  # shellcheck disable=SC2086
  "$CC" -std=c11 -O2 -g -Wall -Wextra -I"$PEER_DIR" "$PEER_DIR/llama_ref_cli.c" "$OUT/libllama_ref.a" \
      -ldl -lm -o "$OUT/llama-ref"
  # -rdynamic: export the program's own gguf_* traps, the worst case for a clash
  "$CC" -std=c11 -O2 -g -Wall -Wextra -I"$PEER_DIR" "$PEER_DIR/test_clash.c" "$OUT/libllama_ref.a" \
      -ldl -lm -rdynamic -o "$OUT/test_clash"
  echo "$flag_stamp" > "$OUT/.flags"
fi

if [ "${PEER_QUIET:-0}" != 1 ]; then
  cat <<EOF
peer-setup: ready
  llama.cpp commit  $commit (node-llama-cpp 3.21.1, release $(sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' "$NM/node-llama-cpp/llama/binariesGithubRelease.json" 2>/dev/null))
  shared libraries  $OUT/lib   (from $BINS)
  headers           $OUT/include
  wrapper           $PEER_DIR/llama_ref.h + $OUT/libllama_ref.a   (link: -ldl -lm)
  CLI               $OUT/llama-ref   (tokenize | generate | bench | info; no args for help)
  clash test        $OUT/test_clash MODEL
EOF
fi
