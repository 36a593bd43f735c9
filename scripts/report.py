#!/usr/bin/python3
"""Write a self-contained HTML report of one or more lotteryfl run directories.

Usage: scripts/report.py RUN_DIR... [-o report.html] [--per-seed]

Reads RUN_DIR/metrics.jsonl (one JSON object per aggregated round) and, when
present, RUN_DIR/summary.json (for the run's configuration and wall time), and
writes one HTML file with the plots embedded as base64 PNGs:
  - a summary table per run (final accuracies, bytes, ratios to dense fp32,
    density, bits, wall time) and the settings that differ between runs;
  - accuracy per round: personalized over all clients (each one's latest ticket) and over the
    round's trainers (the LotteryFL reference's figure: post-training accuracy of the clients
    that trained in the round, every round), global-masked, global (evaluated rounds);
  - cumulative uplink and downlink bytes, with the dense fp32 bytes for the
    same participations as the reference;
  - mean ticket density per round;
  - a heat map of bits per prunable layer over the rounds, one per run.
Several runs are overlaid, one colour each, named by their directory (and
algorithm, quant). Runs that differ only in the seed (scripts/compare.py's
grouping, e.g. a scripts/sweep.py directory) are drawn as one mean curve with a
band of ± one standard deviation over the seeds, and summarized as mean ± sd;
--per-seed draws every run's own curves instead. Default output: RUN_DIR/report.html for one run,
./report.html for several.

Needs Debian's python3-matplotlib, hence /usr/bin/python3. Exit status: 0;
2 when a run directory or its metrics cannot be read (the message names the
file and line); 1 when matplotlib is missing or the report cannot be written.
"""
import argparse
import base64
import html
import io
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the run loader and number formats, shared with compare.py)

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
except ImportError:
    plt = None

ACCURACY_PANELS = (("personalized_accuracy", "personalized, all clients (latest ticket)"),
                   ("personalized_trained_accuracy", "personalized, the round's trainers (reference)"),
                   ("global_masked_accuracy", "global-masked (global model ⊙ client mask)"),
                   ("global_accuracy", "global (global model, full)"))
# Bits above this are fp32 (32); the heat map colours them apart from the 0..8-bit scale.
MAX_QUANT_BITS = 8
DPI = 100


# Each run gets a colour and a marker, so runs whose curves coincide stay distinguishable.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
MAX_MARKERS = 30


class Style:
    def __init__(self, index):
        cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        self.color = cycle[index % len(cycle)]
        self.marker = MARKERS[index % len(MARKERS)]

    def line(self, points=1):
        """plot() arguments; long runs get at most ~MAX_MARKERS markers so the line stays a line."""
        return dict(color=self.color, marker=self.marker, markersize=4,
                    markevery=max(1, points // MAX_MARKERS))


def run_styles(runs):
    return [Style(i) for i in range(len(runs))]


def png_data_uri(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def runs_legend(fig, runs, styles, extra=()):
    handles = [Line2D([], [], label=r.label, **s.line()) for r, s in zip(runs, styles)]
    handles += list(extra)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3),
               bbox_to_anchor=(0.5, -0.02), frameon=False)


def integer_rounds(ax):
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("round")
    ax.grid(True, alpha=0.3)


def accuracy_figure(runs, styles):
    fig, axes = plt.subplots(1, len(ACCURACY_PANELS), figsize=(16, 4.2), sharey=True)
    for ax, (key, title) in zip(axes, ACCURACY_PANELS):
        drawn = False
        for run, style in zip(runs, styles):
            points = [(r["round"], 100 * r[key]) for r in run.rows
                      if isinstance(r.get(key), (int, float))]
            if points:
                ax.plot(*zip(*points), **style.line(len(points)))
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not evaluated", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 100)
        integer_rounds(ax)
    axes[0].set_ylabel("accuracy on the clients' test splits (%)")
    fig.subplots_adjust(bottom=0.25, wspace=0.08)
    runs_legend(fig, runs, styles)
    return png_data_uri(fig)


def cumulative(run, key):
    total, points = 0, []
    for row in run.rows:
        total += row[key]
        points.append((row["round"], total))
    return points


def bytes_figure(runs, styles):
    largest = max(max(r.total(k) for k in ("uplink_bytes", "downlink_bytes", "dense_fp32_bytes"))
                  for r in runs)
    unit, scale = compare.byte_unit(largest)
    dense_curves = [cumulative(r, "dense_fp32_bytes") for r in runs]
    shared_dense = all(c == dense_curves[0] for c in dense_curves)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for ax, key, title in zip(axes, ("uplink_bytes", "downlink_bytes"),
                              ("uplink (clients → server), cumulative",
                               "downlink (server → clients), cumulative")):
        for i, (run, style) in enumerate(zip(runs, styles)):
            rounds, sent = zip(*cumulative(run, key))
            ax.plot(rounds, [b / scale for b in sent], **style.line(len(rounds)))
            if not shared_dense or i == 0:
                # Drawn on top: an uncompressed run lies right on it.
                rounds, dense = zip(*dense_curves[i])
                ax.plot(rounds, [b / scale for b in dense], linestyle="--", linewidth=1.2, zorder=5,
                        color="black" if shared_dense else style.color)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        integer_rounds(ax)
    axes[0].set_ylabel("bytes sent so far (%s)" % unit)
    dense_label = "dense fp32, same participations" + ("" if shared_dense else " (run's colour)")
    dense = Line2D([], [], color="black", linestyle="--", linewidth=1, label=dense_label)
    fig.subplots_adjust(bottom=0.25, wspace=0.08)
    runs_legend(fig, runs, styles, extra=[dense])
    return png_data_uri(fig)


def density_figure(runs, styles):
    fig, ax = plt.subplots(figsize=(8, 4))
    for run, style in zip(runs, styles):
        points = [(r["round"], r["mean_density"]) for r in run.rows
                  if isinstance(r.get("mean_density"), (int, float))]
        if points:
            ax.plot(*zip(*points), label=run.label, **style.line(len(points)))
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean ticket density (fraction of weights kept)")
    integer_rounds(ax)
    ax.legend(loc="best", fontsize=9)
    return png_data_uri(fig)


def bits_matrix(run):
    """layers × rounds, NaN where a round recorded fewer layers."""
    layers = max(len(r.get("layer_bits") or []) for r in run.rows)
    return [[(r.get("layer_bits") or [])[l] if l < len(r.get("layer_bits") or []) else math.nan
             for r in run.rows] for l in range(layers)]


def bits_figure(run):
    """Heat map of one run's bits per layer and round, or None when it recorded none."""
    matrix = bits_matrix(run)
    if not matrix:
        return None
    rounds = [r["round"] for r in run.rows]
    fig, ax = plt.subplots(figsize=(min(13, 2.5 + 0.45 * len(rounds)), 1.2 + 0.45 * len(matrix)))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_over("lightgray")
    cmap.set_bad("white")
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=0, vmax=MAX_QUANT_BITS,
                      interpolation="nearest")
    if len(rounds) * len(matrix) <= 300:
        for l, row in enumerate(matrix):
            for t, bits in enumerate(row):
                if not math.isnan(bits):
                    text = "fp32" if bits > MAX_QUANT_BITS else "%g" % round(bits, 1)
                    ax.text(t, l, text, ha="center", va="center", fontsize=8,
                            color="black" if bits > MAX_QUANT_BITS / 2 else "white")
    step = max(1, len(rounds) // 20)
    ax.set_xticks(range(0, len(rounds), step))
    ax.set_xticklabels([rounds[i] for i in range(0, len(rounds), step)])
    ax.set_yticks(range(len(matrix)))
    names = (run.summary or {}).get("layer_names") or []
    if len(names) != len(matrix) or not all(isinstance(n, str) for n in names):
        names = ["layer %d" % l for l in range(len(matrix))]
    ax.set_yticklabels(names)
    ax.set_xlabel("round")
    ax.set_title(run.label, fontsize=10)
    bar = fig.colorbar(image, ax=ax, extend="max", pad=0.01)
    bar.set_label("mean bits (grey: fp32)")
    return png_data_uri(fig)


def mean_sd_curve(group, values_of):
    """(rounds, means, sds) over the rounds every run of the group has a value for."""
    per_run = [dict(values_of(run)) for run in group]
    rounds = sorted(set.intersection(*(set(v) for v in per_run))) if per_run else []
    means, sds = [], []
    for t in rounds:
        mean, sd = compare.mean_sd([v[t] for v in per_run])
        means.append(mean)
        sds.append(sd)
    return rounds, means, sds


def band(ax, style, rounds, means, sds, label=None):
    ax.plot(rounds, means, label=label, **style.line(len(rounds)))
    ax.fill_between(rounds, [m - s for m, s in zip(means, sds)], [m + s for m, s in zip(means, sds)],
                    color=style.color, alpha=0.2, linewidth=0)


def group_legend(fig, labels, styles):
    handles = [Line2D([], [], label=l, **s.line()) for l, s in zip(labels, styles)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), bbox_to_anchor=(0.5, -0.02),
               frameon=False)


def group_accuracy_figure(groups, styles):
    fig, axes = plt.subplots(1, len(ACCURACY_PANELS), figsize=(16, 4.2), sharey=True)
    for ax, (key, title) in zip(axes, ACCURACY_PANELS):
        for group, style in zip(groups, styles):
            curve = mean_sd_curve(group, lambda run: [(r["round"], 100 * r[key]) for r in run.rows
                                                      if isinstance(r.get(key), (int, float))])
            if curve[0]:
                band(ax, style, *curve)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 100)
        integer_rounds(ax)
    axes[0].set_ylabel("accuracy, mean ± sd over seeds (%)")
    fig.subplots_adjust(bottom=0.25, wspace=0.08)
    group_legend(fig, [group_title(g) for g in groups], styles)
    return png_data_uri(fig)


def group_bytes_figure(groups, styles):
    largest = max(max(r.total(k) for k in ("uplink_bytes", "downlink_bytes")) for g in groups for r in g) or 1
    unit, scale = compare.byte_unit(largest)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for ax, key, title in zip(axes, ("uplink_bytes", "downlink_bytes"),
                              ("uplink, cumulative (mean ± sd over seeds)", "downlink, cumulative")):
        for group, style in zip(groups, styles):
            band(ax, style, *mean_sd_curve(group, lambda run: [(t, b / scale) for t, b in cumulative(run, key)]))
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        integer_rounds(ax)
    axes[0].set_ylabel("bytes sent so far (%s)" % unit)
    fig.subplots_adjust(bottom=0.25, wspace=0.08)
    group_legend(fig, [group_title(g) for g in groups], styles)
    return png_data_uri(fig)


def group_title(group):
    return "%s (%s, %s; seeds %s)" % (compare.group_label(group), group[0].algorithm, group[0].quant,
                                      ",".join(str(r.seed) for r in group))


def group_rows(runs):
    last = 10 if all(len(r.rows) > 10 for r in runs) else None
    return compare.group_columns(last), [compare.group_row(g, last) for g in compare.group_runs(runs)]


def summary_rows(runs):
    header = ("run", "algorithm", "quant", "rounds", "personalized", "personalized (trained)", "global-masked",
              "global",
              "uplink", "downlink", "up vs fp32", "down vs fp32", "density", "mean bits",
              "wall time")
    rows = []
    for run in runs:
        density = run.rows[-1].get("mean_density")
        rows.append((run.name, run.algorithm, run.quant, str(len(run.rows)),
                     compare.format_percent(run.final_accuracy("personalized_accuracy")),
                     compare.format_percent(run.final_accuracy("personalized_trained_accuracy")),
                     compare.format_percent(run.final_accuracy("global_masked_accuracy")),
                     compare.format_percent(run.final_accuracy("global_accuracy")),
                     compare.format_bytes(run.total("uplink_bytes")),
                     compare.format_bytes(run.total("downlink_bytes")),
                     compare.format_ratio(run.compression("uplink_bytes")),
                     compare.format_ratio(run.compression("downlink_bytes")),
                     "-" if density is None else "%.3f" % density,
                     compare.format_bits(run.mean_bits),
                     "%.1f s" % run.wall_seconds))
    return header, rows


def html_table(header, rows, css_class=""):
    out = ['<table class="%s">' % css_class, "<tr>"]
    out += ["<th>%s</th>" % html.escape(str(h)) for h in header]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join("<td>%s</td>" % html.escape(str(c)) for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def setting_text(config, key):
    """A config value as the TOML/flags spell it; '-' when the run did not record the key."""
    if key not in config:
        return "-"
    value = config[key]
    if value == "":
        return "(default)"
    return value if isinstance(value, str) else json.dumps(value)


def settings_table(runs):
    """The configuration keys whose values differ between the runs (all keys for one run).
    The output directory is left out when comparing: it always differs and heads the page."""
    configs = [(r.summary or {}).get("config") or {} for r in runs]
    keys = [k for k in dict.fromkeys(k for c in configs for k in c)
            if len(runs) == 1 or (k != "out" and len({setting_text(c, k) for c in configs}) > 1)]
    if not keys:
        return "<p>%s</p>" % ("No summary.json (configuration unknown)." if not any(configs)
                              else "All runs used the same settings.")
    rows = [[k] + [setting_text(c, k) for c in configs] for k in keys]
    return html_table(["setting"] + [r.name for r in runs], rows, "settings")


STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
th { background: #f0f0f0; }
td { text-align: right; }
td:first-child, table.settings td, table.summary td:nth-child(-n+3), table.seeds td:nth-child(-n+2) {
  text-align: left; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
div.maps { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
div.maps img { margin: 0; }
p.note { color: #555; font-size: 0.9em; }
"""


def section(anchor, title, note, body):
    return ('<h2 id="%s">%s</h2>\n<p class="note">%s</p>\n%s'
            % (anchor, html.escape(title), html.escape(note), body))


def image(uri, alt):
    return '<img src="%s" alt="%s">' % (uri, html.escape(alt))


def render_html(runs, per_seed=False):
    styles = run_styles(runs)
    groups = compare.group_runs(runs)
    grouped = any(len(g) > 1 for g in groups) and not per_seed
    group_styles = run_styles(groups)
    heat_maps = []
    for run in runs:
        uri = bits_figure(run)
        heat_maps.append(image(uri, "bits per layer, " + run.label) if uri else
                         "<p>%s: no per-layer bits recorded.</p>" % html.escape(run.name))
    header, rows = summary_rows(runs)
    sources = "".join("<li><code>%s</code> — %s</li>" % (html.escape(os.path.abspath(r.path)),
                                                         html.escape(r.label)) for r in runs)
    parts = [
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">",
        "<title>lotteryfl report: %s</title>" % html.escape(", ".join(r.name for r in runs)),
        "<style>%s</style></head><body>" % STYLE,
        "<h1>lotteryfl report</h1>\n<ul>%s</ul>" % sources,
        section("summary", "Summary",
                "Accuracies from each run's last evaluated round; bytes summed over all rounds "
                "(1 KB = 1000 bytes); 'Nx' = dense fp32 bytes / bytes sent; density and mean bits "
                "(unweighted over the prunable layers) from the last round.",
                html_table(header, rows, "summary")),
    ]
    if grouped:
        group_header, group_table = group_rows(runs)
        parts += [
            section("seeds", "Across seeds",
                    "Runs that differ only in the seed, as mean ± sample standard deviation over the seeds "
                    "(bytes over the whole run and, where every run has more than 10 rounds, the last 10).",
                    html_table(group_header, group_table, "seeds")),
            section("accuracy", "Accuracy per round",
                    "Mean over the clients' own test splits, then mean ± sd over seeds (band); evaluated "
                    "rounds only. --per-seed draws each run instead.",
                    image(group_accuracy_figure(groups, group_styles), "accuracy per round")),
            section("bytes", "Bytes on the wire", "Cumulative payload bytes, mean ± sd over seeds (band).",
                    image(group_bytes_figure(groups, group_styles), "cumulative bytes")),
        ]
    else:
        parts += [
            section("accuracy", "Accuracy per round",
                    "Mean over the clients' own test splits; evaluated rounds only.",
                    image(accuracy_figure(runs, styles), "accuracy per round")),
            section("bytes", "Bytes on the wire",
                    "Cumulative payload bytes; the dashed line is what the same participations would "
                    "have cost as dense fp32 tensors.",
                    image(bytes_figure(runs, styles), "cumulative bytes")),
        ]
    parts += [
        section("density", "Ticket density",
                "Mean fraction of prunable weights kept by the clients' masks after each round.",
                image(density_figure(runs, styles), "mean density per round")),
        section("bits", "Bits per layer",
                "Mean bits per prunable layer (model parameter order) over the round's updates; "
                "32 = fp32.",
                '<div class="maps">%s</div>' % "\n".join(heat_maps)),
        section("settings", "Settings",
                "From summary.json" + (": only those that differ between the runs."
                                       if len(runs) > 1 else "."),
                settings_table(runs)),
        "</body></html>\n",
    ]
    return "\n".join(parts)


def default_output(run_dirs):
    return os.path.join(run_dirs[0], "report.html") if len(run_dirs) == 1 else "report.html"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Write an HTML report (embedded plots) of lotteryfl run directories.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="default: RUN_DIR/report.html for one run, ./report.html for several")
    parser.add_argument("--per-seed", action="store_true",
                        help="draw every run's own curves even where runs differ only in seed")
    args = parser.parse_args(argv)
    try:
        runs = compare.load_runs(args.runs)
    except compare.RunError as e:
        print("report.py: error: %s" % e, file=sys.stderr)
        return 2
    if plt is None:
        print("report.py: error: matplotlib is missing; install python3-matplotlib and run "
              "with /usr/bin/python3", file=sys.stderr)
        return 1
    output = args.output or default_output(args.runs)
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(render_html(runs, args.per_seed))
    except OSError as e:
        print("report.py: error: cannot write %s: %s" % (output, e), file=sys.stderr)
        return 1
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
