"""allocators.py: its options, and what each allocator's run is given."""

import contextlib
import io
import os
import unittest

from harness import allocators, cli, options
from harness.tools import ROOT, Fatal


def namespace(*words):
    return cli.parser().parse_args(["allocators", *words])


class AllocatorsTests(unittest.TestCase):
    def test_run_sh_allocators_drops_the_flag(self):
        # scripts/run.sh --allocators execs allocators.sh without the flag.
        with open(os.path.join(ROOT, "scripts", "run.sh"), encoding="utf-8") as file:
            script = file.read()
        self.assertIn('if [ "${1:-}" = --allocators ]; then\n\tshift\n', script)
        settings = options.from_args(namespace("--quick", "--only", "types"), "run")
        self.assertEqual((settings.quick, settings.only), (True, "types"))

    def test_what_each_run_sets_cannot_be_given(self):
        for words in (
            ["--binary", "/bin/true"],
            ["--no-build"],
            ["--label", "x"],
            ["--out=x.json"],
            ["--target", "http://x", "--name", "n"],
        ):
            with self.subTest(words=words), self.assertRaises(Fatal):
                allocators.refuse_what_each_run_sets(namespace("--quick", *words))

    def test_help(self):
        with self.assertRaises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as out:
            namespace("--quick", "-h")
        self.assertIn("once per allocator", out.getvalue())

    def test_only_the_first_run_measures_the_ceilings(self):
        settings = options.from_args(namespace("--quick"), "run")
        first = allocators.run_settings(settings, "mimalloc", "a.json", True)
        self.assertEqual(
            first.binary, os.path.join(ROOT, "target", "alloc-mimalloc", "release", "bakeoff")
        )
        self.assertEqual((first.label, first.out, first.build), ("alloc-mimalloc", "a.json", False))
        self.assertTrue(first.ceilings and first.quick)
        later = allocators.run_settings(settings, "system", "b.json", False)
        self.assertFalse(later.ceilings)
        self.assertEqual(
            [name for name, _ in allocators.ALLOCATORS], ["mimalloc", "jemalloc", "system"]
        )


if __name__ == "__main__":
    unittest.main()
