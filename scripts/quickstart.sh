#!/usr/bin/env bash
# The main job: installs what is missing, builds, then runs a federated LotteryFL + BSQ
# simulation on Fashion-MNIST (10 clients with 2 classes x 20 images each, 30 rounds), the same
# tickets with fp32 values, and the FedAvg baseline on the same data and seed, and prints a
# comparison table.
#   ./scripts/quickstart.sh                 # both runs, outputs in runs/quickstart-*
#   ROUNDS=10 ./scripts/quickstart.sh       # shorter
#   ./scripts/quickstart.sh --local-epochs 20   # extra flags go to both runs
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
ROUNDS=${ROUNDS:-30}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

echo
echo "== LotteryFL + BSQ: personalized lottery tickets sent as mixed-precision bit-planes =="
"$BUILD_DIR/bin/lotteryfl-sim" --config configs/lotteryfl-fmnist.toml --quant bsq --rounds "$ROUNDS" \
  --eval-every 5 --out runs/quickstart-lotteryfl-bsq "$@"
echo
echo "== LotteryFL with fp32 values (the tickets alone) =="
"$BUILD_DIR/bin/lotteryfl-sim" --config configs/lotteryfl-fmnist.toml --rounds "$ROUNDS" \
  --eval-every 5 --out runs/quickstart-lotteryfl "$@"
echo
echo "== FedAvg baseline (dense fp32), same data and seed =="
"$BUILD_DIR/bin/lotteryfl-sim" --config configs/fedavg-fmnist.toml --rounds "$ROUNDS" \
  --eval-every 5 --out runs/quickstart-fedavg "$@"
echo
python3 scripts/compare.py runs/quickstart-lotteryfl-bsq runs/quickstart-lotteryfl runs/quickstart-fedavg
echo
python3 scripts/compare.py runs/quickstart-lotteryfl-bsq runs/quickstart-lotteryfl runs/quickstart-fedavg --last 10
echo
echo "Per-round metrics: runs/quickstart-*/metrics.jsonl; plots: /usr/bin/python3 scripts/report.py runs/quickstart-*"
