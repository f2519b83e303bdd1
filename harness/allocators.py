"""`allocators` (scripts/allocators.sh, also `scripts/run.sh --allocators`):
the benchmark once per global allocator (the cargo features mimalloc and
jemalloc, and the system allocator with --no-default-features), each built
into its own target dir, the same workloads, and their requests/s side by
side. Each is one `run` (runner.Run) in this process."""

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys

from harness import archive, report
from harness import options as options_module
from harness.runner import Run
from harness.settings import RUN
from harness.tools import ROOT, Fatal, ensure_tools, git_state, log, quote_command, result_path

# (name, cargo options), in the order they are built and run.
ALLOCATORS = (
    ("mimalloc", ()),
    ("jemalloc", ("--features", "jemalloc")),
    ("system", ("--no-default-features",)),
)

DESCRIPTION = """\
Builds the release server once per allocator (mimalloc, the default;
jemalloc; the system allocator), each into target/alloc-NAME, then runs the
benchmark with each binary, one after the other, and prints their
requests/s side by side. The ceilings are measured in the first run only
(they do not depend on the server). The options are run.sh's; each run sets
--binary, --label and --out itself."""


def binary_of(name):
    return os.path.join(ROOT, "target", f"alloc-{name}", "release", "bakeoff")


def run_settings(settings, name, out, first):
    """One allocator's run: its binary, label and file; the ceilings in the first only."""
    return dataclasses.replace(
        settings,
        binary=binary_of(name),
        build=False,
        label=f"alloc-{name}",
        out=out,
        ceilings=settings.ceilings and first,
    )


def refuse_what_each_run_sets(namespace):
    for option, value in (
        ("--binary", namespace.binary),
        ("--no-build", namespace.build is False),
        ("--label", namespace.label),
        ("--out", namespace.out),
        ("--target", namespace.target),
    ):
        if value:
            raise Fatal(f"{option} cannot be given here: each allocator's run sets it")


def cmd_allocators(options, argv):
    refuse_what_each_run_sets(options)
    settings = options_module.from_args(options, RUN)
    ensure_tools(["cargo"])
    commit, dirty = git_state()
    os.environ["BAKEOFF_GIT_COMMIT"] = commit
    os.environ["BAKEOFF_GIT_DIRTY"] = "true" if dirty else "false"
    for name, cargo_options in ALLOCATORS:
        command = ["cargo", "build", "--release", *cargo_options]
        log(f"building with the {name} allocator ({' '.join(command)})")
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", f"alloc-{name}"))
        if subprocess.call(command, cwd=ROOT, stdout=2, env=env) != 0:
            raise Fatal(f"the {name} build failed (see above)")
    command_line = quote_command(["scripts/allocators.sh", *argv])
    paths, labels = [], []
    for number, (name, _) in enumerate(ALLOCATORS):
        out = result_path("run", commit, dirty, settings.quick, f"alloc-{name}")
        log(f"allocator {name}")
        # Each run's table goes to stderr: stdout is for the comparison.
        with contextlib.redirect_stdout(sys.stderr):
            Run(run_settings(settings, name, out, number == 0), command_line).run()
        paths.append(out)
        labels.append(name)
    print()
    docs = [archive.read_json(path) for path in paths]
    print(report.rps_side_by_side(docs, paths, labels), flush=True)
    return 0


def add_parser(sub, prog=None):
    parser = sub.add_parser(
        "allocators",
        help="the benchmark once per global allocator (scripts/allocators.sh)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **({"prog": prog} if prog else {}),
    )
    options_module.add_options(parser, RUN)
    parser.set_defaults(func=cmd_allocators)
