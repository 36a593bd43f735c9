#!/usr/bin/env bash
# Builds the lotteryfl image with Docker's classic builder (DOCKER_BUILDKIT=0: BuildKit may
# try to fetch frontend images from a registry) and --network host (apt inside the build
# reaches the Debian mirror the host uses).
#
#   deploy/docker/build-image.sh [-t TAG] [--prebuilt BUILD_DIR] [-- DOCKER_BUILD_ARGS...]
#
# Default: the full multi-stage build (deploy/docker/Dockerfile, repository root as context).
# --prebuilt BUILD_DIR: the runtime image from BUILD_DIR/bin (scripts/setup.sh output) through
# Dockerfile.prebuilt; the context is a temporary directory with stripped copies of the three
# binaries, the entrypoint, the runtime layer script and the binaries' package list.
# TAG defaults to lotteryfl:latest; the base image is debian:bookworm (DEBIAN_IMAGE build arg).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=lotteryfl:latest prebuilt=
while [ $# -gt 0 ]; do
  case $1 in
    -t) tag=$2; shift 2 ;;
    --prebuilt) prebuilt=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [-t TAG] [--prebuilt BUILD_DIR] [-- DOCKER_BUILD_ARGS...]" >&2; exit 2 ;;
  esac
done
export DOCKER_BUILDKIT=0

if [ -z "$prebuilt" ]; then
  exec docker build --network host -f "$here/Dockerfile" -t "$tag" "$@" "$root"
fi

bins=()
for b in lotteryfl-server lotteryfl-client lotteryfl-sim; do
  [ -x "$prebuilt/bin/$b" ] || { echo "build-image: $prebuilt/bin/$b is missing (scripts/setup.sh)" >&2; exit 1; }
  bins+=("$prebuilt/bin/$b")
done
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
install -d "$ctx/bin"
for b in "${bins[@]}"; do install -m 0755 -s "$b" "$ctx/bin/"; done
install -m 0755 "$here/entrypoint.sh" "$ctx/bin/lotteryfl-entrypoint"
install -m 0755 "$here/install-runtime.sh" "$ctx/"
"$here/runtime-packages.sh" "${bins[@]}" >"$ctx/runtime-packages.txt"
echo "build-image: runtime packages: $(tr '\n' ' ' <"$ctx/runtime-packages.txt")" >&2
docker build --network host -f "$here/Dockerfile.prebuilt" -t "$tag" "$@" "$ctx"
