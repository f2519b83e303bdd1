"""pin.py: the layout table, the settings each layout gives its run, and
the checks of pin's own options (as scripts/pin.sh made them)."""

import contextlib
import io
import unittest

from harness import cli, options, pin
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
        settings = options.from_args(cli.parser().parse_args(["pin", "--quick"]), "run")
        one = pin.layout_settings(settings, pin.BY_NAME["per-core"], "/r/x.json")
        self.assertEqual(one.server_args, ("--runtime", "per-core"))
        self.assertEqual((one.pin_server, one.pin_db, one.pin_wrk), ("", "", ""))
        self.assertEqual(
            (one.label, one.out, one.build, one.quick), ("pin-per-core", "/r/x.json", False, True)
        )

    def test_a_pinned_layout_after_the_users_server_args(self):
        words = ["pin", "--server-args", "--pool-size 8"]
        settings = options.from_args(cli.parser().parse_args(words), "run")
        one = pin.layout_settings(settings, pin.BY_NAME["multi-sdb0"], "o.json")
        self.assertEqual(one.server_args, ("--pool-size", "8", "--runtime", "multi"))
        self.assertEqual((one.pin_server, one.pin_db, one.pin_wrk), ("0", "0", "1"))


def pin_words(*words):
    """pin's parsed options and settings, or the Fatal / usage error raised."""
    namespace = cli.parser().parse_args(["pin", *words])
    settings = options.from_args(namespace, "run")
    if namespace.matrix:
        pin.check_matrix(settings)
        pin.choose_layouts(namespace.layouts)
    elif namespace.layouts:
        raise Fatal("--layouts goes with --matrix")
    return namespace, settings


class ParseTests(unittest.TestCase):
    def test_single_form(self):
        namespace, settings = pin_words(
            "--pin-server", "0", "--quick", "--pin-db=1", "--server-args", "--runtime x"
        )
        self.assertFalse(namespace.matrix)
        self.assertEqual((settings.pin_server, settings.pin_db), ("0", "1"))
        self.assertTrue(settings.quick)
        self.assertEqual(settings.server_args, ("--runtime", "x"))
        # The single form passes run's own pin options and --out on.
        _, settings = pin_words("--pin-wrk", "1", "--out", "f.json", "--only", "types")
        self.assertEqual((settings.pin_wrk, settings.out, settings.only), ("1", "f.json", "types"))

    def test_matrix_form(self):
        namespace, settings = pin_words(
            "--quick", "--matrix", "--layouts", "all", "--only", "types"
        )
        self.assertTrue(namespace.matrix)
        self.assertEqual(namespace.layouts, "all")
        self.assertEqual((settings.quick, settings.only), (True, "types"))

    def test_rejections(self):
        for words in (
            ["--layouts", "multi"],
            ["--matrix", "--pin-server", "0"],
            ["--matrix", "--out", "x.json"],
            ["--label", "x", "--matrix"],
            ["--matrix", "--pin-db=1"],
            ["--matrix", "--target=http://x", "--name", "n"],
            ["--pin-server"],
            ["--layouts"],
        ):
            with (
                self.subTest(words=words),
                self.assertRaises((Fatal, SystemExit)),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                pin_words(*words)

    def test_help(self):
        with (
            self.assertRaises(SystemExit),
            contextlib.redirect_stdout(io.StringIO()) as out,
        ):
            cli.parser().parse_args(["pin", "--matrix", "--help"])
        self.assertIn("multi-sdb0", out.getvalue())
        self.assertIn(pin.layouts_table(), pin.DESCRIPTION)


if __name__ == "__main__":
    unittest.main()
