#!/usr/bin/env python3
"""Compare lotteryfl run directories in a plain-text table.

Usage: scripts/compare.py RUN_DIR... [--last N] [--per-seed]

One row per run: name, algorithm, quant, the last evaluated personalized
accuracy (every client's latest ticket, lotteryfl's own figure), the personalized
accuracy of the clients that trained in the last round ("personalized (trained)",
the LotteryFL reference's figure), global-masked and global accuracy, uplink and downlink bytes, how many times
smaller than dense fp32 the traffic was ("12.3x" = dense fp32 bytes / bytes
sent), and the mean bits per prunable layer in the last round (32 = fp32).

Everything is computed from RUN_DIR/metrics.jsonl (one JSON object per
aggregated round, so an unfinished run can be compared too); algorithm, quant
and the wall time come from RUN_DIR/summary.json when the run wrote one.
--last N sums the bytes over the last N rounds only (steady state, after the
tickets have been pruned). Needs only the Python standard library; this module
is also the run loader that scripts/report.py uses.

Runs that differ only in the seed (same summary.json config apart from `seed`
and `out`) are aggregated into one row: mean ± sample standard deviation over
the seeds of each figure, with bytes over the whole run and, with --last N,
over the last N rounds as well. --per-seed also prints every run's own row.
A run of `--algorithm local` sends nothing: its traffic columns read "-".

Exit status: 0, or 2 with a message naming the file (and line) when a run
directory, its metrics.jsonl or its summary.json is missing or unreadable.
"""
import argparse
import json
import math
import os
import re
import sys

# Keys a metrics.jsonl row must carry, and what each must hold.
REQUIRED_INTEGERS = ("round", "uplink_bytes", "downlink_bytes", "dense_fp32_bytes")
ACCURACY_KEYS = ("personalized_accuracy", "personalized_trained_accuracy", "global_masked_accuracy",
                 "global_accuracy")


class RunError(Exception):
    """A run directory that cannot be read; the message names the file."""


class Run:
    """One run directory: its metrics rows (in file order) and summary.json (or None)."""

    def __init__(self, path, rows, summary):
        self.path = path
        self.rows = rows
        self.summary = summary
        self.name = os.path.basename(os.path.normpath(path))

    def config(self, key, default="?"):
        config = (self.summary or {}).get("config") or {}
        value = config.get(key)
        return default if value in (None, "") else value

    @property
    def algorithm(self):
        return self.config("algorithm")

    @property
    def quant(self):
        return self.config("quant")

    @property
    def label(self):
        """Legend name: the directory plus what was run."""
        return "%s (%s, %s)" % (self.name, self.algorithm, self.quant)

    def final_accuracy(self, key):
        """The accuracy of the last round that evaluated it, or None."""
        for row in reversed(self.rows):
            if isinstance(row.get(key), (int, float)):
                return float(row[key])
        return None

    def last_rows(self, last=None):
        return self.rows if not last else self.rows[-last:]

    def total(self, key, last=None):
        return sum(row[key] for row in self.last_rows(last))

    def compression(self, key, last=None):
        """dense fp32 bytes / bytes sent over the rows (None when nothing was sent)."""
        sent = self.total(key, last)
        return self.total("dense_fp32_bytes", last) / sent if sent else None

    @property
    def layer_bits(self):
        return list(self.rows[-1].get("layer_bits") or [])

    @property
    def mean_bits(self):
        """Bits per weight in the last round, weighted by layer size as the server records it
        (`mean_bits`); older runs without it fall back to the unweighted mean over layers.
        None when the run sent nothing (`--algorithm local`)."""
        if self.total("uplink_bytes") == 0:
            return None
        recorded = self.rows[-1].get("mean_bits")
        if isinstance(recorded, (int, float)):
            return float(recorded)
        bits = self.layer_bits
        return sum(bits) / len(bits) if bits else None

    @property
    def seed(self):
        return self.config("seed", None)

    @property
    def group_key(self):
        """Runs with equal keys differ only in their seed (and output directory)."""
        config = dict((self.summary or {}).get("config") or {})
        if not config:
            return ("path", self.path)
        config.pop("seed", None)
        config.pop("out", None)
        return ("config", json.dumps(config, sort_keys=True))

    @property
    def wall_seconds(self):
        if self.summary and isinstance(self.summary.get("wall_seconds"), (int, float)):
            return float(self.summary["wall_seconds"])
        return sum(float(row.get("wall_seconds") or 0) for row in self.rows)


def _check_row(row, where):
    if not isinstance(row, dict):
        raise RunError("%s: expected a JSON object, got %s" % (where, type(row).__name__))
    for key in REQUIRED_INTEGERS:
        value = row.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RunError("%s: '%s' must be a non-negative integer, got %r" % (where, key, value))
    for key in ACCURACY_KEYS:
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RunError("%s: '%s' must be a number or null, got %r" % (where, key, value))
    bits = row.get("layer_bits", [])
    if not isinstance(bits, list) or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) for b in bits):
        raise RunError("%s: 'layer_bits' must be a list of numbers" % where)


def _json_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def read_metrics(path):
    """The rows of a metrics.jsonl file; blank lines are skipped, anything else must be a row."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise RunError("%s: no such file (not a run directory, or no round finished yet)" % path)
    except (OSError, UnicodeDecodeError) as e:
        raise RunError("%s: cannot read: %s" % (path, e))
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = "%s:%d" % (path, number)
        try:
            row = json.loads(line, parse_constant=_json_constant)
        except ValueError as e:
            raise RunError("%s: not valid JSON: %s" % (where, e))
        _check_row(row, where)
        rows.append(row)
    if not rows:
        raise RunError("%s: empty (no rounds recorded)" % path)
    return rows


def read_summary(path):
    """summary.json as a dict, or None when the run has not written one yet."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        raise RunError("%s: cannot read: %s" % (path, e))
    if not isinstance(summary, dict):
        raise RunError("%s: expected a JSON object" % path)
    return summary


def load_run(path):
    if not os.path.isdir(path):
        raise RunError("%s: no such directory" % path)
    rows = read_metrics(os.path.join(path, "metrics.jsonl"))
    return Run(path, rows, read_summary(os.path.join(path, "summary.json")))


def load_runs(paths):
    """Loads every run; runs whose directories share a base name are named by more of their path."""
    runs = [load_run(p) for p in paths]
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = os.path.normpath(run.path)
    return runs


def byte_unit(n):
    """(name, scale) in decimal units, as the server's progress line: 1 KB = 1000 bytes."""
    for name, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return name, scale
    return "B", 1


def format_bytes(n):
    unit, scale = byte_unit(n)
    return "%d B" % n if scale == 1 else "%.1f %s" % (n / scale, unit)


def format_ratio(ratio):
    return "-" if ratio is None else "%.1fx" % ratio


def format_percent(value):
    return "-" if value is None else "%.1f%%" % (100 * value)


def format_bits(bits):
    return "-" if bits is None else "%.2f" % bits


COLUMNS = ("run", "algorithm", "quant", "personalized", "personalized (trained)", "global-masked", "global",
           "uplink", "downlink", "up vs fp32", "down vs fp32", "mean bits")


def table_row(run, last=None):
    return (run.name, str(run.algorithm), str(run.quant),
            format_percent(run.final_accuracy("personalized_accuracy")),
            format_percent(run.final_accuracy("personalized_trained_accuracy")),
            format_percent(run.final_accuracy("global_masked_accuracy")),
            format_percent(run.final_accuracy("global_accuracy")),
            format_bytes(run.total("uplink_bytes", last)),
            format_bytes(run.total("downlink_bytes", last)),
            format_ratio(run.compression("uplink_bytes", last)),
            format_ratio(run.compression("downlink_bytes", last)),
            format_bits(run.mean_bits))


def format_table(runs, last=None):
    rows = [COLUMNS] + [table_row(r, last) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]

    def line(cells):
        # Text columns left-aligned, figures right-aligned.
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(rows[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows[1:]]
    return "\n".join(out)


def group_runs(runs):
    """Lists of runs that differ only in seed, in the order their first member appears."""
    groups, index = [], {}
    for run in runs:
        key = run.group_key
        group = groups[index[key]] if key in index else None
        if group is None or run.seed is None or any(r.seed == run.seed for r in group):
            # A repeated seed is another experiment of the same settings, not another seed.
            index[key] = len(groups)
            groups.append([run])
        else:
            group.append(run)
    return groups


def group_label(group):
    """runs/sweep/bsq/seed1 → "bsq"; runs/bsq-seed2 → "bsq"; otherwise the first run's name."""
    first = group[0]
    base = os.path.basename(os.path.normpath(first.path))
    if re.fullmatch(r"seed\d+", base):
        parent = os.path.basename(os.path.dirname(os.path.normpath(first.path)))
        if parent:
            return parent
    stripped = re.sub(r"[-_.]?seed\d+$", "", base)
    return stripped or first.name


def mean_sd(values):
    """(mean, sample standard deviation) of the numbers among `values`; (None, None) if none."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return mean, sd


def format_mean_sd(values, scale=1.0, digits=1, suffix=""):
    mean, sd = mean_sd(values)
    if mean is None:
        return "-"
    return "%.*f ± %.*f%s" % (digits, mean * scale, digits, sd * scale, suffix)


def format_bytes_mean_sd(values):
    mean, sd = mean_sd(values)
    if not mean:
        return "-"
    unit, scale = byte_unit(mean)
    return "%.1f ± %.1f %s" % (mean / scale, sd / scale, unit) if scale > 1 else "%d ± %d B" % (mean, sd)


def group_columns(last=None):
    cols = ["run", "seeds", "personalized", "personalized (trained)", "global-masked", "global", "uplink",
            "up vs fp32"]
    if last:
        cols += ["uplink last %d" % last, "up vs fp32 last %d" % last]
    cols += ["downlink", "down vs fp32"]
    if last:
        cols += ["downlink last %d" % last, "down vs fp32 last %d" % last]
    return tuple(cols + ["mean bits"])


def group_row(group, last=None):
    seeds = ",".join(str(r.seed) for r in group)
    acc = lambda key: format_mean_sd([r.final_accuracy(key) for r in group], scale=100, suffix="%")
    ratio = lambda key, n: format_mean_sd([r.compression(key, n) for r in group], suffix="x")
    volume = lambda key, n: format_bytes_mean_sd([r.total(key, n) for r in group])
    row = [group_label(group), seeds, acc("personalized_accuracy"), acc("personalized_trained_accuracy"),
           acc("global_masked_accuracy"),
           acc("global_accuracy"), volume("uplink_bytes", None), ratio("uplink_bytes", None)]
    if last:
        row += [volume("uplink_bytes", last), ratio("uplink_bytes", last)]
    row += [volume("downlink_bytes", None), ratio("downlink_bytes", None)]
    if last:
        row += [volume("downlink_bytes", last), ratio("downlink_bytes", last)]
    bits_mean, _ = mean_sd([r.mean_bits for r in group])
    row.append("-" if bits_mean is None else format_mean_sd([r.mean_bits for r in group], digits=2))
    return tuple(row)


def format_group_table(runs, last=None):
    columns = group_columns(last)
    rows = [columns] + [group_row(g, last) for g in group_runs(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]

    def line(cells):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]])


def format_markdown(runs, last=None):
    """The grouped table as Markdown (README)."""
    rows = [group_columns(last)] + [group_row(g, last) for g in group_runs(runs)]
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare lotteryfl run directories (metrics.jsonl + summary.json).")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--last", type=positive_int, metavar="N",
                        help="bytes over the last N rounds only (seed groups: as well as the whole run)")
    parser.add_argument("--per-seed", action="store_true",
                        help="with runs that differ only in seed: print each run's row as well")
    parser.add_argument("--markdown", action="store_true", help="print the seed-grouped table as Markdown")
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.runs)
    except RunError as e:
        print("compare.py: error: %s" % e, file=sys.stderr)
        return 2
    grouped = any(len(g) > 1 for g in group_runs(runs)) or args.markdown
    if grouped:
        print("mean ± sd over seeds; bytes over the whole run%s; 'Nx' = dense fp32 bytes / bytes sent; "
              "accuracies from the last evaluated round" % (
                  " and the last %d rounds" % args.last if args.last else ""))
        print(format_markdown(runs, args.last) if args.markdown else format_group_table(runs, args.last))
        if not args.per_seed:
            return 0
        print()
        for group in group_runs(runs):
            if len(group) > 1:
                for run in group:
                    run.name = "%s/seed%s" % (group_label(group), run.seed)
    scope = "last %d rounds" % args.last if args.last else "all rounds"
    print("bytes over %s; 'Nx' = dense fp32 bytes / bytes sent; accuracies from the last "
          "evaluated round" % scope)
    print(format_table(runs, args.last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
