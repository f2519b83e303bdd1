#!/usr/bin/env python3
"""scripts/compare.py: the Python half of scripts/compare.sh.

  merge --impl NAME=RUN.json [--conformance NAME=CONF.json] [--info NAME:KEY=VALUE]
        [--set K=V] [--set-json K=JSON] --out-json F --out-md F
      One results file for the whole bake-off, from run.sh's JSON of each
      implementation (one of which measured the ceilings) and conformance.py's
      JSON of each; writes it and its markdown, and prints the markdown.
  chart FILE.json --out PATH [--out PATH...]
      Requests/s per workload per implementation, grouped bars on a log scale,
      with each workload's ceiling; PNG or SVG by the file's extension.
      Needs matplotlib (peers/setup.sh installs it into peers/.venv).

`merge` uses the standard library only, like bench.py.
"""

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import fmt_rps, fmt_us, machine_info, set_dotted  # noqa: E402

SCHEMA_VERSION = 1
REFERENCE = "reference"

# What each implementation is, for the tables and the chart's legend: the
# stack and its server model (processes x concurrency; peers/README.md has the
# pool sizes and versions).
STACKS = {
    "reference": "Rust: hyper + tokio-postgres (this repository)",
    "fastapi_asyncpg": "FastAPI + asyncpg, uvicorn: 1 worker per core, 1 event loop each",
    "fastapi_orm": "FastAPI + SQLAlchemy 2 async ORM (asyncpg), uvicorn: 1 worker per core",
    "fastapi_aiopg": "FastAPI + aiopg (psycopg2), uvicorn: 1 worker per core",
    "fastapi_aiopg_compat": "fastapi_aiopg_pypy's stack (FastAPI 0.128, aiopg, psycopg2cffi, "
                            "uvicorn h11 + asyncio) on CPython: 1 worker per core",
    "fastapi_aiopg_pypy": "the same stack on PyPy 3.9: 1 worker per core",
    "django_gthread": "Django REST framework, psycopg2, gunicorn gthread (WSGI): "
                      "1 worker per core x 4 threads",
    "django_uvicorn": "Django REST framework, psycopg2, uvicorn (ASGI): 1 worker per core, "
                      "each view in a thread of its request (asgiref)",
    "go_pgx": "Go net/http + pgx v4 (pgxpool, its statement cache): 1 process",
    "go_pq": "Go net/http + database/sql + lib/pq: 1 process",
}


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def pairs(items, sep="="):
    for item in items or []:
        if sep not in item:
            raise SystemExit(f"compare.py: expected NAME{sep}VALUE, got {item!r}")
        yield item.split(sep, 1)


def workload_cell(run_doc, name):
    """The numbers of one workload in one implementation's run.sh results."""
    w = next((w for w in run_doc.get("workloads", []) if w["name"] == name), None)
    if not w or not w["summary"]["rps"]:
        return None
    s = w["summary"]
    return {
        "rps": s["rps"]["median"],
        "rps_2xx": s["rps_2xx"]["median"] if s["rps_2xx"] else None,
        "p50_us": s["latency_us"]["p50"],
        "p99_us": s["latency_us"]["p99"],
        "max_us": s["latency_us"]["max"],
        "requests": s["requests"],
        "non_2xx": s["non_2xx"],
        "socket_errors": s["socket_errors"],
        "errors": s["non_2xx"] + sum(s["socket_errors"].values()),
    }


def ceilings_of(run_doc):
    out = {}
    for w in run_doc.get("workloads", []):
        s = w["summary"]
        if s.get("ceiling_rps"):
            out[w["name"]] = {"kind": w["ceiling"], "rps": s["ceiling_rps"]["median"],
                              "failed": s.get("ceiling_failed", 0)}
    return out


def cmd_merge(args):
    doc = {"schema": SCHEMA_VERSION, "kind": "compare", "date": None, "commit": None,
           "dirty": None, "command": None, "machine": machine_info(), "params": {},
           "versions": {}, "ceilings": {}, "implementations": [], "workloads": []}
    for key, value in pairs(args.set):
        set_dotted(doc, key, value)
    for key, value in pairs(args.set_json):
        set_dotted(doc, key, json.loads(value))
    for key, value in pairs(args.set_list):
        set_dotted(doc, key, [v for v in value.split(",") if v])

    conformance = {name: path for name, path in pairs(args.conformance)}
    info = {}
    for target, value in pairs(args.info):
        name, key = target.split(":", 1)
        info.setdefault(name, {})[key] = value

    workload_names = list(doc["params"].get("workloads") or [])
    for name, path in pairs(args.impl):
        impl = {"name": name, "stack": STACKS.get(name, name)}
        for key, value in info.get(name, {}).items():
            try:
                value = json.loads(value)
            except ValueError:
                pass
            set_dotted(impl, key, value)
        run_doc = load_json(path) if path and os.path.exists(path) else None
        impl["measured"] = run_doc is not None
        if run_doc:
            for w in run_doc.get("workloads", []):
                if w["name"] not in workload_names:
                    workload_names.append(w["name"])
            for wname, c in ceilings_of(run_doc).items():
                doc["ceilings"].setdefault(wname, dict(c, measured_with=name))
            if not doc["versions"]:
                doc["versions"] = {k: v for k, v in run_doc.get("versions", {}).items()
                                   if k in ("wrk", "nginx", "postgresql", "pgbench")}
                doc["postgresql"] = run_doc.get("postgresql")
            impl["conditions"] = run_doc.get("conditions")
        cpath = conformance.get(name)
        if cpath and os.path.exists(cpath):
            c = load_json(cpath)
            impl["conformance"] = {
                "passed": c["passed"], "failed": c["failed"], "skipped": c["skipped"],
                "failed_rules": [r["rule"] for r in c["rules"] if r["status"] == "FAIL"],
                "rules": c["rules"]}
        else:
            impl["conformance"] = None
        impl["run"] = run_doc
        doc["implementations"].append(impl)

    ref = next((i for i in doc["implementations"] if i["name"] == REFERENCE and i["run"]), None)
    for wname in workload_names:
        row = {"name": wname, "ceiling": doc["ceilings"].get(wname), "results": {}}
        ref_cell = workload_cell(ref["run"], wname) if ref else None
        for impl in doc["implementations"]:
            cell = workload_cell(impl["run"], wname) if impl["run"] else None
            if cell:
                cell["ratio_reference"] = (cell["rps"] / ref_cell["rps"]
                                           if ref_cell and ref_cell["rps"] else None)
                cell["ratio_ceiling"] = (cell["rps"] / row["ceiling"]["rps"]
                                         if row["ceiling"] and row["ceiling"]["rps"] else None)
            row["results"][impl["name"]] = cell
        doc["workloads"].append(row)

    os.makedirs(os.path.dirname(os.path.abspath(args.out_json)), exist_ok=True)
    tmp = args.out_json + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, args.out_json)
    text = markdown(doc, args.out_json, args.chart)
    with open(args.out_md, "w", encoding="utf-8") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


# --- markdown -----------------------------------------------------------------


def table(head, rows, left=1, align=None):
    """A markdown table; the first LEFT columns left-aligned, the others right."""
    align = align or ["---"] * left + ["---:"] * (len(head) - left)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def fmt_ratio(x):
    if x is None:
        return "-"
    return f"{x:.2f}" if x >= 0.095 else f"{x:.3f}"


def fmt_errors(cell):
    if cell is None:
        return "-"
    parts = []
    if cell["non_2xx"]:
        parts.append(f"{cell['non_2xx']} non-2xx")
    parts += [f"{v} {k}" for k, v in cell["socket_errors"].items() if v]
    return f"**{cell['errors']}** ({', '.join(parts)})" if parts else "0"


def fmt_busy(percent):
    return "-" if percent in (None, "") else f"{float(percent):.0f}%"


def fmt_bytes_kib(kib):
    return "-" if kib in (None, "") else f"{int(kib) / 1024:.0f} MiB"


def markdown(doc, json_path, charts):
    impls = doc["implementations"]
    names = [i["name"] for i in impls]
    rows_of = doc["workloads"]
    p = doc["params"]
    m = doc["machine"]
    out = [f"# Bake-off {doc.get('date') or ''}\n",
           f"Commit `{(doc.get('commit') or 'none')[:10]}`"
           f"{' (working tree differs from it)' if doc.get('dirty') else ''}; "
           f"`{doc.get('command')}`.\n",
           f"Machine: {m.get('cpu_model')}, {m.get('cores')} cores, "
           f"{(m.get('memory_bytes') or 0) / 2**30:.1f} GiB, Linux {m.get('kernel')}, "
           f"{m.get('os')}. Load average before the run: "
           f"{doc.get('conditions', {}).get('loadavg_before', '?')}.\n",
           f"wrk: {p.get('connections')} connections, {p.get('threads')} threads, "
           f"{p.get('duration_s')} s per workload after {p.get('warmup_s')} s of warm-up, "
           f"the same for every implementation, one after the other, on one PostgreSQL "
           f"({p.get('contacts')} contacts) over TCP on 127.0.0.1. Ceilings (nginx, pgbench) "
           f"measured once, for the same duration, with the first implementation's run.\n"]

    def ceiling_cell(row):
        c = row["ceiling"]
        return f"{c['kind']} {fmt_rps(c['rps'])}" if c else "-"

    def cells(fn):
        rows = []
        for row in rows_of:
            r = [row["name"], ceiling_cell(row)]
            for n in names:
                cell = row["results"].get(n)
                r.append(fn(cell) if cell else "-")
            rows.append(r)
        return rows

    head = ["workload", "ceiling req/s"] + names
    out.append("\n## Requests per second\n\n")
    out.append(table(head, cells(lambda c: fmt_rps(c["rps"]))))
    out.append("\n## Ratio to the reference (req/s ÷ reference's req/s)\n\n")
    out.append(table(head, cells(lambda c: fmt_ratio(c["ratio_reference"]))))
    out.append("\n## Ratio to the ceiling (req/s ÷ ceiling req/s)\n\n")
    out.append(table(head, cells(lambda c: fmt_ratio(c["ratio_ceiling"]))))
    out.append("\n## p99 latency\n\n")
    out.append(table(head, cells(lambda c: fmt_us(c["p99_us"]) if c["p99_us"] else "n/a")))
    out.append("\n## Errors (responses with status >= 400, and socket errors)\n\n")
    out.append(table(head, cells(fmt_errors)))

    # /contacts/for against /contacts/fetch, the study's own question.
    by_name = {row["name"]: row for row in rows_of}
    if "fetch100" in by_name and "for100" in by_name:
        r = ["for100 ÷ fetch100"]
        for n in names:
            a, b = by_name["for100"]["results"].get(n), by_name["fetch100"]["results"].get(n)
            r.append(fmt_ratio(a["rps"] / b["rps"]) if a and b and b["rps"] else "-")
        out.append("\n## /contacts/for against /contacts/fetch (req/s ratio)\n\n")
        out.append(table(["", *names], [r]))

    out.append("\n## Implementations\n\n")
    rows = []
    for i in impls:
        c = i.get("conformance")
        rows.append([
            i["name"], i["stack"],
            str(i.get("processes", "-")),
            fmt_bytes_kib(i.get("peak_rss_kib")),
            f"{i['ready_s']:.1f} s" if isinstance(i.get("ready_s"), (int, float)) else "-",
            fmt_busy((i.get("conditions") or {}).get("cpu_busy_percent_before")),
            str(c["passed"]) if c else "-",
            str(c["failed"]) if c else "-",
            str(c["skipped"]) if c else "-",
            ", ".join(c["failed_rules"]) if c and c["failed_rules"] else ("-" if c else "not run"),
            str(i.get("stopped", "-")),
        ])
    out.append(table(["implementation", "stack", "processes", "peak RSS (sum)", "ready in",
                      "CPUs busy before", "conformance passed", "failed", "skipped",
                      "failed rules", "stop"],
                     rows, align=["---", "---"] + ["---:"] * 7 + ["---", "---"]))

    notes = []
    for row in rows_of:
        for n in names:
            cell = row["results"].get(n)
            if cell and cell["errors"]:
                notes.append(f"**{n} / {row['name']}: {cell['errors']} errors**; "
                             f"successful answers alone: {fmt_rps(cell['rps_2xx'])}/s")
    if any(c and c["requests"] and not c["p99_us"]
           for row in rows_of for c in row["results"].values()):
        notes.append("p99 n/a: wrk reported 0, which is no measurement. wrk records one latency "
                     "per pipelined batch of 16; its coordinated-omission correction then adds "
                     "samples below the lowest recorded latency, which its percentile scan "
                     "(from that lowest value up) never reaches, so p90 and up come out as 0")
    for i in impls:
        if not i["measured"]:
            notes.append(f"**{i['name']}: not measured** ({i.get('failure', 'see the log')})")
    notes.append("CPUs busy before: how busy the machine's CPUs were in the second before "
                 "the implementation's measurement, with it idle (run.sh; above 10% means "
                 "other work was running)")
    notes.append("peak RSS: the sum of VmHWM over the implementation's processes "
                 "(shared pages counted once per process)")
    notes.append("conformance: scripts/conformance.py (without --slow: fib(40) skipped); "
                 "the deviations are explained in peers/README.md")
    notes.append("fastapi_aiopg_compat and fastapi_aiopg_pypy: one code and one set of pinned "
                 "versions on two interpreters, so their difference is the interpreter's; "
                 "PyPy's JIT compiles during the warm-up, and a short one (--quick) leaves it "
                 "colder than a long one (peers/README.md, section PyPy)")
    for chart in charts or []:
        notes.append(f"chart: {os.path.basename(chart)}")
    notes.append(f"results: {os.path.basename(json_path)}")
    out.append("\n" + "".join(f"- {n}\n" for n in notes))
    return "".join(out)


# --- chart --------------------------------------------------------------------

COLORS = {
    "reference": "#c0392b",
    "go_pgx": "#2471a3",
    "go_pq": "#85c1e9",
    "fastapi_asyncpg": "#27ae60",
    "fastapi_orm": "#7dcea0",
    "fastapi_aiopg": "#d4ac0d",
    "fastapi_aiopg_compat": "#b9770e",
    "fastapi_aiopg_pypy": "#e67e22",
    "django_gthread": "#8e44ad",
    "django_uvicorn": "#c39bd3",
}


def cmd_chart(args):
    import matplotlib  # only here: merge runs on any python3

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = load_json(args.file)
    names = [i["name"] for i in doc["implementations"] if i["run"]]
    rows = doc["workloads"]
    n = max(len(names), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(rows) + 2), 5.5), dpi=110)
    for k, name in enumerate(names):
        xs, ys = [], []
        for j, row in enumerate(rows):
            cell = row["results"].get(name)
            if cell and cell["rps"] > 0:
                xs.append(j - 0.4 + width * (k + 0.5))
                ys.append(cell["rps"])
        bars = ax.bar(xs, ys, width * 0.95, label=name, color=COLORS.get(name))
        for bar, y in zip(bars, ys):
            ax.annotate(f"{y:,.0f}", (bar.get_x() + bar.get_width() / 2, y),
                        xytext=(0, -3), textcoords="offset points", ha="center",
                        va="top", rotation=90, fontsize=6.5, color="white")
    labelled = False
    for j, row in enumerate(rows):
        c = row["ceiling"]
        if c and c["rps"] > 0:
            ax.hlines(c["rps"], j - 0.45, j + 0.45, colors="black", linestyles="dashed",
                      linewidth=1.2, label=None if labelled else "ceiling (nginx / pgbench)")
            ax.annotate(f"{c['kind']} {c['rps']:,.0f}", (j, c["rps"]), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=6.5)
            labelled = True
    lowest = min((cell["rps"] for row in rows for cell in row["results"].values()
                  if cell and cell["rps"] > 0), default=10)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["name"] for r in rows], rotation=20, ha="right")
    ax.set_ylabel("requests/s (log scale)")
    p, m = doc["params"], doc["machine"]
    ax.set_title(f"Bake-off {(doc.get('date') or '')[:10]}: requests/s per workload\n"
                 f"wrk -c{p.get('connections')} -t{p.get('threads')}, {p.get('duration_s')} s each; "
                 f"{m.get('cores')} cores ({m.get('cpu_model')})", fontsize=9)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.set_axisbelow(True)
    # A power of ten under the smallest bar, so that every bar has a visible height.
    ax.set_ylim(bottom=10 ** math.floor(math.log10(lowest / 3)), top=ax.get_ylim()[1] * 3)
    ax.legend(fontsize=7, ncol=4, loc="upper right")
    fig.tight_layout()
    for path in args.out:
        fig.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
    return 0


def main():
    ap = argparse.ArgumentParser(prog="compare.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("merge")
    p.add_argument("--impl", action="append", required=True,
                   help="NAME=PATH of run.sh's JSON (PATH may be missing: not measured)")
    p.add_argument("--conformance", action="append", help="NAME=PATH of conformance.py's JSON")
    p.add_argument("--info", action="append", help="NAME:KEY=VALUE about an implementation")
    p.add_argument("--set", action="append", help="KEY=VALUE, dotted keys nest")
    p.add_argument("--set-json", action="append", help="KEY=JSON, dotted keys nest")
    p.add_argument("--set-list", action="append", help="KEY=A,B,C: a list of strings")
    p.add_argument("--chart", action="append", help="the chart file(s), named in the notes")
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=cmd_merge)
    p = sub.add_parser("chart")
    p.add_argument("file")
    p.add_argument("--out", action="append", required=True)
    p.set_defaults(func=cmd_chart)
    args = ap.parse_args()
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
