"""flamegraph.py: its options (as scripts/flamegraph.sh checked them), the
leaves file and the title."""

import contextlib
import io
import os
import unittest

from harness import cli, flamegraph, options
from harness.tools import ROOT, Fatal


def profile(*words):
    namespace = cli.parser().parse_args(["flamegraph", *words])
    settings = options.from_args(namespace, "flamegraph")
    return flamegraph.FlameOptions(
        settings, namespace.workload, namespace.frequency, namespace.call_graph
    )


class ParseTests(unittest.TestCase):
    def test_defaults(self):
        one = profile("types")
        settings = one.settings
        self.assertEqual(
            (settings.duration, settings.warmup, settings.connections, settings.threads),
            (10, 2, 64, 2),
        )
        self.assertEqual((settings.contacts, one.frequency, one.call_graph), (10000, 999, "fp"))
        self.assertEqual(one.out, os.path.join(ROOT, "flamegraphs", "types.svg"))

    def test_values(self):
        one = profile(
            "--duration", "3", "--warmup=0", "--call-graph", "dwarf", "fib25", "--out", "x.svg"
        )
        self.assertEqual((one.settings.duration, one.settings.warmup), (3, 0))
        self.assertEqual((one.workload, one.call_graph, one.out), ("fib25", "dwarf", "x.svg"))
        one = profile("--server-args", "--runtime per-core", "version")
        self.assertEqual(one.settings.server_args, ("--runtime", "per-core"))

    def test_rejections(self):
        for words in (
            [],
            ["types", "version"],
            ["--duration", "0", "types"],
            ["--warmup", "-1", "types"],
            ["--call-graph", "lbr", "types"],
            ["--threads", "8", "--connections", "4", "types"],
            ["--bogus", "types"],
            ["types", "--duration"],
        ):
            with (
                self.subTest(words=words),
                self.assertRaises((Fatal, SystemExit)),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                profile(*words)
        # An unknown workload is refused before anything is built.
        namespace = cli.parser().parse_args(["flamegraph", "nope"])
        with self.assertRaises(Fatal):
            flamegraph.cmd_flamegraph(namespace, [])


class RenderTests(unittest.TestCase):
    def test_leaves_are_self_time_heaviest_first(self):
        folded = [
            "bakeoff;main;serve;epoll_wait 60\n",
            "bakeoff;main;serve;handle;send 30\n",
            "bakeoff;other;send 10\n",
            "bakeoff;main;parse 0\n",
            "not a folded line\n",
        ]
        self.assertEqual(
            flamegraph.heaviest_leaves(folded),
            [" 60.00%  epoll_wait", " 40.00%  send", "  0.00%  parse"],
        )
        self.assertEqual(flamegraph.heaviest_leaves([]), [])

    def test_ties_sort_as_sort_rn_did(self):
        folded = ["a;x 1\n", "a;y 1\n", "a;w 2\n"]
        self.assertEqual(flamegraph.heaviest_leaves(folded, kept=2), [" 50.00%  w", " 25.00%  y"])

    def test_leaves_path_and_title(self):
        self.assertEqual(
            flamegraph.leaves_path("flamegraphs/types.svg"), "flamegraphs/types.leaves.txt"
        )
        self.assertEqual(flamegraph.leaves_path("out.svgz"), "out.svgz.leaves.txt")
        self.assertEqual(
            flamegraph.title("types", "0123456789abcdef", True, 64, 1234),
            "bakeoff types: commit 0123456789 (dirty), 64 connections, 1234 req/s",
        )


if __name__ == "__main__":
    unittest.main()
