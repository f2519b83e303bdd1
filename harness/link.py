"""The delay link between the app hosts and the database host: the
`bakeoff-link` forwarder (link/, a crate of this workspace) on the db host,
in front of PostgreSQL or PgBouncer, holding every chunk half the round trip
in each direction (this kernel has no netem). Its CPU is the "link"
component's, never the server's or the database's. measure_rtt() checks
what a round trip through it costs, with pgbench from an app host."""

import os
import re
import subprocess
import time
import urllib.parse
from dataclasses import dataclass

from harness.process import Process
from harness.tools import ROOT, Fatal, free_port, log, need_tool, warn

BINARY = os.path.join(ROOT, "target", "release", "bakeoff-link")


def build():
    """cargo build --release -p bakeoff-link (quick once the workspace is built)."""
    log("building the delay link (cargo build --release -p bakeoff-link)")
    status = subprocess.call(
        ["cargo", "build", "--release", "-p", "bakeoff-link"], cwd=ROOT, stdout=2
    )
    if status != 0 or not os.access(BINARY, os.X_OK):
        raise Fatal("cargo build --release -p bakeoff-link failed (see above)")


@dataclass
class Link:
    """A running link: `url` is upstream's URL with the link's address."""

    url: str
    process: Process

    def stop(self):
        if self.process.alive():
            self.process.stop(quiet=True, grace=5)


def start(rtt_ms, upstream_url, host, tmp, accounting):
    """A link on `host` in front of upstream_url (a postgresql:// URL whose
    host is reachable from `host`), with rtt_ms / 2 each way."""
    if not os.access(BINARY, os.X_OK):
        build()
    parsed = urllib.parse.urlsplit(upstream_url)
    port = free_port()
    upstream = f"{parsed.hostname}:{parsed.port}"
    listen = f"{host.address}:{port}"
    name = f"link-{rtt_ms:g}ms-{parsed.port}"
    argv = [BINARY, "--listen", listen, "--upstream", upstream, "--delay-ms", f"{rtt_ms / 2:g}"]
    # At real-time priority it releases a chunk within tens of µs of its due
    # time even while the cores are saturated (link/README.md): as root, and
    # where the kernel allows it; otherwise at normal priority, said once.
    for realtime in (True, False) if os.geteuid() == 0 else (False,):
        process = Process(
            name,
            argv + (["--realtime"] if realtime else []),
            component="link",
            accounting=accounting,
            log_path=os.path.join(tmp, f"{name}.log"),
            host=host,
        )
        if wait_listening(process, must=not realtime):
            break
        warn(f"{name}: real-time priority refused; at normal priority, late under load")
    netloc = parsed.netloc.rsplit("@", 1)
    userinfo = f"{netloc[0]}@" if len(netloc) == 2 else ""
    url = urllib.parse.urlunsplit(parsed._replace(netloc=f"{userinfo}{listen}"))
    log(f"delay link {listen} -> {upstream}, {rtt_ms:g} ms round trip")
    return Link(url, process)


def wait_listening(process, must=True, timeout=10):
    """True once it says it listens; False (or Fatal, when it must) if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "listening on" in process.log_text():
            return True
        if not process.alive():
            break
        time.sleep(0.05)
    process.stop(quiet=True, grace=2)
    if must:
        raise Fatal(f"{process.name} did not start:\n{process.log_tail(10)}")
    return False


def pgbench_latency_ms(url, host, tmp, seconds=2, rate=200):
    """pgbench's average latency of `SELECT 1` at a low fixed rate, one
    client, from `host` (None: here)."""
    script = os.path.join(tmp, "select1.sql")
    with open(script, "w", encoding="utf-8") as file:
        file.write("SELECT 1;\n")
    argv = [need_tool("pgbench"), "-n", "-c", "1", "-j", "1", "-T", str(seconds)]
    argv += ["--rate", str(rate), "-f", script, url]
    result = subprocess.run(
        host.wrap(argv) if host else argv, capture_output=True, text=True, check=False
    )
    match = re.search(r"latency average = ([0-9.]+) ms", result.stdout)
    if result.returncode != 0 or not match:
        raise Fatal(f"pgbench through {url} failed:\n{result.stdout[-800:]}{result.stderr[-800:]}")
    return float(match.group(1))


def measure_rtt(direct_url, linked_url, host, tmp):
    """What the link adds to a round trip, in ms: pgbench's average latency
    through it less the same directly, from the same host, one after the other."""
    return round(
        pgbench_latency_ms(linked_url, host, tmp) - pgbench_latency_ms(direct_url, host, tmp), 3
    )
