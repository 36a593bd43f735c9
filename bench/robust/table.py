#!/usr/bin/env python3
"""The robust-aggregation benchmark's table (bench/robust/run.sh, docs/robust.md).

Usage: bench/robust/table.py [--out runs/bench-robust] [--seeds "1 2 3"] [--ks "0 1 2 3"]
                             [--attacks "scale:-10 signflip noise:0.02"] [--rows "masked-mean ..."]

Prints one Markdown table per attack: a row per aggregator row, a column per k (attackers among
the 10 clients), each cell "global-masked / personalized" accuracy in percent at the last round,
mean ± sample sd over the seeds found (k = 0, no attacker, is the same run in every table). A
cell with fewer seeds than asked says how many it has; "-" when it has none. The runs that are
missing (no summary.json: not run, failed, or still running) are listed after the tables;
they never make the script fail. Standard library only (the run loader is scripts/compare.py).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import compare  # noqa: E402

DEFAULT_ROWS = "masked-mean clipped-mean keeper-median keeper-trimmed-mean dense-median"
METRICS = ("global_masked_accuracy", "personalized_accuracy")


def run_dir(out, row, attack, k, seed):
    """Where run.sh puts a run (k = 0 does not depend on the attack)."""
    if k == 0:
        return os.path.join(out, row, "k0", "seed%d" % seed)
    return os.path.join(out, row, attack.replace(":", "_"), "k%d" % k, "seed%d" % seed)


def last_round(path):
    """(global-masked, personalized) accuracy of the run's last round; None when the run is
    unfinished or unreadable (the reason is returned second)."""
    if not os.path.exists(os.path.join(path, "summary.json")):
        try:
            with open(os.path.join(path, "FAILED"), encoding="utf-8") as f:
                return None, "failed (%s)" % f.read().strip()
        except OSError:
            return None, "no summary.json"
    try:
        run = compare.load_run(path)
    except compare.RunError as e:
        return None, str(e)
    last = run.rows[-1]
    values = tuple(last.get(key) for key in METRICS)
    if any(not isinstance(v, (int, float)) for v in values):
        return None, "round %s has no %s" % (last.get("round"), " / ".join(METRICS))
    return values, None


def cell(results, seeds):
    """'gm ± sd / p ± sd' in percent over the seeds that have a result."""
    if not results:
        return "-"
    parts = []
    for i in range(len(METRICS)):
        mean, sd = compare.mean_sd([100 * r[i] for r in results])
        # One seed has no spread: print the value alone rather than a misleading "± 0.0".
        parts.append("%.1f ± %.1f" % (mean, sd) if len(results) > 1 else "%.1f" % mean)
    text = " / ".join(parts)
    if len(results) < len(seeds):
        text += " (%d/%d seeds)" % (len(results), len(seeds))
    return text


def tables(out, seeds, ks, attacks, rows):
    """The Markdown text and the missing runs as (path, reason)."""
    lines, missing, seen = [], [], set()
    for attack in attacks:
        lines.append("### %s" % attack)
        lines.append("")
        lines.append("Accuracy at the last round, global-masked / personalized (%%), mean ± sd over seeds %s; "
                     "attackers are clients 0..k-1 of 10." % ",".join(map(str, seeds)))
        lines.append("")
        lines.append("| aggregator | " + " | ".join("k=%d" % k for k in ks) + " |")
        lines.append("|---|" + "---|" * len(ks))
        for row in rows:
            cells = []
            for k in ks:
                results = []
                for seed in seeds:
                    path = run_dir(out, row, attack, k, seed)
                    values, reason = last_round(path)
                    if values is not None:
                        results.append(values)
                    elif path not in seen:
                        missing.append((path, reason))
                    seen.add(path)
                cells.append(cell(results, seeds))
            lines.append("| %s | %s |" % (row, " | ".join(cells)))
        lines.append("")
    return "\n".join(lines), missing


def parse_ints(text):
    return [int(x) for x in text.replace(",", " ").split()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "..", "runs", "bench-robust"))
    parser.add_argument("--seeds", type=parse_ints, default=[1, 2, 3])
    parser.add_argument("--ks", type=parse_ints, default=[0, 1, 2, 3])
    parser.add_argument("--attacks", type=str.split, default="scale:-10 signflip noise:0.02".split())
    parser.add_argument("--rows", type=str.split, default=DEFAULT_ROWS.split())
    args = parser.parse_args(argv)
    text, missing = tables(args.out, args.seeds, args.ks, args.attacks, args.rows)
    print(text)
    if missing:
        print("Missing runs under %s (%d):" % (args.out, len(missing)))
        for path, reason in missing:
            print("- %s: %s" % (os.path.relpath(path, args.out), reason))
    return 0


if __name__ == "__main__":
    sys.exit(main())
