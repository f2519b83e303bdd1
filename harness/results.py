"""The typed records of a run and the results JSON built from them.

A Measurement is one measured window: one tool against one thing (the
server, or its ceiling) for one workload in one run. A FixedRate is one
window at a fixed offered rate (oha against the server, or pgbench --rate
against the database). The document groups them per workload, with every
run's figures and their median, min, max and spread; docs/RESULTS_SCHEMA.md
describes every field.
"""

import dataclasses
import statistics
from dataclasses import dataclass, field

from harness import counters, stats

# Bumped whenever a field of the results file changes meaning. 1: the bash
# harness's (scripts/run.sh before this package); 2: this package's (CPU, spreads, fixed rates,
# noise); 3: the same document, with every window's record moved out of the
# JSON into a compressed file beside it (read_json puts them back).
SCHEMA_VERSION = 3
READABLE = (2, 3)

# The parts of CPU per request (cpu.per_request_us); pooler, front and link
# only where they ran (--pooler, several instances, a round trip).
CPU_PARTS = ("server", "database", "pooler", "front", "link", "load_generator", "total")
EXTRA_PARTS = ("pooler", "front", "link")


@dataclass
class Noise:
    """How busy the machine was outside the run's components in a window."""

    # Cores used by other work (1.0 = one core throughout): what the gate judges.
    other_cores: float
    # Cores used by the run's own components together.
    ours_cores: float
    # irq + softirq, in cores, judged by nobody (noise.py says why).
    interrupts_cores: float
    # True when other_cores was above the threshold even in the kept attempt.
    noisy: bool
    # How many times the window was measured (1 + retries).
    attempts: int = 1

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


@dataclass
class Measurement:
    """One window of wrk (server or nginx ceiling) or pgbench (database ceiling)."""

    workload: str
    run: int
    # "server" (what is under test), "ceiling" (nginx or pgbench) or
    # "ceiling_pipeline" (pgbench in pipeline mode: the database's own capacity).
    role: str
    # "wrk" or "pgbench".
    tool: str
    # What answered: the server's name, "nginx" or "pgbench".
    target: str
    requests: int | None
    duration_s: float | None
    rps: float
    url: str = ""
    # wrk only: latencies in µs (min, p50, p90, p99, p999, max, mean, stdev),
    # responses with status >= 400, socket errors by kind, bytes read.
    latency_us: dict | None = None
    non_2xx: int = 0
    socket_errors: dict | None = None
    bytes: int | None = None
    # pgbench only: failed transactions, its average latency, the generated
    # script, its -D variables and the session settings it ran with.
    failed: int = 0
    latency_avg_us: float | None = None
    script: str | None = None
    variables: list = field(default_factory=list)
    pgoptions: str = ""
    # CPU used in the window per component (ns) and per request (µs), and
    # how it was read (cpu.py: cgroup-v2, cgroup-v1 or proc).
    cpu_ns: dict = field(default_factory=dict)
    cpu_us_per_request: dict | None = None
    cpu_method: str = ""
    noise: Noise | None = None
    # Where the server ran (site.Placement.label): "" for one instance on
    # loopback, else e.g. "2ms x4 pgbouncer". Ceilings have "".
    placement: str = ""
    # The server's own counters over the window (counters.py): the change
    # of each `bakeoff_runtime_*` series of its /metrics, summed over its
    # instances; None for a system without them.
    counters: dict | None = None

    @classmethod
    def from_dict(cls, data):
        return _window_from_dict(cls, data)


@dataclass
class FixedRate:
    """One window at a fixed offered rate (open model)."""

    workload: str
    run: int
    # "server" (oha against it) or "pgbench" (pgbench --rate, the database alone).
    system: str
    # Which rate: "25%" .. "90%" of that run's measured capacity, or "common".
    label: str
    offered_rps: float
    achieved_rps: float | None
    requests: int | None
    errors: int
    # Latency percentiles, from each request's intended send time.
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    cpu_ns: dict = field(default_factory=dict)
    cpu_us_per_request: dict | None = None
    noise: Noise | None = None
    # As Measurement.placement; pgbench --rate has "".
    placement: str = ""

    @classmethod
    def from_dict(cls, data):
        return _window_from_dict(cls, data)


def _window_from_dict(cls, data):
    """A Measurement or FixedRate back from its dict, with its Noise."""
    data = dict(data)
    if data.get("noise") is not None:
        data["noise"] = Noise.from_dict(data["noise"])
    return cls(**data)


def to_dict(record):
    return dataclasses.asdict(record)


# --- summaries ---------------------------------------------------------------------


def _cpu_summary(records):
    """{part: stats.summary} of the records' CPU µs per request."""
    out = {}
    for part in CPU_PARTS:
        out[part] = stats.summary(
            [(record.cpu_us_per_request or {}).get(part) for record in records]
        )
    return out


def _median_of(summary_by_part):
    return {
        part: (figures["median"] if figures else None) for part, figures in summary_by_part.items()
    }


def figures(records):
    """The figures of one system on one workload over its runs: requests/s
    median, min, max, spread; CPU µs per request (medians, and each part's
    spread under cpu_spread)."""
    rps = stats.summary([record.rps for record in records])
    cpu = _cpu_summary(records)
    return {
        "median": rps["median"] if rps else None,
        "min": rps["min"] if rps else None,
        "max": rps["max"] if rps else None,
        "spread_pct": rps["spread_pct"] if rps else None,
        "cpu_us_per_request": _median_of(cpu),
        "cpu_spread": cpu,
    }


def per_run(records):
    """Each run's requests/s and CPU µs per request, in run order: what a
    per-round ratio between two systems is computed from; and, for a server
    with counters of its own, what they say per request (counters.py)."""
    ordered = sorted(records, key=lambda record: record.run)
    out = {
        "run": [record.run for record in ordered],
        "rps": [record.rps for record in ordered],
        "cpu_us_per_request": {
            part: [(record.cpu_us_per_request or {}).get(part) for record in ordered]
            for part in CPU_PARTS
        },
    }
    if any(record.counters for record in ordered):
        out["counters"] = [
            counters.per_request(record.counters, record.requests) for record in ordered
        ]
    return out


def fixed_rate_rows(records, system):
    """One row per offered rate (by label), the median over runs of each
    figure, in the order the rates ran."""
    labels = []
    for record in records:
        if record.system == system and record.label not in labels:
            labels.append(record.label)
    rows = []
    for label in labels:
        group = [record for record in records if record.system == system and record.label == label]

        def med(name, group=group):
            values = [
                getattr(record, name) for record in group if getattr(record, name) is not None
            ]
            return statistics.median(values) if values else None

        cpu = _cpu_summary(group)
        rows.append(
            {
                "label": label,
                "offered_rps": med("offered_rps"),
                "achieved_rps": med("achieved_rps"),
                "p50_ms": med("p50_ms"),
                "p90_ms": med("p90_ms"),
                "p99_ms": med("p99_ms"),
                "p999_ms": med("p999_ms"),
                "errors": sum(record.errors for record in group),
                # Each run's latency and server CPU, in run order (the mixed
                # load's spread over the rounds).
                "by_run": {
                    "run": [record.run for record in group],
                    "p50_ms": [record.p50_ms for record in group],
                    "p99_ms": [record.p99_ms for record in group],
                    "server_us": [
                        (record.cpu_us_per_request or {}).get("server") for record in group
                    ],
                },
                "cpu_us_per_request": _median_of(cpu),
                "cpu_spread": cpu,
                "runs": len(group),
            }
        )
    return rows


def noise_summary(windows):
    """The busy share of every window and how many were retried or kept noisy."""
    kept = [window for window in windows if window.noise is not None]
    return {
        "windows": [
            {
                "run": window.run,
                "what": _window_name(window),
                "other_cores": window.noise.other_cores,
                "ours_cores": window.noise.ours_cores,
                "interrupts_cores": window.noise.interrupts_cores,
                "attempts": window.noise.attempts,
                "noisy": window.noise.noisy,
            }
            for window in kept
        ],
        "retries": sum(window.noise.attempts - 1 for window in kept),
        "noisy_kept": sum(1 for window in kept if window.noise.noisy),
        "other_cores_max": max((window.noise.other_cores for window in kept), default=None),
    }


def _window_name(window):
    if isinstance(window, FixedRate):
        return f"{window.system} at {window.label} ({window.offered_rps:.0f}/s)"
    return f"{window.role} ({window.target})"


def summarize_legacy(server_runs, ceiling_runs):
    """The summary that schema 1 had, kept field for field: older readers
    take their numbers from it."""

    def spread(values):
        values = [value for value in values if value is not None]
        if not values:
            return None
        return {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "values": values,
        }

    rps = spread([server_record.rps for server_record in server_runs])
    ceiling_rps = spread([ceiling_record.rps for ceiling_record in ceiling_runs])
    kinds = ("connect", "read", "write", "timeout")
    return {
        "rps": rps,
        # Latency percentiles: the median over runs; max: the worst of all.
        "latency_us": {
            "p50": statistics.median(
                server_record.latency_us["p50"] for server_record in server_runs
            )
            if server_runs
            else None,
            "p99": statistics.median(
                server_record.latency_us["p99"] for server_record in server_runs
            )
            if server_runs
            else None,
            "max": max(server_record.latency_us["max"] for server_record in server_runs)
            if server_runs
            else None,
        },
        "non_2xx": sum(server_record.non_2xx for server_record in server_runs),
        "requests": sum(server_record.requests or 0 for server_record in server_runs),
        # Successful answers only: a server that sheds load with fast 503s
        # would otherwise look faster for it.
        "rps_2xx": spread(
            [
                (server_record.requests - server_record.non_2xx) / server_record.duration_s
                for server_record in server_runs
                if server_record.duration_s
            ]
        ),
        "socket_errors": {
            key: sum(server_record.socket_errors[key] for server_record in server_runs)
            for key in kinds
        },
        "ceiling_rps": ceiling_rps,
        "ceiling_failed": sum(ceiling_record.failed or 0 for ceiling_record in ceiling_runs),
        "ratio": (
            rps["median"] / ceiling_rps["median"]
            if rps and ceiling_rps and ceiling_rps["median"]
            else None
        ),
    }


def workload_entry(info, measurements, fixed):
    """The results of one workload: every run's records, the server's figures
    (top level), its ceiling's (under "ceiling_figures"), the fixed-rate rows
    and the noise of its windows."""
    server = [measurement for measurement in measurements if measurement.role == "server"]
    ceiling = [measurement for measurement in measurements if measurement.role == "ceiling"]
    pipelined = [
        measurement for measurement in measurements if measurement.role == "ceiling_pipeline"
    ]
    runs = sorted(
        {measurement.run for measurement in measurements}
        | {fixed_record.run for fixed_record in fixed}
    )
    entry = dict(info)
    entry["runs"] = [
        {
            "run": run,
            "server": next(
                (to_dict(measurement) for measurement in server if measurement.run == run), None
            ),
            "ceiling": next(
                (to_dict(measurement) for measurement in ceiling if measurement.run == run), None
            ),
            "ceiling_pipeline": next(
                (to_dict(measurement) for measurement in pipelined if measurement.run == run), None
            ),
            "fixed_rate": [
                to_dict(fixed_record) for fixed_record in fixed if fixed_record.run == run
            ],
        }
        for run in runs
    ]
    entry.update(figures(server))
    entry["per_run"] = per_run(server)
    entry["ceiling_figures"] = figures(ceiling) if ceiling else None
    entry["ratio_to_ceiling"] = stats.ratio(
        entry["median"], (entry["ceiling_figures"] or {}).get("median")
    )
    # The database's own capacity (pgbench pipelined on the server's
    # connection count), beside the plain-client ceiling above: the higher
    # of the two is the limit the database showed it can reach.
    entry["pipeline_ceiling_figures"] = figures(pipelined) if pipelined else None
    entry["ratio_to_pipeline_ceiling"] = stats.ratio(
        entry["median"], (entry["pipeline_ceiling_figures"] or {}).get("median")
    )
    if pipelined and ceiling:
        entry["physical_limit"] = (
            "pipeline"
            if entry["pipeline_ceiling_figures"]["median"] > entry["ceiling_figures"]["median"]
            else "ceiling"
        )
    entry["fixed_rate"] = fixed_rate_rows(fixed, "server")
    entry["database_fixed_rate"] = fixed_rate_rows(fixed, "pgbench")
    # /version's ceiling at the same rates (nginx), where it was measured.
    entry["nginx_fixed_rate"] = fixed_rate_rows(fixed, "nginx")
    entry["noise"] = noise_summary([*measurements, *fixed])
    entry["summary"] = summarize_legacy(server, ceiling)
    return entry


def build_document(meta, workload_infos, measurements, fixed, placements=("",)):
    """The whole results document: meta (date, commit, machine, params, ...)
    first, then one entry per workload in the order they ran, for each
    placement in turn (its label under "placement"; the ceilings, which run
    once per run, appear with every placement)."""
    doc = {"schema_version": SCHEMA_VERSION}
    doc.update(meta)
    doc["workloads"] = []
    for label in placements:
        for info in workload_infos:
            entry = workload_entry(
                info,
                [
                    m
                    for m in measurements
                    if m.workload == info["name"] and (m.role != "server" or m.placement == label)
                ],
                [
                    f
                    for f in fixed
                    if f.workload == info["name"] and (f.system != "server" or f.placement == label)
                ],
            )
            entry["placement"] = label
            doc["workloads"].append(entry)
    everything = [*measurements, *fixed]
    doc["noise"] = {
        key: value for key, value in noise_summary(everything).items() if key != "windows"
    }
    return doc


def records_of(doc):
    """The Measurement and FixedRate records back from a document (the
    round trip of to_dict)."""
    measurements, fixed = [], []
    for workload in doc.get("workloads", []):
        for run in workload.get("runs", []):
            for role in ("server", "ceiling", "ceiling_pipeline"):
                if run.get(role):
                    measurements.append(Measurement.from_dict(run[role]))
            fixed.extend(FixedRate.from_dict(record) for record in run.get("fixed_rate", []))
    return measurements, fixed
