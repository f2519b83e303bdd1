"""noise.py: the busy share of a window and the gate's decisions."""

import unittest

from harness import noise

TICK_NS = 1_000_000_000 // noise.TICKS


def stat(user=0, nice=0, system=0, idle=0, iowait=0, irq=0, softirq=0, steal=0):
    return {
        "user": user,
        "nice": nice,
        "system": system,
        "idle": idle,
        "iowait": iowait,
        "irq": irq,
        "softirq": softirq,
        "steal": steal,
    }


class ProcStatTests(unittest.TestCase):
    def test_the_aggregate_line_in_ns(self):
        text = "cpu  100 2 30 4000 5 6 7 8 0 0\ncpu0 50 1 15 2000 2 3 3 4 0 0\n"
        parsed = noise.parse_proc_stat(text)
        self.assertEqual(parsed["user"], 100 * TICK_NS)
        self.assertEqual(parsed["steal"], 8 * TICK_NS)
        self.assertEqual(parsed["idle"], 4000 * TICK_NS)


class BusyTests(unittest.TestCase):
    def test_other_work_is_busy_time_minus_ours(self):
        # 2 s window: 3 s busy in all (user 2 + system 0.5 + steal 0.5), of
        # which the components used 2.6 s: 0.4 s others = 0.2 cores.
        before = stat()
        after = stat(user=2_000_000_000, system=500_000_000, steal=500_000_000, softirq=200_000_000)
        busy = noise.busy_in_window(before, after, 2_600_000_000, 2.0)
        self.assertAlmostEqual(busy.other_cores, 0.2)
        self.assertAlmostEqual(busy.ours_cores, 1.3)
        self.assertAlmostEqual(busy.interrupts_cores, 0.1)

    def test_tick_rounding_below_ours_means_nothing_else(self):
        busy = noise.busy_in_window(stat(), stat(user=990_000_000), 1_000_000_000, 1.0)
        self.assertEqual(busy.other_cores, 0.0)

    def test_a_window_has_a_length(self):
        with self.assertRaises(ValueError):
            noise.busy_in_window(stat(), stat(), 0, 0)


class GateTests(unittest.TestCase):
    def busy(self, other):
        return noise.Busy(other_cores=other, ours_cores=1.0, interrupts_cores=0.0, seconds=1.0)

    def test_threshold_is_exclusive(self):
        self.assertFalse(noise.is_noisy(self.busy(0.10), 0.10))
        self.assertTrue(noise.is_noisy(self.busy(0.11), 0.10))

    def test_keeps_the_first_quiet_attempt(self):
        attempts = [
            (self.busy(0.5), "first"),
            (self.busy(0.05), "second"),
            (self.busy(0.01), "third"),
        ]
        self.assertEqual(noise.pick_attempt(attempts, 0.10)[1], "second")

    def test_all_noisy_keeps_the_least_noisy(self):
        attempts = [
            (self.busy(0.5), "first"),
            (self.busy(0.3), "second"),
            (self.busy(0.9), "third"),
        ]
        self.assertEqual(noise.pick_attempt(attempts, 0.10)[1], "second")

    def test_no_attempt_is_an_error(self):
        with self.assertRaises(ValueError):
            noise.pick_attempt([], 0.10)


if __name__ == "__main__":
    unittest.main()
