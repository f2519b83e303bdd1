"""`allocators` (scripts/allocators.sh, also `scripts/run.sh --allocators`):
the benchmark once per global allocator (the cargo features mimalloc and
jemalloc, and the system allocator with --no-default-features), each built
into its own target dir, the same workloads and database, and their
requests/s side by side. The runs are `run`'s, each a child as run.sh."""

import os
import subprocess

from harness import drive, results
from harness.tools import ROOT, Fatal, ensure_tools, git_state, log, result_path

# (name, cargo options), in the order they are built and run.
ALLOCATORS = (
    ("mimalloc", ()),
    ("jemalloc", ("--features", "jemalloc")),
    ("system", ("--no-default-features",)),
)

# run's options that each allocator's run sets.
RUN_SETS = ("--binary", "--no-build", "--label", "--out", "--target")

USAGE = """\
Usage: scripts/allocators.sh [RUN.SH OPTIONS]
       scripts/run.sh --allocators [RUN.SH OPTIONS]

Builds the release server once per allocator (mimalloc, the default;
jemalloc; the system allocator), each into target/alloc-NAME, then runs
scripts/run.sh with each binary, one after the other, and prints their
requests/s side by side. The ceilings are measured in the first run only
(they do not depend on the server). Other options go to run.sh as they are
(--quick, --duration, --only, --runs, --server-args, ...)."""


def parse(words):
    """allocators' words → run's words; raises ShowHelp or Fatal."""
    run_args = []
    for word in words:
        if word in ("-h", "--help"):
            raise drive.ShowHelp()
        if word == "--allocators":
            continue
        if word.split("=", 1)[0] in RUN_SETS:
            raise Fatal(
                f"{word.split('=', 1)[0]} cannot be given here: each allocator's run sets it"
            )
        run_args.append(word)
    return run_args


def binary_of(name):
    return os.path.join(ROOT, "target", f"alloc-{name}", "release", "bakeoff")


def run_args_for(name, run_args, out, first):
    """run's words for one allocator's run; the ceilings in the first only."""
    args = [*run_args, "--binary", binary_of(name), "--label", f"alloc-{name}", "--out", out]
    return args if first else [*args, "--no-ceilings"]


def main(words):
    try:
        run_args = parse(words)
    except drive.ShowHelp:
        print(USAGE)
        return 0
    ensure_tools(["cargo"])
    commit, dirty = git_state()
    env = drive.child_env(
        {"BAKEOFF_GIT_COMMIT": commit, "BAKEOFF_GIT_DIRTY": "true" if dirty else "false"}
    )

    for name, cargo_options in ALLOCATORS:
        command = ["cargo", "build", "--release", *cargo_options]
        log(f"building with the {name} allocator ({' '.join(command)})")
        build_env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", f"alloc-{name}"))
        if subprocess.call(command, cwd=ROOT, stdout=2, env=build_env) != 0:
            raise Fatal(f"the {name} build failed (see above)")

    paths, labels = [], []
    for number, (name, _) in enumerate(ALLOCATORS):
        out = result_path("bakeoff", f"alloc-{name}", commit, dirty)
        log(f"allocator {name}")
        # Each run's table goes to stderr: stdout is for the comparison.
        status = drive.run_harness(
            run_args_for(name, run_args, out, number == 0), to_stderr=True, env=env
        )
        if status != 0:
            # As the bash script under set -e: the first failed run ends it.
            log(f"the run with the {name} allocator failed (exit status {status})")
            return status
        paths.append(out)
        labels.append(name)

    print()
    docs = [results.read_json(path) for path in paths]
    print(drive.rps_table(docs, paths, labels), flush=True)
    return 0


def add_parser(sub, _prog=None):
    """Registers `allocators` (its usage names the scripts)."""
    drive.add_raw_parser(
        sub, "allocators", "the benchmark once per global allocator (allocators.sh)", main
    )
