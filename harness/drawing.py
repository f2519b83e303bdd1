"""The charts of a results file, drawn beside it: a run's (charts.py) or a
study's (study_charts.py), chosen by the document's kind. matplotlib is the
harness's one dependency outside the standard library, and an optional one:
without it there is a note instead of charts."""

import os

from harness.tools import log


def draw(doc, json_path):
    try:
        if doc.get("kind") == "compare":
            from harness import study_charts as charts
        else:
            from harness import charts
    except ImportError:
        log("no charts: matplotlib is not installed (pip install matplotlib, or use peers/.venv)")
        return
    prefix = json_path[: -len(".json")] if json_path.endswith(".json") else json_path
    for chart in charts.CHARTS:
        path = chart(doc, f"{prefix}-{chart.__name__[: -len('_chart')]}.png")
        if path:
            log(f"chart: {os.path.relpath(path)}")
