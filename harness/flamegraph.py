"""`flamegraph` (scripts/flamegraph.sh): where the server spends its CPU
under one workload. Builds the release binary with debug symbols and frame
pointers, starts it on a throwaway seeded PostgreSQL (pg.py and server.py,
as `run` does), loads it with wrk while `perf record` samples it, and
renders the samples with inferno to flamegraphs/WORKLOAD.svg, with the
heaviest leaf frames beside it in WORKLOAD.leaves.txt."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from harness import cpu, loadgen, pg, systems
from harness import options as options_module
from harness.argtypes import positive_int
from harness.settings import FLAME
from harness.tools import (
    ROOT,
    Cleanup,
    Fatal,
    ensure_tools,
    git_state,
    log,
    need_tool,
    stop_process,
    wait_http,
)
from harness.workloads import BY_NAME, WORKLOADS

# wrk gives up on a response after this long and counts a timeout (as in run).
WRK_TIMEOUT_S = 5
# How many leaf frames the leaves file keeps, and how many the log shows.
LEAVES_KEPT = 40
LEAVES_SHOWN = 8


DESCRIPTION = """\
Profiles the server under one workload and writes flamegraphs/WORKLOAD.svg,
with the heaviest leaf frames beside it in WORKLOAD.leaves.txt.

The build goes to target/flamegraph (CARGO_PROFILE_RELEASE_DEBUG=true,
-C force-frame-pointers=yes), so it does not throw away target/release.
Sampling uses the cpu-clock software event: hardware counters are often
missing in virtual machines. Needs perf, wrk, PostgreSQL, and inferno
(installed with `cargo install inferno` when missing).

--call-graph fp (the default) uses frame pointers: the build keeps them, but
libc's and std's code has none, so a stack that is in a syscall loses its
Rust callers (about half the samples under a database workload); dwarf gives
complete stacks, inlined frames too, with a larger perf.data and ~30 s more
to render."""


@dataclass(frozen=True)
class FlameOptions:
    """One profile: the measuring settings (duration, warm-up, connections,
    threads, contacts, server args, out) and perf's own."""

    settings: object
    workload: str
    frequency: int = 999
    call_graph: str = "fp"

    @property
    def out(self):
        return self.settings.out or os.path.join(ROOT, "flamegraphs", f"{self.workload}.svg")


# --- pure parts ----------------------------------------------------------------------


def leaves_path(svg):
    """WORKLOAD.leaves.txt beside WORKLOAD.svg (any other name: NAME.leaves.txt)."""
    return (svg[: -len(".svg")] if svg.endswith(".svg") else svg) + ".leaves.txt"


def heaviest_leaves(folded_lines, kept=LEAVES_KEPT):
    """The frames that run themselves (the last frame of each stack), by
    their share of all samples, heaviest first: where the time goes without
    reading the SVG. A folded line is `frame;frame;...;frame COUNT`. Lines
    as `%6.2f%%  frame`, sorted as `sort -rn` sorted them in bash."""
    self_samples = {}
    total = 0
    for line in folded_lines:
        line = line.rstrip("\n")
        match = re.fullmatch(r"(.*) ([0-9]+)", line)
        if not match:
            continue
        stack, count = match.group(1), int(match.group(2))
        leaf = stack.split(";")[-1]
        self_samples[leaf] = self_samples.get(leaf, 0) + count
        total += count
    if not total:
        return []
    lines = [f"{100 * samples / total:6.2f}%  {leaf}" for leaf, samples in self_samples.items()]
    lines.sort(key=lambda text: (float(text.split("%", 1)[0]), text), reverse=True)
    return lines[:kept]


def title(workload, commit, dirty, connections, rps):
    return (
        f"bakeoff {workload}: commit {commit[:10]}{' (dirty)' if dirty else ''}, "
        f"{connections} connections, {rps} req/s"
    )


# --- the steps ---------------------------------------------------------------------


def ensure_inferno():
    """The directory of inferno's two tools: on PATH, or cargo's bin dir,
    after `cargo install inferno` when they are in neither."""
    tools = ("inferno-flamegraph", "inferno-collapse-perf")
    found = [shutil.which(tool) for tool in tools]
    if all(found):
        return os.path.dirname(found[0])
    cargo_bin = os.path.join(os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo"), "bin")
    if not all(os.access(os.path.join(cargo_bin, tool), os.X_OK) for tool in tools):
        log("inferno is missing: running cargo install inferno (a few minutes, once)")
        if subprocess.call(["cargo", "install", "inferno"], stdout=2) != 0:
            raise Fatal("cargo install inferno failed; run it yourself and retry")
    return cargo_bin


def build_profiling_binary():
    """A target dir of its own: other flags than target/release, so building
    here does not make the next run rebuild everything, and back."""
    target = os.path.join(ROOT, "target", "flamegraph")
    # Without frame pointers, perf's default unwinder cuts most stacks short.
    rustflags = " ".join(filter(None, [os.environ.get("RUSTFLAGS"), "-C force-frame-pointers=yes"]))
    env = dict(
        os.environ,
        CARGO_TARGET_DIR=target,
        CARGO_PROFILE_RELEASE_DEBUG="true",
        RUSTFLAGS=rustflags,
    )
    log("building the release binary (cargo build --release)")
    if subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2, env=env) != 0:
        raise Fatal("cargo build --release failed (see above)")
    return os.path.join(target, "release", "bakeoff")


class Profile:
    """One profiling session; run() drives it, the cleanup undoes it."""

    def __init__(self, options):
        self.options = options
        self.cleanup = Cleanup()
        self.tmp = None
        self.server = None
        self.inferno = None

    def wrk(self, seconds, out_name, parse=True):
        """One wrk run of the workload against the server; its parsed
        figures (with parse), or None."""
        options = self.options
        workload = BY_NAME[options.workload]
        argv = loadgen.wrk_argv(
            need_tool("wrk"),
            workload,
            self.server.url,
            seconds,
            options.settings.connections,
            options.settings.threads,
            WRK_TIMEOUT_S,
            options.settings.contacts,
        )
        status, text = loadgen.run_tool(argv, os.path.join(self.tmp, out_name))
        if status != 0:
            print(text, file=sys.stderr)
            if not self.server.alive():
                tail = self.server.log_tail(20).splitlines()
                print("\n".join(tail), file=sys.stderr)
                raise Fatal(
                    f"the server is gone: it exited during {workload.name} "
                    "(its last lines are above)"
                )
            raise Fatal(
                f"wrk failed on {workload.name} against {self.server.url} (its output is above)"
            )
        if not parse:
            return None
        try:
            return loadgen.parse_wrk(text)
        except ValueError as error:
            raise Fatal(f"{error}:\n{text}") from error

    def record(self, data):
        """perf samples the server for --duration seconds while wrk loads it
        for as long; returns wrk's requests/s."""
        options = self.options
        graph = ["--call-graph", "dwarf"] if options.call_graph == "dwarf" else ["-g"]
        perf_log = os.path.join(self.tmp, "perf-record.log")
        argv = [
            need_tool("perf"),
            "record",
            "-e",
            "cpu-clock",
            "-F",
            str(options.frequency),
            *graph,
            "-p",
            str(self.server.pid),
            "-o",
            data,
            "--",
            "sleep",
            str(options.settings.duration),
        ]
        with open(perf_log, "w", encoding="utf-8") as out:
            perf = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        step = self.cleanup.push(lambda: stop_process(perf, seconds=5))

        def perf_output():
            with open(perf_log, encoding="utf-8", errors="replace") as file:
                return file.read()

        # perf needs a moment to attach; the load starts once it has.
        time.sleep(0.5)
        if perf.poll() is not None:
            print(perf_output(), file=sys.stderr, end="")
            raise Fatal("perf record did not start (its output is above)")
        log(
            f"sampling the server at {options.frequency} Hz for {options.settings.duration}s "
            f"under {options.workload}"
        )
        figures = self.wrk(options.settings.duration, "wrk.txt")
        status = perf.wait()
        self.cleanup.remove(step)
        if status != 0:
            print(perf_output(), file=sys.stderr, end="")
            raise Fatal("perf record failed (its output is above)")
        return round(figures["rps"])

    def render(self, data, commit, dirty, rps):
        options = self.options
        folded = os.path.join(self.tmp, "folded.txt")
        script_log = os.path.join(self.tmp, "perf-script.log")
        with open(script_log, "wb") as errors, open(folded, "wb") as out:
            script = subprocess.Popen(
                [need_tool("perf"), "script", "-i", data], stdout=subprocess.PIPE, stderr=errors
            )
            collapse = subprocess.Popen(
                [os.path.join(self.inferno, "inferno-collapse-perf")],
                stdin=script.stdout,
                stdout=out,
            )
            script.stdout.close()
            statuses = (collapse.wait(), script.wait())
        if any(statuses):
            with open(script_log, encoding="utf-8", errors="replace") as file:
                tail = "".join(file.readlines()[-5:]).rstrip("\n")
            raise Fatal(f"perf script | inferno-collapse-perf failed: {tail}")
        with open(folded, encoding="utf-8", errors="replace") as file:
            lines = file.readlines()
        if not lines:
            raise Fatal("no samples: did the server get any load?")
        if os.path.dirname(options.out):
            os.makedirs(os.path.dirname(options.out), exist_ok=True)
        with open(folded, "rb") as source, open(options.out, "wb") as svg:
            status = subprocess.call(
                [
                    os.path.join(self.inferno, "inferno-flamegraph"),
                    "--title",
                    title(options.workload, commit, dirty, options.settings.connections, rps),
                ],
                stdin=source,
                stdout=svg,
            )
        if status != 0:
            raise Fatal("inferno-flamegraph failed")
        leaves = heaviest_leaves(lines)
        with open(leaves_path(options.out), "w", encoding="utf-8") as file:
            file.write("".join(f"{line}\n" for line in leaves))
        log(f"{len(lines)} distinct stacks, {rps} req/s during sampling")
        log(f"wrote {options.out} and {leaves_path(options.out)}; the heaviest leaves:")
        print("\n".join(leaves[:LEAVES_SHOWN]), file=sys.stderr, flush=True)

    def run(self):
        options = self.options
        needed = ["cargo", "wrk", "perf", "initdb", "pg_ctl", "postgres", "psql"]
        ensure_tools(needed + (["runuser"] if os.geteuid() == 0 else []))
        self.inferno = ensure_inferno()
        self.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.cleanup.push(lambda: subprocess.call(["rm", "-rf", self.tmp]))
        try:
            commit, dirty = git_state()  # before building: the commit that is built
            binary = build_profiling_binary()
            # No CPU accounting here: "proc" starts every command as it is.
            accounting = cpu.Accounting(force_method="proc")
            db = pg.Postgres.throwaway(
                self.tmp, options.settings.connections + 200, "tcp", accounting, []
            )
            self.cleanup.push(db.stop)
            db.seed(binary, options.settings.contacts)
            reference = systems.read_manifest(os.path.join(systems.PEERS, "reference"))
            launch = systems.Launch(db.url, binary, options.settings.server_args)
            self.server = systems.start(
                reference, launch, name="bakeoff", tmp=self.tmp, accounting=accounting
            )
            self.cleanup.push(self.server.stop)
            if not wait_http(f"{self.server.url}/types", 30, alive=self.server.alive):
                raise Fatal("the server's database is not up")
            if options.settings.warmup > 0:
                log(f"warming up for {options.settings.warmup}s")
                self.wrk(options.settings.warmup, "warmup.txt", parse=False)
            data = os.path.join(self.tmp, "perf.data")
            rps = self.record(data)
            self.render(data, commit, dirty, rps)
        finally:
            self.cleanup.run()
        return 0


def cmd_flamegraph(options, _argv):
    settings = options_module.from_args(options, FLAME)
    if options.workload not in BY_NAME:
        raise Fatal(
            f"unknown workload '{options.workload}'; the workloads are: "
            + " ".join(workload.name for workload in WORKLOADS)
        )
    profile = FlameOptions(settings, options.workload, options.frequency, options.call_graph)
    return Profile(profile).run()


def add_parser(sub, prog=None):
    import argparse

    parser = sub.add_parser(
        "flamegraph",
        help="the server's CPU profile under one workload (scripts/flamegraph.sh)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **({"prog": prog} if prog else {}),
    )
    parser.add_argument("workload", metavar="WORKLOAD", help=" ".join(w.name for w in WORKLOADS))
    parser.add_argument(
        "--frequency",
        type=positive_int,
        default=999,
        help="samples per second (default 999)",
    )
    parser.add_argument(
        "--call-graph", choices=("fp", "dwarf"), default="fp", help="how perf unwinds (default fp)"
    )
    options_module.add_options(parser, FLAME)
    parser.set_defaults(func=cmd_flamegraph)
