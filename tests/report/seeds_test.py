#!/usr/bin/env python3
"""Seeds as an axis: scripts/compare.py folds runs that differ only in seed into mean ± sd rows
(whole run and last N rounds), --per-seed adds each run's row, scripts/report.py draws bands for
them, and scripts/sweep.py lays runs out as OUT/<label>/seed<N> with one command per seed."""
import json
import os
import re
import statistics
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_run  # noqa: E402

SWEEP = os.path.join(fake_run.SOURCE_DIR, "scripts", "sweep.py")


def seeded_run(path, seed, quant, scale):
    rows = fake_run.make_rows(12, uplink=lambda t: int(scale * (50000 - 2000 * t)),
                              downlink=lambda t: int(scale * 60000), bits=lambda t: [8, 4, 2, 8])
    for row in rows:
        if row["personalized_accuracy"] is not None:
            row["personalized_accuracy"] = min(1.0, row["personalized_accuracy"] * scale / 2)
    fake_run.write_run(path, rows, quant=quant)
    with open(os.path.join(path, "summary.json")) as f:
        summary = json.load(f)
    summary["config"]["seed"] = seed
    summary["config"]["out"] = path
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump(summary, f)
    return path


class SeedsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.scales = {1: 1.0, 2: 1.2, 3: 1.5}
        self.bsq = [seeded_run(os.path.join(self.tmp.name, "bsq", "seed%d" % s), s, "bsq", k)
                    for s, k in self.scales.items()]
        self.u4 = [seeded_run(os.path.join(self.tmp.name, "uniform4", "seed%d" % s), s, "uniform4", 2.0)
                   for s in self.scales]

    def tearDown(self):
        self.tmp.cleanup()

    def compare(self, *args):
        result = fake_run.run([fake_run.COMPARE] + list(args), python=sys.executable)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout

    def grouped(self, stdout):
        lines = [l for l in stdout.splitlines() if l.strip()]
        at = next(i for i, l in enumerate(lines) if l.startswith("run "))
        columns = re.split(r"\s{2,}", lines[at].strip())
        rows = {}
        for line in lines[at + 2:]:
            if not line.strip() or line.startswith("bytes over"):
                break
            cells = re.split(r"\s{2,}", line.strip())
            rows[cells[0]] = dict(zip(columns, cells))
        return rows

    def test_groups_runs_that_differ_only_in_seed_into_mean_and_sd(self):
        rows = self.grouped(self.compare(*(self.bsq + self.u4), "--last", "10"))
        self.assertEqual(set(rows), {"bsq", "uniform4"})
        self.assertEqual(rows["bsq"]["seeds"], "1,2,3")
        up = [sum(int(k * (50000 - 2000 * t)) for t in range(1, 13)) for k in self.scales.values()]
        self.assertEqual(rows["bsq"]["uplink"], "%.1f ± %.1f KB" % (statistics.mean(up) / 1e3,
                                                                     statistics.stdev(up) / 1e3))
        last = [sum(int(k * (50000 - 2000 * t)) for t in range(3, 13)) for k in self.scales.values()]
        self.assertEqual(rows["bsq"]["uplink last 10"], "%.1f ± %.1f KB" % (statistics.mean(last) / 1e3,
                                                                             statistics.stdev(last) / 1e3))
        acc = [100 * min(1.0, (0.5 + 0.05 * 12) * k / 2) for k in self.scales.values()]
        self.assertEqual(rows["bsq"]["personalized"], "%.1f ± %.1f%%" % (statistics.mean(acc), statistics.stdev(acc)))
        self.assertTrue(rows["uniform4"]["personalized"].endswith("± 0.0%"))

    def test_per_seed_adds_every_runs_own_row(self):
        out = self.compare(*self.bsq, "--per-seed")
        self.assertIn("mean ± sd over seeds", out)
        self.assertEqual(sum(1 for l in out.splitlines() if re.match(r"bsq/seed[123] ", l)), 3)

    def test_markdown_table(self):
        out = self.compare(*self.bsq, *self.u4, "--markdown", "--last", "10")
        self.assertIn("| bsq | 1,2,3 |", out)
        self.assertIn("| uniform4 | 1,2,3 |", out)

    def test_report_draws_seed_bands(self):
        if not os.path.exists(fake_run.DEBIAN_PYTHON):
            self.skipTest("no /usr/bin/python3")
        output = os.path.join(self.tmp.name, "r.html")
        result = fake_run.run([fake_run.REPORT] + self.bsq + self.u4 + ["-o", output])
        if result.returncode == 1 and "matplotlib" in result.stderr:
            self.skipTest("no matplotlib")
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(output, encoding="utf-8") as f:
            page = f.read()
        self.assertIn('id="seeds"', page)
        self.assertIn("mean ± sd over seeds (band)", page)
        self.assertIn("1,2,3", page)

    def test_sweep_lays_out_one_command_per_variant_and_seed(self):
        result = fake_run.run([SWEEP, "--config", "configs/lotteryfl-fmnist.toml", "--seeds", "1-3",
                               "--vary", "quant=none,bsq", "--run", "local:--algorithm local",
                               "--out", "runs/x", "--jobs", "2", "--dry-run", "--", "--eval-every", "1000"],
                              python=sys.executable, cwd=fake_run.SOURCE_DIR)
        self.assertEqual(result.returncode, 0, result.stderr)
        lines = result.stdout.splitlines()
        self.assertEqual(len(lines), 9)
        self.assertIn("--quant bsq --eval-every 1000 --seed 2 --out runs/x/bsq/seed2 --parallel 1", lines[4])
        self.assertIn("--algorithm local --eval-every 1000 --seed 3 --out runs/x/local/seed3", lines[8])


if __name__ == "__main__":
    unittest.main()
