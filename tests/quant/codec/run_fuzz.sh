#!/bin/sh
# Runs the codec fuzz target for <seconds>. Usage: run_fuzz.sh <seconds> [fuzz binary]
# Without a binary (the project was not configured with -DLFL_FUZZ=ON under clang), builds one
# standalone with clang++ -fsanitize=fuzzer,address,undefined from quant/codec/*.cc and this
# directory's fuzz_codec_decode.cc, linking Debian's abseil. Exits 77 (ctest: skipped) when no
# clang++ with libFuzzer is available.
set -eu
seconds=$1
binary=${2:-}
root=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  command -v clang++ >/dev/null 2>&1 || { echo "clang++ not found: skipping"; exit 77; }
  binary=$work/fuzz_codec_decode
  # shellcheck disable=SC2046
  clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root" "$root"/quant/codec/*.cc "$root"/tests/quant/codec/fuzz_codec_decode.cc \
    $(pkg-config --libs absl_statusor absl_strings) -o "$binary" || {
    echo "standalone fuzz build failed: skipping"
    exit 77
  }
fi
mkdir "$work/corpus"
"$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  "$work/corpus"
