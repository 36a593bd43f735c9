#!/usr/bin/env python3
"""Run one lotteryfl-sim config over several seeds, and optionally over a list of values of
one flag, then print the seed-aggregated comparison (scripts/compare.py).

Usage:
  scripts/sweep.py --config configs/lotteryfl-fmnist.toml --seeds 1,2,3 \\
      [--vary quant=none,uniform8,uniform4,uniform2,bsq] [--run NAME:FLAGS]... \\
      [--out runs/sweep] [--jobs N] [--last 10] [--sim build/bin/lotteryfl-sim] [-- EXTRA SIM FLAGS]

Every run goes to OUT/<label>/seed<N>, where <label> is the flag value (e.g. "bsq"), a --run
NAME, or "base". A run directory that already holds a summary.json for the same command is
kept (re-running a sweep only runs what is missing); --force reruns everything.

--run NAME:FLAGS adds one more variant with its own flags, e.g.
  --run "fedavg:--algorithm fedavg" --run "local:--algorithm local".

Cores: each lotteryfl-sim trains `--parallel` clients at once with one torch thread each.
By default the sweep runs --jobs = the machine's cores simulations at a time with
--parallel 1 each, so every core trains one client all the time, including while a run
aggregates or evaluates (which is single-threaded); --jobs 1 runs one simulation at a time
with lotteryfl-sim's own default --parallel (cores + 1). Seconds per round are only
comparable between runs made with the same --jobs.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds in %r" % text)
    return seeds


def parse_vary(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected FLAG=V1,V2,..., got %r" % text)
    flag, values = text.split("=", 1)
    values = [v for v in values.split(",") if v]
    if not flag or not values:
        raise argparse.ArgumentTypeError("expected FLAG=V1,V2,..., got %r" % text)
    return flag.lstrip("-"), values


def parse_run(text):
    if ":" not in text:
        raise argparse.ArgumentTypeError("expected NAME:FLAGS, got %r" % text)
    name, flags = text.split(":", 1)
    return name, shlex.split(flags)


def variants(args):
    """(label, flags) for every variant of the sweep."""
    out = []
    if args.vary:
        flag, values = args.vary
        out += [(v, ["--" + flag, v]) for v in values]
    out += args.run
    return out or [("base", [])]


def command(args, flags, seed, out_dir, parallel):
    cmd = [args.sim, "--config", args.config] + flags + args.extra
    cmd += ["--seed", str(seed), "--out", out_dir]
    if parallel:
        cmd += ["--parallel", str(parallel)]
    return cmd


def already_done(out_dir, cmd):
    try:
        with open(os.path.join(out_dir, "sweep-command.json"), encoding="utf-8") as f:
            recorded = json.load(f)
    except (OSError, ValueError):
        return False
    # --parallel does not change results (training is seeded per client), only time.
    strip = lambda c: [a for i, a in enumerate(c) if a != "--parallel" and (i == 0 or c[i - 1] != "--parallel")]
    return strip(recorded) == strip(cmd) and os.path.exists(os.path.join(out_dir, "summary.json"))


def run_all(jobs_list, max_jobs):
    """Runs (cmd, out_dir) pairs, at most max_jobs at once; returns the failed ones. Stopping the
    sweep (Ctrl-C, SIGTERM) stops the simulations it started."""
    running = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _run_all(jobs_list, max_jobs, running)
    finally:
        for proc, *_ in running:
            if proc.poll() is None:
                proc.terminate()
        for proc, *_ in running:
            proc.wait()


def _run_all(jobs_list, max_jobs, running):
    pending, failed = list(jobs_list), []
    while pending or running:
        while pending and len(running) < max_jobs:
            cmd, out_dir = pending.pop(0)
            os.makedirs(out_dir, exist_ok=True)
            log = open(os.path.join(out_dir, "sim.log"), "w", encoding="utf-8")
            print("sweep: %s" % " ".join(shlex.quote(c) for c in cmd), flush=True)
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), cmd, out_dir, log,
                            time.time()))
        time.sleep(0.5)
        for entry in list(running):
            proc, cmd, out_dir, log, start = entry
            if proc.poll() is None:
                continue
            running.remove(entry)
            log.close()
            if proc.returncode == 0:
                with open(os.path.join(out_dir, "sweep-command.json"), "w", encoding="utf-8") as f:
                    json.dump(cmd, f)
                print("sweep: done %s (%.0f s)" % (out_dir, time.time() - start), flush=True)
            else:
                print("sweep: FAILED %s (exit %d, see %s/sim.log)" % (out_dir, proc.returncode, out_dir),
                      file=sys.stderr, flush=True)
                failed.append(out_dir)
    return failed


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description="Run a lotteryfl-sim config over seeds (and values of one flag).")
    parser.add_argument("--config", required=True)
    parser.add_argument("--seeds", type=parse_seeds, default=[1, 2, 3], help="e.g. 1,2,3 or 1-5 (default 1,2,3)")
    parser.add_argument("--vary", type=parse_vary, help="FLAG=V1,V2,...: one variant per value")
    parser.add_argument("--run", type=parse_run, action="append", default=[], metavar="NAME:FLAGS",
                        help="one more variant with its own flags (repeatable)")
    parser.add_argument("--out", default="runs/sweep")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="simulations at once (default: cores; each then trains with --parallel 1)")
    parser.add_argument("--parallel", type=int, help="lotteryfl-sim --parallel (default: 1 with --jobs > 1)")
    parser.add_argument("--sim", default=os.path.join(HERE, "..", "build", "bin", "lotteryfl-sim"))
    parser.add_argument("--last", type=int, default=10, help="also sum bytes over the last N rounds (default 10)")
    parser.add_argument("--per-seed", action="store_true", help="print every seed's row as well")
    parser.add_argument("--force", action="store_true", help="rerun runs that already finished")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    args.extra = extra
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    parallel = args.parallel if args.parallel else (1 if args.jobs > 1 else None)

    todo, dirs = [], []
    for label, flags in variants(args):
        for seed in args.seeds:
            out_dir = os.path.join(args.out, label, "seed%d" % seed)
            cmd = command(args, flags, seed, out_dir, parallel)
            dirs.append(out_dir)
            if args.dry_run:
                print(" ".join(shlex.quote(c) for c in cmd))
            elif args.force or not already_done(out_dir, cmd):
                todo.append((cmd, out_dir))
    if args.dry_run:
        return 0
    failed = run_all(todo, args.jobs)
    if failed:
        return 1
    return compare.main(dirs + ["--last", str(args.last)] + (["--per-seed"] if args.per_seed else []))


if __name__ == "__main__":
    sys.exit(main())
