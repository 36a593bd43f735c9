#!/usr/bin/env bash
# Issue 18, the coordinator's acceptance figures, each side by side with the same run undisturbed
# (lotteryfl-sim: the server and 4 clients in one process over gRPC, the code paths of separate
# processes). Client 3 is the attacker (lotteryfl-sim --bench-attack, a benchmark-only option):
#   clean          no attack
#   unchanged      client 3 trains, then returns the served model unchanged
#   bias990        client 3 adds 990 to the output layer's first bias every round (under the
#                  fixed --max-update-norm 1000; the adaptive clip is what stops it)
#   refused        client 3 adds 5000 (refused every round: refused-update cycles per round)
#   refetch300     client 3 downloads every task's model 300 more times
# Printed per seed: final global accuracy, wall seconds, clipped updates, refusals by cause,
# downlink bytes; then the paired differences.
#   bench/security/poison.sh [OUT_DIR]
# Environment: SEEDS="1 2 3" (the accuracy pairs: clean, unchanged, bias990), EXTRA_SEEDS="1"
# (refused, refetch300), ROUNDS=15, SIM=build/bin/lotteryfl-sim. A run whose directory already
# holds its wall_seconds is kept (FORCE=1 reruns it).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/bench-poison}
SIM=${SIM:-build/bin/lotteryfl-sim}
SEEDS=${SEEDS:-1 2 3}
EXTRA_SEEDS=${EXTRA_SEEDS:-1}
ROUNDS=${ROUNDS:-15}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
COMMON=(--config configs/fedavg-fmnist.toml --clients 4 --fraction 1 --rounds "$ROUNDS" --eval-every 1000
        --parallel 2)
run() {  # name seed attack...
  local name=$1 seed=$2; shift 2
  local dir="$OUT/$name/seed$seed"
  if [ -z "${FORCE:-}" ] && [ -s "$dir/wall_seconds" ]; then return; fi
  rm -rf "$dir" && mkdir -p "$dir"
  local t0 t1
  t0=$(date +%s.%N)
  "$SIM" "${COMMON[@]}" --seed "$seed" --out "$dir" "$@" > "$dir/log.txt" 2>&1
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)" > "$dir/wall_seconds"
  echo "poison.sh: $name seed $seed done ($(cat "$dir/wall_seconds") s)"
}
for seed in $SEEDS; do
  run clean "$seed"
  run unchanged "$seed" --bench-attack return-served --bench-attack-clients 3
  run bias990 "$seed" --bench-attack bias:990 --bench-attack-clients 3
done
for seed in $EXTRA_SEEDS; do
  run clean "$seed"
  run refused "$seed" --bench-attack bias:5000 --bench-attack-clients 3
  run refetch300 "$seed" --bench-attack refetch:300 --bench-attack-clients 3
done
python3 - "$OUT" "$SEEDS" "$EXTRA_SEEDS" <<'PY'
import json, sys
out, seeds, extra = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
names = ["clean", "unchanged", "bias990", "refused", "refetch300"]
def load(name, seed):
    d = f"{out}/{name}/seed{seed}"
    rows = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
    refusals = {}
    for r in rows:
        for k, v in r.get("refusals", {}).items():
            refusals[k] = refusals.get(k, 0) + v
    return {
        "rounds": len(rows),
        "global_accuracy": rows[-1]["global_accuracy"],
        "wall_seconds": float(open(f"{d}/wall_seconds").read()),
        "clipped": sum(r.get("clipped", 0) for r in rows),
        "completed": sum(r["completed"] for r in rows),
        "downlink_bytes": sum(r["downlink_bytes"] for r in rows),
        "refetches": sum(r.get("refetches", 0) for r in rows),
        "refusals": refusals,
    }
res = {n: {s: load(n, s) for s in (seeds if n in ("clean", "unchanged", "bias990") else extra)} for n in names}
for s in extra:
    res["clean"].setdefault(s, load("clean", s))
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
print("%-11s %-5s %7s %8s %7s %9s %13s %9s  %s" % ("run", "seed", "rounds", "global", "wall_s", "clipped",
                                                      "downlink_B", "refetch", "refusals"))
for n in names:
    for s, r in sorted(res[n].items()):
        print("%-11s %-5s %7d %8.4f %7.1f %9d %13d %9d  %s" % (n, s, r["rounds"], r["global_accuracy"],
              r["wall_seconds"], r["clipped"], r["downlink_bytes"], r["refetches"], r["refusals"]))
print()
for s in seeds:
    u, b, c = res["unchanged"][s], res["bias990"][s], res["clean"][s]
    print(f"seed {s}: bias990 global {b['global_accuracy']:.4f} vs unchanged {u['global_accuracy']:.4f} "
          f"({100 * (b['global_accuracy'] - u['global_accuracy']):+.1f} points; clean {c['global_accuracy']:.4f}); "
          f"wall {b['wall_seconds']:.1f} s vs unchanged {u['wall_seconds']:.1f} s, clean {c['wall_seconds']:.1f} s; "
          f"clipped {b['clipped']} of {b['completed']} accepted updates")
for s in extra:
    c, ref, rf = res["clean"][s], res["refused"][s], res["refetch300"][s]
    # Every upload of the attacker is refused: by the norm rule once per task, then (had it
    # tried again) at the header as task_ended.
    cycles = (ref["refusals"].get("norm", 0) + ref["refusals"].get("task_ended", 0)) / ref["rounds"]
    print(f"seed {s}: refused-update cycles per client-round {cycles:.2f} (refusals {ref['refusals']}), "
          f"wall {ref['wall_seconds']:.1f} s vs clean {c['wall_seconds']:.1f} s; downlink_bytes with 300 "
          f"re-fetches per task {rf['downlink_bytes']} vs clean {c['downlink_bytes']} "
          f"({'unchanged' if rf['downlink_bytes'] == c['downlink_bytes'] else 'DIFFERENT'}; re-fetches served "
          f"and counted apart: {rf['refetches']}, refused: {rf['refusals'].get('refetch_limit', 0)})")
PY
