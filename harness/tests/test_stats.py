"""stats.py: median, spread and nearest-rank percentiles, against values
worked out by hand."""

import unittest

from harness import stats


class SummaryTests(unittest.TestCase):
    def test_odd_count_takes_the_middle_value_and_the_spread_relative_to_it(self):
        figures = stats.summary([120.0, 100.0, 80.0])
        self.assertEqual(figures["median"], 100.0)
        self.assertEqual(figures["min"], 80.0)
        self.assertEqual(figures["max"], 120.0)
        # (120 - 80) / 100 = 40%.
        self.assertAlmostEqual(figures["spread_pct"], 40.0)
        self.assertEqual(figures["n"], 3)

    def test_even_count_averages_the_two_middle_values(self):
        figures = stats.summary([10, 30, 20, 40])
        self.assertEqual(figures["median"], 25)
        self.assertAlmostEqual(figures["spread_pct"], 120.0)  # (40 - 10) / 25

    def test_missing_figures_are_left_out(self):
        figures = stats.summary([None, 5.0, None])
        self.assertEqual((figures["median"], figures["n"], figures["spread_pct"]), (5.0, 1, 0.0))

    def test_nothing_measured_gives_none(self):
        self.assertIsNone(stats.summary([]))
        self.assertIsNone(stats.summary([None]))

    def test_zero_median_has_no_spread(self):
        self.assertIsNone(stats.summary([0, 0, 0])["spread_pct"])


class PercentileTests(unittest.TestCase):
    def test_nearest_rank_on_one_to_a_hundred(self):
        values = list(range(1, 101))
        self.assertEqual(stats.percentile(values, 50), 50)
        self.assertEqual(stats.percentile(values, 99), 99)
        self.assertEqual(stats.percentile(values, 99.9), 100)
        self.assertEqual(stats.percentile(values, 100), 100)

    def test_a_percentile_is_always_an_observed_value(self):
        # Four values: p50 is the 2nd (rank ceil(2.0) = 2), p90 the 4th.
        values = [10, 20, 30, 40]
        self.assertEqual(stats.percentile(values, 50), 20)
        self.assertEqual(stats.percentile(values, 90), 40)
        self.assertEqual(stats.percentile(values, 1), 10)

    def test_empty_and_out_of_range(self):
        self.assertIsNone(stats.percentile([], 50))
        with self.assertRaises(ValueError):
            stats.percentile([1], 0)
        with self.assertRaises(ValueError):
            stats.percentile([1], 101)


class RatioTests(unittest.TestCase):
    def test_ratio_and_its_missing_cases(self):
        self.assertAlmostEqual(stats.ratio(3.0, 4.0), 0.75)
        self.assertIsNone(stats.ratio(None, 4.0))
        self.assertIsNone(stats.ratio(3.0, 0))
        self.assertIsNone(stats.ratio(3.0, None))


if __name__ == "__main__":
    unittest.main()
