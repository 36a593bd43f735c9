# Shared helpers for the process-level integration tests (sourced, not run).
#
# Usage in a test script:   source "$(dirname "$0")/lib.sh" "$@"
# The first script argument (or $LFL_BINARY_DIR/bin) is the directory holding
# lotteryfl-server, lotteryfl-client and lotteryfl-sim. Every process started with
# `spawn` is killed (TERM, then KILL) when the script exits, whatever the reason;
# the work directory is removed, and on failure the logs' tails are printed first.
# Exit codes: 0 pass, 77 skip (ctest SKIP_RETURN_CODE), anything else fail.

set -euo pipefail
src=${LFL_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${1:-${LFL_BINARY_DIR:-$src/build}/bin}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
PY=/usr/bin/python3

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }

for b in lotteryfl-server lotteryfl-client lotteryfl-sim; do
  [ -x "$bin/$b" ] || fail "$bin/$b is missing (build lotteryfl-server, lotteryfl-client and lotteryfl-sim)"
done
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
  skip "Fashion-MNIST is not installed (dataset-fashion-mnist)"

work=$(mktemp -d "${TMPDIR:-/tmp}/lfl-integ.XXXXXX")
pids=()

cleanup() {
  local rc=$?
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for _ in 1 2 3 4 5; do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  if [ $rc != 0 ] && [ $rc != 77 ]; then
    for f in "$work"/*.log "$work"/*/metrics.jsonl; do
      [ -f "$f" ] && { echo "----- $f (tail)"; tail -n 30 "$f"; }
    done >&2
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The tiny run every test uses (and its uninterrupted reference).
# --round-timeout 30: generous for a loaded machine; a round closes as soon as every sampled
# client has submitted, so it costs nothing. Tests that need stragglers pass a short one.
RUN_FLAGS=(--dataset fashion-mnist --partition shards --clients 10 --fraction 0.5
  --samples-per-class 10 --test-per-client 50 --local-epochs 2 --rounds 6
  --round-timeout 30 --join-timeout 20 --seed 7 --algorithm lotteryfl)

# with_flags [--flag value | --switch]...: sets FLAGS to RUN_FLAGS with the given flags replacing
# the ones of the same name (CLI11 refuses a flag given twice) and the rest appended.
with_flags() {
  local -A given=()
  local -a extra=()
  while (($#)); do
    if (($# >= 2)) && [[ $2 != --* ]]; then
      given[$1]=1
      extra+=("$1" "$2")
      shift 2
    else
      extra+=("$1")
      shift
    fi
  done
  FLAGS=()
  local i
  for ((i = 0; i < ${#RUN_FLAGS[@]}; i += 2)); do
    [[ -v given[${RUN_FLAGS[i]}] ]] || FLAGS+=("${RUN_FLAGS[i]}" "${RUN_FLAGS[i + 1]}")
  done
  FLAGS+=(${extra[@]+"${extra[@]}"})
}

# free_port: a TCP port on 127.0.0.1 that nobody listens on right now.
free_port() {
  $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# spawn LOG CMD...: start CMD in the background (output to $work/LOG), remember its pid in $spawned.
# `timeout` bounds every process even if this script itself is killed with -9.
spawn() {
  local logfile=$work/$1
  shift
  timeout -k 5 240 "$@" >"$logfile" 2>&1 &
  spawned=$!
  pids+=("$spawned")
}

# crash PID: kill -9 the binary a `spawn`ed `timeout` runs (no chance to checkpoint or say goodbye).
crash() {
  local child
  child=$(pgrep -P "$1") || fail "process $1 has no running binary to kill"
  kill -KILL "$child"
  wait "$1" 2>/dev/null || true
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.2 s, fail after SECONDS.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  fail "timed out after $1 s waiting for $what"
}

# wait_exit PID SECONDS: sets $rc to the exit status of a spawned process; 124 (and killed) after
# SECONDS. (It sets a variable rather than printing: `wait` only works in the shell that spawned.)
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" $(pgrep -P "$pid") 2>/dev/null
    wait "$pid" 2>/dev/null || true
    rc=124
    return
  fi
  rc=0
  wait "$pid" || rc=$?
}

# expect_refusal LOG RC PATTERN WHAT: RC is an error exit (not 0, not a timeout, not a crash by a
# signal) and $work/LOG matches PATTERN (the message says what is wrong).
expect_refusal() {
  local logfile=$work/$1 code=$2 pattern=$3 what=$4
  [ "$code" != 0 ] || fail "$what: exited 0"
  [ "$code" != 124 ] || fail "$what: still running when its time was up (not refused)"
  [ "$code" -lt 128 ] || fail "$what: crashed (exit $code = signal $((code - 128))) instead of refusing"
  grep -qiE -- "$pattern" "$logfile" ||
    fail "$what: exit $code, but the log does not match /$pattern/: $(tail -n 3 "$logfile")"
  log "$what: refused (exit $code): $(grep -iE -- "$pattern" "$logfile" | tail -n 1)"
}

# rounds_recorded DIR: rows in DIR/metrics.jsonl (0 before the file exists).
rounds_recorded() {
  [ -f "$1/metrics.jsonl" ] || { echo 0; return; }
  grep -c '"round"' "$1/metrics.jsonl" || true
}

# at_least_rounds DIR N: DIR/metrics.jsonl has N rows or more.
at_least_rounds() { [ "$(rounds_recorded "$1")" -ge "$2" ]; }

# tcp_open PORT: something listens on 127.0.0.1:PORT.
tcp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# start_sim OUT [FLAGS...]: an in-process run of RUN_FLAGS with FLAGS (see with_flags) in the
# background; its pid in $spawned. finish_sim PID OUT: it must exit 0.
start_sim() {
  local out=$1
  shift
  with_flags "$@"
  spawn "sim-$(basename "$out").log" "$bin/lotteryfl-sim" "${FLAGS[@]}" --parallel 2 --out "$out"
}
finish_sim() {
  wait_exit "$1" 180
  [ "$rc" = 0 ] || fail "lotteryfl-sim --out $2 exited $rc"
}

# run_sim OUT [FLAGS...]: start_sim and finish_sim.
run_sim() {
  start_sim "$@"
  finish_sim "$spawned" "$1"
}

# start_server OUT PORT [FLAGS...]: lotteryfl-server on 127.0.0.1:PORT with RUN_FLAGS and FLAGS; its pid in $spawned.
start_server() {
  local out=$1 port=$2
  shift 2
  servers_started=$((${servers_started:-0} + 1))
  with_flags "$@"
  spawn "server-$(basename "$out")-$servers_started.log" "$bin/lotteryfl-server" "${FLAGS[@]}" \
    --listen "127.0.0.1:$port" --insecure --out "$out"
  wait_until 60 "the server to listen on 127.0.0.1:$port" tcp_open "$port"
}

# start_client LOG PORT IDS [FLAGS...]: lotteryfl-client hosting IDS (2 at a time); its pid in $spawned.
start_client() {
  local logfile=$1 port=$2 ids=$3
  shift 3
  spawn "$logfile" "$bin/lotteryfl-client" --server "127.0.0.1:$port" --client-ids "$ids" --parallel 2 --insecure "$@"
}

# same_model A B: A/model.bin and B/model.bin exist and are byte-identical.
same_model() {
  [ -s "$1/model.bin" ] || fail "$1/model.bin is missing"
  [ -s "$2/model.bin" ] || fail "$2/model.bin is missing"
  cmp -s "$1/model.bin" "$2/model.bin" ||
    fail "model.bin differs between $1 and $2 (same config and seed): $(cmp "$1/model.bin" "$2/model.bin" 2>&1 | head -n1)"
}

# same_rounds A B: A/metrics.jsonl and B/metrics.jsonl agree on everything but timings and bytes
# (participation, accuracies, density, pruning) — the same run, round by round.
same_rounds() {
  $PY - "$1/metrics.jsonl" "$2/metrics.jsonl" <<'PY' || fail "the rounds of $1 and $2 differ (same config and seed)"
import json, sys
keys = ("round", "sampled", "completed", "dropped", "personalized_accuracy", "global_masked_accuracy",
        "global_accuracy", "mean_density", "pruned_clients")
a, b = ([{k: json.loads(line)[k] for k in keys} for line in open(p) if line.strip()] for p in sys.argv[1:3])
for ra, rb in zip(a, b):
    assert ra == rb, f"round {ra['round']}:\n  {ra}\n  {rb}"
assert len(a) == len(b), f"{len(a)} rows against {len(b)}"
PY
}

# metrics_check DIR PYTHON: runs PYTHON with `rows` = the parsed DIR/metrics.jsonl; an assert fails the test.
metrics_check() {
  $PY - "$1/metrics.jsonl" "$2" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
exec(sys.argv[2])
PY
}
