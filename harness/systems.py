"""The systems of the study, as data: every folder of peers/ with a
`system.toml` is one (peers/README.md describes the manifest and the start
script's contract). Nothing here lists them: a new system is a new folder.
This module reads the manifests, chooses (--systems) and orders them, runs
their set-up commands, and starts one instance of one system."""

import os
import re
import subprocess
import time
import tomllib
from dataclasses import dataclass, field

from harness.process import Process
from harness.tools import ROOT, Fatal, free_port, log

PEERS = os.path.join(ROOT, "peers")
MANIFEST = "system.toml"
KNOWN = {
    "stack",
    "server_model",
    "connections",
    "pooled",
    "order",
    "default",
    "start",
    "ready_path",
    "metrics_path",
    "setup",
    "knobs",
    "routes",
}


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


KNOWN_KNOBS = ("workers", "pool", "threads")
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def problems(data, folder):
    """What is wrong with a manifest (the parsed system.toml of `folder`) and
    the start script it names, as sentences; [] when nothing is."""
    out = [f"unknown key '{key}'" for key in sorted(set(data) - KNOWN)]
    for key in ("stack", "server_model", "connections", "pooled"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            out.append(f"'{key}' missing, or not one line of text")
    order = data.get("order")
    if not isinstance(order, int) or isinstance(order, bool) or order < 0:
        out.append("'order' missing, or not an integer >= 0 (the reference is 0)")
    if not isinstance(data.get("default", True), bool):
        out.append("'default' is not true or false")
    for key in ("ready_path", "metrics_path"):
        value = data.get(key, "/")
        if not isinstance(value, str) or (value and not value.startswith("/")):
            out.append(f"'{key}' is not a path")
    start = os.path.join(folder, data.get("start", "start.sh"))
    script = ""
    if not os.access(start, os.X_OK):
        out.append(f"its start script {os.path.basename(start)} is missing or not executable")
    else:
        with open(start, encoding="utf-8", errors="replace") as file:
            script = file.read()
        if "BAKEOFF_HOST" not in script:
            out.append("its start script does not listen on $BAKEOFF_HOST")
    setup = data.get("setup")
    if setup is not None:
        if not (isinstance(setup, list) and setup and all(isinstance(a, str) for a in setup)):
            out.append("'setup' is not a command (a non-empty list of words)")
        elif not os.access(os.path.normpath(os.path.join(folder, setup[0])), os.X_OK):
            out.append(f"its set-up command {setup[0]} is missing or not executable")
    for knob, variable in (data.get("knobs") or {}).items():
        if knob not in KNOWN_KNOBS:
            out.append(f"unknown knob '{knob}' (known: {', '.join(KNOWN_KNOBS)})")
        if not isinstance(variable, str) or not VARIABLE.match(variable):
            out.append(f"knob '{knob}' is not an environment variable's name")
        elif script and variable not in script:
            out.append(f"knob {knob} = {variable}: its start script never names {variable}")
    for route, prefix in (data.get("routes") or {}).items():
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            out.append(f"route '{route}' is not a path")
        elif route.startswith("fibonacci_") and not prefix.endswith("/"):
            out.append(f"route '{route}' must end in / (the harness appends n)")
    return out


def read_manifest(folder):
    """The System of one folder; ValueError naming the file and its problems."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: {error}") from error
    found = problems(data, folder)
    if found:
        raise ValueError(f"{path}: " + "; ".join(found))
    data["setup"] = tuple(data.get("setup", ()))
    return System(name=os.path.basename(folder.rstrip("/")), **data)


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
    # The address clients reach the system at when it is not its own (the
    # load balancer's): BAKEOFF_PUBLIC_HOST, for a server that checks Host.
    public_host: str = ""


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
    env.pop("BAKEOFF_PUBLIC_HOST", None)
    if launch.public_host:
        env["BAKEOFF_PUBLIC_HOST"] = launch.public_host
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
