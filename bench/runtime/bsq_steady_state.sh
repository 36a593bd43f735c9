#!/usr/bin/env bash
# The steady state of LotteryFL + BSQ: the LotteryFL acceptance config (10 clients, 2 classes x 20
# images, fraction 0.5, 60 local epochs) run for ROUNDS (default 100) rounds with --quant bsq, so
# the tickets reach their target density. Prints the comparison table of scripts/compare.py for the
# whole run and for the last 10 rounds (uplink / downlink: how many times smaller than dense fp32)
# and the bits per layer of the last round.
#   bench/runtime/bsq_steady_state.sh [BIN_DIR] [extra lotteryfl-sim flags...]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$here/build/bin}
shift || true
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rounds=${ROUNDS:-100}
"$bin/lotteryfl-sim" --config "$here/configs/lotteryfl-fmnist.toml" --quant bsq --rounds "$rounds" \
  --eval-every 10 --out "$out/bsq-$rounds-rounds" "$@" > "$out/log" 2>&1 || { cat "$out/log"; exit 1; }
grep -E "round +[0-9]+/[0-9]+ .*personalized +[0-9]" "$out/log" | sed 's/^\[[^]]*\] \[info\] //' || true
echo "whole run:"
python3 "$here/scripts/compare.py" "$out/bsq-$rounds-rounds"
echo "last 10 rounds:"
python3 "$here/scripts/compare.py" "$out/bsq-$rounds-rounds" --last 10
