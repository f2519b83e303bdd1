"""counters.py: the runtime series of a metrics page, and their change
over a window summed over instances (values computed here by hand)."""

import unittest

from harness import counters

PAGE = """# HELP bakeoff_runtime_requests_total Requests served, per runtime.
# TYPE bakeoff_runtime_requests_total counter
bakeoff_runtime_requests_total{runtime="0"} 100
bakeoff_runtime_requests_total{runtime="1"} 50
bakeoff_runtime_connections_open{runtime="0"} 7
bakeoff_requests_total{route="/types"} 150
"""


class CountersTests(unittest.TestCase):
    def test_only_the_runtime_series(self):
        self.assertEqual(
            counters.parse(PAGE),
            {
                'bakeoff_runtime_requests_total{runtime="0"}': 100.0,
                'bakeoff_runtime_requests_total{runtime="1"}': 50.0,
                'bakeoff_runtime_connections_open{runtime="0"}': 7.0,
            },
        )

    def test_counters_change_gauges_end(self):
        before = {0: counters.parse(PAGE), 1: counters.parse(PAGE)}
        later = PAGE.replace('"0"} 100', '"0"} 130').replace('"0"} 7', '"0"} 3')
        after = {0: counters.parse(later), 1: counters.parse(PAGE)}
        change = counters.delta(before, after)
        # Instance 0: +30 on runtime 0; instance 1: no change; summed.
        self.assertEqual(change['bakeoff_runtime_requests_total{runtime="0"}'], 30.0)
        self.assertEqual(change['bakeoff_runtime_requests_total{runtime="1"}'], 0.0)
        # The gauge: its values at the end, summed: 3 + 7.
        self.assertEqual(change['bakeoff_runtime_connections_open{runtime="0"}'], 10.0)
        # An instance not read before the window adds nothing.
        self.assertEqual(counters.delta({}, after), {})


if __name__ == "__main__":
    unittest.main()
