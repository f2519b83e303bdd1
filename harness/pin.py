"""`pin` (scripts/pin.sh): the benchmark with the server, PostgreSQL and wrk
pinned to CPU sets, one layout or a matrix of them. All the measuring is
`run`'s (--pin-server, --pin-db, --pin-wrk), run as a child as run.sh; this
only chooses the layouts and puts their requests/s side by side."""

import os
import subprocess
from dataclasses import dataclass, field

from harness import drive, results
from harness.tools import ROOT, Fatal, ensure_tools, git_state, log, result_path, warn


@dataclass(frozen=True)
class Layout:
    """Where each part runs: CPU lists for taskset, "" = not pinned."""

    name: str
    runtime: str
    server: str = ""
    db: str = ""
    wrk: str = ""


# Each layout changes one thing against a neighbour: the runtime shape, or
# where the server runs relative to PostgreSQL and wrk.
LAYOUTS = (
    Layout("multi", "multi"),
    Layout("per-core", "per-core"),
    Layout("multi-s0", "multi", "0", "1", "1"),
    Layout("per-core-s0", "per-core", "0", "1", "1"),
    Layout("multi-sdb0", "multi", "0", "0", "1"),
    Layout("per-core-sdb0", "per-core", "0", "0", "1"),
)
BY_NAME = {layout.name: layout for layout in LAYOUTS}
DEFAULT_LAYOUTS = "multi,per-core,multi-s0,per-core-s0"

# run's options that a layout sets: not to be given with --matrix.
LAYOUT_SETS = ("--pin-server", "--pin-db", "--pin-wrk", "--target", "--out", "--label")


def layouts_table():
    """The layout table of the usage text."""
    rows = [("layout", "runtime", "server", "db", "wrk   (CPUs; - = not pinned)")]
    rows += [
        (layout.name, layout.runtime, layout.server or "-", layout.db or "-", layout.wrk or "-")
        for layout in LAYOUTS
    ]
    return "\n".join(
        f"  {name:<14} {runtime:<9} {server:<7} {db:<3} {wrk}".rstrip()
        for name, runtime, server, db, wrk in rows
    )


def usage():
    return f"""\
Usage: scripts/pin.sh [--server-cpus L] [--db-cpus L] [--wrk-cpus L] [RUN.SH OPTIONS]
       scripts/pin.sh --matrix [--layouts A,B,...] [RUN.SH OPTIONS]

The first form runs scripts/run.sh once with the server (and nginx, its
/version ceiling), the throwaway PostgreSQL, and wrk (and pgbench) pinned by
taskset to the given CPU lists (e.g. 0, 1, 0-1); an omitted one is not pinned.

--matrix runs scripts/run.sh once per layout, one after the other, each with a
fresh database and server, and prints a table of requests/s: workload rows,
layout columns. Each run's own table goes to stderr, its JSON to results/
(labelled pin-<layout>). Layouts (default: {DEFAULT_LAYOUTS}; "all" for every one):

{layouts_table()}

A server pinned to one CPU sees one core, so it starts one worker thread and
sizes its pool for one core: that is part of what a layout measures.

Other options go to run.sh as they are (--quick, --duration, --only, --runs,
--server-args, ...; see scripts/run.sh --help). With --matrix, the release
binary is built once, before the first layout, and every layout runs that one
binary (run.sh --no-build). Each layout sets --runtime (after any --server-args
of yours) and the --pin-* options, so those and --target, --out and --label
cannot be given.

Examples:
  scripts/pin.sh --server-cpus 0 --db-cpus 1 --wrk-cpus 1 --quick
  scripts/pin.sh --matrix --quick
  scripts/pin.sh --matrix --layouts all --duration 5 --only types,contact_random"""


@dataclass
class PinOptions:
    matrix: bool = False
    layouts: str = ""
    # --pin-* options from --server-cpus and the like (the single form).
    pin_args: list = field(default_factory=list)
    # Everything else, for run as it is.
    run_args: list = field(default_factory=list)
    # --server-args' value, kept apart: a layout adds --runtime to it.
    server_args: str = ""


def sets_layout_option(word):
    """True for an option of run's that a layout sets (--out or --out=FILE)."""
    option = word.split("=", 1)[0]
    return option.startswith("--pin-") or option in LAYOUT_SETS


def parse(words):
    """pin's words → PinOptions; raises ShowHelp or Fatal."""
    options = PinOptions()
    words = list(words)
    index = 0

    def value(option, what="a value"):
        nonlocal index
        if index + 1 >= len(words):
            raise Fatal(f"{option} needs {what}")
        index += 1
        return words[index]

    while index < len(words):
        word = words[index]
        option, equals, inline = word.partition("=")
        if word in ("-h", "--help"):
            raise drive.ShowHelp()
        if word == "--matrix":
            options.matrix = True
        elif option == "--layouts":
            options.layouts = inline if equals else value(word)
        elif option in ("--server-cpus", "--db-cpus", "--wrk-cpus"):
            cpus = inline if equals else value(option, "a CPU list")
            options.pin_args += [f"--pin-{option[2 : -len('-cpus')]}", cpus]
        elif option == "--server-args":
            options.server_args = inline if equals else value(word)
        elif word in LAYOUT_SETS:
            if options.matrix:
                raise Fatal(f"{word} cannot be given with --matrix: the layouts set it")
            options.run_args.append(word)
            if index + 1 < len(words):
                options.run_args.append(value(word))
        else:
            options.run_args.append(word)
        index += 1
    if options.matrix:
        if options.pin_args:
            raise Fatal("--matrix sets the CPUs itself; drop --server-cpus/--db-cpus/--wrk-cpus")
        for word in options.run_args:
            if sets_layout_option(word):
                raise Fatal(
                    f"{word.split('=', 1)[0]} cannot be given with --matrix: the layouts set it"
                )
    elif options.layouts:
        raise Fatal("--layouts goes with --matrix")
    return options


def choose_layouts(text):
    """--layouts' value → Layouts, in the order given; "all": every one."""
    text = text or DEFAULT_LAYOUTS
    if text == "all":
        return list(LAYOUTS)
    chosen = []
    for name in (name for name in text.split(",") if name):
        if name not in BY_NAME:
            raise Fatal(
                f"unknown layout '{name}'; the layouts are: "
                + " ".join(layout.name for layout in LAYOUTS)
            )
        chosen.append(BY_NAME[name])
    if not chosen:
        raise Fatal("--layouts names no layout")
    return chosen


def layout_args(layout, run_args, server_args, out):
    """run's words for one layout of the matrix."""
    runtime = f"--runtime {layout.runtime}"
    args = [*run_args, "--no-build", "--label", f"pin-{layout.name}", "--out", out]
    args += ["--server-args", f"{server_args} {runtime}" if server_args else runtime]
    for option, cpus in (
        ("--pin-server", layout.server),
        ("--pin-db", layout.db),
        ("--pin-wrk", layout.wrk),
    ):
        if cpus:
            args += [option, cpus]
    return args


def run_single(options):
    args = [*options.pin_args, *options.run_args]
    if options.server_args:
        args += ["--server-args", options.server_args]
    return drive.run_harness(args)


def run_matrix(options):
    layouts = choose_layouts(options.layouts)
    usable = len(os.sched_getaffinity(0))
    if usable < 2:
        raise Fatal(f"the pinned layouts need 2 CPUs; this process may use {usable}")

    # One build for every layout: they must all measure the same binary (and
    # src/ changing between two layouts must not change the comparison).
    ensure_tools(["cargo"])
    commit, dirty = git_state()
    log("building the release binary (cargo build --release)")
    if subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2) != 0:
        raise Fatal("cargo build --release failed (see above)")
    env = drive.child_env(
        {"BAKEOFF_GIT_COMMIT": commit, "BAKEOFF_GIT_DIRTY": "true" if dirty else "false"}
    )

    paths, labels, failed = [], [], []
    for number, layout in enumerate(layouts, start=1):
        out = result_path("bakeoff", f"pin-{layout.name}", commit, dirty)
        log(
            f"layout {number}/{len(layouts)}: {layout.name} (runtime {layout.runtime}, "
            f"server CPUs {layout.server or '-'}, db {layout.db or '-'}, wrk {layout.wrk or '-'})"
        )
        # Each run's table goes to stderr: stdout is for the matrix.
        args = layout_args(layout, options.run_args, options.server_args, out)
        if drive.run_harness(args, to_stderr=True, env=env) == 0:
            paths.append(out)
            labels.append(layout.name)
        else:
            warn(f"layout {layout.name} failed; going on with the others")
            failed.append(layout.name)

    if paths:
        print()
        docs = [results.read_json(path) for path in paths]
        print(drive.rps_table(docs, paths, labels), flush=True)
    if failed:
        raise Fatal(f"these layouts failed: {' '.join(failed)}")
    return 0


def main(words):
    try:
        options = parse(words)
    except drive.ShowHelp:
        print(usage())
        return 0
    return run_matrix(options) if options.matrix else run_single(options)


def add_parser(sub, _prog=None):
    """Registers `pin` (its usage names scripts/pin.sh whatever the prog)."""
    drive.add_raw_parser(
        sub, "pin", "the benchmark pinned to CPU sets, or a matrix of layouts (pin.sh)", main
    )
