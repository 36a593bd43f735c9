#!/usr/bin/env bash
# deploy_entrypoint: the image's entrypoint gives each client replica its own id range
# (from its credential bundle's client-ids file, LFL_REPLICA_INDEX, or a Kubernetes
# completion index), keeps explicit --client-ids, refuses to guess (a container name is
# not an identity), and resumes the server only when a checkpoint exists. Runs the script with LFL_DRY_RUN=1 (prints the command).
set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
entry=$src/deploy/docker/entrypoint.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect WANT ENV... -- ARGS...: the printed command equals WANT.
expect() {
  local want=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local got
  got=$(env -i PATH="$PATH" LFL_DRY_RUN=1 "${envs[@]}" "$entry" "$@") || fail "exit $? for: $*"
  [ "$got" = "$want" ] || fail "got '$got', want '$want'"
}

expect "lotteryfl-client --server s:1 --client-ids 0-4" LFL_CLIENTS_PER_REPLICA=5 LFL_REPLICA_INDEX=0 -- client --server s:1
expect "lotteryfl-client --client-ids 10-14" LFL_CLIENTS_PER_REPLICA=5 JOB_COMPLETION_INDEX=2 -- client
# The bundle's client-ids file wins over an index; the default path is /run/secrets/client-ids.
printf '6-8\n' >"$dir/client-ids"
expect "lotteryfl-client --client-ids 6-8" LFL_CLIENT_IDS_FILE="$dir/client-ids" -- client
expect "lotteryfl-client --client-ids 6-8" LFL_CLIENT_IDS_FILE="$dir/client-ids" LFL_CLIENTS_PER_REPLICA=5 \
  LFL_REPLICA_INDEX=0 -- client
printf '0-4,10-14' >"$dir/two-ranges"
expect "lotteryfl-client --client-ids 0-4,10-14" LFL_CLIENT_IDS_FILE="$dir/two-ranges" -- client
expect "lotteryfl-client --client-ids 1-2" LFL_CLIENT_IDS_FILE="$dir/client-ids" -- client --client-ids 1-2
printf '0-4; rm -rf /\n' >"$dir/evil-ids"
printf '' >"$dir/empty-ids"
expect "lotteryfl-client --client-ids=7-9" LFL_CLIENTS_PER_REPLICA=3 -- client --client-ids=7-9
expect "lotteryfl-client --probe h:1" -- client --probe h:1

# Replicas never overlap and together cover 0..K-1.
ids=$(for i in 0 1 2 3; do
  env -i PATH="$PATH" LFL_DRY_RUN=1 LFL_CLIENTS_PER_REPLICA=4 LFL_REPLICA_INDEX=$i "$entry" client
done | sed -E 's/.*--client-ids ([0-9]+)-([0-9]+)/\1 \2/' | while read -r a b; do seq "$a" "$b"; done)
[ "$(sort -n <<<"$ids" | tr '\n' ' ')" = "$(seq -s ' ' 0 15) " ] || fail "ranges overlap or leave gaps"

for bad in "LFL_CLIENTS_PER_REPLICA=3" "LFL_CLIENTS_PER_REPLICA=3 LFL_CONTAINER_NAME=compose_client_3" \
  "LFL_REPLICA_INDEX=1" "LFL_CLIENTS_PER_REPLICA=0 LFL_REPLICA_INDEX=1" \
  "LFL_CLIENTS_PER_REPLICA=2 LFL_REPLICA_INDEX=x" "LFL_CLIENT_IDS_FILE=$dir/evil-ids" \
  "LFL_CLIENT_IDS_FILE=$dir/empty-ids"; do
  rc=0
  # shellcheck disable=SC2086  # $bad is a list of VAR=value words
  env -i PATH="$PATH" LFL_DRY_RUN=1 $bad "$entry" client >/dev/null 2>&1 || rc=$?
  [ "$rc" = 64 ] || fail "exit $rc (not the refusal 64) with $bad"
done

expect "lotteryfl-server --out $dir" -- server --out "$dir"
touch "$dir/checkpoint.bin"
expect "lotteryfl-server --out $dir --resume" -- server --out "$dir"
expect "lotteryfl-server --out=$dir --resume" -- server --out="$dir"
expect "lotteryfl-server --resume --out $dir" -- server --resume --out "$dir"
expect "lotteryfl-client --probe localhost:50051 --tls-ca /c" "LFL_PROBE_FLAGS=--tls-ca /c" -- healthcheck
expect "lotteryfl-sim --rounds 1" -- sim --rounds 1
echo "PASS: entrypoint"
