"""`starts-plans` (scripts/starts_plans.sh): `fetch_starts` on fresh servers
and on servers "primed" first with the calls that make PostgreSQL's plan
cache settle on the generic plan of a prepared `starts` statement
(docs/PERFORMANCE.md, "Query plans"), one table row per binary and state."""

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from harness import loadgen, tools
from harness.tools import Cleanup, Fatal, free_port, http_get, log, stop_process, wait_http

USAGE = """\
Measures `fetch_starts` on fresh servers and on servers "primed" first with
the calls that make PostgreSQL's plan cache settle on the generic plan of a
prepared `starts` statement (docs/PERFORMANCE.md, "Query plans"): 20 pages of
`starts=m&limit=200` and 20 of `starts=m&limit=10&offset=100`.

  DATABASE_URL=postgres://… scripts/starts_plans.sh [--runs N] [--duration S] BINARY...

DATABASE_URL names a database seeded with `bakeoff seed` (run.sh's
throwaway cluster is gone when it exits, so bring your own). Each binary is
started anew for every measurement, on a free port; one line per binary
and state: min / median / max req/s of wrk -t2 -c64 after a 1 s warm-up."""

STATES = ("fresh", "primed")
# The calls that prime a server, each made PRIMING_ROUNDS times.
PRIMING = ("limit=200&starts=m", "limit=10&offset=100&starts=m")
PRIMING_ROUNDS = 20
MEASURED = "limit=10&starts=m"
WRK = ("-t2", "-c64")


@dataclass
class PlansOptions:
    runs: int = 3
    duration: int = 5
    binaries: list = field(default_factory=list)


def requests_per_second(text):
    """wrk's `Requests/sec:` figure."""
    match = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if not match:
        raise ValueError("no Requests/sec line in the wrk output")
    return float(match.group(1))


def table_head(runs, duration):
    return (
        f"| binary | state | min / median / max req/s ({runs} runs of {duration} s) |\n"
        "| --- | --- | ---: |"
    )


def table_row(binary, state, rates):
    """min / median / max; of an even count, the lower middle one."""
    ordered = sorted(rates)
    middle = ordered[(len(ordered) + 1) // 2 - 1]
    return f"| {binary} | {state} | {ordered[0]:.0f} / {middle:.0f} / {ordered[-1]:.0f} |"


class Measure:
    """The measurements; each starts a server of its own and stops it."""

    def __init__(self, options):
        self.options = options
        self.wrk = tools.tool_path("wrk")
        self.tmp = None

    def wrk_run(self, url, seconds):
        status, text = loadgen.run_tool(
            [self.wrk, *WRK, f"-d{seconds}s", url], os.path.join(self.tmp, "wrk.txt")
        )
        if status != 0:
            print(text, file=sys.stderr)
            raise Fatal(f"wrk failed against {url} (its output is above)")
        return text

    def once(self, binary, state):
        """The req/s of one measurement on a server started for it."""
        port = free_port()
        env = dict(os.environ, BIND=f"127.0.0.1:{port}")
        try:
            process = subprocess.Popen(
                [binary, "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
        except OSError as error:
            raise Fatal(f"cannot start {binary}: {error}") from error
        cleanup = Cleanup()
        cleanup.push(lambda: stop_process(process, seconds=15))
        try:
            base = f"http://127.0.0.1:{port}"
            if not wait_http(f"{base}/readyz", 30, alive=lambda: process.poll() is None):
                raise Fatal(
                    f"{binary} serve did not get ready on {base} (exit status {process.poll()})"
                )
            fetch = f"{base}/contacts/fetch"
            if state == "primed":
                for _ in range(PRIMING_ROUNDS):
                    for query in PRIMING:
                        status, _ = http_get(f"{fetch}?{query}", timeout=10)
                        if not 200 <= status < 300:
                            raise Fatal(
                                f"priming: GET {fetch}?{query} answered {status or 'nothing'}"
                            )
            url = f"{fetch}?{MEASURED}"
            self.wrk_run(url, 1)
            text = self.wrk_run(url, self.options.duration)
            try:
                return requests_per_second(text)
            except ValueError as error:
                raise Fatal(f"{error}:\n{text}") from error
        finally:
            cleanup.run()

    def run(self):
        options = self.options
        print(table_head(options.runs, options.duration), flush=True)
        for state in STATES:
            for binary in options.binaries:
                rates = []
                for number in range(1, options.runs + 1):
                    rates.append(self.once(binary, state))
                    log(f"{binary} {state}, run {number}/{options.runs}: {rates[-1]:.0f} req/s")
                print(table_row(binary, state, rates), flush=True)


def cmd_plans(options, _argv):
    if not os.environ.get("DATABASE_URL"):
        raise Fatal("set DATABASE_URL to a database seeded with bakeoff seed")
    if not tools.tool_path("wrk"):
        raise Fatal("wrk is missing: apt-get install -y wrk")
    for binary in options.binaries:
        if not os.access(binary, os.X_OK):
            raise Fatal(f"no executable at {binary}")
    measure = Measure(PlansOptions(options.runs, options.duration, options.binaries))
    measure.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
    try:
        measure.run()
    finally:
        subprocess.call(["rm", "-rf", measure.tmp])
    return 0


def add_parser(sub, prog=None):
    import argparse

    from harness.argtypes import positive_int

    parser = sub.add_parser(
        "starts-plans",
        help="fetch_starts on fresh and primed servers (scripts/starts_plans.sh)",
        description=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **({"prog": prog} if prog else {}),
    )
    parser.add_argument("--runs", type=positive_int, default=3, help="runs per binary and state")
    parser.add_argument("--duration", type=positive_int, default=5, help="seconds of each wrk run")
    parser.add_argument("binaries", nargs="+", metavar="BINARY")
    parser.set_defaults(func=cmd_plans)
