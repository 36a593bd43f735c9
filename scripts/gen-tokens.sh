#!/usr/bin/env bash
# Client tokens, each 32 random bytes from /dev/urandom as 64 hex digits.
#
#   scripts/gen-tokens.sh N
#       prints N lines `<client-id> <token>`, ids 0..N-1 (a plain --tokens file: the server
#       and every client host read the same secrets).
#
#   scripts/gen-tokens.sh N HOSTS OUT_DIR
#       one credential bundle per client host: ids 0..N-1 split into HOSTS contiguous ranges
#       (the first N mod HOSTS hosts get one id more) and
#         OUT_DIR/server-tokens.txt     `<id> sha256:<hex SHA-256 of the token> lotteryfl-host-<h>`
#                                       for the server's --tokens: it holds no token itself, and
#                                       under mutual TLS only the certificate with that CN may
#                                       speak for the id (scripts/gen-certs.sh issues them)
#         OUT_DIR/host-<h>/tokens.txt   `<id> <token>` of host h's ids only (client --tokens)
#         OUT_DIR/host-<h>/client-ids   one line `a-b`, host h's range (client --client-ids)
#       Files are mode 0600 unless KEY_MODE says otherwise (KEY_MODE=0644 when a container
#       running as another user reads bind-mounted files). Existing files are replaced.
set -euo pipefail

usage() {
  echo "usage: $0 N                  (N >= 1; prints '<id> <hex token>' lines)" >&2
  echo "       $0 N HOSTS OUT_DIR    (1 <= HOSTS <= N; writes the per-host bundles)" >&2
  exit 2
}
is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]; }
token() { od -An -v -N32 -tx1 /dev/urandom | tr -d ' \n'; }

[ $# -eq 1 ] || [ $# -eq 3 ] || usage
is_count "$1" || usage
n=$1
if [ $# -eq 1 ]; then
  for ((id = 0; id < n; id++)); do printf '%d %s\n' "$id" "$(token)"; done
  exit 0
fi

hosts=$2 out=$3
is_count "$hosts" && [ "$hosts" -le "$n" ] || usage
[ "${out#-}" = "$out" ] || usage
mode=${KEY_MODE:-0600}
umask 077
mkdir -p "$out"
server_tokens=$out/server-tokens.txt
: >"$server_tokens.tmp"
first=0
for ((h = 0; h < hosts; h++)); do
  count=$((n / hosts + (h < n % hosts ? 1 : 0)))
  last=$((first + count - 1))
  dir=$out/host-$h
  mkdir -p "$dir"
  : >"$dir/tokens.txt.tmp"
  for ((id = first; id <= last; id++)); do
    t=$(token)
    printf '%d %s\n' "$id" "$t" >>"$dir/tokens.txt.tmp"
    digest=$(printf '%s' "$t" | sha256sum | cut -d' ' -f1)
    printf '%d sha256:%s lotteryfl-host-%d\n' "$id" "$digest" "$h" >>"$server_tokens.tmp"
  done
  printf '%d-%d\n' "$first" "$last" >"$dir/client-ids"
  mv "$dir/tokens.txt.tmp" "$dir/tokens.txt"
  chmod "$mode" "$dir/tokens.txt" "$dir/client-ids"
  first=$((last + 1))
done
mv "$server_tokens.tmp" "$server_tokens"
chmod "$mode" "$server_tokens"
echo "gen-tokens: wrote $server_tokens and host-{0..$((hosts - 1))}/{tokens.txt,client-ids} in $out" >&2
