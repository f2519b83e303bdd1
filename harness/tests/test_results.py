"""results.py: records to JSON and back, and the figures of a workload over
its runs (median, min, max, spread, CPU, fixed rates, noise)."""

import json
import os
import tempfile
import unittest

from harness import archive, report, results


def wrk_record(run, rps, server_us, requests=1000, role="server", target="bakeoff"):
    return results.Measurement(
        workload="types",
        run=run,
        role=role,
        tool="wrk",
        target=target,
        requests=requests,
        duration_s=requests / rps,
        rps=rps,
        url="http://127.0.0.1:1/types",
        latency_us={
            "min": 10,
            "p50": 100 * run,
            "p90": 200,
            "p99": 300 * run,
            "p999": 400,
            "max": 1000 * run,
            "mean": 110.0,
            "stdev": 5.0,
        },
        non_2xx=0,
        socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": run - 1},
        bytes=12345,
        cpu_ns={"server": 1},
        cpu_us_per_request={
            "server": server_us,
            "database": 10.0,
            "load_generator": 5.0,
            "total": server_us + 15.0,
        },
        cpu_method="cgroup-v1",
        noise=results.Noise(
            other_cores=0.05 * run, ours_cores=1.5, interrupts_cores=0.1, noisy=False, attempts=run
        ),
    )


def fixed_record(run, label, offered, p99):
    return results.FixedRate(
        workload="types",
        run=run,
        system="server",
        label=label,
        offered_rps=offered,
        achieved_rps=offered - 1,
        requests=offered * 5,
        errors=0,
        p50_ms=1.0,
        p90_ms=2.0,
        p99_ms=p99,
        p999_ms=p99 * 2,
        cpu_ns={"server": 1},
        cpu_us_per_request={
            "server": 60.0 + run,
            "database": 50.0,
            "load_generator": 20.0,
            "total": 130.0 + run,
        },
        noise=results.Noise(other_cores=0.0, ours_cores=0.5, interrupts_cores=0.0, noisy=False),
    )


class RoundTripTests(unittest.TestCase):
    def test_records_survive_json(self):
        measurements = [wrk_record(1, 1000.0, 20.0), wrk_record(2, 1100.0, 22.0)]
        fixed = [fixed_record(1, "common", 500, 3.0)]
        doc = results.build_document(
            {"name": "bakeoff", "params": {"runs": 2}},
            [{"name": "types", "path": "/types", "ceiling": "none"}],
            measurements,
            fixed,
        )
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "out.json")
            archive.write_json(doc, path)
            back_measurements, back_fixed = results.records_of(archive.read_json(path))
        self.assertEqual(back_measurements, measurements)
        self.assertEqual(back_fixed, fixed)
        self.assertEqual(doc["schema_version"], results.SCHEMA_VERSION)


class FiguresTests(unittest.TestCase):
    def setUp(self):
        server = [
            wrk_record(1, 1000.0, 20.0),
            wrk_record(2, 1200.0, 30.0),
            wrk_record(3, 900.0, 25.0),
        ]
        ceiling = [
            wrk_record(run, 2000.0 + run, 8.0, role="ceiling", target="nginx") for run in (1, 2, 3)
        ]
        fixed = [
            fixed_record(run, label, offered, p99)
            for run in (1, 2, 3)
            for label, offered, p99 in (("50%", 500 + run, 2.0 * run), ("common", 500, 5.0))
        ]
        self.entry = results.workload_entry(
            {"name": "types", "path": "/types", "ceiling": "nginx"}, [*server, *ceiling], fixed
        )

    def test_median_min_max_spread_of_requests_per_second(self):
        entry = self.entry
        self.assertEqual((entry["median"], entry["min"], entry["max"]), (1000.0, 900.0, 1200.0))
        self.assertAlmostEqual(entry["spread_pct"], 30.0)  # (1200 - 900) / 1000

    def test_cpu_per_request_median_and_its_spread(self):
        entry = self.entry
        self.assertEqual(entry["cpu_us_per_request"]["server"], 25.0)
        self.assertEqual(entry["cpu_us_per_request"]["total"], 40.0)
        self.assertAlmostEqual(entry["cpu_spread"]["server"]["spread_pct"], 40.0)  # (30 - 20) / 25

    def test_ceiling_and_ratio(self):
        entry = self.entry
        self.assertEqual(entry["ceiling_figures"]["median"], 2002.0)
        self.assertAlmostEqual(entry["ratio_to_ceiling"], 1000.0 / 2002.0)

    def test_fixed_rate_rows_by_label_in_the_order_they_ran(self):
        rows = self.entry["fixed_rate"]
        self.assertEqual([row["label"] for row in rows], ["50%", "common"])
        self.assertEqual(rows[0]["offered_rps"], 502)  # median of 501, 502, 503
        self.assertEqual(rows[0]["p99_ms"], 4.0)  # median of 2, 4, 6
        self.assertEqual(rows[1]["cpu_us_per_request"]["server"], 62.0)  # median of 61, 62, 63
        self.assertEqual(rows[1]["runs"], 3)
        self.assertEqual(self.entry["database_fixed_rate"], [])

    def test_the_pipelined_ceiling_names_the_physical_limit(self):
        pipelined = [
            wrk_record(run, 3000.0 * run, 8.0, role="ceiling_pipeline", target="pgbench-pipeline")
            for run in (1, 2, 3)
        ]
        server = [wrk_record(run, 1000.0, 20.0) for run in (1, 2, 3)]
        ceiling = [
            wrk_record(run, 2000.0, 8.0, role="ceiling", target="pgbench") for run in (1, 2, 3)
        ]
        entry = results.workload_entry(
            {"name": "types", "path": "/types", "ceiling": "pgbench"},
            [*server, *ceiling, *pipelined],
            [],
        )
        self.assertEqual(entry["pipeline_ceiling_figures"]["median"], 6000.0)
        self.assertAlmostEqual(entry["ratio_to_pipeline_ceiling"], 1000.0 / 6000.0)
        self.assertAlmostEqual(entry["ratio_to_ceiling"], 0.5)
        self.assertEqual(entry["physical_limit"], "pipeline")
        self.assertEqual(entry["runs"][1]["ceiling_pipeline"]["rps"], 6000.0)

    def test_noise_counts_retries(self):
        noise = self.entry["noise"]
        # Server and ceiling windows of runs 1, 2, 3 took 1, 2, 3 attempts.
        self.assertEqual(noise["retries"], 2 * (0 + 1 + 2))
        self.assertEqual(noise["noisy_kept"], 0)
        self.assertAlmostEqual(noise["other_cores_max"], 0.15)

    def test_the_schema_1_summary_is_still_there(self):
        summary = self.entry["summary"]
        self.assertEqual(summary["rps"]["median"], 1000.0)
        self.assertEqual(summary["latency_us"]["p99"], 600)  # median of 300, 600, 900
        self.assertEqual(summary["latency_us"]["max"], 3000)
        self.assertEqual(summary["socket_errors"]["timeout"], 3)  # 0 + 1 + 2
        self.assertEqual(summary["requests"], 3000)

    def test_the_markdown_shows_the_figures(self):
        doc = {"name": "bakeoff", "params": {"runs": 3}, "workloads": [self.entry], "noise": {}}
        text = report.markdown(doc, "results/x.json")
        row = next(line for line in text.splitlines() if line.startswith("| types | 1000 |"))
        self.assertIn("| 900–1200 | 30% |", row)
        self.assertIn("| 25.0 | 10.0 | 5.0 | 40.0 | nginx |", row)
        self.assertIn("| types | common | 500 | 499 |", text)
        json.dumps(doc)  # the document stays JSON


if __name__ == "__main__":
    unittest.main()


class SchemaThreeTests(unittest.TestCase):
    """A schema-2 file (as the harness wrote it until 2026-12-06) and the same
    document stored as schema 3 (records beside it) print the same tables."""

    def test_table_rows_are_the_same_for_an_old_and_a_new_file(self):
        old_path = os.path.join(os.path.dirname(__file__), "data", "run-schema2.json")
        old = archive.read_json(old_path)
        self.assertEqual(old["schema_version"], 2)
        with tempfile.TemporaryDirectory() as directory:
            new_path = os.path.join(directory, "new.json")
            archive.write_json(old, new_path)
            self.assertTrue(os.path.exists(archive.records_path(new_path)))
            with open(new_path, encoding="utf-8") as file:
                stored = json.load(file)
            self.assertEqual(stored["schema_version"], 2)  # the document's own, kept
            self.assertFalse(any("runs" in entry for entry in stored["workloads"]))
            new = archive.read_json(new_path)

        def rows(doc):
            return [
                line for line in report.markdown(doc, "x.json").splitlines() if line.startswith("|")
            ]

        self.assertEqual(rows(new), rows(old))
        # The saturation table (head, rule, version, types) and the fixed-rate
        # one (head, rule, types at 25/50/75/90% and the common rate).
        self.assertEqual(len(rows(old)), 4 + 7)
        self.assertEqual(results.records_of(new), results.records_of(old))
