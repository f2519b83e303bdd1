"""The failure tests' arithmetic (pure functions of the client's Answers,
unit-tested) and their report: per test, requests sent, answered 200 (with
the expected body), 503, failed (connection error or timeout), anything
else, the longest gap without a 200, and each test's own figures.
"""

import json
import math
import statistics


def percentile(values, fraction):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def longest_gap(times, start, end):
    """(seconds, from, to): the longest stretch of [start, end] holding none
    of `times` (the moments 200s were answered)."""
    points = [start, *sorted(t for t in times if start <= t <= end), end]
    best = (0.0, start, start)
    for before, after in zip(points, points[1:]):
        if after - before > best[0]:
            best = (after - before, before, after)
    return best


def summarize(answers, start, end):
    """The counts and latencies of one test's answers. `ok` is a 200 with
    the expected body; a 200 with another body is `wrong`."""
    ok = [a for a in answers if a.ok]
    unavailable = [a for a in answers if a.status == 503]
    gap, gap_from, gap_to = longest_gap([a.done for a in ok], start, end)

    def ms(values, fraction):
        value = percentile(values, fraction)
        return None if value is None else round(value * 1000, 2)

    latencies = [a.latency for a in ok]
    return {
        "sent": len(answers),
        "ok": len(ok),
        "unavailable": len(unavailable),
        "failed": sum(1 for a in answers if a.status == 0),
        "wrong": sum(1 for a in answers if a.status == 200 and not a.ok),
        "other": sum(1 for a in answers if a.status not in (0, 200, 503)),
        "longest_gap_s": round(gap, 3),
        "longest_gap_from_s": round(gap_from - start, 3),
        "ok_p50_ms": ms(latencies, 0.5),
        "ok_p99_ms": ms(latencies, 0.99),
        "ok_max_ms": ms(latencies, 1.0),
        "unavailable_p50_ms": ms([a.latency for a in unavailable], 0.5),
        "unavailable_max_ms": ms([a.latency for a in unavailable], 1.0),
        "errors": sorted({a.error for a in answers if a.error})[:5],
    }


def anomaly_runs(answers, start, limit=200):
    """The timeline of everything but expected 200s, compact for the results
    file: runs of consecutive answers (in due order) with one outcome, as
    [first due s, last due s, status (200: a wrong body), count, max
    latency ms, error]."""
    runs = []
    for a in sorted(answers, key=lambda a: a.intended):
        if a.ok:
            if runs and runs[-1] is not None:
                runs.append(None)  # an expected 200 ends a run
            continue
        key = (a.status, a.error.split(" ")[0])
        last = runs[-1] if runs else None
        if last is not None and (last[2], last[5]) == key:
            last[1] = round(a.intended - start, 3)
            last[3] += 1
            last[4] = max(last[4], round(a.latency * 1000, 1))
        else:
            due = round(a.intended - start, 3)
            runs.append([due, due, key[0], 1, round(a.latency * 1000, 1), key[1]])
    return [run for run in runs if run is not None][:limit]


def first_ok_after(answers, moment):
    """When the first expected 200 was answered at or after `moment`, for a
    request sent at or after it (None if none)."""
    times = [a.done for a in answers if a.ok and a.sent >= moment and a.done >= moment]
    return min(times) if times else None


def outside(answers, status, window_from, window_to):
    """How many answers of a status came outside [window_from, window_to]
    (by answer time): 503s must all fall while a part is down."""
    return sum(1 for a in answers if a.status == status and not window_from <= a.done <= window_to)


def relative(events, start):
    """Event times (monotonic) → seconds since the test's load started."""
    return {name: None if t is None else round(t - start, 3) for name, t in events.items()}


# --- the report -------------------------------------------------------------------------

COLUMNS = (
    ("test", "test"),
    ("sent", "sent"),
    ("ok", "200"),
    ("unavailable", "503"),
    ("failed", "failed"),
    ("wrong", "wrong body"),
    ("other", "other"),
    ("longest_gap_s", "longest gap without a 200 (s)"),
    ("ok_p99_ms", "p99 of 200s (ms)"),
    ("verdict", "verdict"),
)


def table(results):
    """Markdown: one row per test, then each test's figures and checks."""
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "| " + " | ".join("---" if key == "test" else "---:" for key, _ in COLUMNS) + " |",
    ]
    for result in results:
        name = result["test"] + (f" #{result['round']}" if result.get("round", 1) > 1 else "")
        row = dict(result["summary"], test=name, verdict=verdict_text(result))
        lines.append("| " + " | ".join(_cell(row.get(key)) for key, _ in COLUMNS) + " |")
    lines.append("")
    for result in results:
        figures = ", ".join(f"{key} {_cell(value)}" for key, value in result["figures"].items())
        round_text = f" #{result['round']}" if result.get("round", 1) > 1 else ""
        lines.append(f"- **{result['test']}{round_text}**: {figures}")
        for check, passed in result["checks"].items():
            lines.append(f"  - {'pass' if passed else 'FAIL'}: {check}")
        if result["summary"]["errors"]:
            lines.append(f"  - errors seen: {'; '.join(result['summary']['errors'])}")
    return "\n".join(lines)


def across_rounds(results):
    """Markdown: per test, each figure's median (min–max) over the rounds."""
    by_test = {}
    for result in results:
        by_test.setdefault(result["test"], []).append(result)
    keys = (
        "sent",
        "ok",
        "unavailable",
        "failed",
        "longest_gap_s",
        "ok_p99_ms",
        "unavailable_p50_ms",
        "unavailable_max_ms",
    )
    lines = [
        "| test | rounds | " + " | ".join(keys) + " | the test's own figures |",
        "| --- | ---: |" + " ---: |" * len(keys) + " --- |",
    ]
    for test, rounds in by_test.items():
        cells = [spread([r["summary"][key] for r in rounds]) for key in keys]
        own = []
        for key, value in rounds[0]["figures"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                own.append(f"{key} {spread([r['figures'].get(key) for r in rounds])}")
        passed = sum(all(r["checks"].values()) for r in rounds)
        row = " | ".join(cells)
        lines.append(f"| {test} | {passed}/{len(rounds)} pass | {row} | {'; '.join(own)} |")
    return "\n".join(lines)


def spread(values):
    """'median (min–max)' of the values that are there."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    middle = statistics.median(values)
    if len(values) == 1:
        return _cell(middle)
    return f"{_cell(middle)} ({_cell(min(values))}–{_cell(max(values))})"


def verdict_text(result):
    return "pass" if all(result["checks"].values()) else "FAIL"


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
