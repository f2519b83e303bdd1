"""Do separate invocations of run.sh agree? `python3 -m harness agree
A.json B.json C.json ...` puts their medians side by side, figure by figure:
the server's CPU µs per request at the common fixed rate and at each
fraction of capacity (the figure the reference is tuned on; bound ±5%), and requests/s
and every ratio to a ceiling at saturation (±10%). A figure agrees when every
invocation's median is within the bound of the middle one.

Below that, every run of every file (`runs`): the server's CPU µs per
request at saturation per run (bound ±10% of the median of all runs, the
test of issue #22), and each run's ratio to the workload's ceiling measured
in that same run, with how many runs reached it; then two yardsticks from
the same runs: the server's CPU per request divided by the load
generator's, and the ceiling's own CPU per request (nginx's, or
PostgreSQL's under pgbench), whose spread shows how far the host alone
moves a server's cost."""

import statistics
from typing import NamedTuple

from harness.report import fmt_cpu

# (figure, bound in percent)
BOUNDS = {"cpu": 5.0, "rps": 10.0, "ratio": 10.0}
# Every run's server CPU µs per request at saturation, against the median of all.
RUN_CPU_BOUND = 10.0


def deviation_pct(values):
    """The largest distance of a value from the median of the values, in
    percent of that median; None without two values or with a zero median."""
    values = [value for value in values if value is not None]
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    if not middle:
        return None
    return max(abs(value - middle) for value in values) / middle * 100.0


def figures_of(doc):
    """{(workload, figure): value} of one results file: the medians it
    reports, nothing recomputed."""
    out = {}
    for workload in doc["workloads"]:
        name = workload["name"]
        out[(name, "req/s", "rps")] = workload["median"]
        if workload.get("ratio_to_ceiling") is not None:
            out[(name, f"÷ {workload['ceiling']}", "ratio")] = workload["ratio_to_ceiling"]
        if workload.get("ratio_to_pipeline_ceiling") is not None:
            out[(name, "÷ pipelined DB", "ratio")] = workload["ratio_to_pipeline_ceiling"]
        for row in workload.get("fixed_rate", []):
            # The common rate is the same offered load in every file; a
            # fraction is the same share of each file's own capacity.
            where = (
                f"{row['offered_rps']:g}/s"
                if row["label"] == "common"
                else f"{row['label']} of capacity"
            )
            out[(name, f"server µs/req at {where}", "cpu")] = row["cpu_us_per_request"]["server"]
    return out


def compare(docs):
    """Rows (workload, figure, kind, [values], deviation %, bound %, agrees)
    for every figure present in all the files."""
    each = [figures_of(doc) for doc in docs]
    keys = [key for key in each[0] if all(key in figures for figures in each[1:])]
    rows = []
    for key in keys:
        values = [figures[key] for figures in each]
        deviation = deviation_pct(values)
        bound = BOUNDS[key[2]]
        rows.append(
            (
                key[0],
                key[1],
                key[2],
                values,
                deviation,
                bound,
                deviation is not None and deviation <= bound,
            )
        )
    return rows


def fmt_value(kind, value):
    if value is None:
        return "-"
    if kind == "cpu":
        return fmt_cpu(value)
    if kind == "ratio":
        return f"{value:.2f}"
    return f"{value:.0f}"


def markdown(rows, names):
    head = ["workload", "figure", *names, "largest deviation from the middle", "bound", "agrees"]
    lines = [
        "| " + " | ".join(head) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in head[2:-1]) + " | --- |",
    ]
    for workload, figure, kind, values, deviation, bound, agrees in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    workload,
                    figure,
                    *(fmt_value(kind, value) for value in values),
                    "-" if deviation is None else f"{deviation:.1f}%",
                    f"±{bound:g}%",
                    "yes" if agrees else "**no**",
                ]
            )
            + " |"
        )
    agreeing = sum(1 for row in rows if row[6])
    lines.append("")
    lines.append(f"{agreeing} of {len(rows)} figures agree.")
    return "\n".join(lines)


class RunRow(NamedTuple):
    """One workload over every run of every file (see `runs`)."""

    name: str
    # The server's CPU µs per request at saturation, one per run.
    cpu: list
    # The largest distance of one of them from their median, in percent.
    deviation: float | None
    # Whether that distance is within RUN_CPU_BOUND.
    agrees: bool
    # Each run's throughput divided by its ceiling's in that same run.
    ratios: list
    # The ceiling's name ("pgbench", "nginx"), or "".
    ceiling: str
    # The server's CPU per request divided by the load generator's, per run.
    relative: list
    relative_deviation: float | None
    # The ceiling's own CPU µs per request in each run (nginx's, or
    # PostgreSQL's under pgbench): a server not ours, on the same host at
    # the same moments, so its spread is the host's floor for the server's.
    ceiling_cpu: list
    ceiling_cpu_deviation: float | None


# Whose CPU is the ceiling's own, by the ceiling's target: nginx serves the
# same bytes itself; under pgbench the work is PostgreSQL's.
CEILING_OWN_CPU = {"nginx": "server", "pgbench": "database"}


def _ceiling_cpu(ceiling_run):
    """The ceiling's own CPU µs per request in one run's ceiling record, or
    None when the run has no ceiling or it was not measured."""
    component = CEILING_OWN_CPU.get((ceiling_run or {}).get("target"))
    if component is None:
        return None
    return (ceiling_run.get("cpu_us_per_request") or {}).get(component)


def runs(docs):
    """A RunRow per workload over every run of every file, in file order.
    The load generator does the same work per response in every run, so at
    a similar throughput the server ÷ load generator figure moves with the
    server's cost relative to the machine's speed of the moment, not with
    that speed (at a much higher throughput wrk's cost per response falls:
    more responses per wake-up). The ceiling's own CPU per request is the
    other yardstick: a mature server (or PostgreSQL itself) measured in the
    same runs, so its spread is what the host alone does to a cost per
    request."""
    by_name = {}
    for doc in docs:
        for workload in doc["workloads"]:
            row = by_name.setdefault(
                workload["name"],
                {"cpu": [], "loadgen": [], "ratios": [], "ceiling": "", "ceiling_cpu": []},
            )
            cpu = (workload.get("per_run") or {}).get("cpu_us_per_request") or {}
            server_cpu = cpu.get("server") or []
            row["cpu"] += server_cpu
            loadgen = cpu.get("load_generator") or [None] * len(server_cpu)
            row["loadgen"] += [
                a / b if a is not None and b else None for a, b in zip(server_cpu, loadgen)
            ]
            row["ceiling"] = workload.get("ceiling") or row["ceiling"]
            for run in workload.get("runs") or []:
                rps = (run.get("server") or {}).get("rps")
                ceiling = (run.get("ceiling") or {}).get("rps")
                if rps and ceiling:
                    row["ratios"].append(rps / ceiling)
                row["ceiling_cpu"].append(_ceiling_cpu(run.get("ceiling")))
    out = []
    for name, row in by_name.items():
        values = [value for value in row["cpu"] if value is not None]
        deviation = deviation_pct(values)
        ceiling_cpu = [value for value in row["ceiling_cpu"] if value is not None]
        out.append(
            RunRow(
                name=name,
                cpu=values,
                deviation=deviation,
                agrees=deviation is not None and deviation <= RUN_CPU_BOUND,
                ratios=row["ratios"],
                ceiling=row["ceiling"],
                relative=[value for value in row["loadgen"] if value is not None],
                relative_deviation=deviation_pct(row["loadgen"]),
                ceiling_cpu=ceiling_cpu,
                ceiling_cpu_deviation=deviation_pct(ceiling_cpu),
            )
        )
    return out


def files_markdown(names, docs):
    """A line per file (date, CPU, cores, kernel), and a warning when the
    kernels differ: a VM moved to another host keeps its CPU model string,
    and the kernel build it boots tells the hosts apart where the model
    does not."""
    lines = []
    for name, doc in zip(names, docs):
        machine = doc.get("machine") or {}
        lines.append(
            f"- {name}: {doc.get('date', '?')}, {machine.get('cpu_model', '?')}, "
            f"{machine.get('cores', '?')} cores, kernel {machine.get('kernel', '?')}"
        )
    if len({(doc.get("machine") or {}).get("kernel") for doc in docs}) > 1:
        lines.append(
            "- the files ran on different kernels (another host?): compare within one only"
        )
    return "\n".join(lines)


def _min_median_max(values, fmt):
    return " / ".join(fmt(v) for v in (min(values), statistics.median(values), max(values)))


def runs_markdown(rows):
    head = [
        "workload",
        "server µs/req at saturation, every run: min / median / max",
        f"largest deviation from the median (bound ±{RUN_CPU_BOUND:g}%)",
        "÷ the run's ceiling: min / median / max",
        "runs at or above the ceiling",
        "server ÷ load generator CPU/req: min / median / max (deviation)",
        "the ceiling's own µs/req (nginx, or PostgreSQL under pgbench): min / median / max (deviation)",
    ]
    lines = ["| " + " | ".join(head) + " |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    two = "{:.2f}".format
    for row in rows:
        ratios = row.ratios
        cells = [
            row.name,
            f"{_min_median_max(row.cpu, fmt_cpu)} ({len(row.cpu)} runs)" if row.cpu else "-",
            "-"
            if row.deviation is None
            else f"{row.deviation:.1f}%" + ("" if row.agrees else " **no**"),
            f"{_min_median_max(ratios, two)} ({row.ceiling})" if ratios else "-",
            f"{sum(1 for v in ratios if v >= 1)} of {len(ratios)}" if ratios else "-",
            _with_deviation(row.relative, two, row.relative_deviation),
            _with_deviation(row.ceiling_cpu, fmt_cpu, row.ceiling_cpu_deviation),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_deviation(values, fmt, deviation):
    if not values or deviation is None:
        return "-"
    return f"{_min_median_max(values, fmt)} ({deviation:.1f}%)"
