"""allocators.py: its words, and what each allocator's run is given."""

import os
import unittest

from harness import allocators, drive
from harness.tools import ROOT, Fatal


class AllocatorsTests(unittest.TestCase):
    def test_run_sh_allocators_drops_the_flag(self):
        self.assertEqual(
            allocators.parse(["--allocators", "--quick", "--only", "types"]),
            ["--quick", "--only", "types"],
        )

    def test_what_each_run_sets_cannot_be_given(self):
        for word in ("--binary", "--no-build", "--label", "--out=x.json", "--target"):
            with self.subTest(word=word), self.assertRaises(Fatal):
                allocators.parse(["--quick", word])

    def test_help(self):
        with self.assertRaises(drive.ShowHelp):
            allocators.parse(["--quick", "-h"])

    def test_only_the_first_run_measures_the_ceilings(self):
        first = allocators.run_args_for("mimalloc", ["--quick"], "a.json", True)
        self.assertEqual(
            first,
            [
                "--quick",
                "--binary",
                os.path.join(ROOT, "target", "alloc-mimalloc", "release", "bakeoff"),
                "--label",
                "alloc-mimalloc",
                "--out",
                "a.json",
            ],
        )
        later = allocators.run_args_for("system", [], "b.json", False)
        self.assertEqual(later[-1], "--no-ceilings")
        self.assertEqual(
            [name for name, _ in allocators.ALLOCATORS], ["mimalloc", "jemalloc", "system"]
        )


if __name__ == "__main__":
    unittest.main()
