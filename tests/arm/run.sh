#!/usr/bin/env bash
# aarch64 suite (make arm): cross-compiles the CPU build for aarch64 Linux (Debian's
# gcc-aarch64-linux-gnu, cmake/aarch64-linux-gnu.cmake) and runs it under qemu-user, so the NEON
# kernels are checked against the scalar reference on this x86-64 machine. Two builds in
# build-arm/:
#   base     -march=armv8-a (NEON, no dotprod), run on an emulated Cortex-A57 (an ARMv8.0 core:
#            an instruction beyond the baseline would trap): every unit test, then the CLI suite;
#   dotprod  -march=armv8.2-a+dotprod (the sdot branch of the Q4_0/Q8_0 kernels), run on qemu's
#            "max" CPU: every unit test but the two slow ones that do not depend on it
#            (test_exec_split, test_synth).
# Both then generate 64 greedy tokens from stories260K and must print the native build's text.
# Installs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross and qemu-user with apt-get when missing
# (as root); when they cannot be installed it prints one line saying why and exits 0 (skipped).
# Ends with "arm: N passed, N failed"; exit status 1 if anything failed.
# Env: JOBS (default nproc), MODEL (default ../shared/models/stories260K.gguf beside the repo).
set -uo pipefail

ARM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$ARM_DIR/../.." && pwd)"
OUT="$ROOT/build-arm"
SYSROOT=/usr/aarch64-linux-gnu
PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
JOBS="${JOBS:-$(nproc)}"
MODEL="${MODEL:-$ROOT/../shared/models/stories260K.gguf}"
NATIVE="$ROOT/build/hllm"
pass=0 fail=0 t0=$SECONDS failures=""
ok()  { echo "arm: ok   $*"; pass=$((pass + 1)); }
bad() { echo "arm: FAIL $*"; fail=$((fail + 1)); failures+="  arm: FAIL $*"$'\n'; }
finish() {
  [ "$fail" = 0 ] || printf 'arm: failed cases:\n%s' "$failures"
  echo "arm: $pass passed, $fail failed ($((SECONDS - t0)) s)"
  [ "$fail" = 0 ]
  exit
}

# ---- toolchain and emulator ----
have_tools() {
  command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1 &&
    [ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]
}
if ! have_tools; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"
    else echo "arm: skipped: $PKGS not installed, and not root to apt-get install them"; exit 0; fi
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "arm: skipped: $PKGS not installed and no apt-get"; exit 0; }
  mkdir -p "$OUT"
  log="$OUT/apt.log" s=$SECONDS
  apt_install() {
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      -o DPkg::Lock::Timeout=120 $PKGS >>"$log" 2>&1
  }
  # stale package lists (a fresh machine): update once and retry
  if ! apt_install; then $sudo apt-get update -q >>"$log" 2>&1; apt_install; fi
  if ! have_tools; then
    echo "arm: skipped: apt-get could not install $PKGS ($(grep -m1 '^E: ' "$log" 2>/dev/null || echo "no network?"); log: $log)"
    exit 0
  fi
  echo "arm: installed $PKGS with apt-get ($((SECONDS - s)) s)"
fi

# ---- build and run ----
mkdir -p "$OUT"
# configure_build NAME MARCH QEMU_CPU
configure_build() {
  local name=$1 march=$2 cpu=$3 dir="$OUT/$1" s=$SECONDS
  if ! cmake -S "$ROOT" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" \
      -DCMAKE_BUILD_TYPE=Release -DHLLM_CUDA=off -DCMAKE_C_FLAGS="-march=$march" -DHLLM_ARM_CPU="$cpu" \
      >"$dir.configure.log" 2>&1; then
    bad "$name: cmake configure (log: $dir.configure.log)"
    return 1
  fi
  if ! cmake --build "$dir" -j "$JOBS" >"$dir.build.log" 2>&1; then
    grep -E "error|Error" "$dir.build.log" | head -20
    bad "$name: build (-march=$march; log: $dir.build.log)"
    return 1
  fi
  if grep -q "warning:" "$dir.build.log"; then
    grep "warning:" "$dir.build.log" | sort -u | head -20
    echo "arm: note: $name: compiler warnings above (log: $dir.build.log)"
  fi
  ok "$name: built with -march=$march ($((SECONDS - s)) s)"
}

# run_ctest NAME CTEST_ARGS...
run_ctest() {
  local name=$1
  shift
  local s=$SECONDS
  if (cd "$OUT/$name" && ctest -j "$JOBS" --output-on-failure --timeout 900 "$@" >"$OUT/$name.ctest.log" 2>&1); then
    ok "$name: $(grep -Eo 'tests failed out of [0-9]+' "$OUT/$name.ctest.log" | grep -Eo '[0-9]+$') unit tests under qemu ($((SECONDS - s)) s)"
  else
    grep -E "^ *[0-9]+/[0-9]+ Test|FAIL" "$OUT/$name.ctest.log" | grep -v " Passed " | head -40
    bad "$name: unit tests under qemu (log: $OUT/$name.ctest.log)"
  fi
}

QEMU=(qemu-aarch64 -L "$SYSROOT")
native_text=""
if [ -f "$MODEL" ] && [ -x "$NATIVE" ]; then
  native_text="$("$NATIVE" run -m "$MODEL" -p "Once upon a time" -n 64 --temp 0 2>/dev/null)"
fi
# same_text NAME QEMU_CPU: 64 greedy tokens under qemu print what the native build prints
same_text() {
  local name=$1 cpu=$2
  if [ -z "$native_text" ]; then
    echo "arm: skip $name: greedy run vs native (no $MODEL or no native build/hllm)"
    return
  fi
  local got
  got="$("${QEMU[@]}" -cpu "$cpu" "$OUT/$name/hllm" run -m "$MODEL" -p "Once upon a time" -n 64 --temp 0 2>"$OUT/$name.run.err")"
  if [ "$got" = "$native_text" ]; then ok "$name: hllm run greedy 64 tokens = the native build's ('${got:0:40}...')"
  else bad "$name: hllm run greedy 64 tokens: got '${got:0:200}', native '${native_text:0:200}'"; fi
}

if configure_build base armv8-a cortex-a57; then
  run_ctest base
  if HLLM="${QEMU[*]} -cpu cortex-a57 $OUT/base/hllm" bash "$ROOT/tests/cli/test_cli.sh" >"$OUT/base.cli.log" 2>&1; then
    ok "base: CLI suite under qemu ($(tail -n 1 "$OUT/base.cli.log"))"
  else
    grep -E "FAIL" "$OUT/base.cli.log" | head -20
    bad "base: CLI suite under qemu (log: $OUT/base.cli.log)"
  fi
  same_text base cortex-a57
fi
if configure_build dotprod armv8.2-a+dotprod max; then
  run_ctest dotprod -E '^test_(exec_split|synth)$'
  same_text dotprod max
fi
finish
