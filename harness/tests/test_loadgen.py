"""loadgen.py: parsing wrk, pgbench and oha output captured from real runs
(harness/tests/data/, taken with `scripts/run.sh --raw-dir`), and the
latency percentiles of pgbench's per-transaction log."""

import os
import unittest

from harness import loadgen

DATA = os.path.join(os.path.dirname(__file__), "data")


def sample(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as file:
        return file.read()


class WrkTests(unittest.TestCase):
    def test_the_report_line_agrees_with_wrks_own_summary(self):
        figures = loadgen.parse_wrk(sample("wrk-version.txt"))
        self.assertEqual(figures["requests"], 64767)
        self.assertAlmostEqual(figures["duration_s"], 2.026206)
        # wrk printed "Requests/sec:  31964.67" from the same counters.
        self.assertAlmostEqual(figures["rps"], 31964.67, places=1)
        self.assertEqual(figures["latency_us"]["p99"], 52743)
        self.assertEqual(figures["non_2xx"], 0)
        self.assertEqual(sum(figures["socket_errors"].values()), 0)

    def test_no_report_line_is_an_error(self):
        with self.assertRaises(ValueError):
            loadgen.parse_wrk("Running 2s test @ http://127.0.0.1:1/\n")

    def test_the_command_line(self):
        from harness.workloads import BY_NAME

        argv = loadgen.wrk_argv("wrk", BY_NAME["contact_random"], "http://h:1", 3, 64, 2, 5, 900)
        self.assertEqual(argv[:9], ["wrk", "-t", "2", "-c", "64", "-d", "3s", "--timeout", "5s"])
        self.assertTrue(argv[10].endswith("scripts/wrk/random_contact.lua"))
        self.assertEqual(argv[11:], ["http://h:1/contacts/", "--", "900"])


class PgbenchTests(unittest.TestCase):
    def test_summary(self):
        figures = loadgen.parse_pgbench(sample("pgbench-types.txt"))
        self.assertEqual(figures["requests"], 2377)
        self.assertAlmostEqual(figures["rps"], 2864.052110)
        self.assertAlmostEqual(figures["latency_avg_us"], 22346.0)
        self.assertEqual((figures["failed"], figures["duration_s"]), (0, 2.0))

    def test_no_tps_is_an_error(self):
        with self.assertRaises(ValueError):
            loadgen.parse_pgbench("pgbench: error: connection failed\n")

    def test_rate_and_log_options(self):
        argv = loadgen.pgbench_argv(
            "pgbench", "s.sql", ["p1=10"], 5, 64, 2, "postgresql://x", rate=500, log_prefix="/tmp/r"
        )
        self.assertIn("--rate", argv)
        self.assertEqual(argv[argv.index("--rate") + 1], "500")
        self.assertEqual(argv[argv.index("--log-prefix") + 1], "/tmp/r")
        self.assertEqual(argv[argv.index("-D") + 1], "p1=10")
        self.assertEqual(argv[-1], "postgresql://x")

    def test_log_latencies_skip_skipped_and_failed(self):
        lines = [
            "0 1 1500 0 1764612000 123456 20\n",
            "1 1 skipped 0 1764612000 123457 9000\n",
            "2 1 failed 0 1764612000 123458 10\n",
            "0 2 700 0 1764612000 223456 5\n",
            "\n",
        ]
        self.assertEqual(loadgen.parse_pgbench_log(lines), [1500, 700])

    def test_percentiles_in_ms(self):
        latencies = list(range(1000, 101000, 1000))  # 1 ms .. 100 ms, 100 values
        percentiles = loadgen.latency_percentiles_ms(latencies)
        self.assertEqual(
            (
                percentiles["p50_ms"],
                percentiles["p90_ms"],
                percentiles["p99_ms"],
                percentiles["p999_ms"],
            ),
            (50.0, 90.0, 99.0, 100.0),
        )
        self.assertIsNone(loadgen.latency_percentiles_ms([])["p50_ms"])


class OhaTests(unittest.TestCase):
    def test_json_output_of_a_fixed_rate_run(self):
        # contact_random at -q 500 for 2 s (--quick): 1000 answers, all 200;
        # 4 requests still in flight at the deadline, which oha lists as
        # errors and which are none of the server's.
        figures = loadgen.parse_oha(sample("oha-contact_random.txt"))
        self.assertEqual((figures["requests"], figures["ok"]), (1000, 1000))
        self.assertEqual((figures["errors"], figures["aborted_at_end"]), (0, 4))
        self.assertAlmostEqual(figures["duration_s"], 2.007078386)
        self.assertAlmostEqual(figures["rps"], 1000 / 2.007078386)
        self.assertAlmostEqual(figures["p99_ms"], 5.17628)
        self.assertAlmostEqual(figures["p999_ms"], 6.02871)

    def test_real_errors_are_counted(self):
        text = (
            '{"summary": {"total": 1.0}, "latencyPercentiles": {"p50": 0.001},'
            ' "statusCodeDistribution": {"200": 8, "503": 2},'
            ' "errorDistribution": {"connection refused": 3, "aborted due to deadline": 1}}'
        )
        figures = loadgen.parse_oha(text)
        self.assertEqual((figures["requests"], figures["ok"], figures["errors"]), (10, 8, 3))
        self.assertEqual(figures["aborted_at_end"], 1)
        self.assertIsNone(figures["p99_ms"])

    def test_the_command_line(self):
        argv = loadgen.oha_argv("oha", "http://h:1/types", 5, 500, 64)
        self.assertEqual(argv[1:5], ["-z", "5s", "-q", "500"])
        self.assertIn("--latency-correction", argv)
        self.assertEqual(argv[-1], "http://h:1/types")
        argv = loadgen.oha_argv("oha", "http://h:1/contacts/", 5, 500, 64, "/tmp/urls.txt")
        self.assertEqual(argv[-2:], ["--urls-from-file", "/tmp/urls.txt"])


class PgbenchRateLogTests(unittest.TestCase):
    def test_the_latency_log_of_a_fixed_rate_run(self):
        # types at --rate 500 for 2 s; the expected values were read with
        # awk and sort -n from the same file: 785 transactions, the 393rd
        # is 676 µs, the 778th 36716 µs, the last 57911 µs.
        with open(os.path.join(DATA, "pgbench-rate-log-types.txt"), encoding="utf-8") as file:
            latencies = loadgen.parse_pgbench_log(file.readlines())
        self.assertEqual(len(latencies), 785)
        percentiles = loadgen.latency_percentiles_ms(latencies)
        self.assertAlmostEqual(percentiles["p50_ms"], 0.676)
        self.assertAlmostEqual(percentiles["p99_ms"], 36.716)
        self.assertAlmostEqual(percentiles["p999_ms"], 57.911)


if __name__ == "__main__":
    unittest.main()
