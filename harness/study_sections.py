"""The study's sections beyond its per-workload tables (study_report.py):
the connection counts, computation beside database calls (and the Python
remedies), the pooler against direct, the figures at each round trip and
number of instances, the connections each system held and what the
database refused, and asyncpg's /contacts/for split."""

from harness import stats
from harness.report import fmt_cpu, fmt_ms, fmt_rps
from harness.study_common import (
    fixed_row,
    fmt_ratio,
    fmt_with_spread,
    measured,
    table,
    workload_of,
)
from harness.workloads import SPLIT_LIMITS, SPLIT_ROUTES, SPLIT_SYSTEM


def concurrency_table(doc):
    levels = doc["params"].get("concurrency") or []
    if not levels:
        return ""
    main = doc["params"]["connections"]
    runs = doc["params"]["runs"]
    columns = []
    for name in ("types", "fetch100"):
        if name in doc["params"]["workloads"]:
            columns += [(name, level) for level in sorted({*levels, main})]
    if not columns:
        return ""
    rows = []
    for system in measured(doc):
        cells = []
        for name, level in columns:
            workload = workload_of(system, name if level == main else f"{name}@{level}")
            cells.append(fmt_with_spread(workload, runs))
        rows.append([system["name"], *cells])
    ranks = []
    for name, level in columns:
        key = name if level == main else f"{name}@{level}"
        order = sorted(
            measured(doc),
            key=lambda system, key=key: -((workload_of(system, key) or {}).get("median") or 0),
        )
        ranks.append(" > ".join(system["name"] for system in order[:3]))
    return (
        "## Connection counts (req/s at saturation, median ±half the spread)\n\n"
        + table(["system", *[f"{name} @{level}" for name, level in columns]], rows)
        + "\nTop three per column: "
        + "; ".join(f"{name} @{level}: {rank}" for (name, level), rank in zip(columns, ranks))
        + ".\n"
    )


# How /fibonacci/25 was served in a mixed window: the suffix of its records'
# names (study.REMEDY_ROUTES), and what the table calls it.
FIB_SERVED = (
    ("", "its /fibonacci/{n}"),
    ("_fibonacci_thread", "def (thread pool)"),
    ("_fibonacci_process", "process pool"),
)


def mixed_table(doc):
    """/types alone against /types beside /fibonacci/25, a row per system
    and way of serving the computation (async def, a def endpoint on the
    thread pool, a process pool), the spread of the rounds' p99."""
    fib_rate = doc["params"].get("mixed_fib_rate")
    if not fib_rate:
        return ""
    rate = doc["params"]["common_rate"]
    rows = []
    for system in measured(doc):
        alone = fixed_row(workload_of(system, "types"), "common")
        mixed = system.get("mixed") or {}
        for suffix, served in FIB_SERVED:
            types = (mixed.get(f"types{suffix}") or [None])[0]
            fib = (mixed.get(f"fib25{suffix}") or [None])[0]
            if not types:
                continue
            p99s = [value for value in (types.get("by_run") or {}).get("p99_ms", []) if value]
            rows.append(
                [
                    system["name"],
                    served,
                    fmt_ms(alone["p50_ms"]) if alone else "-",
                    fmt_ms(alone["p99_ms"]) if alone else "-",
                    fmt_ms(types["p50_ms"]),
                    fmt_ms(types["p99_ms"])
                    + (f" ({fmt_ms(min(p99s))}–{fmt_ms(max(p99s))})" if len(p99s) > 1 else ""),
                    fmt_ratio(stats.ratio(types["p99_ms"], alone["p99_ms"] if alone else None)),
                    fmt_rps(fib["achieved_rps"]) if fib else "-",
                    fmt_ms(fib["p50_ms"]) if fib else "-",
                    fmt_ms(fib["p99_ms"]) if fib else "-",
                    str(types["errors"] + (fib["errors"] if fib else 0)),
                ]
            )
    if not rows:
        return ""
    return (
        f"## Computation beside database calls: /types at {rate}/s, alone and with "
        f"/fibonacci/25 at {fib_rate:g}/s beside it\n\n"
        + table(
            [
                "system",
                "fib25 served by",
                "alone p50",
                "alone p99",
                "mixed p50",
                "mixed p99 (rounds)",
                "p99 mixed ÷ alone",
                "fib25 achieved/s",
                "fib25 p50",
                "fib25 p99",
                "errors",
            ],
            rows,
            left=2,
        )
    )


def pooler_table(doc):
    by_name = {system["name"]: system for system in measured(doc)}
    pairs = [
        (system, by_name.get(system["system"]))
        for system in measured(doc)
        if system["pooler"] and system["system"] in by_name
    ]
    if not pairs:
        return ""
    names = [
        name
        for name in doc["params"]["workloads"]
        if name in ("types", "fetch100", "contact_random")
    ]
    rows = []
    for pooled, direct in pairs:
        cells = []
        for name in names:
            a, b = workload_of(pooled, name), workload_of(direct, name)
            cells.append(fmt_ratio(stats.ratio((a or {}).get("median"), (b or {}).get("median"))))
            one = fixed_row(a, "common")
            two = fixed_row(b, "common")
            cells.append(
                f"{fmt_ms(two['p99_ms'])} → {fmt_ms(one['p99_ms'])}" if one and two else "-"
            )
        rows.append(
            [
                direct["name"],
                f"{direct.get('backends_peak', '-')} → {pooled.get('backends_peak', '-')}",
                *cells,
            ]
        )
    head = ["system", "PG backends peak: direct → pooled"]
    for name in names:
        head += [f"{name} req/s pooled ÷ direct", f"{name} p99 at common rate"]
    return "## Behind PgBouncer (transaction mode) against direct\n\n" + table(head, rows)


def split_table(doc):
    system = next((s for s in measured(doc) if s["name"] == SPLIT_SYSTEM), None)
    if not system or not doc["params"].get("asyncpg_split"):
        return ""
    runs = doc["params"]["runs"]
    rows = []
    for key, path, what in SPLIT_ROUTES:
        cells = []
        for limit in SPLIT_LIMITS:
            workload = workload_of(system, f"split_{key}_{limit}")
            cells.append(fmt_with_spread(workload, runs))
            cells.append(fmt_cpu(((workload or {}).get("cpu_us_per_request") or {}).get("server")))
        rows.append([f"`{path}` ({what})", *cells])
    head = ["route"]
    for limit in SPLIT_LIMITS:
        head += [f"limit={limit} req/s", "server µs/req"]
    return (
        "## asyncpg: /contacts/for against /contacts/fetch, in parts (fastapi_asyncpg)\n\n"
        + table(head, rows)
    )


def _by_system_and_placement(doc):
    """{system: {placement label: entry}} of the measured variants, and the
    placement labels in the order they ran."""
    out, labels = {}, []
    for system in measured(doc):
        placement = system.get("placement") or {}
        label = placement_label(placement)
        out.setdefault(system["system"], {})[label] = system
        if label not in labels:
            labels.append(label)
    return out, labels


def placement_label(placement):
    """'0 ms', '2 ms x4', '2 ms x4 pgbouncer': a placement as a column head."""
    label = f"{placement.get('rtt_ms', 0):g} ms"
    if (placement.get("instances") or 1) > 1:
        label += f" x{placement['instances']}"
    if placement.get("pooler"):
        label += f" {placement['pooler']}"
    return label


DISTANCE_PARTS = ("pooler", "front", "link")


def distance_tables(doc):
    """One table per workload with a column group per placement (round trip,
    instances, pooler): req/s with its spread, the system's CPU per request,
    the layers' (PgBouncer, HAProxy, the link), and p50/p99 at the common
    rate. Only when the study ran more than one round trip or instance count."""
    params = doc["params"]
    if len(params.get("rtt_ms") or [0]) < 2 and len(params.get("instances") or [1]) < 2:
        return ""
    grouped, labels = _by_system_and_placement(doc)
    runs = params["runs"]
    out = ["## At a distance: each figure at each round trip and number of instances\n"]
    measured_rtt = (doc.get("topology") or {}).get("rtt_ms_measured") or {}
    if measured_rtt:
        out.append(
            "Round trips through the delay link, set → measured (pgbench from an app host): "
            + ", ".join(f"{rtt} ms → {ms:.2f} ms" for rtt, ms in measured_rtt.items())
            + ".\n"
        )
    for name in params["workloads"]:
        rows = []
        for system, by_label in grouped.items():
            cells = []
            for label in labels:
                workload = workload_of(by_label.get(label) or {}, name)
                cpu = (workload or {}).get("cpu_us_per_request") or {}
                layers = sum(cpu.get(part) or 0 for part in DISTANCE_PARTS)
                common = fixed_row(workload, "common")
                cells += [
                    fmt_with_spread(workload, runs),
                    fmt_cpu(cpu.get("server")),
                    fmt_cpu(layers) if layers else "-",
                    f"{fmt_ms(common['p50_ms'])} / {fmt_ms(common['p99_ms'])}" if common else "-",
                ]
            rows.append([system, *cells])
        head = ["system"]
        for label in labels:
            head += [f"{label}: req/s", "server µs/req", "layers µs/req", "p50 / p99 at common"]
        out.append(f"### {name}\n\n" + table(head, rows))
    return "\n".join(out)


def connections_table(doc):
    """What each system held of the database and what the database refused
    (max_connections), per placement; a system refused while it started
    says so."""
    rows = []
    for system in doc["systems"]:
        refused_at_start = system["status"] == "refused"
        if (
            system.get("backends_peak") is None
            and not system.get("refused_connections")
            and not refused_at_start
        ):
            continue
        rows.append(
            [
                system["name"],
                placement_label(system.get("placement") or {}),
                "did not start" if refused_at_start else "measured",
                str(
                    system.get("backends_peak") if system.get("backends_peak") is not None else "-"
                ),
                str(system.get("refused_connections") or 0),
                system["reason"] if refused_at_start else (system.get("first_refusal") or "-"),
            ]
        )
    if not rows:
        return ""
    limit = doc["params"].get("max_connections")
    return f"## Connections to PostgreSQL (max_connections {limit})\n\n" + table(
        ["system", "placement", "status", "backends peak", "connections refused", "first refusal"],
        rows,
        left=3,
    )


def sweep_table(doc):
    """The sweep (--sweep): a row per system and knob setting, req/s and CPU
    per request at saturation and the backends it held."""
    if not doc["params"].get("sweep"):
        return ""
    names = [name for name in doc["params"]["workloads"] if name in ("types", "fetch100")]
    rows = []
    for system in measured(doc):
        knobs = system.get("knobs") or {}
        cells = [
            system["system"],
            *(str(knobs.get(knob, "-")) for knob in ("workers", "pool", "threads")),
        ]
        for name in names:
            workload = workload_of(system, name)
            cells += [
                fmt_with_spread(workload, doc["params"]["runs"]),
                fmt_cpu(((workload or {}).get("cpu_us_per_request") or {}).get("server")),
            ]
        cells.append(str(system.get("backends_peak", "-")))
        rows.append(cells)
    head = ["system", "workers", "pool per worker", "threads"]
    for name in names:
        head += [f"{name} req/s", "server µs/req"]
    return (
        "## The sweep: workers x pool x threads (req/s at saturation, backends held)\n\n"
        + table(head + ["backends peak"], rows, left=1)
    )
