"""How a results document is stored: NAME.json holds every figure a report
reads (summaries, per-run arrays, the fixed-rate rows), and every window's
record (the runs of each workload, with their tools' scripts and noise)
goes compressed beside it, in NAME.records.json.gz, which read_json puts
back. The committed results stay small (results/README.md: the budget)
while nothing measured is thrown away."""

import gzip
import json
import os

from harness.tools import Fatal

# The parts of a document that hold every window's record: written to
# NAME.records.json.gz beside NAME.json, put back by read_json.
RECORD_KEYS = ("runs",)


def _workload_lists(doc):
    """(key, list of workload entries) of a run's or a study's document."""
    yield "workloads", doc.get("workloads") or []
    for index, system in enumerate(doc.get("systems") or []):
        yield f"systems/{index}/workloads", system.get("workloads") or []
        yield f"systems/{index}/more", system.get("more") or []


def records_path(path):
    return (path[: -len(".json")] if path.endswith(".json") else path) + ".records.json.gz"


def split_records(doc):
    """(the document without the windows' records, {place: records}): the
    JSON keeps every figure a report reads; the records go beside it."""
    slim = json.loads(json.dumps(doc))
    moved = {}
    for key, entries in _workload_lists(slim):
        for index, entry in enumerate(entries):
            for name in RECORD_KEYS:
                if name in entry:
                    moved[f"{key}/{index}/{name}"] = entry.pop(name)
            windows = (entry.get("noise") or {}).pop("windows", None)
            if windows is not None:
                moved[f"{key}/{index}/noise/windows"] = windows
    return slim, moved


def rounded(value, digits=9):
    """Floats to `digits` significant digits, inside any structure: far more
    than any figure holds (a window's req/s moves in its third digit), and
    enough that a report printing a rounded figure prints the same digits
    (6 were not: 59276.53 became 59276.5, printed 59276)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


def write_json(doc, path):
    """NAME.json (every figure, compact, to 9 significant digits) and
    NAME.records.json.gz (every window's record, as measured)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    slim, moved = split_records(doc)
    if moved:
        slim["records"] = os.path.basename(records_path(path))
        tmp = records_path(path) + ".tmp"
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as file:
            json.dump({"records": moved}, file)
        os.replace(tmp, records_path(path))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(rounded(slim), file, separators=(",", ":"), ensure_ascii=False)
        file.write("\n")
    os.replace(tmp, path)


def _put_back(doc, moved):
    for place, value in moved.items():
        parts = place.split("/")
        node = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[parts[-1]] = value


def read_json(path):
    """A results document, with its records put back when they are beside it."""
    try:
        with open(path, encoding="utf-8") as file:
            doc = json.load(file)
    except (OSError, ValueError) as error:
        raise Fatal(f"cannot read the results file {path}: {error}") from error
    if doc.get("records"):
        sidecar = os.path.join(os.path.dirname(path), doc["records"])
        if os.path.exists(sidecar):
            with gzip.open(sidecar, "rt", encoding="utf-8") as file:
                _put_back(doc, json.load(file)["records"])
    return doc
