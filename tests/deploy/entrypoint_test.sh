#!/usr/bin/env bash
# deploy_entrypoint: the image's entrypoint gives each client replica its own id range
# (from LFL_REPLICA_INDEX, a Kubernetes completion index, or a Compose container name),
# keeps explicit --client-ids, refuses to guess, and resumes the server only when a
# checkpoint exists. Runs the script with LFL_DRY_RUN=1 (prints the command).
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
expect "lotteryfl-client --client-ids 6-8" LFL_CLIENTS_PER_REPLICA=3 LFL_CONTAINER_NAME=compose_client_3 -- client
expect "lotteryfl-client --client-ids 0-2" LFL_CLIENTS_PER_REPLICA=3 LFL_CONTAINER_NAME=compose-client-1 -- client
expect "lotteryfl-client --client-ids=7-9" LFL_CLIENTS_PER_REPLICA=3 -- client --client-ids=7-9
expect "lotteryfl-client --probe h:1" -- client --probe h:1

# Replicas never overlap and together cover 0..K-1.
ids=$(for i in 0 1 2 3; do
  env -i PATH="$PATH" LFL_DRY_RUN=1 LFL_CLIENTS_PER_REPLICA=4 LFL_REPLICA_INDEX=$i "$entry" client
done | sed -E 's/.*--client-ids ([0-9]+)-([0-9]+)/\1 \2/' | while read -r a b; do seq "$a" "$b"; done)
[ "$(sort -n <<<"$ids" | tr '\n' ' ')" = "$(seq -s ' ' 0 15) " ] || fail "ranges overlap or leave gaps"

for bad in "LFL_CLIENTS_PER_REPLICA=3 LFL_CONTAINER_NAME=f00dcafe" "LFL_REPLICA_INDEX=1" \
  "LFL_CLIENTS_PER_REPLICA=0 LFL_REPLICA_INDEX=1" "LFL_CLIENTS_PER_REPLICA=2 LFL_REPLICA_INDEX=x"; do
  # shellcheck disable=SC2086  # $bad is a list of VAR=value words
  env -i PATH="$PATH" LFL_DRY_RUN=1 $bad "$entry" client >/dev/null 2>&1 && fail "guessed ids with $bad"
done

expect "lotteryfl-server --out $dir" -- server --out "$dir"
touch "$dir/checkpoint.bin"
expect "lotteryfl-server --out $dir --resume" -- server --out "$dir"
expect "lotteryfl-server --out=$dir --resume" -- server --out="$dir"
expect "lotteryfl-server --resume --out $dir" -- server --resume --out "$dir"
expect "lotteryfl-client --probe localhost:50051 --tls-ca /c" "LFL_PROBE_FLAGS=--tls-ca /c" -- healthcheck
expect "lotteryfl-sim --rounds 1" -- sim --rounds 1
echo "PASS: entrypoint"
