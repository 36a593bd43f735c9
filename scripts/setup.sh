#!/usr/bin/env bash
# Installs what is missing (Debian packages only), then configures and builds lotteryfl.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#   ./scripts/setup.sh            # release build into build/
#   BUILD_DIR=build-debug CMAKE_BUILD_TYPE=Debug ./scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libboost-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev prometheus-cpp-dev zlib1g-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
  clang libfuzzer-14-dev
  python3 python3-matplotlib python3-yaml docker-compose openssl iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all Debian packages present"
fi

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${CMAKE_BUILD_TYPE:-Release}
JOBS=${JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Hits across checkouts (a fresh clone builds from the cache) and with the torch PCH.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-}
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
echo "setup: built into $BUILD_DIR/ (binaries in $BUILD_DIR/bin)"
