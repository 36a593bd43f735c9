#!/usr/bin/env bash
# Makes the local debian:bookworm base image without any container registry: debootstrap
# --variant=minbase bookworm from the Debian mirror this machine's apt already uses (read from
# /etc/apt/sources.list and /etc/apt/sources.list.d/*.{list,sources}), piped into `docker import`.
# Both Dockerfiles build FROM it (DEBIAN_IMAGE), and tests/deploy/compose_run_test.sh and
# tests/packaging/deb_install_test.sh call this script too (docs/deploy.md, "Base image").
#
#   deploy/docker/base-image.sh [-t TAG] [--mirror URL] [--force]
#   deploy/docker/base-image.sh --print-mirror
#
# TAG defaults to debian:bookworm. An existing image of that tag is kept unless --force is
# given. --mirror overrides the mirror read from apt's sources. Needs root (debootstrap), the
# debootstrap package and a running Docker daemon; the root file system is staged under
# ${TMPDIR:-/var/tmp} and removed afterwards. Prints the mirror, the time taken and the size.
# Exit 0 when the image exists (made now or before), 1 on failure, 2 on bad usage.
set -euo pipefail
tag=debian:bookworm mirror= force=0 print_mirror=0
while [ $# -gt 0 ]; do
  case $1 in
    -t) tag=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --force) force=1; shift ;;
    --print-mirror) print_mirror=1; shift ;;
    *) echo "usage: $0 [-t TAG] [--mirror URL] [--force] | --print-mirror" >&2; exit 2 ;;
  esac
done

# apt_mirror: the URI of every bookworm source in apt's one-line (.list) and deb822 (.sources)
# files, in that order; the first one is used.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                       if ($(i + 1) == "bookworm") { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         { uri = ""; ok = 0; deb = 0
           for (j = 1; j <= NF; j++) {
             if ($j ~ /^Types:/ && $j ~ /[ \t]deb([ \t]|$)/) deb = 1
             if ($j ~ /^URIs:/) { split($j, a, /[ \t]+/); uri = a[2] }
             if ($j ~ /^Suites:/ && $j ~ /[ \t]bookworm([ \t]|$)/) ok = 1 }
           if (deb && ok && uri != "") { print uri; exit } }' "$f"
  done
}

[ -n "$mirror" ] || mirror=$(apt_mirror | head -n 1)
if [ "$print_mirror" = 1 ]; then
  [ -n "$mirror" ] || { echo "base-image: no bookworm source in /etc/apt/sources.list*" >&2; exit 1; }
  echo "$mirror"
  exit 0
fi

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base-image: $tag exists ($(docker image inspect -f '{{.Size}}' "$tag" |
    awk '{printf "%d MB", $1 / 1e6}')); --force makes it again" >&2
  exit 0
fi
[ -n "$mirror" ] || { echo "base-image: no bookworm source in /etc/apt/sources.list*; give --mirror URL" >&2; exit 1; }
command -v debootstrap >/dev/null ||
  { echo "base-image: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "base-image: debootstrap needs root" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "base-image: no Docker daemon answers (docker info)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/lfl-base-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
echo "base-image: debootstrap --variant=minbase bookworm from $mirror (log: $work/debootstrap.log)" >&2
if ! debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  echo "base-image: debootstrap failed" >&2
  exit 1
fi
# apt inside the image uses the same mirror (debootstrap wrote only the main suite).
tar -C "$work/rootfs" -c . | docker import - "$tag" >/dev/null
echo "base-image: $tag imported in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$tag" |
  awk '{printf "%d MB", $1 / 1e6}'))" >&2
