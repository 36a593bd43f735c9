#!/usr/bin/env bash
# integration_tickets_prune: LotteryFL's tickets prune on a short run where each client takes
# part only a handful of times (4 clients, all sampled, 6 rounds): mean density falls every
# time a client prunes and reaches the target; pruned weights never come back. And
# `--algorithm local` on the same data: every client trains alone, nothing is sent.
source "$(dirname "$0")/lib.sh" "$@"

log "lotteryfl (prune rate 0.5, target 0.3) and local, 4 clients, 6 rounds"
start_sim "$work/lottery" --clients 4 --fraction 1 --local-epochs 20 --lr 0.05 --prune-rate 0.5 --target-density 0.3 \
  --eval-every 1
lottery=$spawned
start_sim "$work/local" --clients 4 --fraction 1 --local-epochs 20 --lr 0.05 --algorithm local --eval-every 3
local_run=$spawned
finish_sim "$lottery" "$work/lottery"
finish_sim "$local_run" "$work/local"

metrics_check "$work/lottery" '
density = [r["mean_density"] for r in rows]
print("mean density per round:", density)
assert len(rows) == 6, len(rows)
assert all(b <= a + 1e-12 for a, b in zip(density, density[1:])), f"density rose: {density}"
assert density[-1] <= 0.3 + 0.01, f"tickets did not reach the target density 0.3: {density}"
assert sum(r["pruned_clients"] for r in rows) >= 2 * 4, "every client should prune at least twice"
' || fail "tickets did not prune to the target"

metrics_check "$work/local" '
print("local personalized:", [r["personalized_accuracy"] for r in rows])
assert len(rows) == 6, len(rows)
assert all(r["uplink_bytes"] == 0 and r["downlink_bytes"] == 0 for r in rows), "local runs send nothing"
assert all(r["global_masked_accuracy"] is None and r["global_accuracy"] is None for r in rows)
assert [r["evaluated"] for r in rows] == [False, False, True, False, False, True]
assert rows[-1]["personalized_accuracy"] > 0.6, rows[-1]
assert rows[-1]["mean_density"] == 1, "local training does not prune"
' || fail "--algorithm local"
[ -f "$work/local/summary.json" ] || fail "local run wrote no summary.json"
echo "PASS: tickets prune to their target density; --algorithm local trains alone and sends nothing"
