"""The markdown that run.sh prints on stdout: the table at saturation (with
spreads and CPU per request), the table at fixed offered rates, and notes."""

import os

from harness.results import EXTRA_PARTS


def fmt_us(us):
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1e6:.2f}s"


def fmt_ms(ms):
    return "-" if ms is None else fmt_us(ms * 1000.0)


def fmt_rps(rps):
    return "-" if rps is None else f"{rps:.0f}"


def fmt_cpu(value):
    """CPU µs per request: 3 significant figures are as many as it holds."""
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_spread(pct):
    return "-" if pct is None else f"{pct:.0f}%"


def where(workload):
    """A workload's row name: with its placement (round trip, instances,
    pooler) when it has one, e.g. "types (2ms x4)"."""
    placement = workload.get("placement")
    return f"{workload['name']} ({placement})" if placement else workload["name"]


def _table(head, align, rows):
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def extra_parts(doc):
    """The CPU parts beyond server, database and load generator that some
    window of this run has (PgBouncer, HAProxy, the delay link)."""
    return [
        part
        for part in EXTRA_PARTS
        if any(
            (row.get("cpu_us_per_request") or {}).get(part) is not None
            for workload in doc["workloads"]
            for row in [workload, *workload.get("fixed_rate", [])]
        )
    ]


PART_NAMES = {"pooler": "PgBouncer", "front": "HAProxy", "link": "delay link"}


def saturation_table(doc):
    runs = doc["params"].get("runs", 1)
    extra = extra_parts(doc)
    head = ["workload", "req/s"]
    if runs > 1:
        head += [f"min–max ({runs} runs)", "spread"]
    head += [
        "p50",
        "p99",
        "max",
        "non-2xx",
        "socket errors",
        "CPU µs/req server",
        "database",
        *(PART_NAMES[part] for part in extra),
        "load gen",
        "total",
        "ceiling",
        "ceiling req/s",
        "ceiling CPU µs/req",
        "ratio",
        "pipelined DB req/s",
        "ratio (pipelined)",
    ]
    align = ["---:"] * len(head)
    align[0] = "---"
    align[head.index("ceiling")] = "---"
    rows = []
    for workload in doc["workloads"]:
        summary = workload["summary"]
        errors = summary["socket_errors"]
        total = sum(errors.values())
        err_cell = str(total)
        if total:
            err_cell += (
                " (" + ", ".join(f"{kind} {count}" for kind, count in errors.items() if count) + ")"
            )
        row = [where(workload), fmt_rps(workload["median"])]
        if runs > 1:
            row += [
                f"{workload['min']:.0f}–{workload['max']:.0f}"
                if workload["min"] is not None
                else "-",
                fmt_spread(workload["spread_pct"]),
            ]
        cpu = workload["cpu_us_per_request"]
        ceiling = workload["ceiling_figures"] or {}
        ceiling_cpu = (ceiling.get("cpu_us_per_request") or {}).get("total")
        row += [
            fmt_us(summary["latency_us"]["p50"]),
            fmt_us(summary["latency_us"]["p99"]),
            fmt_us(summary["latency_us"]["max"]),
            str(summary["non_2xx"]),
            err_cell,
            fmt_cpu(cpu["server"]),
            fmt_cpu(cpu["database"]),
            *(fmt_cpu(cpu.get(part)) for part in extra),
            fmt_cpu(cpu["load_generator"]),
            fmt_cpu(cpu["total"]),
            workload["ceiling"]
            if workload["ceiling"] != "none"
            else ("skipped" if workload.get("ceiling_skipped") else "-"),
            fmt_rps(ceiling.get("median"))
            + (
                f" ±{ceiling['spread_pct']:.0f}%"
                if runs > 1 and ceiling.get("spread_pct") is not None
                else ""
            ),
            fmt_cpu(ceiling_cpu),
            f"{workload['ratio_to_ceiling']:.2f}"
            if workload["ratio_to_ceiling"] is not None
            else "-",
            fmt_rps((workload.get("pipeline_ceiling_figures") or {}).get("median"))
            + (" (limit)" if workload.get("physical_limit") == "pipeline" else ""),
            f"{workload['ratio_to_pipeline_ceiling']:.2f}"
            if workload.get("ratio_to_pipeline_ceiling") is not None
            else "-",
        ]
        rows.append(row)
    return _table(head, align, rows)


def fixed_rate_table(doc):
    """One row per DB workload and offered rate; None when none was measured."""
    extra = extra_parts(doc)
    head = [
        "workload",
        "rate",
        "offered/s",
        "achieved/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "errors",
        "CPU µs/req server",
        "database",
        *(PART_NAMES[part] for part in extra),
        "load gen",
        "total",
        "ceiling p50",
        "ceiling p99",
        "ceiling µs/req",
        "server ÷ ceiling µs/req",
    ]
    align = ["---", "---"] + ["---:"] * (len(head) - 2)
    rows = []
    for workload in doc["workloads"]:
        # The same rates against the ceiling: pgbench --rate on the same SQL
        # (its cost is PostgreSQL's), or nginx for /version (its own cost).
        ceiling = {
            row["label"]: (row, "database") for row in workload.get("database_fixed_rate", [])
        }
        ceiling.update(
            {row["label"]: (row, "server") for row in workload.get("nginx_fixed_rate") or []}
        )
        for row in workload.get("fixed_rate", []):
            cpu = row["cpu_us_per_request"]
            db, part = ceiling.get(row["label"], ({}, None))
            ceiling_us = (db.get("cpu_us_per_request") or {}).get(part) if part else None
            rows.append(
                [
                    where(workload),
                    row["label"],
                    fmt_rps(row["offered_rps"]),
                    fmt_rps(row["achieved_rps"]),
                    fmt_ms(row["p50_ms"]),
                    fmt_ms(row["p90_ms"]),
                    fmt_ms(row["p99_ms"]),
                    fmt_ms(row["p999_ms"]),
                    str(row["errors"]),
                    fmt_cpu(cpu["server"]),
                    fmt_cpu(cpu["database"]),
                    *(fmt_cpu(cpu.get(part)) for part in extra),
                    fmt_cpu(cpu["load_generator"]),
                    fmt_cpu(cpu["total"]),
                    fmt_ms(db.get("p50_ms")),
                    fmt_ms(db.get("p99_ms")),
                    fmt_cpu(ceiling_us),
                    f"{cpu['server'] / ceiling_us:.2f}"
                    if part == "server" and ceiling_us and cpu["server"] is not None
                    else "-",
                ]
            )
    return _table(head, align, rows) if rows else None


def types_per_version(doc):
    """`types` ÷ `version` requests/s, each run and the median (the share of
    the HTTP layer's capacity a database round trip leaves; issue #22)."""
    by_name = {w["name"]: w for w in doc["workloads"] if not w.get("placement")}
    types, version = by_name.get("types"), by_name.get("version")
    if not types or not version or not types.get("median") or not version.get("median"):
        return None
    runs = [
        a / b
        for a, b in zip(
            (types.get("per_run") or {}).get("rps", []),
            (version.get("per_run") or {}).get("rps", []),
        )
        if b
    ]
    each = f" (each run: {' / '.join(f'{r:.2f}' for r in runs)})" if len(runs) > 1 else ""
    return f"types ÷ version: {types['median'] / version['median']:.2f} of the medians{each}"


def counters_table(doc):
    """The server's own counters per window (issue #22), one row per
    workload: each run's statements per write to PostgreSQL, driver
    wake-ups per request, and the requests and connections per runtime."""
    rows = []
    for workload in doc["workloads"]:
        each = [one for one in (workload.get("per_run") or {}).get("counters") or [] if one]
        if not each:
            continue

        def runs(key, fmt, each=each):
            return " / ".join(fmt(one[key]) if one[key] is not None else "-" for one in each)

        rows.append(
            [
                where(workload),
                runs("queries_per_write", lambda value: f"{value:.2f}"),
                runs("driver_polls_per_request", lambda value: f"{value:.2f}"),
                runs("requests_by_runtime", lambda split: "/".join(f"{v:.0f}" for v in split)),
                runs("connections_by_runtime", lambda split: "/".join(f"{v:.0f}" for v in split)),
            ]
        )
    if not rows:
        return None
    head = [
        "workload",
        "statements per write to PostgreSQL",
        "driver wake-ups per request",
        "requests per runtime",
        "connections per runtime",
    ]
    return _table(head, ["---"] + ["---:"] * 4, rows)


def notes(doc, out_path):
    lines = []
    for workload in doc["workloads"]:
        summary = workload["summary"]
        if summary["requests"] and summary["non_2xx"]:
            lines.append(
                f"**{workload['name']}: {summary['non_2xx']} of {summary['requests']} responses "
                f"({100 * summary['non_2xx'] / summary['requests']:.1f}%) had status >= 400**; "
                "req/s counts them, successful ones alone: "
                f"{fmt_rps(summary['rps_2xx']['median'])}/s"
            )
        errors = sum(summary["socket_errors"].values())
        if errors:
            kinds = ", ".join(
                f"{kind} {count}" for kind, count in summary["socket_errors"].items() if count
            )
            lines.append(f"**{workload['name']}: {errors} socket errors** ({kinds})")
    skipped = sorted(
        {
            workload["ceiling_skipped"]
            for workload in doc["workloads"]
            if workload.get("ceiling_skipped")
        }
    )
    lines += [f"ceiling skipped: {reason}" for reason in skipped]
    noise = doc.get("noise", {})
    threshold = doc["params"].get("noise_threshold_cores")
    if noise.get("other_cores_max") is not None:
        line = (
            f"noise: other work used up to {noise['other_cores_max']:.2f} cores in a window "
            f"(gate {threshold} cores); {noise['retries']} window(s) measured again"
        )
        if noise["noisy_kept"]:
            line = f"**{line}; {noise['noisy_kept']} kept noisy after the retry limit**"
        lines.append(line)
    topology = doc.get("topology") or {}
    if topology.get("hosts"):
        hosts = topology["hosts"]
        lines.append(
            f"hosts: network namespaces on {hosts['subnet']} ("
            + ", ".join(f"{host['name']} {host['address']}" for host in hosts["hosts"])
            + ")"
        )
    if topology.get("rtt_ms_measured"):
        lines.append(
            "round trips to the database, set → measured through the delay link: "
            + ", ".join(
                f"{rtt} ms → {ms:.2f} ms" for rtt, ms in topology["rtt_ms_measured"].items()
            )
        )
    if topology.get("no_hosts"):
        lines.append(f"**no hosts ({topology['no_hosts']}): measured on loopback only**")
    ratio = types_per_version(doc)
    if ratio:
        lines.append(ratio)
    cpu = doc.get("cpu", {})
    if cpu.get("method"):
        lines.append(f"CPU per request: {cpu['method']}, {cpu.get('note')}")
    rss = doc.get("server", {}).get("peak_rss_kib")
    if rss not in (None, ""):
        lines.append(f"server peak RSS (VmHWM): {int(rss) / 1024:.1f} MiB")
    banner = doc.get("server", {}).get("banner")
    if banner:
        lines.append(f"server: {banner}")
    params = doc["params"]
    lines.append(
        f"wrk: {params.get('connections')} connections, {params.get('threads')} threads, "
        f"{params.get('duration_s')} s per workload and per ceiling, {params.get('runs')} run(s), "
        f"interleaved; {params.get('contacts')} contacts"
    )
    pins = ", ".join(
        f"{who} on CPUs {cpus}" for who, cpus in (params.get("pin") or {}).items() if cpus
    )
    if pins:
        lines.append(f"pinned: {pins}")
    lines.append(f"results: {os.path.relpath(out_path)}")
    return "\n".join(f"- {line}" for line in lines)


def markdown(doc, out_path):
    parts = [saturation_table(doc)]
    fixed = fixed_rate_table(doc)
    if fixed:
        parts.append(
            "At fixed offered rates (oha, open model, latency from the intended send "
            "time; the ceiling at the same rates: pgbench --rate on the same SQL, nginx for "
            "/version):\n\n" + fixed
        )
    counted = counters_table(doc)
    if counted:
        parts.append("The server's own counters at saturation, each run (/metrics):\n\n" + counted)
    parts.append(notes(doc, out_path))
    return "\n\n".join(parts)


# --- several results side by side (pin, allocators) -------------------------------


def workload_rps(workload):
    """The median requests/s of a workload entry: schema 2's top-level
    `median`, or schema 1's summary."""
    if "median" in workload:
        return workload["median"]
    return ((workload.get("summary") or {}).get("rps") or {}).get("median")


def rps_side_by_side(docs, paths, labels=()):
    """The requests/s of several results documents side by side (pin's and
    allocators' tables): workload rows (in the order they
    first appear), one column per document, labelled by `labels` or else by
    the document's label, name or file name."""
    labels = list(labels)
    for index, doc in enumerate(docs):
        if index >= len(labels):
            labels.append(doc.get("label") or doc.get("name") or os.path.basename(paths[index]))
    names = []
    for doc in docs:
        for workload in doc.get("workloads", []):
            if workload["name"] not in names:
                names.append(workload["name"])
    lines = [
        "| workload | " + " | ".join(labels) + " |",
        "| --- | " + " | ".join("---:" for _ in labels) + " |",
    ]
    for name in names:
        cells = []
        for doc in docs:
            workload = next((w for w in doc.get("workloads", []) if w["name"] == name), None)
            rps = workload_rps(workload) if workload else None
            cells.append("-" if rps is None else f"{rps:.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "requests/s (median over each file's runs); files: "
        + ", ".join(os.path.relpath(path) for path in paths)
    )
    return "\n".join(lines)
