"""The one option parser: `python3 -m harness SUBCOMMAND` (scripts/run.sh is
`python3 -m harness run`). Turns command-line words into the options the
runner reads, applies --quick's defaults, and maps failures and signals to
exit statuses (1: an error; death by the signal itself on Ctrl-C or TERM)."""

import argparse
import os
import re
import sys

from harness import tools
from harness.tools import ROOT, Fatal, Interrupted, log

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
results/<date>-<commit>-<name>.json and, with matplotlib, charts beside it.
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


def positive_int(text):
    if not re.fullmatch(r"[1-9][0-9]*", text):
        raise argparse.ArgumentTypeError(f"must be a positive integer, not '{text}'")
    return int(text)


def whole_seconds(text):
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds, not '{text}'")
    return int(text)


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not '{text}'")
    return value


def percent_list(text):
    """'25,50,75,90' → [25.0, 50.0, 75.0, 90.0]; '' or 'none' → []."""
    if text in ("", "none"):
        return []
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = 0
        if not 0 < value <= 100:
            raise argparse.ArgumentTypeError(
                f"each fraction is a percent in (0, 100], not '{part}'"
            )
        values.append(value)
    return values


def run_parser(sub, prog):
    from harness.workloads import WORKLOADS

    subparser = sub.add_parser(
        "run",
        help="the benchmark (scripts/run.sh)",
        description=RUN_DESCRIPTION,
        **({"prog": prog} if prog else {}),
        epilog=RUN_EPILOG.format(workloads=" ".join(workload.name for workload in WORKLOADS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = subparser.add_argument
    add(
        "--duration",
        type=positive_int,
        help="seconds of wrk per workload, and of its ceiling (default 10)",
    )
    add(
        "--warmup",
        type=whole_seconds,
        help="seconds of wrk before each workload, not measured (default 2)",
    )
    add(
        "--connections",
        type=positive_int,
        default=64,
        help="wrk connections = pgbench clients = oha connections (default 64)",
    )
    add("--threads", type=positive_int, default=2, help="wrk threads = pgbench threads (default 2)")
    add(
        "--contacts", type=positive_int, help="contacts to seed (default 10000; see Database below)"
    )
    add(
        "--only",
        default="",
        metavar="W[,W...]",
        help="run only these workloads, in the order below",
    )
    add(
        "--quick",
        action="store_true",
        help="a short run for CI: 1 run, 2 s per window, 1 s warm-up, no retries, "
        "fixed rate at --common-rate only",
    )
    add(
        "--runs",
        type=positive_int,
        help="interleaved runs of every workload (default 3; --quick 1)",
    )
    add(
        "--server-args",
        default="",
        metavar='"..."',
        help='extra options for `bakeoff serve`, split on spaces (e.g. "--runtime per-core --pool-size 8"); '
        "the server's environment variables (RUNTIME, POOL_SIZE, ...) pass through too",
    )
    add(
        "--target",
        default="",
        metavar="URL",
        help="benchmark the server at URL instead of starting ours",
    )
    add("--name", default="", help="name of that server in the results (required with --target)")
    add(
        "--target-pid",
        type=positive_int,
        metavar="PID",
        help="its process: its peak RSS, and its CPU (with its children's) per request",
    )
    add(
        "--pin-server",
        default="",
        metavar="CPUS",
        help="run the server and nginx on these CPUs (taskset -c list)",
    )
    add("--pin-db", default="", metavar="CPUS", help="run the throwaway PostgreSQL on these CPUs")
    add("--pin-wrk", default="", metavar="CPUS", help="run wrk, oha and pgbench on these CPUs")
    add(
        "--no-ceilings",
        dest="ceilings",
        action="store_false",
        help="skip the nginx and pgbench measurements",
    )
    add(
        "--transport",
        choices=("tcp", "unix"),
        default="tcp",
        help="how the server and pgbench reach the throwaway PostgreSQL (always the same for both)",
    )
    add(
        "--binary",
        metavar="PATH",
        help="run this server binary (no build), e.g. another allocator's",
    )
    add(
        "--no-build",
        dest="build",
        action="store_false",
        help="use target/release/bakeoff as it is (pin.sh builds once for all its runs)",
    )
    add("--label", default="", help="a label for this run, kept in the JSON and its file name")
    add("--out", default="", metavar="FILE", help="write the JSON here instead of results/")
    add(
        "--noise-threshold",
        type=non_negative_float,
        default=0.10,
        metavar="CORES",
        help="a window in which other work used more than this many cores is measured again (default 0.10)",
    )
    add(
        "--max-retries",
        type=whole_seconds,
        metavar="N",
        help="how many times a noisy window is measured again; then the least noisy is kept, "
        "marked noisy (default 2; --quick 0)",
    )
    add(
        "--fixed-rate",
        dest="fixed_rate",
        action="store_true",
        default=None,
        help="measure at fixed rates with --target too (the default without it)",
    )
    add(
        "--no-fixed-rate",
        dest="fixed_rate",
        action="store_false",
        help="skip the fixed-rate windows (oha and pgbench --rate); no oha needed",
    )
    add(
        "--rate-fractions",
        type=percent_list,
        metavar="P[,P...]",
        help="offered rates in percent of each run's measured capacity (default 25,50,75,90; --quick none)",
    )
    add(
        "--common-rate",
        type=whole_seconds,
        default=500,
        metavar="RPS",
        help="one offered rate for every system, 0 for none (default 500)",
    )
    add(
        "--fixed-rate-duration",
        type=positive_int,
        metavar="S",
        help="seconds of each fixed-rate window (default 5; --quick 2)",
    )
    add(
        "--pipeline-depth",
        type=whole_seconds,
        default=16,
        metavar="N",
        help="the database's own ceiling: pgbench in pipeline mode, N statements in flight on each "
        "of the server's connections (default 16; 0: not measured)",
    )
    add(
        "--raw-dir",
        default="",
        metavar="DIR",
        help="keep every tool's raw output (wrk, pgbench and its latency log, oha) in DIR",
    )
    add("--no-charts", dest="charts", action="store_false", help="no charts (they need matplotlib)")
    add(
        "--cpu-method",
        choices=("auto", "proc"),
        default="auto",
        help="auto: cgroups where writable, else /proc; proc: /proc even with cgroups (to compare them)",
    )
    subparser.set_defaults(func=cmd_run)


def resolve_binary(options):
    """--binary PATH (then no build), or the release build's path."""
    if options.binary:
        if not os.access(options.binary, os.X_OK):
            raise Fatal(f"--binary: no executable at {options.binary}")
        options.binary = os.path.abspath(options.binary)
        options.build = False
    else:
        options.binary = os.path.join(ROOT, "target", "release", "bakeoff")


def finish_run_options(options):
    """--quick's defaults, checks that involve several options, derived values."""
    if options.quick:
        defaults = {
            "duration": 2,
            "warmup": 1,
            "runs": 1,
            "max_retries": 0,
            "rate_fractions": [],
            "fixed_rate_duration": 2,
            "fixed_rate": True,
        }
    elif options.target:
        # scripts/compare.sh drives run.sh with --target, one implementation
        # after the other, and its time budget (CI included) assumes one run
        # of each and no fixed rates: its own --runs comes with its port to
        # this package. Given explicitly, these options apply here too.
        defaults = {
            "duration": 10,
            "warmup": 2,
            "runs": 1,
            "max_retries": 0,
            "rate_fractions": [25.0, 50.0, 75.0, 90.0],
            "fixed_rate_duration": 5,
            "fixed_rate": False,
        }
    else:
        defaults = {
            "duration": 10,
            "warmup": 2,
            "runs": 3,
            "max_retries": 2,
            "rate_fractions": [25.0, 50.0, 75.0, 90.0],
            "fixed_rate_duration": 5,
            "fixed_rate": True,
        }
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.threads > options.connections:
        raise Fatal(
            f"--threads ({options.threads}) cannot exceed --connections ({options.connections}): "
            "wrk and pgbench need a connection per thread"
        )
    options.contacts_given = options.contacts is not None
    if options.contacts is None:
        options.contacts = 10000
    options.target = options.target.rstrip("/")
    if options.target:
        if not re.fullmatch(r"http://[^/]+(/.*)?", options.target):
            raise Fatal(f"--target must be an http:// URL, not '{options.target}'")
        if not options.name:
            raise Fatal("--target needs --name NAME, to tell its results apart")
    else:
        if options.name:
            raise Fatal("--name goes with --target (our server is always 'bakeoff')")
        if options.target_pid:
            raise Fatal("--target-pid goes with --target")
        options.name = "bakeoff"
    if options.label and not re.fullmatch(r"[A-Za-z0-9._-]+", options.label):
        raise Fatal("--label may hold only letters, digits, '.', '_' and '-'")
    options.server_args_text = options.server_args
    options.server_args = options.server_args.split()
    if options.target and options.server_args:
        raise Fatal(
            "--server-args configures our server; with --target, configure the target yourself"
        )
    resolve_binary(options)
    if options.cpu_method == "auto":
        options.cpu_method = None


def cmd_run(options, argv):
    from harness.runner import Run

    finish_run_options(options)
    Run(options, tools.quote_command(["scripts/run.sh", *argv])).run()
    return 0


def cmd_table(options, _argv):
    from harness import report, results

    doc = results.read_json(options.file)
    if doc.get("schema_version") != results.SCHEMA_VERSION:
        raise Fatal(
            f"{options.file}: schema {doc.get('schema_version', doc.get('schema'))}, "
            f"not {results.SCHEMA_VERSION}"
        )
    if doc.get("kind") == "compare":
        from harness import study_report

        print(study_report.markdown(doc, options.file))
    else:
        print(report.markdown(doc, options.file))
    return 0


def cmd_agree(options, _argv):
    from harness import agreement, results

    if len(options.files) < 2:
        raise Fatal("agree needs at least two results files")
    docs = [results.read_json(path) for path in options.files]
    names = [
        f"{doc.get('label') or os.path.basename(path)}" for doc, path in zip(docs, options.files)
    ]
    print(agreement.markdown(agreement.compare(docs), names))
    return 0


def cmd_chart(options, _argv):
    from harness import results
    from harness.runner import draw_charts

    draw_charts(results.read_json(options.file), options.file)
    return 0


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
transaction mode. conformance.py checks each system once. peers/setup.sh
installs the peers first (idempotent). A peer that cannot run here (its
start.sh exits 69, e.g. no PyPy) is listed as unavailable, and is no failure.

Prints the markdown on stdout, progress on stderr; writes
results/compare-<date>-<commit>[-dirty][-quick][-pooler].{json,md} and the
charts beside them.
"""

COMPARE_EPILOG = """\
Implementations: {systems}
Workloads: {workloads}

Time: a full comparison (3 rounds, 10 systems, 5 s windows, fixed rates at
4 fractions and the common rate, connection counts, mixed load, asyncpg's
split) takes about 2 hours; --quick about 8 minutes after the set-up.
--pooler both doubles the systems.

Examples:
  scripts/compare.sh --quick
  scripts/compare.sh --runs 3
  scripts/compare.sh --impls reference,go_pgx,fastapi_asyncpg --only types,fetch100 --runs 2
  scripts/compare.sh --pooler both --impls reference,fastapi_asyncpg,django_gthread
"""


def level_list(text):
    """'16,256' -> [16, 256]; '' or 'none' -> []."""
    if text in ("", "none"):
        return []
    return [positive_int(part) for part in text.split(",")]


def compare_parser(sub, prog):
    from harness.systems import SYSTEMS
    from harness.workloads import WORKLOADS

    subparser = sub.add_parser(
        "compare",
        help="the bake-off (scripts/compare.sh)",
        description=COMPARE_DESCRIPTION,
        **({"prog": prog} if prog else {}),
        epilog=COMPARE_EPILOG.format(
            systems=" ".join(system.name for system in SYSTEMS),
            workloads=" ".join(workload.name for workload in WORKLOADS),
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = subparser.add_argument
    add(
        "--impls",
        default="",
        metavar="A[,B...]",
        help="only these implementations (in the order above)",
    )
    add("--only", default="", metavar="W[,W...]", help="only these workloads")
    add("--runs", type=positive_int, help="rounds of every system (default 3; --quick 1)")
    add("--duration", type=positive_int, help="seconds of each saturation window (default 5)")
    add(
        "--warmup",
        type=whole_seconds,
        help="seconds of wrk before each window, not measured (default 2)",
    )
    add(
        "--quick",
        action="store_true",
        help="a short run for CI: 1 round, 2 s windows, the common rate only, no retries",
    )
    add(
        "--connections",
        type=positive_int,
        default=64,
        help="wrk connections = pgbench clients = oha connections (default 64)",
    )
    add("--threads", type=positive_int, default=2, help="wrk threads = pgbench threads (default 2)")
    add("--contacts", type=positive_int, default=10000, help="contacts to seed (default 10000)")
    add(
        "--concurrency",
        type=level_list,
        metavar="C[,C...]",
        help="also measure types and fetch100 at these connection counts (default 16,256; --quick none)",
    )
    add(
        "--mixed-fib-rate",
        type=non_negative_float,
        metavar="RPS",
        help="/fibonacci/25 at this rate beside /types at --common-rate (default 10; 0: not measured)",
    )
    add(
        "--pooler",
        choices=("none", "pgbouncer", "both"),
        default="none",
        help="pgbouncer: every system behind PgBouncer in transaction mode; both: directly and behind it",
    )
    add(
        "--pooler-size",
        type=positive_int,
        default=8,
        metavar="N",
        help="PgBouncer's server connections (default_pool_size, default 8)",
    )
    add(
        "--no-asyncpg-split",
        dest="asyncpg_split",
        action="store_false",
        default=None,
        help="skip fastapi_asyncpg's /contacts/for split",
    )
    add(
        "--no-ceilings",
        dest="ceilings",
        action="store_false",
        help="skip the nginx and pgbench measurements",
    )
    add("--no-setup", dest="setup", action="store_false", help="do not run peers/setup.sh")
    add(
        "--no-build", dest="build", action="store_false", help="use target/release/bakeoff as it is"
    )
    add("--binary", metavar="PATH", help="the reference's binary (no build)")
    add(
        "--server-args",
        default="",
        metavar='"..."',
        help="extra options for the reference's `bakeoff serve`",
    )
    add(
        "--conformance-first",
        action="store_true",
        help="check conformance before measuring, not after",
    )
    add(
        "--noise-threshold",
        type=non_negative_float,
        default=0.10,
        metavar="CORES",
        help="a window in which other work used more than this many cores is measured again (default 0.10)",
    )
    add(
        "--max-retries",
        type=whole_seconds,
        metavar="N",
        help="how many times a noisy window is measured again (default 2; --quick 0)",
    )
    add(
        "--no-fixed-rate",
        dest="fixed_rate",
        action="store_false",
        default=None,
        help="skip the fixed-rate windows",
    )
    add(
        "--rate-fractions",
        type=percent_list,
        metavar="P[,P...]",
        help="offered rates in percent of each system's capacity (default 25,50,75,90; --quick none)",
    )
    add(
        "--common-rate",
        type=whole_seconds,
        default=500,
        metavar="RPS",
        help="one offered rate for every system, 0 for none (default 500)",
    )
    add(
        "--fixed-rate-duration",
        type=positive_int,
        metavar="S",
        help="seconds of each fixed-rate window (default 4; --quick 2)",
    )
    add(
        "--pipeline-depth",
        type=whole_seconds,
        default=16,
        metavar="N",
        help="the database's pipelined ceiling depth (default 16; 0: not measured)",
    )
    add("--raw-dir", default="", metavar="DIR", help="keep every tool's raw output in DIR")
    add("--label", default="", help="a label for this run, kept in the JSON and its file name")
    add("--out", default="", metavar="FILE", help="write the JSON here instead of results/")
    add("--no-charts", dest="charts", action="store_false", help="no charts")
    add(
        "--cpu-method",
        choices=("auto", "proc"),
        default="auto",
        help="auto: cgroups where writable; proc: /proc",
    )
    subparser.set_defaults(func=cmd_compare)


def finish_compare_options(options):
    defaults = {
        "duration": 5,
        "warmup": 2,
        "runs": 3,
        "max_retries": 2,
        "rate_fractions": [25.0, 50.0, 75.0, 90.0],
        "fixed_rate_duration": 4,
        "fixed_rate": True,
        "concurrency": [16, 256],
        "mixed_fib_rate": 10.0,
        "asyncpg_split": True,
    }
    if options.quick:
        defaults.update(
            duration=2,
            warmup=1,
            runs=1,
            max_retries=0,
            rate_fractions=[],
            fixed_rate_duration=2,
            concurrency=[],
            asyncpg_split=False,
        )
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    if options.threads > options.connections:
        raise Fatal(
            f"--threads ({options.threads}) cannot exceed --connections ({options.connections})"
        )
    if options.label and not re.fullmatch(r"[A-Za-z0-9._-]+", options.label):
        raise Fatal("--label may hold only letters, digits, '.', '_' and '-'")
    options.server_args_text = options.server_args
    options.server_args = options.server_args.split()
    resolve_binary(options)
    options.cpu_method = None if options.cpu_method == "auto" else options.cpu_method
    # What runner.Run reads besides: the study never pins, nor targets.
    options.name = ""
    options.target = ""
    options.transport = "tcp"
    options.pin_server = options.pin_db = options.pin_wrk = ""


def cmd_compare(options, argv):
    from harness.study import Study

    finish_compare_options(options)
    Study(options, tools.quote_command(["scripts/compare.sh", *argv])).run()
    return 0


def parser(run_prog=None):
    ap = argparse.ArgumentParser(prog="python3 -m harness", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    run_parser(sub, run_prog)
    compare_parser(sub, run_prog)
    subparser = sub.add_parser("table", help="print the markdown tables of a results file")
    subparser.add_argument("file")
    subparser.set_defaults(func=cmd_table)
    subparser = sub.add_parser(
        "agree", help="do several run.sh results files agree? their medians side by side"
    )
    subparser.add_argument("files", nargs="+", metavar="FILE")
    subparser.set_defaults(func=cmd_agree)
    subparser = sub.add_parser("chart", help="draw the charts of a results file (needs matplotlib)")
    subparser.add_argument("file")
    subparser.set_defaults(func=cmd_chart)
    # The subcommands that were bash scripts, each in a module of its own.
    from harness import allocators, flamegraph, pin, plans

    for module in (pin, allocators, flamegraph, plans):
        module.add_parser(sub, run_prog)
    __import__("harness.cluster_cli").cluster_cli.add_parser(sub, run_prog)  # cluster.sh
    return ap


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
