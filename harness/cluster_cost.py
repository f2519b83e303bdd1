"""`cluster cost`: what the layers cost, on a deployment of its own.

The same open-loop load (cluster_load.py: the failure tests' mix, every body
checked) at one fixed rate along three paths, interleaved in rounds (A B C,
A B C):

- front:    client → HAProxy → the N instances → PgBouncer → HAProxy's
            primary port → PostgreSQL (the deployment as it runs);
- instance: client → one instance → PgBouncer → HAProxy's primary port →
            PostgreSQL (the HTTP front left out);
- bare:     client → an instance of its own, on a host of its own, with
            prepared statements straight to the primary (no PgBouncer, no
            HAProxy anywhere).

For each window: p50 and p99 of the 200s' latency (from the due time) and
CPU µs per request of HAProxy, PgBouncer, the instances and PostgreSQL,
each process tree moved into a cgroup of its own for the measurement
(cpu.Accounting: HAProxy is its "front" component).
HAProxy proxies PgBouncer's server connections too, so its CPU on the
`instance` path is what the database hop costs it, and the difference to
`front` what the HTTP front costs. Also the front's capacity for one
contact with wrk (for the failure tests' "about half of capacity").
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from harness import cluster_report as report
from harness import cluster_state as cs
from harness import cluster_up, cpu, stats, tools
from harness.cluster_load import Expected, OpenLoop
from harness.tools import Fatal, log

PATHS = ("front", "instance", "bare")
COMPONENTS = {
    "front": "haproxy",
    "pooler": "pgbouncer",
    "server": "instances",
    "database": "postgres",
}


def idle_rate(accounting, seconds):
    """{component: CPU ns per second} with no load: health checks, Patroni's
    loop and its queries, replication. Subtracted from the loaded windows."""
    before, mark = accounting.usage_ns(), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu.deltas(before, accounting.usage_ns()), time.monotonic() - mark
    return {component: ns / elapsed for component, ns in used.items()}


def per_request_us(used, idle, elapsed, requests):
    """CPU µs per request of each component, its idle use taken out."""
    return {
        label: round(max(used[component] - idle[component] * elapsed, 0) / 1000 / requests, 1)
        for component, label in COMPONENTS.items()
    }


def measure_window(url, rate, seconds, expected, accounting, timeout, idle):
    """One window: (latency figures, CPU µs per request per component)."""
    load = OpenLoop(url, rate, expected, timeout).start()
    time.sleep(1.0)  # warm-up: connections opened, not measured
    before, mark = accounting.usage_ns(), time.monotonic()
    time.sleep(seconds)
    after, end = accounting.usage_ns(), time.monotonic()
    answers = load.stop()
    window = [a for a in answers if mark <= a.intended < end]
    summary = report.summarize(window, mark, end)
    used = cpu.deltas(before, after)
    return summary, per_request_us(used, idle, end - mark, max(summary["sent"], 1))


def capacity(url, seconds):
    """wrk's requests/s for one contact through `url` (None without wrk)."""
    wrk = tools.tool_path("wrk")
    if not wrk:
        return None
    result = subprocess.run(
        [wrk, "-t2", "-c32", f"-d{seconds}s", f"{url}/contacts/17"],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    return float(match.group(1)) if match else None


def cmd_cost(options, argv):
    rate = options.rate or (150.0 if options.quick else 500.0)
    seconds = options.duration or (4 if options.quick else 15)
    runs = options.runs or (1 if options.quick else 3)
    binary = cluster_up.resolve_binary(options)
    directory = tempfile.mkdtemp(prefix="bakeoff-cluster-cost-")
    cleanup = tools.Cleanup()
    started, load_before = time.monotonic(), os.getloadavg()
    windows = {path: [] for path in PATHS}
    idles, meta = [], {}
    try:
        d, _ = cluster_up.bring_up(directory, options, binary, cleanup, extra_hosts=("bare",))
        log("an instance of its own on host bare, straight to the primary")
        d.start_instance("bare", db_path="direct")
        meta = cluster_up.describe(d)
        accounting = cpu.Accounting()
        cleanup.push(accounting.close)
        if accounting.parent is None:
            raise Fatal("no writable cgroup hierarchy: cannot count each layer's CPU")
        components = d.components
        accounting.adopt("front", components["front"]["process"]["pid"])
        accounting.adopt("pooler", components["pooler"]["process"]["pid"])
        for component in components.values():
            if component["role"] == "instance":
                accounting.adopt("server", component["process"]["pid"])
        primary = d.primary()
        accounting.adopt("database", cs.postmaster_pid(components[primary]["data_dir"]))
        expected = Expected.from_database(d.db_url(primary))
        urls = {
            "front": d.state["front_url"],
            "instance": d.hosts["app1"].url(8000),
            "bare": d.hosts["bare"].url(8000),
        }
        for run in range(1, runs + 1):
            log(f"round {run}/{runs}: idle, {seconds} s")
            idle = idle_rate(accounting, seconds)
            idles.append({label: round(idle[c] / 1e6, 1) for c, label in COMPONENTS.items()})
            for path in PATHS:
                log(f"round {run}/{runs}: {path}, {rate:g} req/s for {seconds} s")
                windows[path].append(
                    measure_window(
                        urls[path], rate, seconds, expected, accounting, options.timeout, idle
                    )
                )
        front_capacity = capacity(urls["front"], 3 if options.quick else 10)
    finally:
        cleanup.run()
        shutil.rmtree(directory, ignore_errors=True)
    print(table(windows, rate, seconds, runs))
    idle_cells = ", ".join(
        f"{label} {_median_range([one[label] for one in idles])}" for label in COMPONENTS.values()
    )
    print(f"\nIdle (taken out of the figures above), CPU ms per second: {idle_cells}")
    if front_capacity:
        print(
            f"\nThe front's capacity for /contacts/17 (wrk -t2 -c32, on the same 2 cores): "
            f"{front_capacity:.0f} req/s; {rate:g} req/s is {100 * rate / front_capacity:.0f}% "
            "of it. The failure tests' client is capped by Python, not by the deployment."
        )
    command = tools.quote_command(["scripts/cluster.sh", *argv])
    print(
        f"\n{tools.fmt_duration(time.monotonic() - started)}; load average {load_before[0]:.1f} "
        f"at the start; command: {command}"
    )
    out = options.out
    if out is None and not options.quick:
        commit, dirty = tools.git_state()
        out = tools.result_path("cluster-cost", commit, dirty, label=options.label)
    if out:
        document = {
            "kind": "cluster-cost",
            "command": command,
            "rate": rate,
            "window_s": seconds,
            "rounds": runs,
            "rtt_ms": options.rtt_ms,
            "load_average_at_start": load_before,
            "front_capacity_rps": front_capacity,
            "idle_cpu_ms_per_s": idles,
            "windows": {
                path: [{"summary": s, "cpu_us_per_request": c} for s, c in rows]
                for path, rows in windows.items()
            },
            **meta,
        }
        with open(out, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
            file.write("\n")
        log(f"results: {os.path.relpath(out)}")
    failures = sum(w[0]["sent"] - w[0]["ok"] for path in PATHS for w in windows[path])
    return 0 if failures == 0 else 1


def _median_range(values):
    figure = stats.summary(values)
    if figure is None:
        return "-"
    if figure["n"] == 1:
        return f"{figure['median']:g}"
    return f"{figure['median']:g} ({figure['min']:g}–{figure['max']:g})"


def table(windows, rate, seconds, runs):
    """Markdown: per path, the median of the windows (min–max)."""
    head = ["path", "p50 ms", "p99 ms", *COMPONENTS.values(), "not 200"]
    lines = [
        f"At {rate:g} req/s, {seconds} s windows, {runs} round(s); CPU in µs per request; "
        "median (min–max) of the rounds.",
        "",
        "| " + " | ".join(head) + " |",
        "| --- |" + " ---: |" * (len(head) - 1),
    ]
    for path in PATHS:
        rows = windows[path]
        cells = [
            _median_range([s["ok_p50_ms"] for s, _ in rows]),
            _median_range([s["ok_p99_ms"] for s, _ in rows]),
        ]
        cells += [_median_range([c[label] for _, c in rows]) for label in COMPONENTS.values()]
        cells.append(str(sum(s["sent"] - s["ok"] for s, _ in rows)))
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_parser(actions, add_deployment_options):
    cost = actions.add_parser(
        "cost",
        help="the layers' CPU per request and latency (their own deployment)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_deployment_options(cost)
    add = cost.add_argument
    add("--quick", action="store_true", help="150 req/s, 4 s windows, 1 round")
    add("--rate", type=float, help="requests per second (default 500)")
    add("--duration", type=int, help="seconds per window (default 15)")
    add("--runs", type=int, help="rounds (default 3)")
    add("--timeout", type=float, default=2.0, help="a request's deadline (2 s)")
    add(
        "--out",
        help="the results file (default: results/<date>-<commit>-cluster-cost[-LABEL].json)",
    )
    add("--label", default="", help="a label for the file name, e.g. the setting a run changes")
    cost.set_defaults(func=cmd_cost)
