#!/usr/bin/env bash
# Installs the build tree into a fresh prefix, then configures, builds and runs
# examples/embedded_run against that prefix only (never the source tree):
# find_package(lotteryfl CONFIG) + lotteryfl::client must be all a program needs.
# Exit 0 pass, 77 skipped (no Fashion-MNIST for the example's run), else fail.
set -euo pipefail
src=${LFL_SOURCE_DIR:?}
bin=${LFL_BINARY_DIR:?}
work=$(mktemp -d "${TMPDIR:-/tmp}/lfl-example.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$bin" --prefix "$prefix" >"$work/install.log"
echo "installed into $prefix:"
(cd "$prefix" && find . -maxdepth 3 -not -path './include/lotteryfl/*/*' | sort | sed 's/^/  /')

# Every header the installed ones include must be installed too (or come from the system).
missing=0
while read -r header; do
  while read -r dep; do
    case $dep in
      "$prefix"/*|/usr/*) ;;
      *) echo "FAIL: $header includes $dep, which is not installed (list it in cmake/lfl_install.cmake)"; missing=1 ;;
    esac
  done < <(c++ -std=c++17 -MM -MG -I"$prefix/include/lotteryfl" -I/usr/include/torch/csrc/api/include \
             -x c++ "$header" | tr ' \\' '\n\n' | grep -v -e '^$' -e ':$')
done < <(find "$prefix/include/lotteryfl" -name '*.h')
[ "$missing" -eq 0 ] || exit 1

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S "$src/examples/embedded_run" -B "$work/build" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }

# The example saw the installed package only: no path into this source or build tree.
if grep -F -e "$src/" -e "$bin/" "$work/build/compile_commands.json" "$work/build/build.ninja" 2>/dev/null |
    grep -v -F "$src/examples/embedded_run"; then
  echo "FAIL: the example's build refers to the lotteryfl source or build tree"
  exit 1
fi
echo "built $work/build/embedded_run against $prefix"

status=0
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$work/build/embedded_run" --rounds 2 --out "$work/out" || status=$?
[ "$status" -eq 77 ] && { echo "SKIP: no Fashion-MNIST"; exit 77; }
[ "$status" -eq 0 ] || { echo "FAIL: embedded_run exited $status"; exit 1; }
test -s "$work/out/model.bin" || { echo "FAIL: no model.bin"; exit 1; }
echo "PASS"
