#!/usr/bin/env bash
# Scale: K registered virtual clients, 100 sampled per round, 1 local epoch on 10 images each.
# For every K (default 1,000 / 10,000 / 100,000), in one run, two ways:
#   procs  a lotteryfl-server and ONE lotteryfl-client process hosting all K clients, on
#          loopback (plaintext, no tokens: --insecure), 3 clients trained at once;
#   sim    lotteryfl-sim: the same server and client host in one process (in-process channel).
# Prints one table: seconds per round and its ratio to the first K of the same mode, updates
# per second, the close-to-open gap between rounds (the rows' open_gap_seconds: last accepted
# update closes round r -> round r+1 opens and its tasks can be polled), peak resident memory
# of the server and of the client host (sim: the one process), the last round's evaluation
# (every one of the K tickets, by design) and the time from start to round 1 (joins + loading).
# Then the acceptance lines for the simulator at the largest K (issue 12):
# 10 rounds finish, peak RSS <= 2 GiB, s/round <= 1.5x that at the first K.
#   bench/scale/scale.sh [BIN_DIR]     (default build/bin)
#   env: KS="1000 10000 100000" ROUNDS=10 MODES="procs sim" KEEP=DIR (copy every run's
#   metrics.jsonl and log to DIR, e.g. to compare two builds' rows)
# Timed rounds: 2..ROUNDS (round 1 pays the first torch calls). Peak RSS from GNU time (%M).
# Data: the `shared` partition (partitioning/partition.h: each client draws 10 distinct
# training images from the whole training set, independently, so clients share images; for
# load, not accuracy), 10 test images per client, Fashion-MNIST, MnistCnn, LotteryFL,
# evaluation only at the last round (--eval-every 1000000).
# Takes ~4 min on the 2-core VM (docs/scale.md has its output).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$here/build/bin}
ks=${KS:-1000 10000 100000}
modes=${MODES:-procs sim}
keep=${KEEP:-}
rounds=${ROUNDS:-10}
gnu_time=/usr/bin/time
for b in lotteryfl-server lotteryfl-client lotteryfl-sim; do
  [ -x "$bin/$b" ] || { echo "$bin/$b is missing" >&2; exit 1; }
done
[ -x "$gnu_time" ] || { echo "needs GNU time at $gnu_time (Debian package 'time')" >&2; exit 1; }
((rounds >= 2)) || { echo "ROUNDS must be >= 2 (round 1 is not timed)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/lfl-scale.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$keep" ]; then
    mkdir -p "$keep"
    for d in "$work"/*/; do [ -f "$d/metrics.jsonl" ] && cp "$d/metrics.jsonl" "$keep/$(basename "$d").metrics.jsonl"; done
    cp "$work"/*.log "$keep"/ 2>/dev/null || true
  fi
  if [ $rc != 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "----- $f (tail)"; tail -n 15 "$f"; }; done >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
mib() { echo $(($(cat "$1") / 1024)); }  # GNU time's %M is KiB

# summarize METRICS STARTED_AT ROUNDS: "s_per_round updates_per_s gap_mean gap_max eval_s to_round1_s"
summarize() {
  python3 - "$@" <<'PY'
import json, os, sys
path, started, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(path) if l.strip()]
if [r["round"] for r in rows] != list(range(1, rounds + 1)):
    sys.exit(f"{path}: rounds {[r['round'] for r in rows]}, expected 1..{rounds}")
timed = rows[1:]
spent = [r["wall_seconds"] + r["open_gap_seconds"] for r in timed]
gaps = [r["open_gap_seconds"] for r in timed]
# Round 1 opened wall_seconds before it closed; its row is written right after (no evaluation).
opened = os.path.getmtime(path + ".round1") - rows[0]["wall_seconds"]
print(f"{sum(spent) / len(spent):.3f} {sum(r['completed'] for r in timed) / sum(spent):.1f} "
      f"{sum(gaps) / len(gaps):.3f} {max(gaps):.3f} {rows[-1]['evaluate_seconds']:.1f} {opened - started:.1f}")
PY
}

# watch_round1 METRICS: touches METRICS.round1 as soon as the first row is there (its mtime is
# the time the row appeared); runs in the background until then.
watch_round1() {
  while [ ! -s "$1" ]; do sleep 0.05; done
  touch "$1.round1"
}

flags_for() {  # flags_for K: the run's flags
  local frac
  frac=$(python3 -c "print(100 / $1)")
  FLAGS=(--dataset fashion-mnist --partition shared --min-samples 10 --test-per-client 10 --clients "$1"
    --fraction "$frac" --local-epochs 1 --rounds "$rounds" --algorithm lotteryfl --eval-every 1000000
    --eval-clients 20 --round-timeout 600 --join-timeout 600 --seed 1)
}

run_procs() {  # run_procs K: server + one client host; sets ROW
  local k=$1 port spid cpid started
  flags_for "$k"
  port=$(free_port)
  started=$(now)
  "$gnu_time" -f %M -o "$work/srv-$k.rss" "$bin/lotteryfl-server" "${FLAGS[@]}" --listen "127.0.0.1:$port" \
    --insecure --out "$work/srv-$k" >"$work/srv-$k.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  mkdir -p "$work/srv-$k"
  watch_round1 "$work/srv-$k/metrics.jsonl" &
  pids+=($!)
  "$gnu_time" -f %M -o "$work/cli-$k.rss" "$bin/lotteryfl-client" --server "127.0.0.1:$port" \
    --client-ids "0-$((k - 1))" --parallel 3 --insecure --host-name scale >"$work/cli-$k.log" 2>&1 &
  cpid=$!
  pids+=("$cpid")
  wait "$spid" || { echo "K=$k: lotteryfl-server failed" >&2; exit 1; }
  wait "$cpid" || { echo "K=$k: lotteryfl-client failed" >&2; exit 1; }
  local summary
  summary=$(summarize "$work/srv-$k/metrics.jsonl" "$started" "$rounds")
  read -r spr ups gap gapmax ev t1 <<<"$summary"
  SRV_MIB=$(mib "$work/srv-$k.rss")
  CLI_MIB=$(mib "$work/cli-$k.rss")
}

run_sim() {  # run_sim K
  local k=$1 mpid started
  flags_for "$k"
  mkdir -p "$work/sim-$k"
  watch_round1 "$work/sim-$k/metrics.jsonl" &
  pids+=($!)
  started=$(now)
  "$gnu_time" -f %M -o "$work/sim-$k.rss" "$bin/lotteryfl-sim" "${FLAGS[@]}" --parallel 3 --out "$work/sim-$k" \
    >"$work/sim-$k.log" 2>&1 &
  mpid=$!
  pids+=("$mpid")
  wait "$mpid" || { echo "K=$k: lotteryfl-sim failed" >&2; exit 1; }
  local summary
  summary=$(summarize "$work/sim-$k/metrics.jsonl" "$started" "$rounds")
  read -r spr ups gap gapmax ev t1 <<<"$summary"
  SRV_MIB=$(mib "$work/sim-$k.rss")
  CLI_MIB=-
}

echo "# $(getconf _NPROCESSORS_ONLN) cores, $(uname -sr), load average at start: $(cut -d' ' -f1-3 /proc/loadavg); ROUNDS=$rounds" \
  "(timed: 2..$rounds), 100 sampled per round"
printf '%-6s %-6s %8s %6s %9s %8s %8s %10s %10s %8s %10s\n' mode K s/round ratio updates/s gap-mean gap-max \
  server-MiB client-MiB eval-s to-round1
declare -A base
for mode in $modes; do
  for k in $ks; do
    "run_$mode" "$k"
    base[$mode]=${base[$mode]:-$spr}
    ratio=$(python3 -c "print(f'{$spr / ${base[$mode]}:.2f}')")
    printf '%-6s %-6s %8s %6s %9s %8s %8s %10s %10s %8s %10s\n' "$mode" "$k" "$spr" "$ratio" "$ups" "$gap" \
      "$gapmax" "$SRV_MIB" "$CLI_MIB" "$ev" "$t1"
    if [ "$mode" = sim ]; then last_sim_ratio=$ratio last_sim_mib=$SRV_MIB last_k=$k; fi
  done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
# Acceptance (issue 12) for the simulator at the largest K, from the sim rows above.
ok() { python3 -c "import sys; sys.exit(0 if $1 else 1)" && echo PASS || echo FAIL; }
[ -n "${last_k:-}" ] || exit 0  # MODES without sim
echo "sim K=$last_k: $rounds rounds finished: PASS"
echo "sim K=$last_k: peak RSS $last_sim_mib MiB <= 2048 MiB: $(ok "$last_sim_mib <= 2048")"
echo "sim K=$last_k: s/round ratio to K=${ks%% *} $last_sim_ratio <= 1.5: $(ok "$last_sim_ratio <= 1.5")"
