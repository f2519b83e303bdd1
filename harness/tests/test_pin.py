"""pin.py: the layout table, the words each layout gives run, and the
checks of pin's own options (as scripts/pin.sh made them)."""

import unittest

from harness import drive, pin
from harness.tools import Fatal


class LayoutTests(unittest.TestCase):
    def test_the_table_as_the_usage_prints_it(self):
        self.assertEqual(
            pin.layouts_table().splitlines(),
            [
                "  layout         runtime   server  db  wrk   (CPUs; - = not pinned)",
                "  multi          multi     -       -   -",
                "  per-core       per-core  -       -   -",
                "  multi-s0       multi     0       1   1",
                "  per-core-s0    per-core  0       1   1",
                "  multi-sdb0     multi     0       0   1",
                "  per-core-sdb0  per-core  0       0   1",
            ],
        )

    def test_choosing_layouts(self):
        names = [layout.name for layout in pin.choose_layouts("")]
        self.assertEqual(names, ["multi", "per-core", "multi-s0", "per-core-s0"])
        self.assertEqual(len(pin.choose_layouts("all")), 6)
        self.assertEqual(
            [layout.name for layout in pin.choose_layouts("per-core-sdb0,multi")],
            ["per-core-sdb0", "multi"],
        )
        for text in ("multi,nope", ","):
            with self.subTest(text=text), self.assertRaises(Fatal):
                pin.choose_layouts(text)

    def test_an_unpinned_layout_sets_only_the_runtime(self):
        self.assertEqual(
            pin.layout_args(pin.BY_NAME["per-core"], ["--quick"], "", "/r/x.json"),
            [
                "--quick",
                "--no-build",
                "--label",
                "pin-per-core",
                "--out",
                "/r/x.json",
                "--server-args",
                "--runtime per-core",
            ],
        )

    def test_a_pinned_layout_after_the_users_server_args(self):
        args = pin.layout_args(pin.BY_NAME["multi-sdb0"], [], "--pool-size 8", "o.json")
        self.assertEqual(
            args[args.index("--server-args") :],
            [
                "--server-args",
                "--pool-size 8 --runtime multi",
                "--pin-server",
                "0",
                "--pin-db",
                "0",
                "--pin-wrk",
                "1",
            ],
        )


class ParseTests(unittest.TestCase):
    def test_single_form(self):
        options = pin.parse(
            ["--server-cpus", "0", "--quick", "--db-cpus=1", "--server-args", "--runtime x"]
        )
        self.assertFalse(options.matrix)
        self.assertEqual(options.pin_args, ["--pin-server", "0", "--pin-db", "1"])
        self.assertEqual(options.run_args, ["--quick"])
        self.assertEqual(options.server_args, "--runtime x")
        # The single form passes run's own pin options and --out on.
        options = pin.parse(["--pin-wrk", "1", "--out", "f.json", "--only", "types"])
        self.assertEqual(options.run_args, ["--pin-wrk", "1", "--out", "f.json", "--only", "types"])

    def test_matrix_form(self):
        options = pin.parse(["--quick", "--matrix", "--layouts", "all", "--only", "types"])
        self.assertTrue(options.matrix)
        self.assertEqual(options.layouts, "all")
        self.assertEqual(options.run_args, ["--quick", "--only", "types"])

    def test_rejections(self):
        for words in (
            ["--layouts", "multi"],
            ["--matrix", "--server-cpus", "0"],
            ["--matrix", "--out", "x.json"],
            ["--label", "x", "--matrix"],
            ["--matrix", "--pin-db=1"],
            ["--matrix", "--target=http://x"],
            ["--server-cpus"],
            ["--layouts"],
        ):
            with self.subTest(words=words), self.assertRaises(Fatal):
                pin.parse(words)

    def test_help(self):
        with self.assertRaises(drive.ShowHelp):
            pin.parse(["--matrix", "--help"])
        self.assertIn(pin.layouts_table(), pin.usage())


if __name__ == "__main__":
    unittest.main()
