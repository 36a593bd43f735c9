#!/bin/sh
# Runs one of the server's libFuzzer targets under ASan + UBSan.
#   run_fuzz.sh upload_stream|checkpoint SECONDS [RUNS]
# SECONDS bounds the time; RUNS (optional) the executions (-runs). Builds the target standalone
# with clang++ -fsanitize=fuzzer,address,undefined from the project's torch-free sources and
# Debian's abseil and OpenSSL, prints libFuzzer's final stats (stat::number_of_executed_units)
# and exits non-zero on any crash, leak or sanitizer report. Exits 77 (ctest: skipped) when no
# clang++ with libFuzzer is available.
set -eu
target=$1
seconds=$2
runs=${3:--1}
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v clang++ >/dev/null 2>&1 || { echo "clang++ not found: skipping"; exit 77; }
common="$root/fl/byte_io.cc $root/fl/mask.cc $root/fl/tensor_set.cc $(ls "$root"/quant/codec/*.cc)"
case $target in
  upload_stream) srcs="$common $root/wire/model_payload.cc $root/server/coordinator/upload_assembler.cc" ;;
  checkpoint) srcs="$common $root/server/coordinator/checkpoint.cc $root/server/coordinator/authenticator.cc $root/common/file_io.cc" ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
srcs="$srcs $root/tests/server/fuzz/fuzz_$target.cc"
# The binary is kept in the build tree and rebuilt only when a source or header changed.
out=${LFL_BINARY_DIR:-$root/build}/fuzz
mkdir -p "$out"
binary=$out/fuzz_$target
stale=1
if [ -x "$binary" ]; then
  stale=0
  # shellcheck disable=SC2086
  for f in $srcs $(ls "$root"/fl/*.h "$root"/quant/codec/*.h "$root"/wire/*.h "$root"/server/*.h); do
    [ "$f" -nt "$binary" ] && stale=1 && break
  done
fi
if [ $stale = 1 ]; then
  echo "building $binary"
  # shellcheck disable=SC2086
  clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root" $srcs $(pkg-config --libs absl_statusor absl_strings absl_str_format) -lcrypto \
    -o "$binary.tmp" || {
    echo "standalone fuzz build failed: skipping"
    exit 77
  }
  mv "$binary.tmp" "$binary"
fi
mkdir "$work/corpus"
rc=0
"$binary" -max_total_time="$seconds" -runs="$runs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  "$work/corpus" >"$work/log" 2>&1 || rc=$?
tail -n 30 "$work/log"
exit $rc
