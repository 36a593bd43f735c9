#!/usr/bin/env bash
# integration_sim_reproducible:
#   - two lotteryfl-sim runs with the same config and seed give a bit-identical model.bin and
#     the same summary.json (apart from wall time and the output directory), with a global accuracy;
#   - a FedAvg run on near-IID data learns: the global accuracy of the last round beats round 1's.
source "$(dirname "$0")/lib.sh" "$@"

log "two lotteryfl runs with seed 7 and a fedavg run, all at once"
start_sim "$work/a"
a=$spawned
start_sim "$work/b"
b=$spawned
start_sim "$work/fedavg" --algorithm fedavg --classes-per-client 10 --local-epochs 5 --lr 0.05 \
  --rounds 4 --eval-every 1 --eval-global-every 1
fedavg=$spawned
finish_sim "$a" "$work/a"
finish_sim "$b" "$work/b"
finish_sim "$fedavg" "$work/fedavg"

same_model "$work/a" "$work/b"
$PY - "$work/a/summary.json" "$work/b/summary.json" <<'PY' || fail "summary.json differs between the two runs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for s in (a, b):
    s.pop("wall_seconds")
    s["config"].pop("out")
assert a == b, f"summaries differ:\n{a}\n{b}"
assert isinstance(a["global_accuracy"], float) and 0 < a["global_accuracy"] <= 1, a["global_accuracy"]
assert a["rounds"] == 6, a["rounds"]
PY
[ "$(rounds_recorded "$work/a")" = 6 ] || fail "metrics.jsonl of run a has $(rounds_recorded "$work/a") rows, expected 6"

# FedAvg with 10 classes per client (near-IID), a learning rate that learns within 4 rounds.
metrics_check "$work/fedavg" '
acc = [r["global_accuracy"] for r in rows]
print("fedavg global accuracy per round:", acc)
assert len(rows) == 4 and all(r["evaluated"] for r in rows), rows
assert acc[-1] > acc[0] + 0.10, f"global accuracy did not rise: {acc}"
' || fail "FedAvg did not learn"
echo "PASS: sim runs are reproducible and FedAvg learns"
