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
        o = options()
        self.assertEqual((o.runs, o.duration, o.warmup, o.max_retries), (3, 10, 2, 2))
        self.assertTrue(o.fixed_rate)
        self.assertEqual(o.rate_fractions, [25.0, 50.0, 75.0, 90.0])
        self.assertEqual((o.common_rate, o.fixed_rate_duration), (500, 5))
        self.assertEqual((o.name, o.contacts, o.contacts_given), ("bakeoff", 10000, False))

    def test_quick_is_short(self):
        o = options("--quick")
        self.assertEqual((o.runs, o.duration, o.warmup, o.max_retries), (1, 2, 1, 0))
        self.assertEqual(o.rate_fractions, [])
        self.assertTrue(o.fixed_rate)

    def test_explicit_values_beat_quick(self):
        o = options("--quick", "--duration=5", "--runs", "2", "--rate-fractions", "50")
        self.assertEqual((o.duration, o.runs, o.rate_fractions), (5, 2, [50.0]))

    def test_a_target_keeps_the_bash_harness_defaults_unless_asked(self):
        o = options("--target", "http://127.0.0.1:8001/", "--name", "peer")
        self.assertEqual((o.runs, o.max_retries, o.fixed_rate), (1, 0, False))
        self.assertEqual(o.target, "http://127.0.0.1:8001")
        o = options("--target", "http://127.0.0.1:8001", "--name", "peer", "--runs", "3",
                    "--fixed-rate")
        self.assertEqual((o.runs, o.fixed_rate), (3, True))

    def test_server_args_split_on_spaces(self):
        o = options("--server-args", "--runtime per-core  --pool-size 8")
        self.assertEqual(o.server_args, ["--runtime", "per-core", "--pool-size", "8"])
        self.assertEqual(o.server_args_text, "--runtime per-core  --pool-size 8")


class CheckTests(unittest.TestCase):
    def test_rejections(self):
        for words in (["--threads", "65"],
                      ["--target", "ftp://x", "--name", "n"],
                      ["--target", "http://x"],
                      ["--name", "n"],
                      ["--label", "a b"],
                      ["--target", "http://x", "--name", "n", "--server-args", "--runtime multi"],
                      ["--binary", "/nonexistent/bakeoff"]):
            with self.subTest(words=words), self.assertRaises(Fatal):
                options(*words)

    def test_parser_rejections_exit_with_usage(self):
        for words in (["--runs", "0"], ["--warmup", "-1"], ["--rate-fractions", "150"],
                      ["--transport", "udp"], ["--noise-threshold", "x"]):
            with self.subTest(words=words), self.assertRaises(SystemExit), \
                    contextlib.redirect_stderr(io.StringIO()):
                cli.parser().parse_args(["run", *words])

    def test_percent_list(self):
        self.assertEqual(cli.percent_list("25,50"), [25.0, 50.0])
        self.assertEqual(cli.percent_list("none"), [])


if __name__ == "__main__":
    unittest.main()
