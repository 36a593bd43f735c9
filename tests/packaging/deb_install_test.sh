#!/usr/bin/env bash
# Builds the Debian packages with `cpack -G DEB` and installs lotteryfl_*.deb with
# `apt-get install ./lotteryfl_*.deb` in a clean debian:bookworm container, then runs
# `lotteryfl-sim --help` there: the package's declared Depends must be enough.
# The container reaches only Debian's package mirror (host network, for apt); no image
# is pulled: a missing debian:bookworm is made by deploy/docker/base-image.sh (debootstrap from
# apt's own mirror + docker import, docs/deploy.md "Base image") when debootstrap and root are
# there. Exit 0 pass, 77 skipped (no Docker daemon, or no local image and none can be made),
# else fail.
set -euo pipefail
bin=${LFL_BINARY_DIR:?}
image=${LFL_DEB_TEST_IMAGE:-debian:bookworm}

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  echo "SKIP: no Docker daemon reachable"; exit 77
fi
if ! docker image inspect "$image" >/dev/null 2>&1; then
  src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
  if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
    echo "SKIP: no local $image image and no root + debootstrap to make one" \
      "(deploy/docker/base-image.sh -t $image; never pulled)"; exit 77
  fi
  "$src/deploy/docker/base-image.sh" -t "$image" || { echo "FAIL: deploy/docker/base-image.sh -t $image"; exit 1; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lfl-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
(cd "$bin" && cpack -G DEB -B "$work" >"$work/cpack.log") || { cat "$work/cpack.log"; exit 1; }
shopt -s nullglob
debs=("$work"/lotteryfl_*.deb)
[ ${#debs[@]} -eq 1 ] || { echo "FAIL: expected one lotteryfl_*.deb in $work"; ls -l "$work"; exit 1; }
deb=${debs[0]}
echo "built $(basename "$deb") ($(du -h "$deb" | cut -f1)) in $((SECONDS - start)) s"
dpkg-deb --field "$deb" Package Version Architecture Depends

# Clean container: install the package as a user would, then run it.
docker run --rm --network host -v "$work:/pkg:ro" "$image" bash -euc '
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  cd /pkg
  apt-get install -y -q --no-install-recommends ./lotteryfl_*.deb >/tmp/apt.log 2>&1 || { tail -30 /tmp/apt.log; exit 1; }
  echo "installed: $(dpkg-query -W -f "\${Package} \${Version}" lotteryfl), $(dpkg-query -W -f . | wc -c) packages in the container"
  lotteryfl-sim --help | head -5
  for p in lotteryfl-server lotteryfl-client lotteryfl-partition; do "$p" --help >/dev/null; done
  echo "all four programs run"
' || { echo "FAIL: installing or running the package in $image"; exit 1; }
echo "PASS in $((SECONDS - start)) s"
