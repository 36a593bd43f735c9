#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries the given
# binaries link directly (their DT_NEEDED entries), one per line, sorted: the
# runtime stage of the Dockerfile installs these and apt brings their own
# dependencies, so adding a library needs no Dockerfile edit. Fails if a
# library is missing or belongs to no package. Needs ldd and objdump.
#
#   deploy/docker/runtime-packages.sh build/bin/lotteryfl-server build/bin/lotteryfl-client
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }

# owner PATH: the package that ships PATH, trying both sides of the /usr merge.
owner() {
  local path=$1 alt
  case $path in
    /usr/lib/*) alt=${path#/usr} ;;
    /lib/*) alt=/usr$path ;;
    *) alt=$path ;;
  esac
  for p in "$path" "$alt" "$(readlink -f "$path")"; do
    # "pkg1:amd64, pkg2:amd64: /path" -> pkg1:amd64 (each line names the owners)
    if out=$(dpkg-query -S "$p" 2>/dev/null); then
      sed -E 's/: [^:]*$//; s/,.*//' <<<"$out" | head -n1
      return 0
    fi
  done
  echo "runtime-packages: no Debian package ships $path" >&2
  return 1
}

needed=$(objdump -p "$@" | awk '$1 == "NEEDED" {print $2}' | sort -u)
libs=$(ldd "$@" | awk -v needed="$needed" '
  BEGIN { n = split(needed, names, "\n"); for (i = 1; i <= n; i++) want[names[i]] = 1 }
  /not found/ { print "MISSING " $1 }
  /=> \// && ($1 in want) { print $3 }' | sort -u)
if grep -q '^MISSING' <<<"$libs"; then
  echo "runtime-packages: unresolved libraries: $(grep '^MISSING' <<<"$libs" | tr '\n' ' ')" >&2
  exit 1
fi
for lib in $libs; do owner "$lib"; done | sed -E "s/:[a-z0-9]+$//" | sort -u
