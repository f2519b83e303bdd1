"""options.py and settings.py: the defaults of a full run, of --quick, of
the study and of --target, each option declared once, and the checks that
span several options."""

import argparse
import contextlib
import dataclasses
import io
import unittest

from harness import argtypes, cli, options
from harness.settings import RUN, STUDY, Settings
from harness.tools import Fatal


def parsed(command, *words):
    namespace = cli.parser().parse_args([command, *words])
    return options.from_args(namespace, command)


def run(*words):
    return parsed(RUN, *words)


class DefaultsTests(unittest.TestCase):
    def test_a_full_run_repeats_and_measures_fixed_rates(self):
        settings = run()
        self.assertEqual(
            (settings.runs, settings.duration, settings.warmup, settings.max_retries), (3, 10, 2, 2)
        )
        self.assertTrue(settings.fixed_rate)
        self.assertEqual(settings.rate_fractions, (25.0, 50.0, 75.0, 90.0))
        self.assertEqual((settings.common_rate, settings.fixed_rate_duration), (500, 5))
        self.assertEqual(
            (settings.name, settings.contacts, settings.contacts_given), ("bakeoff", 10000, False)
        )

    def test_quick_is_short(self):
        settings = run("--quick")
        self.assertEqual(
            (settings.runs, settings.duration, settings.warmup, settings.max_retries), (1, 2, 1, 0)
        )
        self.assertEqual(settings.rate_fractions, ())
        self.assertTrue(settings.fixed_rate)

    def test_explicit_values_beat_quick(self):
        settings = run("--quick", "--duration=5", "--runs", "2", "--rate-fractions", "50")
        self.assertEqual(
            (settings.duration, settings.runs, settings.rate_fractions), (5, 2, (50.0,))
        )

    def test_a_target_keeps_the_bash_harness_defaults_unless_asked(self):
        settings = run("--target", "http://127.0.0.1:8001/", "--name", "peer")
        self.assertEqual((settings.runs, settings.max_retries, settings.fixed_rate), (1, 0, False))
        self.assertEqual(settings.target, "http://127.0.0.1:8001")
        settings = run(
            "--target", "http://127.0.0.1:8001", "--name", "peer", "--runs", "3", "--fixed-rate"
        )
        self.assertEqual((settings.runs, settings.fixed_rate), (3, True))

    def test_server_args_split_on_spaces(self):
        settings = run("--server-args", "--runtime per-core  --pool-size 8")
        self.assertEqual(settings.server_args, ("--runtime", "per-core", "--pool-size", "8"))

    def test_the_study_has_shorter_windows_and_its_extras(self):
        settings = parsed(STUDY)
        self.assertEqual((settings.duration, settings.fixed_rate_duration), (5, 5))
        self.assertEqual((settings.concurrency, settings.mixed_fib_rate), ((16, 256), 10.0))
        quick = parsed(STUDY, "--quick")
        self.assertEqual((quick.duration, quick.concurrency, quick.asyncpg_split), (2, (), False))

    def test_impls_is_an_alias_of_systems(self):
        self.assertEqual(parsed(STUDY, "--impls", "reference,go_pq").systems, "reference,go_pq")
        self.assertEqual(parsed(STUDY, "--systems", "reference").systems, "reference")

    def test_topology_lists(self):
        settings = parsed(STUDY, "--rtt-ms", "0,0.5,2", "--instances", "1,4")
        self.assertEqual((settings.rtt_ms, settings.instances), ((0.0, 0.5, 2.0), (1, 4)))
        self.assertTrue(settings.uses_hosts)
        self.assertFalse(run().uses_hosts)
        self.assertEqual(run().max_connections, 100)


class DeclaredOnceTests(unittest.TestCase):
    def test_every_option_is_a_field_with_one_default(self):
        # Each flag names one field, and run and compare share its default.
        flags = {}
        for spec in dataclasses.fields(Settings):
            for flag in spec.metadata["flags"]:
                self.assertNotIn(flag, flags, flag)
                flags[flag] = spec.name
        self.assertEqual(flags["--impls"], "systems")
        for command in (RUN, STUDY):
            parser = argparse.ArgumentParser()
            options.add_options(parser, command)
            self.assertEqual(parser.parse_args([]).duration, None)


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
            ["--rtt-ms", "2", "--pin-server", "0"],
        ):
            with self.subTest(words=words), self.assertRaises(Fatal):
                run(*words)

    def test_parser_rejections_exit_with_usage(self):
        for words in (
            ["--runs", "0"],
            ["--warmup", "-1"],
            ["--rate-fractions", "150"],
            ["--transport", "udp"],
            ["--noise-threshold", "x"],
            ["--rtt-ms", "1,1"],
        ):
            with (
                self.subTest(words=words),
                self.assertRaises(SystemExit),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                cli.parser().parse_args(["run", *words])

    def test_percent_list(self):
        self.assertEqual(argtypes.percent_list("25,50"), (25.0, 50.0))
        self.assertEqual(argtypes.percent_list("none"), ())


if __name__ == "__main__":
    unittest.main()
