"""What the commands built on `run` share (pin, allocators; flamegraph and
starts-plans use the first part too): a subcommand that takes its words as
they come, `python3 -m harness run` as a child whose signals are forwarded,
and the requests/s of several results files side by side."""

import argparse
import os
import signal
import subprocess
import sys

from harness.tools import ROOT, Interrupted


def add_raw_parser(sub, name, help_text, func):
    """A subcommand whose words reach func(words) untouched. pin and
    allocators pass most of theirs on to `run`, which argparse here cannot
    know; every one of these parses its own words, so that its errors are
    `PROG: error: ...` with exit status 1, as its bash script's were. No
    word is an option to argparse (no prefix character is ever used), and
    REMAINDER keeps even "--"."""
    subparser = sub.add_parser(name, help=help_text, add_help=False, prefix_chars="\0")
    subparser.add_argument("words", nargs=argparse.REMAINDER)
    subparser.set_defaults(func=lambda options, _argv: func(options.words))
    return subparser


class ShowHelp(Exception):
    """-h or --help among a command's words: print its usage, exit 0."""


def child_env(extra=None):
    """The environment of a child `python3 -m harness run`: this package on
    PYTHONPATH, messages under run.sh's name."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["HARNESS_PROG"] = "run.sh"
    env.update(extra or {})
    return env


def run_harness(args, to_stderr=False, env=None):
    """`python3 -m harness run ARGS`, what scripts/run.sh runs, as a child,
    waited for; its stdout on ours, or on our stderr (to_stderr: ours is
    then kept for a table of our own). Returns its exit status, 128+N when
    signal N ended it (as a shell reports it). A SIGINT or SIGTERM to this
    process reaches it too, and it is waited for (it stops what it started
    and removes its temp dir) before Interrupted goes on up."""
    sys.stdout.flush()
    sys.stderr.flush()
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", *args],
        stdout=2 if to_stderr else None,
        env=env or child_env(),
    )
    try:
        status = process.wait()
    except Interrupted as interrupted:
        stop_child_and_wait(process, interrupted.signum)
        raise
    return 128 - status if status < 0 else status


# How long a child that got the same Ctrl-C from the terminal (it is in our
# process group) has to begin its cleanup before the signal is sent to it
# again: a second one while it unwinds would end it by the second signal.
FORWARD_GRACE_S = 0.5


def stop_child_and_wait(process, signum):
    """Passes signum on to a child that cleans up after itself, unless it
    has exited within FORWARD_GRACE_S, and waits for it; a second Ctrl-C
    meanwhile must not leave it half done."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        process.wait(timeout=FORWARD_GRACE_S)
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass
    process.wait()


# --- requests/s side by side ------------------------------------------------------


def workload_rps(workload):
    """The median requests/s of a workload entry: schema 2's top-level
    `median`, or schema 1's summary."""
    if "median" in workload:
        return workload["median"]
    return ((workload.get("summary") or {}).get("rps") or {}).get("median")


def rps_table(docs, paths, labels=()):
    """The requests/s of several results documents side by side, as
    the bash harness's `bench.py compare` printed them: workload rows (in the order they
    first appear), one column per document, labelled by `labels` or else by
    the document's label, name or file name."""
    labels = list(labels)
    for index, doc in enumerate(docs):
        if index >= len(labels):
            labels.append(doc.get("label") or doc.get("name") or os.path.basename(paths[index]))
    names = []
    for doc in docs:
        for workload in doc.get("workloads", []):
            if workload["name"] not in names:
                names.append(workload["name"])
    lines = [
        "| workload | " + " | ".join(labels) + " |",
        "| --- | " + " | ".join("---:" for _ in labels) + " |",
    ]
    for name in names:
        cells = []
        for doc in docs:
            workload = next((w for w in doc.get("workloads", []) if w["name"] == name), None)
            rps = workload_rps(workload) if workload else None
            cells.append("-" if rps is None else f"{rps:.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "requests/s (median over each file's runs); files: "
        + ", ".join(os.path.relpath(path) for path in paths)
    )
    return "\n".join(lines)
