#!/usr/bin/env bash
# Seconds per federated round, measured on lotteryfl-sim with evaluation only at the end.
# Side by side in the same run it prints the mean local-training time of one client, so the
# ratio "round / ideal" (ideal = ceil(sampled / parallel) x client training time) shows the
# runtime's own overhead independently of how fast the machine is.
#   bench/runtime/round_time.sh [BIN_DIR] [extra lotteryfl-sim flags...]
# Default: the LotteryFL acceptance config (10 clients, fraction 0.5, 60 local epochs).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$here/build/bin}
shift || true
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
config=${CONFIG:-$here/configs/lotteryfl-fmnist.toml}
rounds=${ROUNDS:-10}
parallel=${PARALLEL:-$(( $(nproc) + 1 ))}  # the simulator's default
"$bin/lotteryfl-sim" --config "$config" --rounds "$rounds" --eval-every 100000 --parallel "$parallel" \
  --out "$out/run" "$@" > "$out/log" 2>&1 || { cat "$out/log"; exit 1; }
python3 - "$out/run/metrics.jsonl" "$parallel" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
parallel = int(sys.argv[2])
evals = [r for r in rows if r["evaluated"]]
timed = [r for r in rows if not r["evaluated"]] or rows
wall = sum(r["wall_seconds"] for r in timed) / len(timed)
train = sum(r["train_seconds"] for r in timed) / len(timed)
sampled = sum(r["sampled"] for r in timed) / len(timed)
ideal = math.ceil(sampled / parallel) * train
print(f"rounds timed                 {len(timed)} (evaluation only at the last round)")
print(f"seconds per round            {wall:.3f}")
print(f"client local training (mean) {train:.3f} s   ({sampled:.0f} clients per round, {parallel} at a time)")
print(f"ideal round (training only)  {ideal:.3f} s")
print(f"round / ideal                {wall / ideal:.2f}x")
if evals:
    r = evals[-1]
    print(f"final personalized accuracy  {r['personalized_accuracy']:.4f}  global-masked {r['global_masked_accuracy']:.4f}")
PY

# Evaluation overhead: the whole run with the default evaluation settings (--eval-every 1,
# --eval-clients, --eval-global-every) against the same run evaluated only at the last round,
# for the acceptance config and the paper-scale 400-client config, each pair run back to back,
# REPEAT times (default 3; the pairs alternate, so a noisy minute hits both sides): each pair's
# ratio is printed and the median of the ratios is the figure. SKIP_EVAL_OVERHEAD=1 skips this.
[ "${SKIP_EVAL_OVERHEAD:-0}" = 1 ] && exit 0
timed_run() {  # timed_run CONFIG ROUNDS OUT [flags...]: prints the run's wall seconds
  local cfg=$1 r=$2 dir=$3
  shift 3
  local t0 t1
  t0=$(date +%s.%N)
  "$bin/lotteryfl-sim" --config "$cfg" --rounds "$r" --parallel "$parallel" --out "$dir" "$@" >"$dir.log" 2>&1 ||
    { cat "$dir.log"; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "print(f'{$t1 - $t0:.2f}')"
}
echo
echo "evaluation overhead (whole run, default evaluation / evaluation only at the last round)"
printf '%-34s %7s %5s %9s %9s %7s\n' config rounds pair default last-only ratio
for spec in "$here/configs/lotteryfl-fmnist.toml:${ROUNDS_ACCEPTANCE:-30}" \
            "$here/configs/lotteryfl-fmnist-400.toml:${ROUNDS_400:-10}"; do
  cfg=${spec%%:*}
  r=${spec##*:}
  ratios=""
  for pair in $(seq 1 "${REPEAT:-3}"); do
    d=$(timed_run "$cfg" "$r" "$out/default-$r-$pair")
    e=$(timed_run "$cfg" "$r" "$out/end-$r-$pair" --eval-every 100000)
    ratio=$(python3 -c "print(f'{$d / $e:.4f}')")
    ratios="$ratios $ratio"
    printf '%-34s %7s %5s %8ss %8ss %6.2fx\n' "$(basename "$cfg")" "$r" "$pair" "$d" "$e" "$ratio"
  done
  printf '%-34s %7s %5s %29s\n' "$(basename "$cfg")" "$r" median \
    "$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}x')" $ratios)"
done
