"""docs/FINDINGS.md's tables, generated from the results files they cite:
`python3 -m harness findings docs/FINDINGS.md` rewrites every block between
a marker and its end, `--check` says whether one is stale (CI runs it, and a
unit test regenerates them). The prose around them is written by hand.

A block is

    <!-- table: KIND file=results/NAME.json key=value ... -->
    (generated)
    <!-- end table -->

with the kinds of TABLES below. Every ratio is computed per round (the
rounds of one study run every system in turn, so round r of A and of B ran
side by side) and reported as the median (min–max) of those; a claim is a
**finding** only under the rule of `verdict`, otherwise it is marked weak."""

import os
import re
import statistics

from harness import archive, study_report, study_sections
from harness.report import fmt_cpu, fmt_ms
from harness.tools import ROOT, Fatal

MARKER = re.compile(
    r"(<!-- table: (?P<kind>[a-z_]+)(?P<args>[^>]*?)-->\n)(?P<body>.*?)(<!-- end table -->)", re.S
)
# PgBouncer 1.18 (Debian 12's) cannot keep prepared statements in
# transaction mode: every pooled cost here includes that.
POOLER_NOTE = (
    "Pooled rows ran behind PgBouncer 1.18 in transaction mode, which keeps no prepared "
    "statements (1.21 does; no registry here has it): their costs include re-planning."
)


def parse_args(text):
    """'file=a.json a=x workloads=types,fetch100' → {key: value}."""
    out = {}
    for word in text.split():
        key, equals, value = word.partition("=")
        if not equals:
            raise Fatal(f"findings: '{word}' is no key=value")
        out[key] = value
    return out


# --- figures of one system per round --------------------------------------------------


def system_entry(doc, name):
    for system in doc.get("systems") or []:
        if system["name"] == name:
            return system
    raise Fatal(f"findings: no system '{name}' in the file")


def workload_entry(system, workload):
    for entry in (system.get("workloads") or []) + (system.get("more") or []):
        if entry["name"] == workload:
            return entry
    return None


def per_round(entry, figure):
    """{run: value} of one workload entry: `rps`, `cpu:PART`, or
    `p99:LABEL` / `p50:LABEL` (a fixed-rate row's latency, e.g. p99:common)."""
    if entry is None:
        return {}
    values = {}
    for run in entry.get("runs") or []:
        if figure.startswith(("p99:", "p50:")):
            key, label = figure.split(":", 1)
            for record in run.get("fixed_rate") or []:
                if record["system"] == "server" and record["label"] == label:
                    values[run["run"]] = record[f"{key}_ms"]
            continue
        server = run.get("server")
        if not server:
            continue
        if figure == "rps":
            values[run["run"]] = server["rps"]
        elif figure.startswith("cpu:"):
            values[run["run"]] = (server.get("cpu_us_per_request") or {}).get(figure[4:])
    return {run: value for run, value in values.items() if value is not None}


def spread(values):
    """(max − min) / median of a list, as a fraction; 0 for fewer than two."""
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return (max(values) - min(values)) / middle if middle else 0.0


def verdict(ratios, spread_a, spread_b):
    """The rule for a finding: every round's ratio on one side of 1, and
    either the effect is large (the median ratio at least 1.5× either way),
    or the rounds are at least 5, or the effect (|median − 1|) is larger than
    twice the larger spread of the two figures. A sign test alone passes a
    null effect a quarter of the time with 3 rounds, half with 2."""
    if len(ratios) < 2:
        return "weak (one round)"
    if not (all(r > 1 for r in ratios) or all(r < 1 for r in ratios)):
        return "weak (rounds on both sides of 1)"
    middle = statistics.median(ratios)
    if middle >= 1.5 or middle <= 1 / 1.5:
        return "finding"
    if len(ratios) >= 5:
        return "finding"
    if abs(middle - 1) > 2 * max(spread_a, spread_b):
        return "finding"
    return f"weak ({len(ratios)} rounds, under 1.5x, within twice the spread)"


def compare(doc, a, b, workload, figure):
    """(per-round ratios A/B, spread of A, spread of B) over the rounds both have."""
    values_a = per_round(workload_entry(system_entry(doc, a), workload), figure)
    values_b = per_round(workload_entry(system_entry(doc, b), workload), figure)
    rounds = sorted(set(values_a) & set(values_b))
    ratios = [values_a[r] / values_b[r] for r in rounds if values_b[r]]
    return ratios, spread(list(values_a.values())), spread(list(values_b.values()))


def fmt_ratio(value):
    return f"{value:.2f}" if value >= 0.095 else f"{value:.3f}"


def fmt_ratios(ratios):
    if not ratios:
        return "-"
    return (
        f"{fmt_ratio(statistics.median(ratios))} "
        f"({fmt_ratio(min(ratios))}–{fmt_ratio(max(ratios))})"
    )


def fmt_range(values, fmt):
    """median (min–max) of values, each formatted by fmt; '-' for none."""
    if not values:
        return "-"
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- the kinds ----------------------------------------------------------------------------


def ratio_table(doc, args):
    """Pairs `a:b` (system names, `+pgbouncer`/`@...` variants included) on
    each workload: the per-round ratio of `figure` (default rps)."""
    figure = args.get("figure", "rps")
    rows = []
    pooled = False
    for pair in args["pairs"].split(","):
        a, b = pair.split(":")
        pooled = pooled or "+pgbouncer" in pair
        for workload in args["workloads"].split(","):
            ratios, spread_a, spread_b = compare(doc, a, b, workload, figure)
            rows.append(
                [
                    f"{a} ÷ {b}",
                    workload,
                    fmt_ratios(ratios),
                    str(len(ratios)),
                    f"{100 * spread_a:.0f}% / {100 * spread_b:.0f}%",
                    verdict(ratios, spread_a, spread_b),
                ]
            )
    text = table(
        [
            f"{figure} ratio",
            "workload",
            "median (min–max) per round",
            "rounds",
            "spreads",
            "verdict",
        ],
        rows,
    )
    return text + (f"\n{POOLER_NOTE}\n" if pooled else "")


def figures_table(doc, args):
    """A row per system on one workload: req/s median (min–max), CPU µs per
    request of the system and of PostgreSQL, backends peak."""
    workload = args["workload"]
    names = (
        args["systems"].split(",")
        if "systems" in args
        else [system["name"] for system in doc["systems"] if system["status"] == "measured"]
    )
    rows = []
    for name in names:
        system = system_entry(doc, name)
        entry = workload_entry(system, workload)
        if entry is None:
            continue
        rps = per_round(entry, "rps")
        server = per_round(entry, "cpu:server")
        database = per_round(entry, "cpu:database")
        rows.append(
            [
                name,
                fmt_range(list(rps.values()), lambda value: f"{value:.0f}"),
                fmt_cpu(statistics.median(server.values())) if server else "-",
                fmt_cpu(statistics.median(database.values())) if database else "-",
                str(
                    system.get("backends_peak") if system.get("backends_peak") is not None else "-"
                ),
            ]
        )
    return table(
        [
            "system",
            f"{workload} req/s median (min–max)",
            "server µs/req",
            "PostgreSQL µs/req",
            "backends peak",
        ],
        rows,
    )


def latency_table(doc, args):
    """A row per system: p50 and p99 at a fixed-rate label (default common)
    per round, median (min–max)."""
    label = args.get("label", "common")
    workload = args["workload"]
    rows = []
    for name in args["systems"].split(","):
        entry = workload_entry(system_entry(doc, name), workload)
        cells = [name]
        for key in ("p50", "p99"):
            values = list(per_round(entry, f"{key}:{label}").values())
            cells.append(fmt_range(values, fmt_ms))
        rows.append(cells)
    return table(["system", f"p50 at {label}", f"p99 at {label}"], rows)


def cores_table(doc, args):
    """How much of the machine each system's saturation windows used (all
    components of the run together: the system, PostgreSQL, the load
    generator), per round, median (min–max): below about 1.8 of 2 cores a
    row's req/s is no capacity."""
    workloads = args["workloads"].split(",")
    rows = []
    for system in doc["systems"]:
        if system["status"] != "measured":
            continue
        cells = [system["name"]]
        for workload in workloads:
            entry = workload_entry(system, workload) or {}
            values = [
                run["server"]["noise"]["ours_cores"]
                for run in entry.get("runs") or []
                if run.get("server") and run["server"].get("noise")
            ]
            cells.append(fmt_range(values, lambda value: f"{value:.2f}"))
        rows.append(cells)
    return table(["system", *(f"{w}: cores used" for w in workloads)], rows)


def mixed_table(doc, args):
    """/types' p99 at the common rate alone and beside /fibonacci/25, per
    round, for each way a system serves the computation (its own route and
    the remedies of its manifest)."""
    rows = []
    for name in args["systems"].split(","):
        system = system_entry(doc, name)
        alone = [
            record["p99_ms"]
            for run in (workload_entry(system, "types") or {}).get("runs") or []
            for record in run.get("fixed_rate") or []
            if record["system"] == "server" and record["label"] == "common"
        ]
        for suffix, served in (
            ("", "its /fibonacci/{n}"),
            ("_fibonacci_thread", "def (thread pool)"),
            ("_fibonacci_process", "process pool"),
        ):
            rows_of = (system.get("mixed") or {}).get(f"types{suffix}") or []
            if not rows_of:
                continue
            mixed = [v for v in (rows_of[0].get("by_run") or {}).get("p99_ms", []) if v]
            fib = ((system.get("mixed") or {}).get(f"fib25{suffix}") or [{}])[0]
            rows.append(
                [
                    name,
                    served,
                    fmt_range(alone, fmt_ms),
                    fmt_range(mixed, fmt_ms),
                    fmt_ms(fib.get("p50_ms")) if fib else "-",
                    str(fib.get("errors", "-")) if fib else "-",
                ]
            )
    return table(
        [
            "system",
            "fib25 served by",
            "/types p99 alone",
            "/types p99 beside fib25",
            "fib25 p50",
            "fib25 errors",
        ],
        rows,
    )


# The study's own sections (study_report.py, study_sections.py), as its .md
# prints them, for a block of kind `section name=...`.
SECTIONS = {
    "systems": study_report.systems_table,
    "concurrency": study_sections.concurrency_table,
    "pooler": study_sections.pooler_table,
    "distance": study_sections.distance_tables,
    "connections": study_sections.connections_table,
    "sweep": study_sections.sweep_table,
    "split": study_sections.split_table,
}


def section_table(doc, args):
    """One of the study's sections (SECTIONS) as its .md has it, without its
    heading (the page around it has its own)."""
    name = args["name"]
    if name not in SECTIONS:
        raise Fatal(f"findings: no section '{name}' (one of {', '.join(SECTIONS)})")
    text = SECTIONS[name](doc).strip()
    if not text:
        raise Fatal(f"findings: the file has no '{name}' section (not measured in that study)")
    lines = text.splitlines()
    if lines[0].startswith("## "):
        lines = lines[1:]
    lines = [f"**{line[4:]}**" if line.startswith("### ") else line for line in lines]
    return "\n".join(lines).strip() + "\n"


TABLES = {
    "ratio": ratio_table,
    "section": section_table,
    "figures": figures_table,
    "latency": latency_table,
    "cores": cores_table,
    "mixed": mixed_table,
}


def regenerate(text, read=archive.read_json):
    """The markdown with every generated block rebuilt from its file."""
    cache = {}

    def build(match):
        args = parse_args(match.group("args"))
        kind = match.group("kind")
        if kind not in TABLES:
            raise Fatal(f"findings: unknown table kind '{kind}' (one of {', '.join(TABLES)})")
        path = args.pop("file")
        if path not in cache:
            cache[path] = read(os.path.join(ROOT, path))
        body = TABLES[kind](cache[path], args)
        source = f"From [`{path}`](../{path}).\n"
        return match.group(1) + body + "\n" + source + match.group(5)

    return MARKER.sub(build, text)


def cmd_findings(options, _argv):
    with open(options.file, encoding="utf-8") as file:
        text = file.read()
    new = regenerate(text)
    if options.check:
        if new != text:
            raise Fatal(
                f"{options.file}: a generated table differs from its results file; "
                f"run python3 -m harness findings {options.file}"
            )
        print(f"{options.file}: every generated table matches its results file")
        return 0
    with open(options.file, "w", encoding="utf-8") as file:
        file.write(new)
    print(f"{options.file}: {len(MARKER.findall(text))} table(s) regenerated")
    return 0


def add_parser(sub, prog=None):
    parser = sub.add_parser(
        "findings",
        help="regenerate docs/FINDINGS.md's tables from the results they cite",
        description=__doc__,
        **({"prog": prog} if prog else {}),
    )
    parser.add_argument("file", help="the markdown, e.g. docs/FINDINGS.md")
    parser.add_argument("--check", action="store_true", help="only say whether a table is stale")
    parser.set_defaults(func=cmd_findings)
