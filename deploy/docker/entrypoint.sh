#!/usr/bin/env bash
# Container entrypoint for the lotteryfl image (one image, three roles).
#
#   server ARGS...   lotteryfl-server ARGS; when ARGS name `--out DIR` and DIR/checkpoint.bin
#                    exists, `--resume` is added, so a restarted container continues the run.
#   client ARGS...   lotteryfl-client ARGS; unless ARGS give --client-ids, the ids come from the
#                    replica's credential bundle (see below).
#   sim ARGS...      lotteryfl-sim ARGS (server and clients in one process).
#   healthcheck      gRPC health probe of LFL_PROBE_ADDRESS (default localhost:50051) with the
#                    flags in LFL_PROBE_FLAGS (e.g. TLS files); exit 0 = SERVING.
#   anything else    executed as given.
#
# A client replica's ids come from, in order:
#   1. the file LFL_CLIENT_IDS_FILE (default /run/secrets/client-ids): the `client-ids` file of
#      the host bundle from scripts/gen-tokens.sh N HOSTS DIR, mounted beside the tokens and the
#      certificate that belong to exactly those ids — identity and credentials cannot disagree;
#   2. LFL_REPLICA_INDEX, else JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), times
#      LFL_CLIENTS_PER_REPLICA: replica i hosts [i*N, (i+1)*N).
# Nothing is guessed from the container's name or address: Compose gives the replicas of one
# scaled service no index a container can read (`getent hosts` answers from /etc/hosts, which
# holds the container id), and such replicas would share one set of credentials anyway.
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

replica_index() {
  if [ -n "${LFL_REPLICA_INDEX:-}" ]; then
    printf '%s' "$LFL_REPLICA_INDEX"
  elif [ -n "${JOB_COMPLETION_INDEX:-}" ]; then
    printf '%s' "$JOB_COMPLETION_INDEX"
  else
    die "cannot tell this replica's index: set LFL_REPLICA_INDEX, or pass --client-ids"
  fi
}

client_ids() {
  local file=${LFL_CLIENT_IDS_FILE:-/run/secrets/client-ids}
  if [ -e "$file" ]; then
    local ids
    ids=$(tr -d ' \t\r\n' <"$file") || die "cannot read $file"
    [[ $ids =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]] || die "$file holds '$ids', not an id list like 0-4"
    printf '%s' "$ids"
    return 0
  fi
  local per=${LFL_CLIENTS_PER_REPLICA:-}
  if ! [[ $per =~ ^[0-9]+$ ]] || [ "$per" -lt 1 ]; then
    die "cannot tell this replica's ids: mount its bundle's client-ids file at $file," \
      "set LFL_CLIENTS_PER_REPLICA (ids per replica) with LFL_REPLICA_INDEX, or pass --client-ids"
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
