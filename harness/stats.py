"""Summaries of repeated figures: median, min, max, spread, percentiles.

Pure functions on lists of numbers; no I/O, so the unit tests cover them whole.
"""

import math
import statistics


def summary(values):
    """{median, min, max, spread_pct, n} of the figures that are not None.

    spread_pct is (max - min) / median in percent: how far apart the runs
    landed, relative to the figure reported. None when there is nothing, and
    None for the spread when the median is 0.
    """
    present = [value for value in values if value is not None]
    if not present:
        return None
    median = statistics.median(present)
    low, high = min(present), max(present)
    return {
        "median": median,
        "min": low,
        "max": high,
        "spread_pct": (100.0 * (high - low) / median) if median else None,
        "n": len(present),
    }


def percentile(sorted_values, pct):
    """The pct-th percentile of an ascending list, by the nearest-rank rule.

    Nearest rank (the smallest value with at least pct% of the values at or
    below it) is what wrk and HdrHistogram report: a value that was observed,
    never an interpolation between two.
    """
    if not sorted_values:
        return None
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {pct}")
    rank = math.ceil(pct / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or 0 divides."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
