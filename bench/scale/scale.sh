#!/usr/bin/env bash
# Scale: K registered virtual clients, 100 sampled per round, 1 local epoch on a few images,
# a lotteryfl-server and one lotteryfl-client host process on loopback (plaintext, no tokens:
# --insecure), then the same K in one lotteryfl-sim process. Prints one table, in one run:
# seconds per round, updates per second, the server's and the client host's peak resident
# memory, the server's close-to-open gap between rounds, and the simulator's peak memory and
# seconds per round.
#   bench/scale/scale.sh [BIN_DIR]        K list: KS="1000 10000 100000"  ROUNDS=10
# Data: the `shared` partition (each client draws 10 training images from the whole training
# set, clients share images: for load, not for accuracy), 10 test images per client, MnistCnn.
# Evaluation only at the last round (all K tickets), timed separately from the rounds.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$here/build/bin}
ks=${KS:-1000 10000 100000}
rounds=${ROUNDS:-10}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# peak_rss PID OUTFILE: samples VmHWM of PID until it exits, then writes the peak (KiB).
peak_rss() {
  local pid=$1 outf=$2 peak=0 v
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.5
  done
  echo "$peak" >"$outf"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

summarize() {  # summarize METRICS.jsonl: "sec_per_round updates_per_sec gap last_eval"
  python3 - "$1" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
timed = rows[1:-1] or rows  # drop the first (joins) and the last (evaluates all K)
wall = sum(r["wall_seconds"] + r.get("open_gap_seconds", 0) for r in timed) / len(timed)
ups = sum(r["completed"] for r in timed) / sum(r["wall_seconds"] + r.get("open_gap_seconds", 0) for r in timed)
gap = max(r.get("open_gap_seconds", 0) for r in timed)
print(f"{wall:.3f} {ups:.1f} {gap:.3f} {rows[-1].get('evaluate_seconds', 0):.1f} {len(rows)}")
PY
}

printf '%-8s %9s %10s %11s %11s %9s %9s | %10s %9s\n' K s/round updates/s server-MiB client-MiB gap-s eval-s \
  sim-MiB sim-s/rnd
for k in $ks; do
  frac=$(python3 -c "print(100 / $k)")
  flags=(--dataset fashion-mnist --partition shared --min-samples 10 --test-per-client 10 --clients "$k"
    --fraction "$frac" --local-epochs 1 --rounds "$rounds" --algorithm lotteryfl --eval-every 1000000
    --round-timeout 600 --join-timeout 600 --seed 1)
  port=$(free_port)
  "$bin/lotteryfl-server" "${flags[@]}" --listen "127.0.0.1:$port" --insecure --out "$work/srv-$k" \
    >"$work/srv-$k.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  peak_rss "$spid" "$work/srv-$k.rss" &
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  "$bin/lotteryfl-client" --server "127.0.0.1:$port" --client-ids "0-$((k - 1))" --parallel 3 --insecure \
    >"$work/cli-$k.log" 2>&1 &
  cpid=$!
  pids+=("$cpid")
  peak_rss "$cpid" "$work/cli-$k.rss" &
  wait "$spid" || { tail -n 20 "$work/srv-$k.log"; exit 1; }
  wait "$cpid" || true
  sleep 1
  read -r spr ups gap ev n < <(summarize "$work/srv-$k/metrics.jsonl")
  [ "$n" = "$rounds" ] || { echo "K=$k: only $n of $rounds rounds"; exit 1; }
  "$bin/lotteryfl-sim" "${flags[@]}" --out "$work/sim-$k" >"$work/sim-$k.log" 2>&1 &
  mpid=$!
  pids+=("$mpid")
  peak_rss "$mpid" "$work/sim-$k.rss" &
  wait "$mpid" || { tail -n 20 "$work/sim-$k.log"; exit 1; }
  sleep 1
  read -r sspr _ _ _ _ < <(summarize "$work/sim-$k/metrics.jsonl")
  printf '%-8s %9s %10s %11.0f %11.0f %9s %9s | %10.0f %9s\n' "$k" "$spr" "$ups" \
    "$(($(cat "$work/srv-$k.rss") / 1024))" "$(($(cat "$work/cli-$k.rss") / 1024))" "$gap" "$ev" \
    "$(($(cat "$work/sim-$k.rss") / 1024))" "$sspr"
done
