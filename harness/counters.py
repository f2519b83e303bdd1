"""A system's own counters around a window: the series of its Prometheus
metrics page whose names start with one of PREFIXES (the reference's
per-runtime counters: connections accepted, requests, queries, writes and
reads on its PostgreSQL sockets, wake-ups), read before and after, their
change recorded beside the window's figures. That is what tells a good run
from a bad one beyond req/s and CPU (docs/PERFORMANCE.md, issue #22)."""

import re

from harness.tools import http_get

PREFIXES = ("bakeoff_runtime_",)
# `name{labels} value` or `name value`; comments and blank lines skipped.
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse(text, prefixes=PREFIXES):
    """{series: value} of the samples whose name starts with one of prefixes."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if not match or not match.group(1).startswith(prefixes):
            continue
        try:
            out[match.group(1)] = float(match.group(2))
        except ValueError:
            continue
    return out


def scrape(urls):
    """{instance index: {series: value}} of each metrics page that answers."""
    pages = {}
    for index, url in enumerate(urls):
        status, body = http_get(url, timeout=2)
        if status == 200:
            pages[index] = parse(body.decode("utf-8", "replace"))
    return pages


def delta(before, after):
    """{series: change} summed over the instances read both times: a
    counter's (`_total`) increase, a gauge's value at the end."""
    out = {}
    for index, now in after.items():
        then = before.get(index)
        if then is None:
            continue
        for series, value in now.items():
            name = series.split("{", 1)[0]
            change = value - then.get(series, 0.0) if name.endswith("_total") else value
            out[series] = out.get(series, 0.0) + change
    return out


def family(change, name):
    """{runtime label: value} of one family in a window's changes."""
    out = {}
    for series, value in change.items():
        if series.split("{", 1)[0] == name:
            label = series.partition('runtime="')[2].partition('"')[0]
            out[label] = out.get(label, 0.0) + value
    return out


def per_request(change, requests):
    """The figures that tell a good window from a bad one (issue #22):
    statements per socket write to PostgreSQL, driver wake-ups and reads per
    request, and how the requests and connections split over the runtimes.
    None without counters."""
    if not change or not requests:
        return None

    def total(name):
        return sum(family(change, name).values())

    writes = total("bakeoff_runtime_db_writes_total")
    served = family(change, "bakeoff_runtime_requests_total")
    accepted = family(change, "bakeoff_runtime_connections_accepted_total")
    return {
        "queries_per_write": total("bakeoff_runtime_db_queries_total") / writes if writes else None,
        "driver_polls_per_request": total("bakeoff_runtime_db_driver_polls_total") / requests,
        "db_reads_per_request": total("bakeoff_runtime_db_reads_total") / requests,
        "requests_by_runtime": [served[key] for key in sorted(served)],
        "connections_by_runtime": [accepted[key] for key in sorted(accepted)],
    }
