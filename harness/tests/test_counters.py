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


class PerRequestTests(unittest.TestCase):
    def test_the_figures_of_a_window(self):
        change = {
            'bakeoff_runtime_db_queries_total{runtime="0"}': 600.0,
            'bakeoff_runtime_db_queries_total{runtime="1"}': 400.0,
            'bakeoff_runtime_db_writes_total{runtime="0"}': 150.0,
            'bakeoff_runtime_db_writes_total{runtime="1"}': 100.0,
            'bakeoff_runtime_db_driver_polls_total{runtime="0"}': 300.0,
            'bakeoff_runtime_requests_total{runtime="0"}': 600.0,
            'bakeoff_runtime_requests_total{runtime="1"}': 400.0,
            'bakeoff_runtime_connections_accepted_total{runtime="1"}': 20.0,
            'bakeoff_runtime_connections_accepted_total{runtime="0"}': 44.0,
        }
        figures = counters.per_request(change, 1000)
        self.assertEqual(figures["queries_per_write"], 1000 / 250)
        self.assertEqual(figures["driver_polls_per_request"], 0.3)
        self.assertEqual(figures["db_reads_per_request"], 0.0)
        self.assertEqual(figures["requests_by_runtime"], [600.0, 400.0])
        self.assertEqual(figures["connections_by_runtime"], [44.0, 20.0])
        self.assertIsNone(counters.per_request({}, 1000))
