#!/usr/bin/env bash
# Container entrypoint for the lotteryfl image (one image, three roles).
#
#   server ARGS...   lotteryfl-server ARGS; when ARGS name `--out DIR` and DIR/checkpoint.bin
#                    exists, `--resume` is added, so a restarted container continues the run.
#   client ARGS...   lotteryfl-client ARGS; unless ARGS give --client-ids, this replica hosts
#                    LFL_CLIENTS_PER_REPLICA ids starting at replica_index * LFL_CLIENTS_PER_REPLICA.
#   sim ARGS...      lotteryfl-sim ARGS (server and clients in one process).
#   healthcheck      gRPC health probe of LFL_PROBE_ADDRESS (default localhost:50051) with the
#                    flags in LFL_PROBE_FLAGS (e.g. TLS files); exit 0 = SERVING.
#   anything else    executed as given.
#
# The replica index (0-based) comes from, in order: LFL_REPLICA_INDEX; JOB_COMPLETION_INDEX (a
# Kubernetes Indexed Job); the trailing number of the container name (Compose names replicas
# <project>_client_1, _2, ... or <project>-client-1, ...; 1-based), taken from LFL_CONTAINER_NAME
# or from a reverse DNS lookup of the container's own address (Docker's embedded DNS answers it).
# LFL_DRY_RUN=1 prints the command instead of running it (used by the tests).
set -euo pipefail
shopt -s inherit_errexit

die() {
  echo "entrypoint: $*" >&2
  exit 64
}

run() {
  if [ "${LFL_DRY_RUN:-0}" = 1 ]; then
    printf '%s\n' "$*"
    exit 0
  fi
  exec "$@"
}

has_flag() {
  local flag=$1
  shift
  for arg in "$@"; do
    [ "$arg" = "$flag" ] || [ "${arg%%=*}" = "$flag" ] && return 0
  done
  return 1
}

flag_value() {
  local flag=$1
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      "$flag") [ $# -ge 2 ] && { printf '%s' "$2"; return 0; } ;;
      "$flag"=*) printf '%s' "${1#*=}"; return 0 ;;
    esac
    shift
  done
  return 1
}

container_name() {
  if [ -n "${LFL_CONTAINER_NAME:-}" ]; then
    printf '%s' "$LFL_CONTAINER_NAME"
    return 0
  fi
  local ip
  ip=$(hostname -i 2>/dev/null | awk '{print $1}')
  [ -n "$ip" ] && getent hosts "$ip" | awk '{print $2}' | cut -d. -f1 | head -n1
}

replica_index() {
  if [ -n "${LFL_REPLICA_INDEX:-}" ]; then
    printf '%s' "$LFL_REPLICA_INDEX"
  elif [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
    printf '%s' "$JOB_COMPLETION_INDEX"
  else
    local name number
    name=$(container_name || true)
    number=$(sed -nE 's/.*[_-]([0-9]+)$/\1/p' <<<"$name")
    if [ -z "$number" ] || [ "$number" -lt 1 ]; then
      die "cannot tell this replica's index (container name '${name}'): set LFL_REPLICA_INDEX or pass --client-ids"
    fi
    printf '%s' "$((number - 1))"
  fi
}

client_ids() {
  local per=${LFL_CLIENTS_PER_REPLICA:-}
  if ! [[ $per =~ ^[0-9]+$ ]] || [ "$per" -lt 1 ]; then
    die "set LFL_CLIENTS_PER_REPLICA (ids per replica) or pass --client-ids"
  fi
  local index
  index=$(replica_index)
  [[ $index =~ ^[0-9]+$ ]] || die "replica index '$index' is not a number"
  printf '%d-%d' "$((index * per))" "$((index * per + per - 1))"
}

role=${1:-}
[ $# -gt 0 ] && shift
case $role in
  server)
    out=$(flag_value --out "$@" || true)
    if [ -n "$out" ] && [ -f "$out/checkpoint.bin" ] && ! has_flag --resume "$@"; then
      set -- "$@" --resume
    fi
    run lotteryfl-server "$@"
    ;;
  client)
    if ! has_flag --client-ids "$@" && ! has_flag --probe "$@"; then
      ids=$(client_ids)
      set -- "$@" --client-ids "$ids"
    fi
    run lotteryfl-client "$@"
    ;;
  sim)
    run lotteryfl-sim "$@"
    ;;
  healthcheck)
    # shellcheck disable=SC2086  # LFL_PROBE_FLAGS is a list of flags
    run lotteryfl-client --probe "${LFL_PROBE_ADDRESS:-localhost:50051}" ${LFL_PROBE_FLAGS:-}
    ;;
  "")
    die "usage: server|client|sim|healthcheck [FLAGS...] (or any command)"
    ;;
  *)
    run "$role" "$@"
    ;;
esac
