"""drive.py: a subcommand's words reach it untouched, and the requests/s
table of several results files (schema 2, and schema 1's summary)."""

import os
import unittest

from harness import cli, drive


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


if __name__ == "__main__":
    unittest.main()
