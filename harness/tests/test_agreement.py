"""agreement.py: the distance of each invocation's median from the middle
one, and which figures are compared."""

import contextlib
import io
import json
import os
import tempfile
import unittest

from harness import agreement, cli


def doc(rps, ratio, cpu):
    return {
        "workloads": [
            {
                "name": "types",
                "ceiling": "pgbench",
                "median": rps,
                "ratio_to_ceiling": ratio,
                "ratio_to_pipeline_ceiling": None,
                "fixed_rate": [
                    {"label": "25%", "offered_rps": 2000, "cpu_us_per_request": {"server": 99.0}},
                    {"label": "common", "offered_rps": 500, "cpu_us_per_request": {"server": cpu}},
                ],
            }
        ]
    }


class Deviation(unittest.TestCase):
    def test_largest_distance_from_the_middle(self):
        # middle 100; 94 is 6% below it, 103 3% above.
        self.assertAlmostEqual(agreement.deviation_pct([94, 100, 103]), 6.0)

    def test_needs_two_values(self):
        self.assertIsNone(agreement.deviation_pct([100]))
        self.assertIsNone(agreement.deviation_pct([100, None]))


class Compare(unittest.TestCase):
    def test_rows_and_bounds(self):
        rows = agreement.compare(
            [doc(1000, 0.5, 60.0), doc(1080, 0.55, 62.0), doc(950, 0.52, 70.0)]
        )
        by_figure = {row[1]: row for row in rows}
        self.assertEqual(
            set(by_figure),
            {"req/s", "÷ pgbench", "server µs/req at 500/s", "server µs/req at 25% of capacity"},
        )
        # req/s: middle 1000, 1080 is 8% off: within ±10%.
        self.assertAlmostEqual(by_figure["req/s"][4], 8.0)
        self.assertTrue(by_figure["req/s"][6])
        # CPU: middle 62, 70 is 12.9% off: outside ±5%.
        self.assertAlmostEqual(by_figure["server µs/req at 500/s"][4], 8 / 62 * 100)
        self.assertFalse(by_figure["server µs/req at 500/s"][6])
        text = agreement.markdown(rows, ["a", "b", "c"])
        # The 25% rows are 99 in all three.
        self.assertTrue(by_figure["server µs/req at 25% of capacity"][6])
        self.assertIn("3 of 4 figures agree.", text)


class EveryRun(unittest.TestCase):
    def test_every_run_of_every_file_against_the_median_of_all(self):
        def one(cpus, pairs):
            return {
                "workloads": [
                    {
                        "name": "types",
                        "ceiling": "pgbench",
                        "per_run": {
                            "cpu_us_per_request": {
                                "server": cpus,
                                "load_generator": [5.0] * len(cpus),
                            }
                        },
                        "runs": [
                            {
                                "server": {"rps": s},
                                "ceiling": {
                                    "rps": c,
                                    "target": "pgbench",
                                    # PostgreSQL's CPU is pgbench's ceiling's own.
                                    "cpu_us_per_request": {"server": None, "database": d},
                                },
                            }
                            for s, c, d in pairs
                        ],
                    }
                ]
            }

        rows = agreement.runs(
            [
                one([10.0, 11.0], [(100, 100, 30.0), (90, 100, 40.0)]),
                one([12.0], [(120, 100, 50.0)]),
            ]
        )
        row = rows[0]
        self.assertEqual((row.name, row.cpu, row.ceiling), ("types", [10.0, 11.0, 12.0], "pgbench"))
        # median 11; 10 and 12 are 1/11 = 9.09% from it: within ±10%.
        self.assertAlmostEqual(row.deviation, 100 / 11)
        self.assertTrue(row.agrees)
        self.assertEqual(row.ratios, [1.0, 0.9, 1.2])
        self.assertEqual(row.relative, [2.0, 2.2, 2.4])
        # PostgreSQL's own 30, 40, 50: median 40, 10 is 25% of it.
        self.assertEqual(row.ceiling_cpu, [30.0, 40.0, 50.0])
        self.assertAlmostEqual(row.ceiling_cpu_deviation, 25.0)
        text = agreement.runs_markdown(rows)
        self.assertIn(
            "| 10.0 / 11.0 / 12.0 (3 runs) | 9.1% | 0.90 / 1.00 / 1.20 (pgbench) | 2 of 3"
            " | 2.00 / 2.20 / 2.40 (9.1%) | 30.0 / 40.0 / 50.0 (25.0%) |",
            text,
        )
        rows = agreement.runs([one([10.0, 14.0], [])])
        self.assertFalse(rows[0].agrees)
        self.assertEqual(rows[0].ceiling_cpu, [])

    def test_the_ceilings_own_cpu_is_nginx_for_nginx_and_absent_without_a_ceiling(self):
        def workload(name, ceiling_runs):
            return {
                "name": name,
                "per_run": {"cpu_us_per_request": {"server": [1.0] * len(ceiling_runs)}},
                "runs": [{"server": {"rps": 10}, "ceiling": run} for run in ceiling_runs],
            }

        nginx = [
            {"rps": 10, "target": "nginx", "cpu_us_per_request": {"server": cpu, "database": 0.0}}
            for cpu in (8.0, 9.0, 12.0)
        ]
        rows = agreement.runs(
            [{"workloads": [workload("version", nginx), workload("fib25", [None] * 3)]}]
        )
        by_name = {row.name: row for row in rows}
        self.assertEqual(by_name["version"].ceiling_cpu, [8.0, 9.0, 12.0])
        # median 9; 12 is a third above it.
        self.assertAlmostEqual(by_name["version"].ceiling_cpu_deviation, 100 / 3)
        self.assertEqual(by_name["fib25"].ceiling_cpu, [])
        self.assertIsNone(by_name["fib25"].ceiling_cpu_deviation)
        self.assertTrue(agreement.runs_markdown(rows).splitlines()[-1].endswith("| - | - |"))

    def test_agree_takes_one_file_and_prints_only_its_runs(self):
        doc = {
            "label": "solo",
            "workloads": [
                {
                    "name": "types",
                    "ceiling": "pgbench",
                    "per_run": {
                        "cpu_us_per_request": {"server": [10.0, 12.0], "load_generator": [5.0, 6.0]}
                    },
                }
            ],
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "solo.json")
            with open(path, "w") as out:
                json.dump(doc, out)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                status = cli.main(["agree", path])
        self.assertEqual(status, 0)
        text = printed.getvalue()
        self.assertIn("- solo: ", text)
        self.assertNotIn("figures agree", text)
        # The median of 10 and 12 is 11; both are 1/11 = 9.1% from it.
        self.assertIn("| types | 10.0 / 11.0 / 12.0 (2 runs) | 9.1% |", text)


if __name__ == "__main__":
    unittest.main()
