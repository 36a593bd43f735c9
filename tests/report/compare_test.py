#!/usr/bin/env python3
"""scripts/compare.py on fake run directories: the table's ratios, accuracies and bits follow
from the data, --last N restricts the byte sums, it runs without matplotlib, and unreadable
runs give exit 2 naming the file and line."""
import json
import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_run  # noqa: E402


def table(stdout):
    """{run name: {column: cell}} from compare.py's output (columns split on 2+ spaces)."""
    lines = [l for l in stdout.splitlines() if l.strip()]
    header_at = next(i for i, l in enumerate(lines) if l.startswith("run "))
    columns = re.split(r"\s{2,}", lines[header_at].strip())
    rows = {}
    for line in lines[header_at + 2:]:
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(columns, cells))
    return rows


def ratio(rows, key):
    return "%.1fx" % (sum(r["dense_fp32_bytes"] for r in rows) / sum(r[key] for r in rows))


def read_rows(path):
    with open(os.path.join(path, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def last_evaluated(rows, key):
    return "%.1f%%" % (100 * [r[key] for r in rows if r[key] is not None][-1])


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.quant = fake_run.quantized_run(os.path.join(self.tmp.name, "lottery-bsq"))
        self.dense = fake_run.fp32_run(os.path.join(self.tmp.name, "fedavg"))

    def tearDown(self):
        self.tmp.cleanup()

    def compare(self, *args, python=fake_run.DEBIAN_PYTHON):
        result = fake_run.run([fake_run.COMPARE] + list(args), python=python)
        self.assertEqual(result.returncode, 0, result.stderr)
        return table(result.stdout)

    def test_ratios_accuracies_and_bits_follow_from_the_metrics(self):
        out = self.compare(self.quant, self.dense)
        for path, name in ((self.quant, "lottery-bsq"), (self.dense, "fedavg")):
            rows, row = read_rows(path), out[name]
            self.assertEqual(row["up vs fp32"], ratio(rows, "uplink_bytes"))
            self.assertEqual(row["down vs fp32"], ratio(rows, "downlink_bytes"))
            self.assertEqual(row["personalized"], last_evaluated(rows, "personalized_accuracy"))
            self.assertEqual(row["global-masked"], last_evaluated(rows, "global_masked_accuracy"))
            self.assertEqual(row["global"], last_evaluated(rows, "global_accuracy"))
            bits = rows[-1]["layer_bits"]
            self.assertEqual(row["mean bits"], "%.2f" % (sum(bits) / len(bits)))
        self.assertEqual((out["lottery-bsq"]["algorithm"], out["lottery-bsq"]["quant"]),
                         ("lotteryfl", "bsq"))
        self.assertEqual((out["fedavg"]["algorithm"], out["fedavg"]["quant"]), ("fedavg", "none"))

    def test_last_n_sums_only_the_last_rounds(self):
        rows = read_rows(self.quant)[-2:]
        row = self.compare(self.quant, "--last", "2")["lottery-bsq"]
        self.assertEqual(row["up vs fp32"], ratio(rows, "uplink_bytes"))
        self.assertEqual(row["down vs fp32"], ratio(rows, "downlink_bytes"))
        self.assertNotEqual(row["up vs fp32"], ratio(read_rows(self.quant), "uplink_bytes"))

    def test_unfinished_run_reports_its_last_evaluated_round(self):
        rows = read_rows(self.quant)[:5]  # round 5 was not evaluated; no summary yet
        partial = fake_run.write_run(os.path.join(self.tmp.name, "partial"), rows, summary=False)
        row = self.compare(partial)["partial"]
        self.assertIsNone(rows[-1]["personalized_accuracy"])
        self.assertEqual(row["personalized"], last_evaluated(rows, "personalized_accuracy"))
        self.assertEqual((row["algorithm"], row["quant"]), ("?", "?"))

    def test_runs_without_matplotlib(self):
        code = ("import runpy, sys; sys.modules['matplotlib'] = None; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")
        result = fake_run.run(["-c", code, fake_run.COMPARE, self.quant])
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("lottery-bsq", table(result.stdout))

    def test_same_directory_names_are_told_apart(self):
        other = fake_run.fp32_run(os.path.join(self.tmp.name, "b", "lottery-bsq"))
        out = self.compare(self.quant, other)
        self.assertEqual(len(out), 2)

    def expect_error(self, args, *fragments):
        result = fake_run.run([fake_run.COMPARE] + args)
        self.assertEqual(result.returncode, 2, result.stdout + result.stderr)
        for fragment in fragments:
            self.assertIn(fragment, result.stderr)

    def test_corrupt_line_is_named(self):
        metrics = os.path.join(self.quant, "metrics.jsonl")
        with open(metrics) as f:
            lines = f.readlines()
        lines[2] = lines[2][:40] + "\n"  # truncated JSON on line 3
        with open(metrics, "w") as f:
            f.writelines(lines)
        self.expect_error([self.dense, self.quant], metrics + ":3")

    def test_wrong_type_is_named(self):
        metrics = os.path.join(self.quant, "metrics.jsonl")
        rows = read_rows(self.quant)
        rows[1]["uplink_bytes"] = "lots"
        with open(metrics, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        self.expect_error([self.quant], metrics + ":2", "uplink_bytes")

    def test_missing_and_empty_inputs(self):
        missing = os.path.join(self.tmp.name, "nope")
        self.expect_error([missing], missing)
        empty = os.path.join(self.tmp.name, "empty")
        os.makedirs(empty)
        self.expect_error([empty], os.path.join(empty, "metrics.jsonl"))
        open(os.path.join(empty, "metrics.jsonl"), "w").close()
        self.expect_error([empty], os.path.join(empty, "metrics.jsonl"), "empty")


if __name__ == "__main__":
    unittest.main()
