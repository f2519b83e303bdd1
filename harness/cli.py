"""The one command line: `python3 -m harness SUBCOMMAND` (scripts/run.sh is
`python3 -m harness run`, scripts/compare.sh `... compare`). Every option
of the measuring commands is declared once, in settings.py; here are the
subcommands, their texts, and the mapping of failures and signals to exit
statuses (1: an error; death by the signal itself on Ctrl-C or TERM)."""

import argparse
import os
import sys

from harness import options as options_module
from harness import tools
from harness.settings import RUN, STUDY
from harness.tools import Fatal, Interrupted, log

RUN_DESCRIPTION = """\
Benchmarks the bakeoff server (or, with --target, any server that speaks
shared/API.md) with wrk, one workload after the other, and compares each
workload with its ceiling: nginx answering the same /version body, or pgbench
running the same SQL (generated from sql/) with the same client count, for the
same duration, against the same database. Every run of every workload comes
before the next run of any (A B C, A B C: interleaved), and every figure is
reported as the median of the runs with its min-max and spread.

For each measured window it records the CPU time used by the server, by
PostgreSQL and by the load generator (cgroups; docs/benchmarks.md), divided
by the requests: CPU µs per request. A window in which other work on the
machine used more than --noise-threshold cores is measured again.

Each database workload is also loaded at fixed offered rates with oha (open
model, latency from the intended send time): 25/50/75/90% of the capacity
that run measured, and --common-rate. pgbench --rate runs the same SQL at
the same rates for the database's own latency. oha is installed with cargo
when missing (about 8 minutes, once).

Prints markdown tables on stdout, progress on stderr, writes
results/<date>-<commit>[-dirty]-run[-quick][-label].json, its records
(.records.json.gz) and, with matplotlib, charts beside it.
"""

RUN_EPILOG = """\
Workloads: {workloads}

Database:
  Without DATABASE_URL, a throwaway PostgreSQL cluster is created in a temp dir
  on a free port, seeded with `bakeoff seed --contacts N`, and removed at exit.
  With DATABASE_URL set, that database is used as it is: it is seeded only when
  --contacts is given (seeding DROPS and recreates the tables) or when the
  tables are missing, and otherwise its contact count is read from it.
  With --target and no DATABASE_URL there is no database to measure, so the
  pgbench ceilings are skipped; give the target's DATABASE_URL to get them, and
  --contacts N matching its data so that random ids exist.

Time: a full run (3 runs, 10 s windows, fixed rates 5 s each) takes about
25 minutes (more when noisy windows are measured again); --quick about 2
minutes plus the build; the progress lines say how long is left.

Examples:
  scripts/run.sh --quick
  scripts/run.sh --runs 2 --duration 5 --only version,types,contact_random
  scripts/run.sh --runs 3 --server-args "--runtime per-core"
  DATABASE_URL=postgresql://postgres@127.0.0.1/bakeoff \\
      scripts/run.sh --target http://127.0.0.1:8001 --name fastapi-asyncpg
"""


COMPARE_DESCRIPTION = """\
The bake-off: the Rust reference and every variant of peers/ (peers/README.md),
measured the way run.sh measures one server, on one throwaway PostgreSQL
seeded with `bakeoff seed`, with the same parameters for all. Measured in
rounds: every system in turn, then again (--runs), each started afresh in
each round and stopped after it with nothing left behind, so that a drift of
the machine falls on all alike. The ceilings (nginx, pgbench plain and
pipelined) are measured in every round beside the first system.

For each system and workload: requests/s at saturation (wrk) with the spread
over the rounds, CPU µs per request of the system, PostgreSQL and the load
generator, latency at fixed offered rates (oha: fractions of the system's own
capacity and one common rate), the peak count of PostgreSQL backends, the
same workloads at other connection counts, /types beside /fibonacci/25
(--mixed-fib-rate), and, with --pooler, every system behind PgBouncer in
transaction mode. Each system is checked against the API contract first
(scripts/check_contract.py), on an instance of its own. The systems are the
folders of peers/ with a system.toml (peers/README.md): a new system is a
new folder. Their set-up commands run first (idempotent). A system that
cannot run here (its start.sh exits 69, e.g. no PyPy) is listed as
unavailable, and is no failure.

Prints the markdown on stdout, progress on stderr; writes
results/<date>-<commit>[-dirty]-compare[-quick][-pooler][-label].{json,md},
its records (.records.json.gz) and the charts beside them.
"""

COMPARE_EPILOG = """\
Systems: {systems}
Workloads: {workloads}

Time: a full comparison (3 rounds, 10 systems, 5 s windows, fixed rates at
4 fractions and the common rate, connection counts, mixed load, asyncpg's
split) takes about 2 hours; --quick about 8 minutes after the set-up.
--pooler both doubles the systems.

Examples:
  scripts/compare.sh --quick
  scripts/compare.sh --runs 3
  scripts/compare.sh --systems reference,go_pgx,fastapi_asyncpg --only types,fetch100 --runs 2
  scripts/compare.sh --pooler both --systems reference,fastapi_asyncpg,django_gthread
"""


def add_measuring_parser(sub, prog, command, help_text, description, epilog, func):
    parser = sub.add_parser(
        command,
        help=help_text,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **({"prog": prog} if prog else {}),
    )
    options_module.add_options(parser, command)
    parser.set_defaults(func=func)


def cmd_run(options, argv):
    from harness.runner import Run

    settings = options_module.from_args(options, RUN)
    Run(settings, tools.quote_command(["scripts/run.sh", *argv])).run()
    return 0


def cmd_compare(options, argv):
    from harness.study import Study

    settings = options_module.from_args(options, STUDY)
    Study(settings, tools.quote_command(["scripts/compare.sh", *argv])).run()
    return 0


def cmd_table(options, _argv):
    from harness import archive, report, results, study_report

    doc = archive.read_json(options.file)
    if doc.get("schema_version") not in results.READABLE:
        raise Fatal(
            f"{options.file}: schema {doc.get('schema_version', doc.get('schema'))}, "
            f"not one of {results.READABLE}"
        )
    module = study_report if doc.get("kind") == "compare" else report
    print(module.markdown(doc, options.file))
    return 0


def cmd_agree(options, _argv):
    from harness import agreement, archive

    docs = [archive.read_json(path) for path in options.files]
    names = [doc.get("label") or os.path.basename(path) for doc, path in zip(docs, options.files)]
    print(agreement.files_markdown(names, docs))
    print()
    # One file has no medians to set side by side, but its runs still have
    # their own spread.
    if len(docs) > 1:
        print(agreement.markdown(agreement.compare(docs), names))
        print()
    print("Every run of every file, at saturation:")
    print()
    print(agreement.runs_markdown(agreement.runs(docs)))
    return 0


def cmd_systems(_options, _argv):
    """Every folder of peers/ with a manifest: its name, order and stack, or
    what is wrong with it."""
    from harness import systems

    bad = 0
    orders = {}
    for name in sorted(os.listdir(systems.PEERS)):
        folder = os.path.join(systems.PEERS, name)
        if not os.path.isfile(os.path.join(folder, systems.MANIFEST)):
            continue
        try:
            system = systems.read_manifest(folder)
        except ValueError as error:
            bad += 1
            print(f"{name:24} FAIL  {error}")
            continue
        default = "" if system.default else " (not by default)"
        print(f"{name:24} ok    order {system.order:3}  {system.stack}{default}")
        orders.setdefault(system.order, []).append(name)
    for order, names in orders.items():
        if len(names) > 1:
            bad += 1
            print(
                f"order {order} is shared by {', '.join(names)}: a round's order would be by name"
            )
    return 1 if bad else 0


def cmd_chart(options, _argv):
    from harness import archive, drawing

    drawing.draw(archive.read_json(options.file), options.file)
    return 0


def parser(prog=None):
    top = argparse.ArgumentParser(prog="python3 -m harness", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    from harness import systems
    from harness.workloads import WORKLOADS

    workloads = " ".join(workload.name for workload in WORKLOADS)
    try:
        names = " ".join(system.name for system in systems.discover())
    except ValueError as error:
        names = f"(a manifest does not read: {error})"
    add_measuring_parser(
        sub,
        prog,
        RUN,
        "the benchmark (scripts/run.sh)",
        RUN_DESCRIPTION,
        RUN_EPILOG.format(workloads=workloads),
        cmd_run,
    )
    add_measuring_parser(
        sub,
        prog,
        STUDY,
        "the study (scripts/compare.sh)",
        COMPARE_DESCRIPTION,
        COMPARE_EPILOG.format(systems=names, workloads=workloads),
        cmd_compare,
    )
    one = sub.add_parser("table", help="print the markdown tables of a results file")
    one.add_argument("file")
    one.set_defaults(func=cmd_table)
    one = sub.add_parser(
        "agree",
        help="do several run.sh results files agree? their medians side by side, then every run",
    )
    one.add_argument("files", nargs="+", metavar="FILE")
    one.set_defaults(func=cmd_agree)
    one = sub.add_parser("systems", help="the study's systems (peers/*/system.toml), each checked")
    one.set_defaults(func=cmd_systems)
    one = sub.add_parser("chart", help="draw the charts of a results file (needs matplotlib)")
    one.add_argument("file")
    one.set_defaults(func=cmd_chart)
    # The commands built on run, each in a module of its own.
    from harness import allocators, cluster_cli, findings, flamegraph, pin, plans, sandbox

    for module in (pin, allocators, flamegraph, plans, findings, sandbox, cluster_cli):
        module.add_parser(sub, prog)
    return top


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    # scripts/run.sh passes its own name, so that messages and --help say it.
    prog = os.environ.get("HARNESS_PROG")
    if prog:
        tools.PROG = prog
    options = parser(prog).parse_args(argv)
    tools.raise_on_signals()
    try:
        return options.func(options, argv[1:])
    except Fatal as error:
        print(f"{tools.PROG}: error: {error}", file=sys.stderr)
        return 1
    except Interrupted as interrupted:
        log(f"interrupted ({interrupted}): stopped everything this run started")
        return tools.die_of_signal(interrupted.signum)
