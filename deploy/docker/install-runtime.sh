#!/bin/sh
# Runtime layer of the lotteryfl images (deploy/docker/Dockerfile and Dockerfile.prebuilt):
# installs the Debian packages listed in PACKAGE_LIST (runtime-packages.sh output: the shared
# libraries the binaries link), the threaded OpenBLAS (the reference BLAS trains ~10x slower),
# the Fashion-MNIST package (the default dataset), tini as PID 1 to forward signals, and the CA
# bundle; selects OpenBLAS; creates the unprivileged user lotteryfl (uid/gid 10001) and its
# state directories. Its only input is the package list, so the layer is cached until that
# list changes.
#
#   install-runtime.sh PACKAGE_LIST
#   install-runtime.sh --list PACKAGE_LIST   prints every package the layer installs, sorted
#                                            (deploy/docker/build-image.sh --list-packages)
set -eu
# Installed on top of the binaries' libraries.
EXTRA="libopenblas0-pthread dataset-fashion-mnist tini ca-certificates"
if [ $# -eq 2 ] && [ "$1" = --list ]; then
  { cat "$2"; printf '%s\n' $EXTRA; } | sort -u
  exit 0
fi
[ $# -eq 1 ] || { echo "usage: $0 [--list] PACKAGE_LIST" >&2; exit 2; }
apt-get update
# shellcheck disable=SC2086
xargs -a "$1" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $EXTRA
update-alternatives --set libblas.so.3-x86_64-linux-gnu \
  /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
  /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3
apt-get clean
rm -rf /var/lib/apt/lists/*
groupadd --system --gid 10001 lotteryfl
useradd --system --uid 10001 --gid lotteryfl --home-dir /var/lib/lotteryfl \
  --shell /usr/sbin/nologin lotteryfl
install -d /var/lib/lotteryfl/runs
chown lotteryfl:lotteryfl /var/lib/lotteryfl /var/lib/lotteryfl/runs
