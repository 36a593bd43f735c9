#!/usr/bin/env bash
# Builds the lotteryfl image with Docker's classic builder (DOCKER_BUILDKIT=0: BuildKit may
# try to fetch frontend images from a registry) and --network host (apt inside the build
# reaches the Debian mirror the host uses).
#
#   deploy/docker/build-image.sh [-t TAG] [--prebuilt BUILD_DIR] [-- DOCKER_BUILD_ARGS...]
#   deploy/docker/build-image.sh --list-packages BUILD_DIR
#
# Default: the full multi-stage build (deploy/docker/Dockerfile, repository root as context).
# --prebuilt BUILD_DIR: the runtime image from BUILD_DIR/bin (scripts/setup.sh output) through
# Dockerfile.prebuilt; the context is a temporary directory with stripped copies of the three
# binaries, the entrypoint, the runtime layer script and the binaries' package list.
# --list-packages BUILD_DIR: prints, without Docker, every Debian package the runtime layer of an
# image of BUILD_DIR/bin installs (runtime-packages.sh's list for the binaries plus
# install-runtime.sh's own): the same computation the prebuilt build runs.
# TAG defaults to lotteryfl:latest; the base image is debian:bookworm (DEBIAN_IMAGE build arg),
# which deploy/docker/base-image.sh makes without a registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=lotteryfl:latest prebuilt= list=0
while [ $# -gt 0 ]; do
  case $1 in
    -t) tag=$2; shift 2 ;;
    --prebuilt) prebuilt=$2; shift 2 ;;
    --list-packages) prebuilt=$2 list=1; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [-t TAG] [--prebuilt BUILD_DIR] [-- DOCKER_BUILD_ARGS...] | --list-packages BUILD_DIR" >&2
       exit 2 ;;
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
if [ "$list" = 1 ]; then
  "$here/install-runtime.sh" --list "$ctx/runtime-packages.txt"
  exit 0
fi
echo "build-image: runtime packages: $("$here/install-runtime.sh" --list "$ctx/runtime-packages.txt" | tr "\n" " ")" >&2
docker build --network host -f "$here/Dockerfile.prebuilt" -t "$tag" "$@" "$ctx"
