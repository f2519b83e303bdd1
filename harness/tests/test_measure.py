"""measure.py and noise.gated: one measured window under the noise gate,
with the machine's counters replaced by scripted ones: a noisy attempt is
measured again, and the CPU of the attempt kept is what the record gets."""

import contextlib
import io
import types
import unittest
from unittest import mock

from harness import measure, noise

NS = 1_000_000_000


class ScriptedAccounting:
    """usage_ns() returns the next of a list of readings."""

    method = "cgroup-v1"
    active = frozenset({"server", "database", "load_generator"})

    def __init__(self, readings):
        self.readings = list(readings)

    def usage_ns(self):
        return self.readings.pop(0)


def proc_stat(busy_ns):
    fields = dict.fromkeys(
        ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), 0
    )
    fields["user"] = busy_ns
    return fields


class WindowTests(unittest.TestCase):
    def run_windows(self, stats, usages, seconds, max_retries):
        settings = types.SimpleNamespace(max_retries=max_retries, noise_threshold=0.10)
        run = measure.Bench(settings, ScriptedAccounting(usages), "/tmp", measure.Progress())
        results_of_attempts = iter(["first", "second", "third"])
        clock = iter(seconds)
        with (
            mock.patch.object(noise, "read_proc_stat", side_effect=stats),
            mock.patch.object(noise.time, "monotonic", side_effect=lambda: next(clock)),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            outcome = run.window("types", lambda: next(results_of_attempts))
        return run, outcome

    def test_a_noisy_attempt_is_measured_again_and_the_quiet_one_kept(self):
        # Attempt 1: 1 s, the machine busy 1.5 s, ours 1.0 s: 0.5 cores of
        # other work. Attempt 2: 1 s, busy 1.05 s, ours 1.0 s: 0.05 cores.
        zero = {"server": 0, "nginx": 0, "database": 0, "load_generator": 0}
        after_first = {
            "server": NS // 2,
            "nginx": 0,
            "database": NS // 4,
            "load_generator": NS // 4,
        }
        after_second = {"server": NS, "nginx": 7, "database": NS // 2, "load_generator": NS // 2}
        stats = [
            proc_stat(0),
            proc_stat(3 * NS // 2),
            proc_stat(3 * NS // 2),
            proc_stat(3 * NS // 2 + 21 * NS // 20),
        ]
        run, (result, used, kept) = self.run_windows(
            stats, [zero, after_first, after_first, after_second], [0.0, 1.0, 5.0, 6.0], 2
        )
        self.assertEqual(result, "second")
        # Only the counted components, and the second attempt's deltas.
        self.assertEqual(used, {"server": NS // 2, "database": NS // 4, "load_generator": NS // 4})
        self.assertEqual(kept.attempts, 2)
        self.assertFalse(kept.noisy)
        self.assertAlmostEqual(kept.other_cores, 0.05)
        # The retry's second counts both in the plan and as done.
        self.assertEqual((run.progress.planned, run.progress.done), (1.0, 1.0))

    def test_without_retries_a_noisy_window_is_kept_and_marked(self):
        zero = {"server": 0, "nginx": 0, "database": 0, "load_generator": 0}
        after = {"server": NS // 10, "nginx": 0, "database": 0, "load_generator": 0}
        _, (result, _, kept) = self.run_windows(
            [proc_stat(0), proc_stat(NS)], [zero, after], [0.0, 2.0], 0
        )
        self.assertEqual(result, "first")
        self.assertTrue(kept.noisy)
        self.assertAlmostEqual(kept.other_cores, 0.45)  # (1 s - 0.1 s) over 2 s
        self.assertEqual(kept.attempts, 1)


if __name__ == "__main__":
    unittest.main()
