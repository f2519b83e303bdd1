"""tools.py: the small pure helpers (command quoting, durations, result
file names, cleanup order)."""

import contextlib
import io
import os
import re
import unittest

from harness import tools


class HelperTests(unittest.TestCase):
    def test_quote_command_quotes_only_what_needs_it(self):
        self.assertEqual(
            tools.quote_command(
                ["scripts/run.sh", "--only", "types,version", "--server-args", "--runtime per-core"]
            ),
            "scripts/run.sh --only types,version --server-args '--runtime per-core'",
        )

    def test_durations(self):
        self.assertEqual(tools.fmt_duration(125), "2m05s")
        self.assertEqual(tools.fmt_duration(-3), "0m00s")

    def test_result_path(self):
        path = tools.result_path("run", "0123456789abcdef", True, False, "peer one")
        name = os.path.basename(path)
        self.assertRegex(name, r"^\d{8}T\d{6}Z-0123456789-dirty-run-peer_one\.json$")
        self.assertEqual(os.path.dirname(path), os.path.join(tools.ROOT, "results"))
        self.assertTrue(
            re.search(r"-nocommit-run-quick\.json$", tools.result_path("run", "none", False, True))
        )


class CleanupTests(unittest.TestCase):
    def test_steps_run_in_reverse_once_and_past_a_failure(self):
        ran = []
        cleanup = tools.Cleanup()
        cleanup.push(lambda: ran.append("database"))

        def failing():
            ran.append("server")
            raise RuntimeError("already gone")

        cleanup.push(failing)
        removed = cleanup.push(lambda: ran.append("never"))
        cleanup.remove(removed)
        cleanup.push(lambda: ran.append("load generator"))
        with contextlib.redirect_stderr(io.StringIO()) as messages:
            cleanup.run()
            cleanup.run()
        self.assertIn("already gone", messages.getvalue())
        self.assertEqual(ran, ["load generator", "server", "database"])


if __name__ == "__main__":
    unittest.main()
