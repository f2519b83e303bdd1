"""The types of the command line's values: each turns one word into a
value or raises argparse's error with a sentence that says what was wrong.
Pure functions, shared by every parser of the harness."""

import argparse
import re


def _fail(message):
    raise argparse.ArgumentTypeError(message)


def positive_int(text):
    if not re.fullmatch(r"[1-9][0-9]*", text):
        _fail(f"must be a positive integer, not '{text}'")
    return int(text)


def whole_number(text):
    if not re.fullmatch(r"[0-9]+", text):
        _fail(f"must be a whole number, not '{text}'")
    return int(text)


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0:
        _fail(f"must be a number >= 0, not '{text}'")
    return value


def percent_list(text):
    """'25,50,75,90' → (25.0, 50.0, 75.0, 90.0); '' or 'none' → ()."""
    if text in ("", "none"):
        return ()
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = 0
        if not 0 < value <= 100:
            _fail(f"each fraction is a percent in (0, 100], not '{part}'")
        values.append(value)
    return tuple(values)


def level_list(text):
    """'16,256' → (16, 256); '' or 'none' → ()."""
    if text in ("", "none"):
        return ()
    return tuple(positive_int(part) for part in text.split(","))


def rtt_list(text):
    """'0,0.5,2' → (0.0, 0.5, 2.0): round trips in ms, each at most 100."""
    values = tuple(non_negative_float(part) for part in text.split(","))
    if any(value > 100 for value in values) or len(set(values)) != len(values):
        _fail(f"round trips are distinct values in ms, at most 100, not '{text}'")
    return values
