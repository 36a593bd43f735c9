#!/usr/bin/env bash
# Robust aggregation under model poisoning (docs/robust.md). On the acceptance config, k of the
# 10 clients (ids 0..k-1) train honestly and then send a poisoned update (lotteryfl-sim
# --bench-attack, a benchmark-only option); every aggregator row runs every attack, k and seed.
# k = 0 does not depend on the attack: it runs once per aggregator and seed. Runs land in
#   OUT/<row>/k0/seed<N>  and  OUT/<row>/<attack>/k<k>/seed<N>   (attack "scale:-10" -> "scale_-10")
# and a run whose summary.json says it ran every round is kept (the benchmark resumes where it
# stopped; a stopped run, whose summary has fewer rounds, runs again). At the
# end bench/robust/table.py prints the Markdown table of what is there and lists what is missing.
#
#   bench/robust/run.sh [--seeds "1 2 3"] [--ks "0 1 2 3"] [--attacks "scale:-10 signflip noise:0.02"]
#                       [--rows "masked-mean clipped-mean ..."] [--jobs 2] [--sim PATH] [--out DIR]
#                       [--config FILE] [--dry-run] [-- EXTRA LOTTERYFL-SIM FLAGS]
# The same settings as environment variables: SEEDS, KS, ATTACKS, ROWS, JOBS, SIM, OUT, CONFIG.
# Extra flags after "--" go to every run (a smoke test: -- --rounds 3 --local-epochs 2); use a
# separate --out for them, since a kept run is not re-checked against the flags it was made with
# (the script warns when the recorded command differs).
#
# Rows (aggregator and clipping):
#   masked-mean          --aggregator masked-mean --clip-multiplier 0   no defense
#   clipped-mean         --aggregator masked-mean                       the default clip (x4 median)
#   keeper-median        --aggregator keeper-median --clip-multiplier 0
#   keeper-trimmed-mean  --aggregator keeper-trimmed-mean --clip-multiplier 0
#   dense-median         --aggregator dense-median --clip-multiplier 0  the ablation: counts
#                        non-keepers' zeros
# A row whose aggregator the binary does not know fails at once with lotteryfl-sim's
# --aggregator error (printed here); table.py then lists its runs as missing.
#
# Each run trains one client at a time (--parallel 1) and --jobs runs go at once (default 2:
# one per core of the 2-core machine it was written on).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
SEEDS=${SEEDS:-1 2 3}
KS=${KS:-0 1 2 3}
ATTACKS=${ATTACKS:-scale:-10 signflip noise:0.02}
ROWS=${ROWS:-masked-mean clipped-mean keeper-median keeper-trimmed-mean dense-median}
JOBS=${JOBS:-2}
SIM=${SIM:-$root/build/bin/lotteryfl-sim}
OUT=${OUT:-$root/runs/bench-robust}
CONFIG=${CONFIG:-$root/configs/lotteryfl-fmnist.toml}
DRY_RUN=
EXTRA=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --seeds) SEEDS=$2; shift 2 ;;
    --ks) KS=$2; shift 2 ;;
    --attacks) ATTACKS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --sim) SIM=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $JOBS in ''|*[!0-9]*|0) echo "run.sh: --jobs must be a positive integer" >&2; exit 2 ;; esac
if [ -z "$DRY_RUN" ] && [ ! -x "$SIM" ]; then
  echo "run.sh: no lotteryfl-sim at $SIM (build it: ninja -C build lotteryfl-sim, or pass --sim)" >&2
  exit 2
fi
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

row_flags() {  # row -> its lotteryfl-sim flags
  case $1 in
    clipped-mean) echo "--aggregator masked-mean" ;;
    masked-mean|keeper-median|keeper-trimmed-mean|dense-median) echo "--aggregator $1 --clip-multiplier 0" ;;
    *) echo "run.sh: unknown row '$1' (masked-mean clipped-mean keeper-median keeper-trimmed-mean dense-median)" >&2
       return 1 ;;
  esac
}
for row in $ROWS; do row_flags "$row" > /dev/null; done
for k in $KS; do
  case $k in ''|*[!0-9]*) echo "run.sh: k must be a client count, got '$k'" >&2; exit 2 ;; esac
done

launched=()
complete() {  # dir: a finished run (a stopped one writes summary.json too, with fewer rounds)
  [ -s "$1/summary.json" ] && python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if s.get("rounds") == s.get("config", {}).get("rounds") else 1)' "$1/summary.json" 2> /dev/null
}
run() {  # dir flags...: one simulation, in the background (at most JOBS at once)
  local dir=$1; shift
  local cmd=("$SIM" --config "$CONFIG" --eval-every 1000 --quant none --parallel 1 "$@" "${EXTRA[@]}"
             --out "$dir")
  if [ -n "$DRY_RUN" ]; then
    printf '%q ' "${cmd[@]}"; echo
    return
  fi
  if complete "$dir"; then
    if [ -s "$dir/command.txt" ] && [ "$(cat "$dir/command.txt")" != "$(printf '%q ' "${cmd[@]}")" ]; then
      echo "run.sh: kept $dir, made with a different command (see its command.txt)" >&2
    fi
    return
  fi
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  rm -rf "$dir" && mkdir -p "$dir"
  printf '%q ' "${cmd[@]}" > "$dir/command.txt"
  echo "run.sh: $dir"
  launched+=("$dir")
  (
    t0=$(date +%s.%N)
    if "${cmd[@]}" > "$dir/log.txt" 2>&1; then
      awk "BEGIN { print $(date +%s.%N) - $t0 }" > "$dir/wall_seconds"
      echo "run.sh: done $dir ($(cat "$dir/wall_seconds") s)"
    else
      echo "exit $?: $(grep -m1 -iE 'error|unknown|invalid' "$dir/log.txt" || head -n1 "$dir/log.txt")" > "$dir/FAILED"
      echo "run.sh: FAILED $dir ($(cat "$dir/FAILED"))" >&2
    fi
  ) &
}

for seed in $SEEDS; do
  for row in $ROWS; do
    read -r -a flags <<< "$(row_flags "$row")"
    for k in $KS; do
      if [ "$k" -eq 0 ]; then
        run "$OUT/$row/k0/seed$seed" "${flags[@]}" --seed "$seed"
        continue
      fi
      for attack in $ATTACKS; do
        run "$OUT/$row/${attack//:/_}/k$k/seed$seed" "${flags[@]}" --seed "$seed" \
          --bench-attack "$attack" --bench-attack-clients "0-$((k - 1))"
      done
    done
  done
done
wait
[ -n "$DRY_RUN" ] && exit 0
failed=0
for dir in "${launched[@]}"; do [ -e "$dir/FAILED" ] && failed=$((failed + 1)); done
echo "run.sh: ${#launched[@]} runs started, $failed failed"
python3 "$root/bench/robust/table.py" --out "$OUT" --seeds "$SEEDS" --ks "$KS" --attacks "$ATTACKS" --rows "$ROWS"
[ "$failed" -eq 0 ]
