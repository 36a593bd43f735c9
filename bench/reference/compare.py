#!/usr/bin/env python3
"""Side by side: the LotteryFL reference (charleslipku/LotteryFL, run by the peers harness) and
lotteryfl-sim on the same regime and seeds, one row per seed, then means and the paired
differences (issue 22).

    bench/reference/compare.py                       # few-participation regime, seeds 5-14
    bench/reference/compare.py --regime acceptance --seeds 1-5
    bench/reference/compare.py --sim-flags "--validation-fraction 0"   # a lotteryfl variant

Regimes (Fashion-MNIST, shards of 2 classes x 20 images, lr 0.01, momentum 0.5, batch 32):
  fewpart     20 clients, fraction 0.25, 20 rounds, 30 local epochs (each client trains ~5 times):
              bench/reference/fewpart.toml; reference `run.sh lotteryfl --num_users=20 --frac=0.25
              --epochs=20 --local_ep=30 --seed=S`
  acceptance  10 clients, fraction 0.5, 30 rounds, 60 local epochs: configs/lotteryfl-fmnist.toml;
              reference `run.sh lotteryfl --seed=S` (the harness's defaults are this config)

Figures, all at the last round, each client on its whole local test split:
  masked-global     θg ⊙ m_k of every client, mean over all clients (both sides)
  pers. (trained)   the reference's personalized figure: the post-training accuracy of the
                    clients that trained in the last round; lotteryfl's row field
                    personalized_trained_accuracy is the same population
  pers. (all)       lotteryfl's own personalized figure: every client's latest ticket
  uplink x          dense fp32 bytes / uplink bytes over the whole run (reference: the peers
                    harness's nnz x 4 + a 1-bit mask per parameter; lotteryfl: its payloads)

The reference must be set up first with the peers harness (PEERS_HARNESS, default
/work/shared/peers/lotteryfl: `setup.sh GIT_DIR`, which needs Debian's python3-torch,
python3-torchvision, python3-numpy, python3-pandas and python3-tqdm); without it this script
says so and exits 77 (skipped), or 0 with --skip-ok. Each run uses one thread; at most --jobs
(default 2) run at once. Finished runs are reused (--force reruns them): reference logs and
lotteryfl run directories land under --out (default runs/reference/<regime>).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REGIMES = {
    "fewpart": {
        "config": os.path.join(ROOT, "bench", "reference", "fewpart.toml"),
        "ref_flags": ["--num_users=20", "--frac=0.25", "--epochs=20", "--local_ep=30"],
        "rounds": 20,
        "seeds": "5-14",
    },
    "acceptance": {
        "config": os.path.join(ROOT, "configs", "lotteryfl-fmnist.toml"),
        "ref_flags": [],
        "rounds": 30,
        "seeds": "1-5",
    },
}
THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def reference_ready(harness):
    """None when the reference is set up, else why not."""
    peer = os.path.join(os.environ.get("PEERS_DIR", os.path.expanduser("~/.cache/peers")), "lotteryfl")
    if not os.access(os.path.join(harness, "run.sh"), os.X_OK):
        return f"no peers harness at {harness} (set PEERS_HARNESS)"
    if not os.path.isfile(os.path.join(peer, "src", "src", "harness.py")):
        return (f"the reference is not set up in {peer}: run {harness}/setup.sh GIT_DIR "
                "(a git directory of charleslipku/LotteryFL; needs python3-torch python3-torchvision "
                "python3-numpy python3-pandas python3-tqdm)")
    return None


def last_harness_round(path, rounds):
    """The reference's [harness] line of round `rounds` as a dict, or None."""
    if not os.path.isfile(path):
        return None
    row = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(f"[harness] round {rounds} "):
                row = {k: float(v) for k, v in re.findall(r"(\w+)=([-\d.e]+)", line)}
    return row


def run_reference(harness, regime, seed, out, variant):
    log = os.path.join(out, "reference" + (f"-{variant}" if variant else ""), f"seed{seed}.log")
    # Another compare.py (another variant) may be running this very seed: wait for it.
    while os.path.exists(log + ".tmp") and time.time() - os.path.getmtime(log + ".tmp") < 300:
        time.sleep(10)
    if last_harness_round(log, regime["rounds"]) is None:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        cmd = [os.path.join(harness, "run.sh"), "lotteryfl", *regime["ref_flags"], f"--seed={seed}"]
        with open(log + ".tmp", "w") as f:
            f.write("# " + " ".join(cmd) + "\n")
            f.flush()
            rc = subprocess.call(["nice", *cmd], stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **THREADS})
        os.replace(log + ".tmp", log)
        if rc != 0:
            raise RuntimeError(f"reference seed {seed} exited {rc} (log {log})")
    row = last_harness_round(log, regime["rounds"])
    if row is None:
        raise RuntimeError(f"reference seed {seed}: no [harness] line for round {regime['rounds']} in {log}")
    return {
        "masked_global": row["full_masked_global_acc_all"],
        "pers_trained": row["full_local_acc_posttrain_sampled"],
        "pers_all": None,
        "uplink_x": row["cum_dense_bytes"] / row["cum_uplink_bytes"],
    }


def run_sim(sim, regime, seed, out, extra, variant):
    run = os.path.join(out, "lotteryfl" + (f"-{variant}" if variant else ""), f"seed{seed}")
    summary = os.path.join(run, "summary.json")
    # Another compare.py may be running this very run: wait for it.
    log = os.path.join(run, "sim.log")
    while not os.path.isfile(summary) and os.path.isfile(log) and time.time() - os.path.getmtime(log) < 300:
        time.sleep(10)
    if not os.path.isfile(summary):
        cmd = [sim, "--config", regime["config"], "--seed", str(seed), "--eval-every", "1000", "--parallel", "1",
               "--out", run, *extra]
        os.makedirs(run, exist_ok=True)
        with open(os.path.join(run, "sim.log"), "w") as f:
            f.write("# " + " ".join(cmd) + "\n")
            f.flush()
            rc = subprocess.call(["nice", *cmd], stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **THREADS})
        if rc != 0:
            raise RuntimeError(f"lotteryfl-sim seed {seed} exited {rc} (log {run}/sim.log)")
    with open(summary) as f:
        s = json.load(f)
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    last = rows[-1]
    return {
        "masked_global": s["global_masked_accuracy"],
        "pers_trained": last.get("personalized_trained_accuracy"),
        "pers_all": s["personalized_accuracy"],
        "uplink_x": s["dense_fp32_bytes"] / s["uplink_bytes"] if s["uplink_bytes"] else None,
    }


def fmt(v, pct=True):
    if v is None:
        return "-"
    return f"{100 * v:.1f}" if pct else f"{v:.2f}x"


def mean_se(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def table(results, seeds):
    cols = [("masked_global", True), ("pers_trained", True), ("uplink_x", False)]
    head = ["seed", "masked-global ref", "masked-global lfl", "Δ", "pers. (trained) ref", "pers. (trained) lfl", "Δ",
            "pers. (all) lfl", "uplink x ref", "uplink x lfl", "Δ"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    diffs = {c: [] for c, _ in cols}
    for seed in seeds:
        ref, lfl = results[seed]
        cells = [str(seed)]
        for c, pct in cols:
            d = None if ref[c] is None or lfl[c] is None else lfl[c] - ref[c]
            diffs[c].append(d)
            cells += [fmt(ref[c], pct), fmt(lfl[c], pct), (f"{100 * d:+.1f}" if pct else f"{d:+.2f}") if d is not None else "-"]
            if c == "pers_trained":
                cells.append(fmt(lfl["pers_all"]))
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean"]
    for c, pct in cols:
        r, _ = mean_se([results[s][0][c] for s in seeds])
        l, _ = mean_se([results[s][1][c] for s in seeds])
        d, se = mean_se(diffs[c])
        scale = 100 if pct else 1
        dtxt = "-" if d is None else (f"{scale * d:+.{1 if pct else 2}f}" + (f" ± {scale * se:.{1 if pct else 2}f}" if se else ""))
        cells += [fmt(r, pct), fmt(l, pct), dtxt]
        if c == "pers_trained":
            cells.append(fmt(mean_se([results[s][1]["pers_all"] for s in seeds])[0]))
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regime", choices=sorted(REGIMES), default="fewpart")
    ap.add_argument("--seeds", help="e.g. 5-14 or 1,3,5 (default: the regime's)")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each (default 2)")
    ap.add_argument("--out", help="default runs/reference/<regime>")
    ap.add_argument("--sim", default=os.path.join(ROOT, "build", "bin", "lotteryfl-sim"))
    ap.add_argument("--sim-flags", default="", help="extra lotteryfl-sim flags (a variant: name it with --variant)")
    ap.add_argument("--variant", default="", help="lotteryfl runs go to <out>/lotteryfl-VARIANT (the reference's are shared)")
    ap.add_argument("--ref-variant", default="",
                    help="reference logs go to <out>/reference-VARIANT (a modified reference under $PEERS_DIR)")
    ap.add_argument("--harness", default=os.environ.get("PEERS_HARNESS", "/work/shared/peers/lotteryfl"))
    ap.add_argument("--force", action="store_true", help="rerun finished runs")
    ap.add_argument("--skip-ok", action="store_true", help="exit 0 instead of 77 when the reference is not set up")
    args = ap.parse_args()
    regime = REGIMES[args.regime]
    seeds = parse_seeds(args.seeds or regime["seeds"])
    out = os.path.abspath(args.out or os.path.join("runs", "reference", args.regime))

    why = reference_ready(args.harness)
    if why:
        print(f"SKIP: {why}")
        return 0 if args.skip_ok else 77
    if not os.access(args.sim, os.X_OK):
        print(f"{args.sim} is missing: build lotteryfl-sim (scripts/setup.sh)", file=sys.stderr)
        return 1
    if args.force:
        for seed in seeds:
            for p in (os.path.join(out, "reference" + (f"-{args.ref_variant}" if args.ref_variant else ""),
                                   f"seed{seed}.log"),
                      os.path.join(out, "lotteryfl" + (f"-{args.variant}" if args.variant else ""), f"seed{seed}",
                                   "summary.json")):
                if os.path.exists(p):
                    os.remove(p)

    extra = args.sim_flags.split()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {}
        for seed in seeds:
            futures[seed] = (pool.submit(run_reference, args.harness, regime, seed, out, args.ref_variant),
                             pool.submit(run_sim, args.sim, regime, seed, out, extra, args.variant))
            time.sleep(1.1)  # run.sh names its own log by the second
        results = {seed: (r.result(), l.result()) for seed, (r, l) in futures.items()}

    print(f"regime {args.regime}, seeds {','.join(map(str, seeds))}, last round; "
          f"lotteryfl: {regime['config']} {args.sim_flags}".rstrip())
    print("accuracies in % on each client's whole local test split; Δ = lotteryfl - reference "
          "(mean ± standard error of the paired differences)\n")
    print(table(results, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
