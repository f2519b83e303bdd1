"""The systems of the study, as data: every folder of peers/ with a
`system.toml` is one (peers/README.md describes the manifest and the start
script's contract). Nothing here lists them: a new system is a new folder.
This module reads the manifests, chooses (--systems) and orders them, runs
their set-up commands, and starts one instance of one system."""

import os
import subprocess
import time
import tomllib
from dataclasses import dataclass, field

from harness.process import Process
from harness.tools import ROOT, Fatal, free_port, log

PEERS = os.path.join(ROOT, "peers")
MANIFEST = "system.toml"
REQUIRED = ("stack", "server_model", "connections", "pooled", "order")
KNOWN = {*REQUIRED, "default", "start", "ready_path", "metrics_path", "setup", "knobs", "routes"}


@dataclass(frozen=True)
class System:
    """One manifest."""

    # The folder's name: the row's name everywhere.
    name: str
    # Framework, driver and server, in one line.
    stack: str
    # Processes x concurrency, in one line.
    server_model: str
    # The PostgreSQL connections one instance holds, in words.
    connections: str
    # What running behind PgBouncer (BAKEOFF_POOLER=pgbouncer) changes.
    pooled: str
    # Its place in each round: the reference (0) first, so that the round's
    # ceilings are measured beside it.
    order: int
    # Part of the study when --systems names none.
    default: bool = True
    # The start script, relative to the folder: `start.sh PORT`.
    start: str = "start.sh"
    # Answers 200 once the instance can serve (also HAProxy's health check).
    ready_path: str = "/version"
    # Its Prometheus metrics page, read around each saturation window
    # (counters.py); "" for none.
    metrics_path: str = ""
    # A command (argv, relative to the folder) that prepares it, idempotent.
    setup: tuple = ()
    # Environment variables its start script honours: workers, pool, threads.
    knobs: dict = field(default_factory=dict)
    # Extra routes for experiments: name → path prefix.
    routes: dict = field(default_factory=dict)

    @property
    def folder(self):
        return os.path.join(PEERS, self.name)


def read_manifest(folder):
    """The System of one folder; ValueError naming the file and the problem."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: {error}") from error
    missing = [key for key in REQUIRED if key not in data]
    unknown = sorted(set(data) - KNOWN)
    if missing or unknown:
        raise ValueError(
            f"{path}: "
            + "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unknown)}" if unknown else "",
                )
                if part
            )
        )
    data["setup"] = tuple(data.get("setup", ()))
    system = System(name=os.path.basename(folder.rstrip("/")), **data)
    if not os.access(os.path.join(folder, system.start), os.X_OK):
        raise ValueError(f"{path}: its start script {system.start} is not an executable file")
    return system


def discover(peers=PEERS):
    """Every system under peers/, in round order (then by name)."""
    found = []
    for name in sorted(os.listdir(peers)):
        folder = os.path.join(peers, name)
        if os.path.isfile(os.path.join(folder, MANIFEST)):
            found.append(read_manifest(folder))
    return sorted(found, key=lambda system: (system.order, system.name))


def select(names, available):
    """The systems named in a comma-separated --systems, in round order; the
    default ones for an empty list."""
    if not names:
        return [system for system in available if system.default]
    by_name = {system.name: system for system in available}
    wanted = [name for name in names.split(",") if name]
    for name in wanted:
        if name not in by_name:
            raise ValueError(
                f"unknown system '{name}' (no peers/{name}/{MANIFEST}); the systems are: "
                + " ".join(by_name)
            )
    return [system for system in available if system.name in wanted]


def run_setups(chosen):
    """Each distinct set-up command of the chosen systems, once, in order.
    One that fails stops the study: its systems could not be measured."""
    done = set()
    for system in chosen:
        if not system.setup:
            continue
        key = (os.path.normpath(os.path.join(system.folder, system.setup[0])), *system.setup[1:])
        if key in done:
            continue
        done.add(key)
        log(f"setting up {system.name}: {' '.join(system.setup)}")
        start = time.monotonic()
        argv = [os.path.join(system.folder, system.setup[0]), *system.setup[1:]]
        if subprocess.call(argv, cwd=system.folder, stdout=2) != 0:
            raise Fatal(f"{system.name}'s set-up ({' '.join(system.setup)}) failed (see above)")
        log(f"set up in {time.monotonic() - start:.0f}s")


@dataclass(frozen=True)
class Launch:
    """How one instance is started: what the start script gets besides its port."""

    # postgresql://... for DATABASE_URL.
    database_url: str
    # The reference's binary and extra `serve` options.
    binary: str = ""
    server_args: tuple = ()
    # "" or "pgbouncer": BAKEOFF_POOLER.
    pooler: str = ""
    # Values of the system's knobs by knob name (workers, pool, threads).
    knobs: dict = field(default_factory=dict)


def start(system, launch, *, name, tmp, accounting, host=None, prefix=()):
    """Starts one instance on a free port of `host` (or 127.0.0.1) and waits
    until it answers its ready path. Raises process.Unavailable or
    process.StartFailed (the process is stopped then)."""
    address = host.address if host else "127.0.0.1"
    port = free_port()
    env = dict(os.environ, DATABASE_URL=launch.database_url, BAKEOFF_HOST=address)
    env.pop("BAKEOFF_POOLER", None)
    if launch.pooler:
        env["BAKEOFF_POOLER"] = launch.pooler
    if launch.binary:
        env["BAKEOFF_BINARY"] = launch.binary
        env["BAKEOFF_SERVER_ARGS"] = " ".join(launch.server_args)
    for knob, value in launch.knobs.items():
        if knob not in system.knobs:
            raise Fatal(f"{system.name} has no knob '{knob}' (its manifest's [knobs])")
        env[system.knobs[knob]] = str(value)
    process = Process(
        name,
        [*prefix, os.path.join(system.folder, system.start), str(port)],
        component="server",
        accounting=accounting,
        log_path=os.path.join(tmp, f"{name.replace('/', '_')}.log"),
        env=env,
        host=host,
    )
    try:
        process.wait_ready(f"http://{address}:{port}", system.ready_path)
    except Exception:
        process.stop(quiet=True, grace=5)
        raise
    return process
