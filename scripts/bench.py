#!/usr/bin/env python3
"""scripts/bench.py: the Python half of the benchmark scripts (scripts/*.sh).

Everything that is JSON, HTTP or arithmetic lives here, so that no shell
script assembles JSON by hand or parses numbers with sed:

  free-port                      print a free TCP port on 127.0.0.1
  cpu-busy [--seconds S]         percent of CPU time busy over S seconds
  http-get URL                   print the body of a GET (exit 1 unless 2xx)
  wait-http URL [--status S] [--timeout T]
                                 poll URL until it answers with status S
  parse-wrk FILE ...             one wrk run's output -> one JSON line
  parse-pgbench FILE ...         one pgbench run's output -> one JSON line
  report --measurements F --out F [--set K=V] [--set-json K=JSON] [--set-list K=A,B]
                                 results JSON file + markdown table on stdout
  compare FILE... [--label L]    requests/s of several result files side by side

Standard library only: python3 is on every machine the scripts run on.
"""

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import sys
import time
import urllib.error
import urllib.request

# Bumped whenever a field of the results file changes meaning.
SCHEMA_VERSION = 1


# --- small network helpers -------------------------------------------------


def cmd_free_port(_args):
    # The OS picks a free port; closing the socket frees it again for the
    # caller. Another process could take it in between, which is harmless on
    # a benchmark machine: the caller's start then fails loudly.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def http_get(url, timeout=2.0):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, ValueError):
        return 0, b""


def cmd_http_get(args):
    status, body = http_get(args.url, timeout=10)
    sys.stdout.buffer.write(body)
    return 0 if 200 <= status < 300 else 1


def cmd_wait_http(args):
    deadline = time.monotonic() + args.timeout
    status = 0
    while time.monotonic() < deadline:
        status, _ = http_get(args.url)
        if status == args.status:
            return 0
        time.sleep(0.1)
    print(
        f"{args.url} answered {status or 'nothing'}, not {args.status}, within {args.timeout:g}s",
        file=sys.stderr,
    )
    return 1


def cpu_times():
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def cmd_cpu_busy(args):
    """Percent of all CPUs' time spent busy over the next few seconds."""
    total0, idle0 = cpu_times()
    time.sleep(args.seconds)
    total1, idle1 = cpu_times()
    total = total1 - total0
    print(f"{100.0 * (total - (idle1 - idle0)) / total if total else 0.0:.1f}")


# --- parsing the tools' output ----------------------------------------------


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def cmd_parse_wrk(args):
    """wrk output -> JSON line. The numbers come from report.lua's done()."""
    text = read_text(args.file)
    report = None
    for line in text.splitlines():
        if line.startswith("BAKEOFF_JSON "):
            report = json.loads(line[len("BAKEOFF_JSON ") :])
    if report is None:
        print(f"no BAKEOFF_JSON line in the wrk output ({args.file}):\n{text}", file=sys.stderr)
        return 1
    duration_s = report["duration_us"] / 1e6
    errors = report["errors"]
    # Cross-check with wrk's own summary lines: both come from the same
    # counters, so a difference means the Lua report is broken.
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_line = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if non2xx and int(non2xx.group(1)) != errors["status"]:
        print(
            f"warning: wrk printed {non2xx.group(1)} non-2xx responses, "
            f"the Lua report {errors['status']}",
            file=sys.stderr,
        )
    if socket_line:
        printed = [int(g) for g in socket_line.groups()]
        counted = [errors[k] for k in ("connect", "read", "write", "timeout")]
        if printed != counted:
            print(
                f"warning: wrk printed socket errors {printed}, the Lua report {counted}",
                file=sys.stderr,
            )
    out = {
        "workload": args.workload,
        "role": args.role,
        "run": args.run,
        "tool": "wrk",
        "target": args.kind,
        "url": args.url,
        "requests": report["requests"],
        "duration_s": duration_s,
        "rps": report["requests"] / duration_s if duration_s > 0 else 0.0,
        "bytes": report["bytes"],
        "latency_us": report["latency_us"],
        # wrk counts statuses >= 400 here (its "Non-2xx or 3xx" line).
        "non_2xx": errors["status"],
        "socket_errors": {k: errors[k] for k in ("connect", "read", "write", "timeout")},
    }
    print(json.dumps(out))
    return 0


def cmd_parse_pgbench(args):
    """pgbench output -> JSON line (tps without the initial connection time)."""
    text = read_text(args.file)
    tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
    if not tps:
        print(f"no tps line in the pgbench output ({args.file}):\n{text}", file=sys.stderr)
        return 1
    processed = re.search(r"number of transactions actually processed: (\d+)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    latency = re.search(r"latency average = ([0-9.]+) ms", text)
    duration = re.search(r"^duration: (\d+) s", text, re.M)
    out = {
        "workload": args.workload,
        "role": "ceiling",
        "run": args.run,
        "tool": "pgbench",
        "target": "pgbench",
        "requests": int(processed.group(1)) if processed else None,
        "duration_s": float(duration.group(1)) if duration else None,
        "rps": float(tps.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
        "latency_avg_us": float(latency.group(1)) * 1000 if latency else None,
        "script": read_text(args.script),
        "variables": args.var,
        "pgoptions": args.pgoptions,
    }
    print(json.dumps(out))
    return 0


# --- machine ----------------------------------------------------------------


def machine_info():
    cpu_model = None
    try:
        for line in read_text("/proc/cpuinfo").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        m = re.search(r"^MemTotal:\s+(\d+) kB", read_text("/proc/meminfo"), re.M)
        memory = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    os_name = None
    try:
        m = re.search(r'^PRETTY_NAME="?([^"\n]*)', read_text("/etc/os-release"), re.M)
        os_name = m.group(1) if m else None
    except OSError:
        pass
    return {
        "cpu_model": cpu_model or platform.processor() or None,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "memory_bytes": memory,
        "os": os_name,
        "arch": platform.machine(),
    }


# --- report -----------------------------------------------------------------


def set_dotted(tree, key, value):
    parts = key.split(".")
    for p in parts[:-1]:
        tree = tree.setdefault(p, {})
    tree[parts[-1]] = value


def split_kv(item):
    if "=" not in item:
        raise SystemExit(f"bench.py: expected KEY=VALUE, got {item!r}")
    return item.split("=", 1)


def fmt_us(us):
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}µs"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1e6:.2f}s"


def fmt_rps(rps):
    return "-" if rps is None else f"{rps:.0f}"


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def summarize(entry):
    """Per-workload summary over its runs: the numbers the table shows."""
    server = [r["server"] for r in entry["runs"] if r.get("server")]
    ceiling = [r["ceiling"] for r in entry["runs"] if r.get("ceiling")]
    rps = spread([s["rps"] for s in server])
    ceiling_rps = spread([c["rps"] for c in ceiling])
    summary = {
        "rps": rps,
        # Latency percentiles: the median over runs; max: the worst of all.
        "latency_us": {
            "p50": statistics.median(s["latency_us"]["p50"] for s in server) if server else None,
            "p99": statistics.median(s["latency_us"]["p99"] for s in server) if server else None,
            "max": max(s["latency_us"]["max"] for s in server) if server else None,
        },
        "non_2xx": sum(s["non_2xx"] for s in server),
        "requests": sum(s["requests"] for s in server),
        # Successful answers only: a server that sheds load with fast 503s
        # would otherwise look faster for it.
        "rps_2xx": spread(
            [(s["requests"] - s["non_2xx"]) / s["duration_s"] for s in server if s["duration_s"]]
        ),
        "socket_errors": {
            k: sum(s["socket_errors"][k] for s in server)
            for k in ("connect", "read", "write", "timeout")
        },
        "ceiling_rps": ceiling_rps,
        "ceiling_failed": sum(c.get("failed", 0) or 0 for c in ceiling),
        "ratio": (
            rps["median"] / ceiling_rps["median"]
            if rps and ceiling_rps and ceiling_rps["median"]
            else None
        ),
    }
    return summary


def markdown_table(doc):
    runs = doc["params"].get("runs", 1)
    head = ["workload", "req/s"]
    if runs > 1:
        head.append(f"min–max ({runs} runs)")
    head += ["p50", "p99", "max", "non-2xx", "socket errors", "ceiling", "ceiling req/s", "ratio"]
    align = ["---"] + ["---:"] * (len(head) - 1)
    align[head.index("ceiling")] = "---"
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for w in doc["workloads"]:
        s = w["summary"]
        errors = s["socket_errors"]
        total = sum(errors.values())
        err_cell = str(total)
        if total:
            err_cell += " (" + ", ".join(f"{k} {v}" for k, v in errors.items() if v) + ")"
        row = [w["name"], fmt_rps(s["rps"]["median"] if s["rps"] else None)]
        if runs > 1:
            row.append(f"{s['rps']['min']:.0f}–{s['rps']['max']:.0f}" if s["rps"] else "-")
        row += [
            fmt_us(s["latency_us"]["p50"]),
            fmt_us(s["latency_us"]["p99"]),
            fmt_us(s["latency_us"]["max"]),
            str(s["non_2xx"]),
            err_cell,
            w["ceiling"]
            if w["ceiling"] != "none"
            else ("skipped" if w.get("ceiling_skipped") else "-"),
            fmt_rps(s["ceiling_rps"]["median"] if s["ceiling_rps"] else None),
            f"{s['ratio']:.2f}" if s["ratio"] is not None else "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def cmd_report(args):
    # The keys a reader looks for first come first.
    doc = {
        "schema": SCHEMA_VERSION,
        "name": None,
        "label": None,
        "date": None,
        "commit": None,
        "dirty": None,
        "command": None,
        "machine": machine_info(),
        "versions": {},
        "params": {},
    }
    for item in args.set or []:
        key, value = split_kv(item)
        set_dotted(doc, key, value)
    for item in args.set_json or []:
        key, value = split_kv(item)
        set_dotted(doc, key, json.loads(value))
    for item in args.set_list or []:
        key, value = split_kv(item)
        set_dotted(doc, key, [v for v in value.split(",") if v])

    measurements = []
    with open(args.measurements, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                measurements.append(json.loads(line))

    # Workloads in the order they ran; each with its runs, server and ceiling.
    workloads = {}
    for name in doc["params"].get("workloads", []):
        workloads[name] = {"name": name, "runs": {}}
    for m in measurements:
        entry = workloads.setdefault(m["workload"], {"name": m["workload"], "runs": {}})
        entry["runs"].setdefault(m["run"], {"run": m["run"]})[m["role"]] = m
    info = doc.pop("workload_info", {})
    out = []
    for entry in workloads.values():
        entry.update(info.get(entry["name"], {}))
        entry.setdefault("ceiling", "none")
        entry["runs"] = [entry["runs"][k] for k in sorted(entry["runs"])]
        entry["summary"] = summarize(entry)
        out.append(entry)
    doc["workloads"] = out

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, args.out)

    print(markdown_table(doc))
    print()
    notes = []
    for w in doc["workloads"]:
        s = w["summary"]
        if s["requests"] and s["non_2xx"]:
            notes.append(
                f"**{w['name']}: {s['non_2xx']} of {s['requests']} responses "
                f"({100 * s['non_2xx'] / s['requests']:.1f}%) had status >= 400**; "
                f"req/s counts them, successful ones alone: "
                f"{fmt_rps(s['rps_2xx']['median'])}/s"
            )
        errors = sum(s["socket_errors"].values())
        if errors:
            notes.append(
                f"**{w['name']}: {errors} socket errors** "
                f"({', '.join(f'{k} {v}' for k, v in s['socket_errors'].items() if v)})"
            )
    skipped = sorted({w["ceiling_skipped"] for w in doc["workloads"] if w.get("ceiling_skipped")})
    notes += [f"ceiling skipped: {reason}" for reason in skipped]
    rss = doc.get("server", {}).get("peak_rss_kib")
    if rss not in (None, ""):
        notes.append(f"server peak RSS (VmHWM): {int(rss) / 1024:.1f} MiB")
    banner = doc.get("server", {}).get("banner")
    if banner:
        notes.append(f"server: {banner}")
    p = doc["params"]
    notes.append(
        f"wrk: {p.get('connections')} connections, {p.get('threads')} threads, "
        f"{p.get('duration_s')} s per workload and per ceiling, {p.get('runs')} run(s); "
        f"{p.get('contacts')} contacts"
    )
    if p.get("pin"):
        pins = ", ".join(f"{k} on CPUs {v}" for k, v in p["pin"].items() if v)
        if pins:
            notes.append(f"pinned: {pins}")
    notes.append(f"results: {os.path.relpath(args.out)}")
    for n in notes:
        print(f"- {n}")
    return 0


def cmd_compare(args):
    docs = []
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            docs.append(json.load(f))
    labels = list(args.label or [])
    for i, d in enumerate(docs):
        if i >= len(labels):
            labels.append(d.get("label") or d.get("name") or os.path.basename(args.files[i]))
    names = []
    for d in docs:
        for w in d["workloads"]:
            if w["name"] not in names:
                names.append(w["name"])
    print("| workload | " + " | ".join(labels) + " |")
    print("| --- | " + " | ".join("---:" for _ in labels) + " |")
    for name in names:
        cells = []
        for d in docs:
            w = next((w for w in d["workloads"] if w["name"] == name), None)
            rps = w["summary"]["rps"] if w else None
            cells.append(fmt_rps(rps["median"]) if rps else "-")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    print(
        "requests/s (median over each file's runs); files: "
        + ", ".join(os.path.relpath(p) for p in args.files)
    )
    return 0


def main():
    # Die of SIGINT like any tool on Ctrl-C (no KeyboardInterrupt traceback),
    # so that the calling script sees the signal and stops too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    ap = argparse.ArgumentParser(
        prog="bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    sub.add_parser("free-port").set_defaults(func=cmd_free_port)

    p = sub.add_parser("cpu-busy")
    p.add_argument("--seconds", type=float, default=1.0)
    p.set_defaults(func=cmd_cpu_busy)

    p = sub.add_parser("http-get")
    p.add_argument("url")
    p.set_defaults(func=cmd_http_get)

    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_wait_http)

    p = sub.add_parser("parse-wrk")
    p.add_argument("file")
    p.add_argument("--workload", required=True)
    p.add_argument("--role", required=True, choices=["server", "ceiling"])
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--kind", required=True, help="what answered: server or nginx")
    p.add_argument("--url", required=True)
    p.set_defaults(func=cmd_parse_wrk)

    p = sub.add_parser("parse-pgbench")
    p.add_argument("file")
    p.add_argument("--workload", required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--script", required=True)
    p.add_argument("--var", action="append", default=[], help="a -D NAME=VALUE given to pgbench")
    p.add_argument("--pgoptions", default="", help="PGOPTIONS pgbench ran with (session settings)")
    p.set_defaults(func=cmd_parse_pgbench)

    p = sub.add_parser("report")
    p.add_argument("--measurements", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", help="KEY=VALUE, dotted keys nest")
    p.add_argument("--set-json", action="append", help="KEY=JSON, dotted keys nest")
    p.add_argument("--set-list", action="append", help="KEY=A,B,C: a list of strings")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare")
    p.add_argument("files", nargs="+")
    p.add_argument("--label", action="append", help="column label, in file order")
    p.set_defaults(func=cmd_compare)

    args = ap.parse_args()
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
