"""Every option of the harness, declared once: `Settings` is a frozen
dataclass whose fields carry their command-line form (flag, type, help) and
their defaults, with the profiles that change a default (`--quick`, the
study, a `--target` run) beside it. options.py puts them on the parsers and
turns what argparse parsed into Settings. Nobody changes Settings after: a
variant of them is `dataclasses.replace(settings, ...)`."""

from dataclasses import dataclass, field

from harness.argtypes import (
    level_list,
    non_negative_float,
    percent_list,
    positive_int,
    rtt_list,
    whole_number,
)

RUN, STUDY, FLAME = "run", "compare", "flamegraph"
MEASURING = (RUN, STUDY)


# --- the declaration ---------------------------------------------------------------


def option(default, *flags, commands=MEASURING, help, profiles=None, **argparse_args):
    """A field of Settings with its command line: `flags` (the first names
    the field's flag; none: the field is derived, never typed), the commands
    that take it, and the defaults of the profiles ("quick", "compare",
    "target") where they differ from `default`."""
    return field(
        default=default,
        metadata={
            "flags": flags,
            "commands": commands,
            "help": help,
            "profiles": profiles or {},
            "argparse": argparse_args,
        },
    )


@dataclass(frozen=True)
class Settings:
    """What one command measures and how. Field order is --help's order."""

    # What is measured.
    only: str = option(
        "",
        "--only",
        profiles={"sweep": "types,fetch100"},
        metavar="W[,W...]",
        help="only these workloads, in table order",
    )
    systems: str = option(
        "",
        "--systems",
        "--impls",
        commands=(STUDY,),
        profiles={"sweep": "fastapi_asyncpg,fastapi_orm,django_gthread"},
        metavar="A[,B...]",
        help="only these systems (folders of peers/ with a system.toml), in their order",
    )
    # The sweep: each system at each combination of its knobs.
    sweep: bool = option(
        False,
        "--sweep",
        action="store_true",
        commands=(STUDY,),
        help="each system (default: the best async row, the ORM and Django) at every "
        "combination of the knobs its manifest has (workers x pool per worker x threads), "
        "at saturation only: req/s, CPU per request and PostgreSQL backends held",
    )
    sweep_workers: tuple = option(
        (1, 2, 4),
        "--sweep-workers",
        type=level_list,
        commands=(STUDY,),
        metavar="N[,N...]",
        help="the sweep's process counts",
    )
    sweep_pool: tuple = option(
        (2, 5, 10),
        "--sweep-pool",
        type=level_list,
        commands=(STUDY,),
        metavar="N[,N...]",
        help="the sweep's connections per process",
    )
    sweep_threads: tuple = option(
        (2, 4, 8),
        "--sweep-threads",
        type=level_list,
        commands=(STUDY,),
        metavar="N[,N...]",
        help="the sweep's threads per process (gunicorn gthread)",
    )
    runs: int = option(
        3,
        "--runs",
        type=positive_int,
        profiles={"quick": 1, "target": 1, "sweep": 2},
        help="interleaved runs (the study: rounds) of everything",
    )
    duration: int = option(
        10,
        "--duration",
        type=positive_int,
        commands=(RUN, STUDY, FLAME),
        profiles={"quick": 2, "compare": 5},
        help="seconds of each saturation window (and of sampling, for flamegraph)",
    )
    warmup: int = option(
        2,
        "--warmup",
        type=whole_number,
        commands=(RUN, STUDY, FLAME),
        profiles={"quick": 1},
        help="seconds of wrk before each window, not measured",
    )
    connections: int = option(
        64,
        "--connections",
        type=positive_int,
        commands=(RUN, STUDY, FLAME),
        help="wrk connections = pgbench clients = oha connections",
    )
    threads: int = option(
        2,
        "--threads",
        type=positive_int,
        commands=(RUN, STUDY, FLAME),
        help="wrk threads = pgbench threads",
    )
    contacts: int = option(
        10000,
        "--contacts",
        type=positive_int,
        commands=(RUN, STUDY, FLAME),
        help="contacts to seed (run.sh with DATABASE_URL: read from the database unless given)",
    )
    contacts_given: bool = option(False, help="--contacts was typed")
    quick: bool = option(
        False,
        "--quick",
        action="store_true",
        help="a short run for CI: 1 run, 2 s windows, 1 s warm-up, no retries, "
        "the common fixed rate only",
    )
    # The reference.
    server_args: tuple = option(
        (),
        "--server-args",
        commands=(RUN, STUDY, FLAME),
        metavar='"..."',
        help="extra options for the reference's `bakeoff serve`, split on spaces "
        '(e.g. "--runtime per-core --pool-size 8"); its environment variables pass through too',
    )
    binary: str = option(
        "", "--binary", metavar="PATH", help="the reference's binary (then nothing is built)"
    )
    build: bool = option(
        True,
        "--no-build",
        action="store_false",
        help="use target/release/bakeoff as it is",
    )
    # Where: hosts, distance, instances, the database's limit, the pooler.
    rtt_ms: tuple = option(
        (0.0,),
        "--rtt-ms",
        type=rtt_list,
        metavar="MS[,MS...]",
        help="round trips between the app hosts and the database host; each figure is "
        "measured at each, interleaved (above 0: network-namespace hosts and a delay link)",
    )
    instances: tuple = option(
        (1,),
        "--instances",
        type=level_list,
        metavar="N[,N...]",
        help="copies of each system, each on its own host, behind HAProxy when more than one",
    )
    hosts: bool = option(
        False,
        "--hosts",
        action="store_true",
        help="place every component on a host of its own (network namespaces) even at round "
        "trip 0 and one instance; implied by --rtt-ms above 0 and --instances above 1",
    )
    max_connections: int = option(
        100,
        "--max-connections",
        type=positive_int,
        metavar="N",
        help="PostgreSQL's max_connections (as shipped: 100); what a system does past it is "
        "recorded",
    )
    pooler: str = option(
        "none",
        "--pooler",
        choices=("none", "pgbouncer", "both"),
        help="pgbouncer: every system behind PgBouncer in transaction mode; both: directly "
        "and behind it",
    )
    pooler_size: int = option(
        8,
        "--pooler-size",
        type=positive_int,
        metavar="N",
        help="PgBouncer's server connections (default_pool_size)",
    )
    # The ceilings.
    ceilings: bool = option(
        True, "--no-ceilings", action="store_false", help="skip the nginx and pgbench ceilings"
    )
    pipeline_depth: int = option(
        16,
        "--pipeline-depth",
        type=whole_number,
        metavar="N",
        help="the database's own ceiling: pgbench in pipeline mode, N statements in flight on "
        "each of the server's connections (0: not measured)",
    )
    # Fixed rates.
    fixed_rate: bool = option(
        True,
        "--no-fixed-rate",
        action="store_false",
        profiles={"target": False, "sweep": False},
        help="skip the fixed-rate windows (oha and pgbench --rate)",
    )
    fixed_rate_forced: bool = option(
        False,
        "--fixed-rate",
        action="store_true",
        commands=(RUN,),
        help="measure at fixed rates with --target too (the default without it)",
    )
    rate_fractions: tuple = option(
        (25.0, 50.0, 75.0, 90.0),
        "--rate-fractions",
        type=percent_list,
        profiles={"quick": ()},
        metavar="P[,P...]",
        help="offered rates in percent of each run's measured capacity",
    )
    common_rate: int = option(
        500,
        "--common-rate",
        type=whole_number,
        metavar="RPS",
        help="one offered rate for every system, 0 for none",
    )
    fixed_rate_duration: int = option(
        5,
        "--fixed-rate-duration",
        type=positive_int,
        profiles={"quick": 2},
        metavar="S",
        help="seconds of each fixed-rate window",
    )
    # The study's extra measurements.
    concurrency: tuple = option(
        (16, 256),
        "--concurrency",
        type=level_list,
        commands=(STUDY,),
        profiles={"quick": (), "sweep": ()},
        metavar="C[,C...]",
        help="also measure types and fetch100 at these connection counts",
    )
    mixed_fib_rate: float = option(
        10.0,
        "--mixed-fib-rate",
        type=non_negative_float,
        commands=(STUDY,),
        profiles={"sweep": 0.0},
        metavar="RPS",
        help="/fibonacci/25 at this rate beside /types at --common-rate (0: not measured)",
    )
    asyncpg_split: bool = option(
        True,
        "--no-asyncpg-split",
        action="store_false",
        commands=(STUDY,),
        profiles={"quick": False, "sweep": False},
        help="skip fastapi_asyncpg's /contacts/for split",
    )
    setup: bool = option(
        True,
        "--no-setup",
        action="store_false",
        commands=(STUDY,),
        help="do not run the systems' set-up commands",
    )
    # run.sh against a server of yours, and pinning.
    target: str = option(
        "", "--target", commands=(RUN,), metavar="URL", help="measure the server at URL instead"
    )
    name: str = option(
        "bakeoff",
        "--name",
        commands=(RUN,),
        help="name of that server in the results (required with --target)",
    )
    target_pid: int = option(
        0,
        "--target-pid",
        type=positive_int,
        commands=(RUN,),
        metavar="PID",
        help="its process: its peak RSS, and its CPU (with its children's) per request",
    )
    pin_server: str = option(
        "", "--pin-server", commands=(RUN,), metavar="CPUS", help="taskset CPUs of the server"
    )
    pin_db: str = option(
        "", "--pin-db", commands=(RUN,), metavar="CPUS", help="taskset CPUs of PostgreSQL"
    )
    pin_wrk: str = option(
        "", "--pin-wrk", commands=(RUN,), metavar="CPUS", help="taskset CPUs of wrk, oha, pgbench"
    )
    transport: str = option(
        "tcp",
        "--transport",
        commands=(RUN,),
        choices=("tcp", "unix"),
        help="how the server and pgbench reach the throwaway PostgreSQL",
    )
    # The noise gate and CPU accounting.
    noise_threshold: float = option(
        0.10,
        "--noise-threshold",
        type=non_negative_float,
        metavar="CORES",
        help="a window in which other work used more than this many cores is measured again",
    )
    max_retries: int = option(
        2,
        "--max-retries",
        type=whole_number,
        profiles={"quick": 0, "target": 0},
        metavar="N",
        help="how often a noisy window is measured again; then the least noisy is kept, "
        "marked noisy",
    )
    cpu_method: str = option(
        "auto",
        "--cpu-method",
        choices=("auto", "proc"),
        help="auto: cgroups where writable, else /proc; proc: /proc even with cgroups",
    )
    # Output.
    label: str = option("", "--label", help="a label for this run, in the JSON and its file name")
    out: str = option(
        "",
        "--out",
        commands=(RUN, STUDY, FLAME),
        metavar="FILE",
        help="write the results here instead of results/",
    )
    raw_dir: str = option(
        "", "--raw-dir", metavar="DIR", help="keep every tool's raw output in DIR"
    )
    charts: bool = option(True, "--no-charts", action="store_false", help="draw no charts")

    # --- derived views ------------------------------------------------------------

    @property
    def uses_hosts(self):
        return self.hosts or any(self.rtt_ms) or max(self.instances) > 1

    def rate_labels(self):
        labels = [f"{percent:g}%" for percent in self.rate_fractions]
        return labels + (["common"] if self.common_rate else [])

    def rates_for(self, capacity):
        """(label, offered req/s) of one run: fractions of that run's
        measured capacity, then the common rate."""
        out = [(f"{percent:g}%", capacity * percent / 100.0) for percent in self.rate_fractions]
        if self.common_rate:
            out.append(("common", float(self.common_rate)))
        return [(label, max(round(rate), 1)) for label, rate in out]
