"""The load generators: wrk (closed loop: capacity), oha (open model: latency
at a fixed offered rate, corrected for coordinated omission) and pgbench
(the database's ceiling, and its latency at a fixed rate). Each is run here
and its output parsed into plain dicts; the parsers are pure functions, so
the unit tests feed them captured outputs."""

import json
import os
import re
import shutil
import subprocess

from harness import stats
from harness.tools import SCRIPTS, Fatal, log, tool_path, warn

# The oha release the harness installs when it is missing: the newest that
# builds with this project's toolchain and has -q, --latency-correction and
# JSON output (docs/benchmarks.md).
OHA_VERSION = "1.16.0"


def run_tool(argv, out_path, env=None, timeout=None):
    """Runs a load generator to completion, stdout and stderr into out_path.
    Returns (status, text). A Ctrl-C reaches it too (same process group)."""
    with open(out_path, "w", encoding="utf-8") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            status = process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
    with open(out_path, encoding="utf-8", errors="replace") as file:
        return status, file.read()


# --- wrk ----------------------------------------------------------------------


def wrk_argv(wrk, workload, base_url, seconds, connections, threads, timeout_s, contacts):
    from harness.workloads import wrk_arguments

    argv = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        f"{timeout_s}s",
        "-s",
        os.path.join(SCRIPTS, "wrk", workload.wrk_script),
        base_url + workload.path,
    ]
    extra = wrk_arguments(workload, contacts)
    return argv + (["--", *extra] if extra else [])


def parse_wrk(text):
    """wrk's output → {requests, duration_s, rps, bytes, latency_us, non_2xx,
    socket_errors}. The numbers come from scripts/wrk/report.lua's done()
    line (exact counts, µs); wrk's own summary lines only cross-check them."""
    report = None
    for line in text.splitlines():
        if line.startswith("BAKEOFF_JSON "):
            report = json.loads(line[len("BAKEOFF_JSON ") :])
    if report is None:
        raise ValueError("no BAKEOFF_JSON line in the wrk output")
    duration_s = report["duration_us"] / 1e6
    errors = report["errors"]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx and int(non2xx.group(1)) != errors["status"]:
        warn(f"wrk printed {non2xx.group(1)} non-2xx responses, the Lua report {errors['status']}")
    socket_line = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    kinds = ("connect", "read", "write", "timeout")
    if socket_line and [int(group) for group in socket_line.groups()] != [
        errors[status] for status in kinds
    ]:
        warn(f"wrk printed socket errors {socket_line.groups()}, the Lua report differs")
    return {
        "requests": report["requests"],
        "duration_s": duration_s,
        "rps": report["requests"] / duration_s if duration_s > 0 else 0.0,
        "bytes": report["bytes"],
        "latency_us": report["latency_us"],
        # wrk counts statuses >= 400 here (its "Non-2xx or 3xx" line).
        "non_2xx": errors["status"],
        "socket_errors": {status: errors[status] for status in kinds},
    }


# --- pgbench --------------------------------------------------------------------


def pgbench_argv(
    pgbench, script_path, variables, seconds, clients, threads, db_url, rate=None, log_prefix=None
):
    argv = [
        pgbench,
        "-M",
        "prepared",
        "-n",
        "-c",
        str(clients),
        "-j",
        str(threads),
        "-T",
        str(seconds),
        "-f",
        script_path,
    ]
    for variable in variables:
        argv += ["-D", variable]
    if rate is not None:
        argv += ["--rate", f"{rate:g}"]
    if log_prefix is not None:
        # One line per transaction: the latencies the percentiles come from.
        argv += ["-l", "--log-prefix", log_prefix]
    return argv + [db_url]


def parse_pgbench(text):
    """pgbench's summary → {requests, duration_s, rps, failed, latency_avg_us}
    (tps without the initial connection time)."""
    tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
    if not tps:
        raise ValueError("no tps line in the pgbench output")
    processed = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    latency = re.search(r"latency average = ([0-9.]+) ms", text)
    duration = re.search(r"^duration: (\d+) s", text, re.M)
    return {
        "requests": int(processed.group(1)) if processed else None,
        "duration_s": float(duration.group(1)) if duration else None,
        "rps": float(tps.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "latency_avg_us": float(latency.group(1)) * 1000 if latency else None,
    }


def parse_pgbench_log(lines):
    """Latencies in µs from pgbench's per-transaction log (-l): a line is
    `client transaction time script epoch_s epoch_us [lag]`. Under --rate,
    pgbench measures `time` from the transaction's scheduled start, not its
    actual start (pgbench.c, processXactStats: now - txn_scheduled), so it
    is what a client sending on schedule waited, as oha's latency correction
    measures it. Skipped and failed transactions (a word, not a number, in
    the time field) are left out."""
    latencies = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[2].isdigit():
            latencies.append(int(fields[2]))
    return latencies


def latency_percentiles_ms(latencies_us):
    """{p50_ms, p90_ms, p99_ms, p999_ms} of a list of µs latencies."""
    ordered = sorted(latencies_us)
    out = {}
    for key, pct in (("p50_ms", 50), ("p90_ms", 90), ("p99_ms", 99), ("p999_ms", 99.9)):
        value = stats.percentile(ordered, pct)
        out[key] = value / 1000.0 if value is not None else None
    return out


# --- oha --------------------------------------------------------------------------


def ensure_oha():
    """oha's path, installed with cargo (a few minutes, once) when missing."""
    path = tool_path("oha")
    if path:
        return path
    command = f"cargo install oha --version {OHA_VERSION} --locked"
    if not shutil.which("cargo"):
        raise Fatal(
            f"oha is missing, and cargo to install it: install Rust with rustup, then run: "
            f"{command} (or measure without fixed rates: --no-fixed-rate)"
        )
    log(f"oha is missing: running {command} (about 8 minutes on 2 cores, once)")
    status = subprocess.call(
        ["cargo", "install", "oha", "--version", OHA_VERSION, "--locked"], stdout=2
    )
    path = tool_path("oha")
    if status != 0 or not path:
        raise Fatal(f"{command} failed; run it yourself and retry")
    return path


def oha_argv(oha, url, seconds, rate, connections, urls_file=None):
    argv = [
        oha,
        "-z",
        f"{seconds}s",
        "-q",
        f"{rate:g}",
        "-c",
        str(connections),
        "--latency-correction",
        "--no-tui",
        "--output-format",
        "json",
    ]
    if urls_file:
        # One URL per line, picked at random per request (contact_random).
        return argv + ["--urls-from-file", urls_file]
    return argv + [url]


def parse_oha(text):
    """oha's JSON → {requests, ok, errors, aborted_at_end, duration_s, rps,
    p50_ms .. p999_ms}. oha gives times in seconds; latencies here are from
    each request's intended send time (--latency-correction). Requests still
    in flight when the duration ends ("aborted due to deadline") are no
    errors of the server: counted apart, and in neither the rate nor the
    latencies."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON in the oha output")
    doc = json.loads(text[start:])
    summary = doc["summary"]
    statuses = {
        int(status): count for status, count in (doc.get("statusCodeDistribution") or {}).items()
    }
    error_kinds = doc.get("errorDistribution") or {}
    aborted = sum(count for kind, count in error_kinds.items() if "aborted due to deadline" in kind)
    errors = sum(error_kinds.values()) - aborted
    answered = sum(statuses.values())
    percentiles = doc.get("latencyPercentiles") or {}

    def ms(key):
        value = percentiles.get(key)
        return value * 1000.0 if value is not None else None

    duration = summary.get("total")
    return {
        "requests": answered,
        "ok": sum(count for status, count in statuses.items() if 200 <= status < 300),
        "errors": errors,
        "aborted_at_end": aborted,
        "duration_s": duration,
        "rps": answered / duration if duration else None,
        "p50_ms": ms("p50"),
        "p90_ms": ms("p90"),
        "p99_ms": ms("p99"),
        "p999_ms": ms("p99.9"),
    }
