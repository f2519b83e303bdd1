"""cli.py: the defaults of a full run, of --quick and of --target, and the
checks that span several options."""

import contextlib
import io
import unittest

from harness import cli
from harness.tools import Fatal


def options(*words):
    parsed = cli.parser().parse_args(["run", *words])
    cli.finish_run_options(parsed)
    return parsed


class DefaultsTests(unittest.TestCase):
    def test_a_full_run_repeats_and_measures_fixed_rates(self):
        parsed = options()
        self.assertEqual(
            (parsed.runs, parsed.duration, parsed.warmup, parsed.max_retries), (3, 10, 2, 2)
        )
        self.assertTrue(parsed.fixed_rate)
        self.assertEqual(parsed.rate_fractions, [25.0, 50.0, 75.0, 90.0])
        self.assertEqual((parsed.common_rate, parsed.fixed_rate_duration), (500, 5))
        self.assertEqual(
            (parsed.name, parsed.contacts, parsed.contacts_given), ("bakeoff", 10000, False)
        )

    def test_quick_is_short(self):
        parsed = options("--quick")
        self.assertEqual(
            (parsed.runs, parsed.duration, parsed.warmup, parsed.max_retries), (1, 2, 1, 0)
        )
        self.assertEqual(parsed.rate_fractions, [])
        self.assertTrue(parsed.fixed_rate)

    def test_explicit_values_beat_quick(self):
        parsed = options("--quick", "--duration=5", "--runs", "2", "--rate-fractions", "50")
        self.assertEqual((parsed.duration, parsed.runs, parsed.rate_fractions), (5, 2, [50.0]))

    def test_a_target_keeps_the_bash_harness_defaults_unless_asked(self):
        parsed = options("--target", "http://127.0.0.1:8001/", "--name", "peer")
        self.assertEqual((parsed.runs, parsed.max_retries, parsed.fixed_rate), (1, 0, False))
        self.assertEqual(parsed.target, "http://127.0.0.1:8001")
        parsed = options(
            "--target", "http://127.0.0.1:8001", "--name", "peer", "--runs", "3", "--fixed-rate"
        )
        self.assertEqual((parsed.runs, parsed.fixed_rate), (3, True))

    def test_server_args_split_on_spaces(self):
        parsed = options("--server-args", "--runtime per-core  --pool-size 8")
        self.assertEqual(parsed.server_args, ["--runtime", "per-core", "--pool-size", "8"])
        self.assertEqual(parsed.server_args_text, "--runtime per-core  --pool-size 8")


class CheckTests(unittest.TestCase):
    def test_rejections(self):
        for words in (
            ["--threads", "65"],
            ["--target", "ftp://x", "--name", "n"],
            ["--target", "http://x"],
            ["--name", "n"],
            ["--label", "a b"],
            ["--target", "http://x", "--name", "n", "--server-args", "--runtime multi"],
            ["--binary", "/nonexistent/bakeoff"],
        ):
            with self.subTest(words=words), self.assertRaises(Fatal):
                options(*words)

    def test_parser_rejections_exit_with_usage(self):
        for words in (
            ["--runs", "0"],
            ["--warmup", "-1"],
            ["--rate-fractions", "150"],
            ["--transport", "udp"],
            ["--noise-threshold", "x"],
        ):
            with (
                self.subTest(words=words),
                self.assertRaises(SystemExit),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                cli.parser().parse_args(["run", *words])

    def test_percent_list(self):
        self.assertEqual(cli.percent_list("25,50"), [25.0, 50.0])
        self.assertEqual(cli.percent_list("none"), [])


if __name__ == "__main__":
    unittest.main()
