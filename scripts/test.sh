#!/usr/bin/env bash
# Installs what is missing, builds, and runs the default test suite: ctest labels `unit` and `integration`.
# Long runs carry the `slow` label and are excluded; run them with `./scripts/test.sh -L slow`.
# Extra arguments go to ctest, e.g. ./scripts/test.sh -R codec
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(-L "unit|integration" -LE slow)
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 900 -j "${CTEST_JOBS:-2}" "${args[@]}"
