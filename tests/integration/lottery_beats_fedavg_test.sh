#!/usr/bin/env bash
# integration_lottery_beats_fedavg (label slow): on the acceptance config
# (configs/lotteryfl-fmnist.toml, seed 1, evaluated at the last round only), LotteryFL's
# global-masked accuracy beats FedAvg's global model on the clients' own test splits by at
# least 8 points: the tickets keep the global model useful on each client's own classes.
source "$(dirname "$0")/lib.sh" "$@"

for algo in lotteryfl fedavg; do
  log "acceptance config, --algorithm $algo"
  timeout -k 5 900 "$bin/lotteryfl-sim" --config "$src/configs/lotteryfl-fmnist.toml" --algorithm "$algo" \
    --eval-every 1000 --out "$work/$algo" >"$work/sim-$algo.log" 2>&1 ||
    fail "lotteryfl-sim --algorithm $algo exited $?"
done
$PY - "$work/lotteryfl/summary.json" "$work/fedavg/summary.json" <<'PY' || fail "LotteryFL does not beat FedAvg by 8 points"
import json, sys
lottery, fedavg = (json.load(open(p))["global_masked_accuracy"] for p in sys.argv[1:3])
print(f"global-masked accuracy: lotteryfl {100 * lottery:.1f}%, fedavg {100 * fedavg:.1f}%")
assert lottery >= fedavg + 0.08, (lottery, fedavg)
PY
echo "PASS: LotteryFL's global-masked accuracy beats FedAvg's by at least 8 points"
