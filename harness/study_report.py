"""The markdown of a comparison (scripts/compare.sh prints it and writes it
beside the JSON): one table per workload with a row per system (requests/s
with its spread, ratios, CPU per request per component, latency at the
common fixed rate), latency at fractions of each system's capacity, the
systems themselves (processes, PostgreSQL backends, memory, the contract),
the connection counts, the mixed load, the pooler against the direct run,
asyncpg's /contacts/for split, and notes."""

import os
import time

from harness import stats
from harness.report import fmt_cpu, fmt_ms, fmt_rps, fmt_spread
from harness.tools import ROOT


def result_path(commit, dirty, label, quick, pooler):
    """results/compare-<UTC date>-<commit>[-dirty][-quick][-pooler][-LABEL].json"""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    short = "nocommit" if commit == "none" else commit[:10]
    name = f"compare-{stamp}-{short}{'-dirty' if dirty else ''}"
    name += "-quick" if quick else ""
    name += f"-{pooler}" if pooler != "none" else ""
    name += f"-{label}" if label else ""
    return os.path.join(ROOT, "results", name + ".json")


def _table(head, rows, left=1):
    align = ["---"] * left + ["---:"] * (len(head) - left)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt_ratio(value):
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.095 else f"{value:.3f}"


def fmt_with_spread(figures, runs):
    if not figures or figures.get("median") is None:
        return "-"
    text = fmt_rps(figures["median"])
    if runs > 1 and figures.get("spread_pct") is not None:
        text += f" ±{figures['spread_pct'] / 2:.0f}%"
    return text


def measured(doc):
    return [system for system in doc["systems"] if system["status"] == "measured"]


def workload_of(system, name):
    for workload in system.get("workloads", []) + system.get("more", []):
        if workload["name"] == name:
            return workload
    return None


def fixed_row(workload, label):
    for row in (workload or {}).get("fixed_rate", []):
        if row["label"] == label:
            return row
    return None


def workload_tables(doc):
    runs = doc["params"]["runs"]
    out = []
    reference = next((s for s in measured(doc) if s["name"] == "reference"), None)
    for name in doc["params"]["workloads"]:
        ceiling = None
        rows = []
        ref = workload_of(reference, name) if reference else None
        for system in measured(doc):
            workload = workload_of(system, name)
            if not workload:
                continue
            ceiling = ceiling or workload
            cpu = workload["cpu_us_per_request"]
            common = fixed_row(workload, "common")
            rows.append(
                [
                    system["name"],
                    fmt_rps(workload["median"]),
                    f"{workload['min']:.0f}–{workload['max']:.0f}"
                    if runs > 1 and workload["min"] is not None
                    else "-",
                    fmt_spread(workload["spread_pct"]) if runs > 1 else "-",
                    fmt_ratio(stats.ratio(workload["median"], ref["median"] if ref else None)),
                    fmt_ratio(workload.get("ratio_to_ceiling")),
                    fmt_cpu(cpu.get("server")),
                    fmt_cpu(cpu.get("database")),
                    fmt_cpu(cpu.get("total")),
                    fmt_ms(common["p50_ms"]) if common else "-",
                    fmt_ms(common["p99_ms"]) if common else "-",
                    fmt_cpu(common["cpu_us_per_request"].get("server")) if common else "-",
                    str(
                        workload["summary"]["non_2xx"]
                        + sum(workload["summary"]["socket_errors"].values())
                    ),
                ]
            )
        if not rows:
            continue
        title = f"### {name}"
        if ceiling and ceiling.get("path"):
            title += f" (`GET {ceiling['path']}`)"
        ceiling_text = ""
        if ceiling and ceiling.get("ceiling_figures"):
            ceiling_text = f"Ceiling ({ceiling['ceiling']}): {fmt_with_spread(ceiling['ceiling_figures'], runs)} req/s"
            pipelined = ceiling.get("pipeline_ceiling_figures")
            if pipelined:
                ceiling_text += (
                    f"; the database pipelined: {fmt_with_spread(pipelined, runs)} req/s"
                )
            ceiling_text += ".\n\n"
        common_rate = doc["params"].get("common_rate")
        head = [
            "system",
            "req/s",
            f"min–max ({runs} runs)",
            "spread",
            "÷ reference",
            "÷ ceiling",
            "CPU µs/req server",
            "database",
            "total",
            f"p50 at {common_rate}/s",
            f"p99 at {common_rate}/s",
            f"server µs/req at {common_rate}/s",
            "errors",
        ]
        out.append(f"{title}\n\n{ceiling_text}{_table(head, rows)}")
    return "\n".join(out)


def fractions_table(doc):
    labels = [f"{pct:g}%" for pct in doc["params"].get("rate_fractions_pct") or []]
    if not labels or not doc["params"].get("fixed_rate"):
        return ""
    rows = []
    for name in doc["params"]["workloads"]:
        for system in measured(doc):
            workload = workload_of(system, name)
            if not workload or not workload.get("fixed_rate"):
                continue
            cells = []
            for label in labels:
                row = fixed_row(workload, label)
                cells.append(
                    f"{fmt_rps(row['offered_rps'])}/s: {fmt_ms(row['p50_ms'])} / {fmt_ms(row['p99_ms'])}"
                    if row
                    else "-"
                )
            rows.append([name, system["name"], *cells])
    if not rows:
        return ""
    return (
        "## Latency at fractions of each system's capacity (p50 / p99; oha, open model)\n\n"
        + _table(["workload", "system", *labels], rows, left=2)
    )


def systems_table(doc):
    rows = []
    for system in doc["systems"]:
        conformance = system.get("conformance")
        rss = system.get("peak_rss_kib")
        rows.append(
            [
                system["name"],
                system["stack"] + (f", behind {system['pooler']}" if system["pooler"] else ""),
                system["status"] + (f": {system['reason']}" if system["reason"] else ""),
                str(system.get("processes") or "-"),
                f"{system['backends_idle']:g}" if system.get("backends_idle") is not None else "-",
                str(
                    system.get("backends_peak") if system.get("backends_peak") is not None else "-"
                ),
                f"{rss / 1024:.0f} MiB" if rss else "-",
                f"{system['ready_s']:.1f} s" if system.get("ready_s") is not None else "-",
                f"{conformance['passed']}/{conformance['failed']}/{conformance['skipped']}"
                if conformance
                else "-",
                ", ".join(conformance["failed_rules"])
                if conformance and conformance["failed_rules"]
                else "-",
            ]
        )
    return "## The systems\n\n" + _table(
        [
            "system",
            "stack",
            "status",
            "processes",
            "PG backends idle",
            "PG backends peak",
            "peak RSS (sum)",
            "ready in",
            "contract pass/fail/skip",
            "failed rules",
        ],
        rows,
        left=3,
    )


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
        + _table(["system", *[f"{name} @{level}" for name, level in columns]], rows)
        + "\nTop three per column: "
        + "; ".join(f"{name} @{level}: {rank}" for (name, level), rank in zip(columns, ranks))
        + ".\n"
    )


def mixed_table(doc):
    fib_rate = doc["params"].get("mixed_fib_rate")
    if not fib_rate:
        return ""
    rate = doc["params"]["common_rate"]
    rows = []
    for system in measured(doc):
        alone = fixed_row(workload_of(system, "types"), "common")
        mixed = system.get("mixed") or {}
        types = (mixed.get("types") or [None])[0]
        fib = (mixed.get("fib25") or [None])[0]
        if not types:
            continue
        rows.append(
            [
                system["name"],
                fmt_ms(alone["p50_ms"]) if alone else "-",
                fmt_ms(alone["p99_ms"]) if alone else "-",
                fmt_ms(types["p50_ms"]),
                fmt_ms(types["p99_ms"]),
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
        + _table(
            [
                "system",
                "alone p50",
                "alone p99",
                "mixed p50",
                "mixed p99",
                "p99 mixed ÷ alone",
                "fib25 achieved/s",
                "fib25 p50",
                "fib25 p99",
                "errors",
            ],
            rows,
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
    return "## Behind PgBouncer (transaction mode) against direct\n\n" + _table(head, rows)


def split_table(doc):
    system = next((s for s in measured(doc) if s["name"] == "fastapi_asyncpg"), None)
    if not system or not doc["params"].get("asyncpg_split"):
        return ""
    from harness.study import SPLIT_LIMITS, SPLIT_ROUTES

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
        + _table(head, rows)
    )


def notes(doc, out_path):
    lines = []
    for system in doc["systems"]:
        if system["status"] != "measured":
            lines.append(
                f"**{system['name']}: not measured** ({system['status']}: {system['reason']})"
            )
        for workload in system.get("workloads", []) + system.get("more", []):
            summary = workload["summary"]
            errors = summary["non_2xx"] + sum(summary["socket_errors"].values())
            if errors:
                lines.append(
                    f"**{system['name']} / {workload['name']}: {errors} errors** "
                    f"({summary['non_2xx']} non-2xx, socket {summary['socket_errors']})"
                )
    noise = doc.get("noise", {})
    if noise.get("other_cores_max") is not None:
        line = (
            f"noise: other work used up to {noise['other_cores_max']:.2f} cores in a window "
            f"(gate {doc['params']['noise_threshold_cores']} cores); {noise['retries']} window(s) "
            "measured again"
        )
        if noise["noisy_kept"]:
            line = f"**{line}; {noise['noisy_kept']} kept noisy after the retry limit**"
        lines.append(line)
    params = doc["params"]
    lines.append(
        f"wrk: {params['connections']} connections, {params['threads']} threads, "
        f"{params['duration_s']} s per window after {params['warmup_s']} s of warm-up; "
        f"{params['runs']} round(s), each system started afresh in each; {params['contacts']} contacts; "
        "ceilings measured in each round beside the first system"
    )
    lines.append(
        "spread: (max − min) ÷ median over the rounds; '±' is half of it. A difference smaller "
        "than the spreads of the two figures is no finding"
    )
    lines.append(
        "CPU µs/req: CPU time of each component during the window (cgroups: the system's whole "
        f"process tree, PostgreSQL with every backend, the load generator) ÷ requests; method "
        f"{doc.get('cpu', {}).get('method')}"
    )
    lines.append(
        "PG backends: PostgreSQL's client backends counted from their process titles every "
        "0.2 s while the system ran (peak), and once after it settled (idle)"
    )
    lines.append(
        "contract: scripts/check_contract.py (fib(40) skipped); peers/README.md explains the deviations"
    )
    lines.append(f"results: {os.path.relpath(out_path)}")
    return "## Notes\n\n" + "".join(f"- {line}\n" for line in lines)


def markdown(doc, out_path):
    machine = doc["machine"]
    head = (
        f"# Bake-off {doc['date']}\n\n"
        f"Commit `{(doc.get('commit') or 'none')[:10]}`"
        f"{' (working tree differs from it)' if doc.get('dirty') else ''}; `{doc['command']}`. "
        f"Machine: {machine.get('cpu_model')}, {machine.get('cores')} cores, "
        f"{(machine.get('memory_bytes') or 0) / 2**30:.1f} GiB, Linux {machine.get('kernel')}. "
        f"Load before the run: {doc.get('conditions', {}).get('loadavg_before', '?')}.\n\n"
        "## Requests per second at saturation (wrk, closed loop), CPU per request, and "
        "latency at the common fixed rate\n"
    )
    parts = [
        head,
        workload_tables(doc),
        fractions_table(doc),
        systems_table(doc),
        concurrency_table(doc),
        mixed_table(doc),
        pooler_table(doc),
        split_table(doc),
        notes(doc, out_path),
    ]
    return "\n".join(part for part in parts if part)
