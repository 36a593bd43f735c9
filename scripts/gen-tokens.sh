#!/usr/bin/env bash
# Prints N client tokens, one line each: `<client-id> <token>`, ids 0..N-1, each token
# 32 random bytes from /dev/urandom as 64 hex digits. The server's and the clients'
# --tokens file (a client uses only the lines of its own ids).
#
#   scripts/gen-tokens.sh 50 > deploy/certs/out/tokens.txt
set -euo pipefail

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: $0 N   (N >= 1 clients; writes '<id> <hex token>' lines to stdout)" >&2
  exit 2
fi
for ((id = 0; id < $1; id++)); do
  printf '%d %s\n' "$id" "$(od -An -v -N32 -tx1 /dev/urandom | tr -d ' \n')"
done
