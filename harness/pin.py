"""`pin` (scripts/pin.sh): the benchmark with the server, PostgreSQL and wrk
pinned to CPU sets, one layout or a matrix of them. Each layout is one
`run` (runner.Run) in this process, with --pin-server, --pin-db and
--pin-wrk set; this chooses the layouts and puts their requests/s side by
side."""

import contextlib
import dataclasses
import os
import sys
from dataclasses import dataclass

from harness import archive, report
from harness import options as options_module
from harness.runner import Run, build_reference
from harness.settings import RUN
from harness.tools import Fatal, git_state, log, quote_command, result_path, warn


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


def layouts_table():
    """The layout table of the help text."""
    rows = [("layout", "runtime", "server", "db", "wrk   (CPUs; - = not pinned)")]
    rows += [
        (layout.name, layout.runtime, layout.server or "-", layout.db or "-", layout.wrk or "-")
        for layout in LAYOUTS
    ]
    return "\n".join(
        f"  {name:<14} {runtime:<9} {server:<7} {db:<3} {wrk}".rstrip()
        for name, runtime, server, db, wrk in rows
    )


DESCRIPTION = f"""\
Without --matrix: one run (scripts/run.sh) with the server (and nginx, its
/version ceiling), the throwaway PostgreSQL, and wrk (and pgbench, oha)
pinned by taskset to --pin-server, --pin-db and --pin-wrk (e.g. 0, 1, 0-1).

--matrix runs once per layout, one after the other, each with a fresh
database and server and the same binary (built once), and prints a table of
requests/s: workload rows, layout columns. Each run's own table goes to
stderr, its JSON to results/ (labelled pin-<layout>). Layouts (default:
{DEFAULT_LAYOUTS}; "all" for every one):

{layouts_table()}

A server pinned to one CPU sees one core, so it starts one worker thread and
sizes its pool for one core: that is part of what a layout measures. Each
layout adds --runtime to --server-args and sets the --pin-* options.

Examples:
  scripts/pin.sh --pin-server 0 --pin-db 1 --pin-wrk 1 --quick
  scripts/pin.sh --matrix --quick
  scripts/pin.sh --matrix --layouts all --duration 5 --only types,contact_random"""


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


def layout_settings(settings, layout, out):
    """The settings of one layout's run: its runtime after the user's
    --server-args, its CPUs, its label and file, no build."""
    return dataclasses.replace(
        settings,
        server_args=(*settings.server_args, "--runtime", layout.runtime),
        pin_server=layout.server,
        pin_db=layout.db,
        pin_wrk=layout.wrk,
        label=f"pin-{layout.name}",
        out=out,
        build=False,
    )


def check_matrix(settings):
    """What a layout sets cannot be given with --matrix."""
    for option, value in (
        ("--pin-server", settings.pin_server),
        ("--pin-db", settings.pin_db),
        ("--pin-wrk", settings.pin_wrk),
        ("--target", settings.target),
        ("--out", settings.out),
        ("--label", settings.label),
    ):
        if value:
            raise Fatal(f"{option} cannot be given with --matrix: the layouts set it")


def run_matrix(settings, layouts, command_line):
    usable = len(os.sched_getaffinity(0))
    if usable < 2:
        raise Fatal(f"the pinned layouts need 2 CPUs; this process may use {usable}")
    # One build for every layout: they must all measure the same binary, and
    # the results name the commit that was built.
    commit, dirty = git_state()
    build_reference(settings)
    os.environ["BAKEOFF_GIT_COMMIT"] = commit
    os.environ["BAKEOFF_GIT_DIRTY"] = "true" if dirty else "false"
    paths, labels, failed = [], [], []
    for number, layout in enumerate(layouts, start=1):
        out = result_path("run", commit, dirty, settings.quick, f"pin-{layout.name}")
        log(
            f"layout {number}/{len(layouts)}: {layout.name} (runtime {layout.runtime}, "
            f"server CPUs {layout.server or '-'}, db {layout.db or '-'}, wrk {layout.wrk or '-'})"
        )
        try:
            # Each run's table goes to stderr: stdout is for the matrix.
            with contextlib.redirect_stdout(sys.stderr):
                Run(layout_settings(settings, layout, out), command_line).run()
        except Fatal as error:
            warn(f"layout {layout.name} failed ({error}); going on with the others")
            failed.append(layout.name)
            continue
        paths.append(out)
        labels.append(layout.name)
    if paths:
        print()
        docs = [archive.read_json(path) for path in paths]
        print(report.rps_side_by_side(docs, paths, labels), flush=True)
    if failed:
        raise Fatal(f"these layouts failed: {' '.join(failed)}")
    return 0


def cmd_pin(options, argv):
    settings = options_module.from_args(options, RUN)
    command_line = quote_command(["scripts/pin.sh", *argv])
    if not options.matrix:
        if options.layouts:
            raise Fatal("--layouts goes with --matrix")
        Run(settings, command_line).run()
        return 0
    check_matrix(settings)
    return run_matrix(settings, choose_layouts(options.layouts), command_line)


def add_parser(sub, prog=None):
    import argparse

    parser = sub.add_parser(
        "pin",
        help="the benchmark pinned to CPU sets, or a matrix of layouts (scripts/pin.sh)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **({"prog": prog} if prog else {}),
    )
    parser.add_argument("--matrix", action="store_true", help="one run per layout")
    parser.add_argument("--layouts", default="", metavar="A,B,...", help="the layouts of --matrix")
    options_module.add_options(parser, RUN)
    parser.set_defaults(func=cmd_pin)
