#!/usr/bin/python3
"""scripts/report.py on fake run directories: a self-contained HTML with every section, one
embedded PNG per plot and one bits heat map per run, a summary table whose figures follow
from the data, the documented default output paths, and exit 2 naming the file and line for
a corrupt metrics.jsonl. Skips (77) when Debian's python3-matplotlib is missing."""
import base64
import html.parser
import os
import re
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_run  # noqa: E402
from compare_test import last_evaluated, ratio, read_rows  # noqa: E402

SECTIONS = ("summary", "accuracy", "bytes", "density", "bits", "settings")
PLOTS = 3  # accuracy, bytes, density; plus one heat map per run that recorded bits
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(html.parser.HTMLParser):
    """Collects section ids, image sources, external references and table rows."""

    def __init__(self):
        super().__init__()
        self.ids, self.images, self.external, self.tables = [], [], [], {}
        self._table, self._row, self._cell = None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if re.match(r"(https?:)?//|file:", attrs.get(key) or ""):
                self.external.append(attrs[key])
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._table = self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def parse(path):
    page = Page()
    with open(path, encoding="utf-8") as f:
        page.feed(f.read())
    return page


def table_by_run(rows):
    header = rows[0]
    return {row[0]: dict(zip(header, row)) for row in rows[1:]}


def png_size(uri):
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    return struct.unpack(">II", data[16:24])


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.quant = fake_run.quantized_run(os.path.join(self.tmp.name, "lottery-bsq"))
        self.dense = fake_run.fp32_run(os.path.join(self.tmp.name, "fedavg"))

    def tearDown(self):
        self.tmp.cleanup()

    def report(self, *args, cwd=None):
        result = fake_run.run([fake_run.REPORT] + list(args), cwd=cwd)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.strip()

    def test_several_runs(self):
        """One report of three runs (one without per-layer bits) checked for
        sections, images, self-containedness and the summary table's figures."""
        no_bits = read_rows(self.quant)
        for row in no_bits:
            row["layer_bits"] = []
        bare = fake_run.write_run(os.path.join(self.tmp.name, "no-bits"), no_bits)
        out = os.path.join(self.tmp.name, "out.html")
        self.assertEqual(self.report(self.quant, self.dense, bare, "-o", out), out)
        page = parse(out)
        with open(out, encoding="utf-8") as f:
            text = f.read()
        self.check_sections_and_images(page, text)
        self.check_summary_table(page)

    def check_sections_and_images(self, page, text):
        for anchor in SECTIONS:
            self.assertIn(anchor, page.ids)
        self.assertEqual(page.external, [], "the report must be self-contained")
        self.assertEqual(len(page.images), PLOTS + 2)  # heat maps for the two runs with bits
        for uri in page.images:
            width, height = png_size(uri)
            self.assertGreater(width, 200)
            self.assertGreater(height, 100)
        self.assertIn("no-bits: no per-layer bits recorded", text)
        self.assertIn("lottery-bsq (lotteryfl, bsq)", text)
        self.assertIn("fedavg (fedavg, none)", text)

    def check_summary_table(self, page):
        summary = table_by_run(page.tables["summary"])
        self.assertEqual(set(summary), {"lottery-bsq", "fedavg", "no-bits"})
        for path, name in ((self.quant, "lottery-bsq"), (self.dense, "fedavg")):
            rows, row = read_rows(path), summary[name]
            self.assertEqual(row["up vs fp32"], ratio(rows, "uplink_bytes"))
            self.assertEqual(row["down vs fp32"], ratio(rows, "downlink_bytes"))
            self.assertEqual(row["global-masked"], last_evaluated(rows, "global_masked_accuracy"))
            self.assertEqual(row["rounds"], str(len(rows)))
            self.assertEqual(row["wall time"], "12.5 s")  # summary.json's wall_seconds
        # Only the settings that differ between the runs.
        self.assertEqual(set(table_by_run(page.tables["settings"])), {"algorithm", "quant"})

    def test_default_output_paths(self):
        self.assertEqual(self.report(self.quant), os.path.join(self.quant, "report.html"))
        self.assertTrue(os.path.isfile(os.path.join(self.quant, "report.html")))
        self.assertEqual(self.report(self.quant, self.dense, cwd=self.tmp.name), "report.html")
        self.assertTrue(os.path.isfile(os.path.join(self.tmp.name, "report.html")))

    def test_corrupt_metrics_exit_2_naming_file_and_line(self):
        metrics = os.path.join(self.dense, "metrics.jsonl")
        line = len(read_rows(self.dense)) + 1
        with open(metrics, "a") as f:
            f.write('{"round": 7, "uplink_bytes": \n')  # a half-written last line
        out = os.path.join(self.tmp.name, "out.html")
        result = fake_run.run([fake_run.REPORT, self.quant, self.dense, "-o", out])
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("%s:%d" % (metrics, line), result.stderr)
        self.assertFalse(os.path.exists(out))


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: %s has no matplotlib (Debian package python3-matplotlib)" % sys.executable)
        sys.exit(77)
    unittest.main()
