"""The markdown of a comparison (scripts/compare.sh prints it and writes it
beside the JSON): one table per workload with a row per system (requests/s
with its spread, ratios, CPU per request per component, latency at the
common fixed rate), latency at fractions of each system's capacity, the
systems themselves (processes, PostgreSQL backends, memory, conformance),
the connection counts, the mixed load, the pooler against the direct run,
asyncpg's /contacts/for split, and notes."""

import os

from harness import stats, study_sections
from harness.report import fmt_cpu, fmt_ms, fmt_rps, fmt_spread
from harness.study_common import fixed_row, fmt_ratio, fmt_with_spread, measured, table, workload_of


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
            figures = fmt_with_spread(ceiling["ceiling_figures"], runs)
            ceiling_text = f"Ceiling ({ceiling['ceiling']}): {figures} req/s"
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
        out.append(f"{title}\n\n{ceiling_text}{table(head, rows)}")
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
                    f"{fmt_rps(row['offered_rps'])}/s: "
                    f"{fmt_ms(row['p50_ms'])} / {fmt_ms(row['p99_ms'])}"
                    if row
                    else "-"
                )
            rows.append([name, system["name"], *cells])
    if not rows:
        return ""
    return (
        "## Latency at fractions of each system's capacity (p50 / p99; oha, open model)\n\n"
        + table(["workload", "system", *labels], rows, left=2)
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
    return "## The systems\n\n" + table(
        [
            "system",
            "stack",
            "status",
            "processes",
            "PG backends idle",
            "PG backends peak",
            "peak RSS (sum)",
            "ready in",
            "conformance pass/fail/skip",
            "failed rules",
        ],
        rows,
        left=3,
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
        f"{params['runs']} round(s), each system started afresh in each; "
        f"{params['contacts']} contacts; "
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
        "the API contract: scripts/check_contract.py, each system before it is measured, on an "
        "instance of its own (fib(40) skipped); peers/README.md explains the deviations"
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
        study_sections.concurrency_table(doc),
        study_sections.mixed_table(doc),
        study_sections.pooler_table(doc),
        study_sections.distance_tables(doc),
        study_sections.connections_table(doc),
        study_sections.sweep_table(doc),
        study_sections.split_table(doc),
        notes(doc, out_path),
    ]
    return "\n".join(part for part in parts if part)
