"""drive.py: a subcommand's words reach it untouched, and the requests/s
table of several results files (schema 2, and schema 1's summary)."""

import os
import signal
import unittest
from unittest import mock

from harness import cli, drive
from harness.tools import Interrupted


def doc(label, name="bakeoff", **rps):
    return {
        "schema_version": 2,
        "label": label,
        "name": name,
        "workloads": [{"name": workload, "median": value} for workload, value in rps.items()],
    }


class RawParserTests(unittest.TestCase):
    def test_words_pass_untouched_even_help_and_double_dash(self):
        for command in ("pin", "allocators", "flamegraph", "starts-plans"):
            words = ["--matrix", "--only", "types", "-h", "--", "--server-args", "--runtime x"]
            with self.subTest(command=command):
                parsed = cli.parser().parse_args([command, *words])
                self.assertEqual(parsed.words, words)

    def test_no_words(self):
        self.assertEqual(cli.parser().parse_args(["pin"]).words, [])


class RpsTableTests(unittest.TestCase):
    def test_columns_in_file_order_rows_in_first_seen_order(self):
        paths = [os.path.join(os.getcwd(), "a.json"), os.path.join(os.getcwd(), "b.json")]
        table = drive.rps_table(
            [doc("pin-multi", types=1234.4, version=50000.6), doc("pin-x", fib25=10.0, types=999)],
            paths,
            ["multi", "per-core"],
        )
        self.assertEqual(
            table.splitlines(),
            [
                "| workload | multi | per-core |",
                "| --- | ---: | ---: |",
                "| types | 1234 | 999 |",
                "| version | 50001 | - |",
                "| fib25 | - | 10 |",
                "",
                "requests/s (median over each file's runs); files: a.json, b.json",
            ],
        )

    def test_labels_default_to_the_documents_then_file_names(self):
        table = drive.rps_table(
            [doc("quick", types=1), doc("", name="peer", types=2), {"workloads": []}],
            ["/r/one.json", "/r/two.json", "/r/three.json"],
        )
        self.assertEqual(table.splitlines()[0], "| workload | quick | peer | three.json |")

    def test_schema_one_summary(self):
        old = {"workloads": [{"name": "types", "summary": {"rps": {"median": 42.0}}}]}
        none = {"workloads": [{"name": "types", "summary": {"rps": None}}]}
        table = drive.rps_table([old, none], ["a.json", "b.json"], ["old", "none"])
        self.assertIn("| types | 42 | - |", table.splitlines())


class ChildEnvTests(unittest.TestCase):
    def test_the_child_is_run_sh_and_finds_the_package(self):
        env = drive.child_env({"BAKEOFF_GIT_DIRTY": "true"})
        self.assertEqual(env["HARNESS_PROG"], "run.sh")
        self.assertEqual(env["PYTHONPATH"].split(os.pathsep)[0], drive.ROOT)
        self.assertEqual(env["BAKEOFF_GIT_DIRTY"], "true")


class FakeChild:
    """A child run whose first wait is cut short by a signal to us."""

    def __init__(self, returncode, exits_in_grace=False):
        self.returncode = returncode
        self.exits_in_grace = exits_in_grace
        self.signals = []
        self.waits = 0

    def wait(self, timeout=None):
        self.waits += 1
        if self.waits == 1 and self.returncode is None:
            raise Interrupted(signal.SIGINT)
        if timeout is not None and not self.signals and not self.exits_in_grace:
            raise drive.subprocess.TimeoutExpired("run", timeout)
        return self.returncode if self.returncode is not None else -signal.SIGINT

    def send_signal(self, sig):
        self.signals.append(sig)


class RunHarnessTests(unittest.TestCase):
    def setUp(self):
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.addCleanup(lambda: [signal.signal(sig, h) for sig, h in handlers.items()])

    def run_with(self, child, **kwargs):
        with mock.patch.object(drive.subprocess, "Popen", return_value=child) as popen:
            try:
                return drive.run_harness(["--quick"], **kwargs)
            finally:
                self.argv, self.kwargs = popen.call_args

    def test_exit_statuses_as_a_shell_reports_them(self):
        self.assertEqual(self.run_with(FakeChild(0)), 0)
        self.assertEqual(self.run_with(FakeChild(1), to_stderr=True), 1)
        self.assertEqual(self.kwargs["stdout"], 2)
        self.assertEqual(self.argv[0][1:], ["-m", "harness", "run", "--quick"])
        self.assertEqual(self.run_with(FakeChild(-signal.SIGKILL)), 128 + signal.SIGKILL)

    def test_a_signal_to_us_stops_the_child_and_waits_for_it(self):
        child = FakeChild(None)
        with self.assertRaises(Interrupted):
            self.run_with(child)
        self.assertEqual(child.signals, [signal.SIGINT])
        self.assertEqual(child.waits, 3)  # cut short, the grace, after the signal

    def test_a_child_that_got_the_terminals_ctrl_c_is_not_signalled_again(self):
        child = FakeChild(None, exits_in_grace=True)
        with self.assertRaises(Interrupted):
            self.run_with(child)
        self.assertEqual(child.signals, [])


if __name__ == "__main__":
    unittest.main()
