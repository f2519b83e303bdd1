"""plans.py (starts-plans): its words, wrk's figure and the table rows."""

import contextlib
import io
import unittest

from harness import cli, plans


class PlansTests(unittest.TestCase):
    def test_parse(self):
        parsed = cli.parser().parse_args(
            ["starts-plans", "--runs", "5", "--duration=2", "old", "new"]
        )
        self.assertEqual((parsed.runs, parsed.duration, parsed.binaries), (5, 2, ["old", "new"]))
        self.assertEqual(cli.parser().parse_args(["starts-plans", "b"]).runs, 3)
        for words in ([], ["--bogus", "b"], ["--runs", "0", "b"], ["b", "--runs"], ["--help"]):
            with (
                self.subTest(words=words),
                self.assertRaises(SystemExit),
                contextlib.redirect_stderr(io.StringIO()),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                cli.parser().parse_args(["starts-plans", *words])

    def test_wrk_figure(self):
        text = (
            "Running 5s test @ http://x\n  2 threads and 64 connections\n"
            "Requests/sec:  12345.67\nTransfer/sec: 1MB\n"
        )
        self.assertEqual(plans.requests_per_second(text), 12345.67)
        with self.assertRaises(ValueError):
            plans.requests_per_second("nothing")

    def test_rows_min_lower_median_max(self):
        row = plans.table_row("b", "fresh", [3.0, 1.4, 2.6])
        self.assertEqual(row, "| b | fresh | 1 / 3 / 3 |")
        row = plans.table_row("b", "primed", [4, 1, 3, 2])
        self.assertEqual(row, "| b | primed | 1 / 2 / 4 |")
        self.assertEqual(
            plans.table_head(3, 5).splitlines(),
            [
                "| binary | state | min / median / max req/s (3 runs of 5 s) |",
                "| --- | --- | ---: |",
            ],
        )


if __name__ == "__main__":
    unittest.main()
