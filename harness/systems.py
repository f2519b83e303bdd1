"""The systems a comparison measures (`scripts/compare.sh`): the reference
and the study's variants in peers/, each started in its own session (one
process group) inside the server's cgroup, waited for, left to settle, and
stopped with nothing left behind; PgBouncer in front of the database for
`--pooler`; and the count of PostgreSQL's client backends, read from the
process titles of the database's processes."""

import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass

from harness.cpu import descendants
from harness.pg import as_pg
from harness.server import peak_rss_kib
from harness.tools import ROOT, Fatal, free_port, http_get, log, need_tool, warn

PEERS = os.path.join(ROOT, "peers")

# A peers/NAME/start.sh exits with this status (EX_UNAVAILABLE) when its row
# cannot run on this machine (no PyPy, say), after a line "unavailable: WHY".
UNAVAILABLE_STATUS = 69


@dataclass(frozen=True)
class System:
    """One row of the comparison."""

    name: str
    # What it is, for the tables: the stack and its server model
    # (processes x concurrency; peers/README.md has pool sizes and versions).
    stack: str


# In the order they run in each round: the reference first, so that the
# round's ceilings are measured beside it.
SYSTEMS = (
    System("reference", "Rust: hyper + tokio-postgres (this repository)"),
    System("fastapi_asyncpg", "FastAPI + asyncpg, uvicorn: 1 worker per core, 1 event loop each"),
    System("fastapi_orm", "FastAPI + SQLAlchemy 2 async ORM (asyncpg), uvicorn: 1 worker per core"),
    System("fastapi_aiopg", "FastAPI + aiopg (psycopg2), uvicorn: 1 worker per core"),
    System(
        "fastapi_psycopg3",
        "FastAPI + psycopg 3 async (psycopg_pool), uvicorn: 1 worker per core",
    ),
    System(
        "fastapi_aiopg_compat",
        "fastapi_aiopg_pypy's stack (FastAPI 0.128, aiopg, psycopg2cffi, uvicorn h11) "
        "on CPython: 1 worker per core",
    ),
    System("fastapi_aiopg_pypy", "the same stack on PyPy 3.9: 1 worker per core"),
    System(
        "django_gthread",
        "Django REST framework, psycopg2, gunicorn gthread (WSGI): 1 worker per core x 4 threads",
    ),
    System(
        "django_psycopg3",
        "Django REST framework, psycopg 3 with Django's pool, gunicorn gthread (WSGI): "
        "1 worker per core x 4 threads",
    ),
    System(
        "django_uvicorn",
        "Django REST framework, psycopg2, uvicorn (ASGI): 1 worker per core, "
        "each view in a thread (asgiref)",
    ),
    System(
        "django_psycopg3_uvicorn",
        "Django REST framework, psycopg 3 with Django's pool, uvicorn (ASGI): 1 worker per core",
    ),
    System("go_pgx", "Go net/http + pgx v4 (pgxpool, its statement cache): 1 process"),
    System("go_pq", "Go net/http + database/sql + lib/pq: 1 process"),
)
BY_NAME = {system.name: system for system in SYSTEMS}


def select(names):
    """The systems named in a comma-separated --impls, in the table's order."""
    if not names:
        return list(SYSTEMS)
    wanted = [name for name in names.split(",") if name]
    for name in wanted:
        if name not in BY_NAME:
            raise ValueError(
                f"unknown implementation '{name}'; they are: "
                f"{' '.join(system.name for system in SYSTEMS)}"
            )
    return [system for system in SYSTEMS if system.name in wanted]


class Unavailable(Exception):
    """The system's start.sh says it cannot run on this machine (and why)."""


class StartFailed(Exception):
    """The system exited, or never answered, while starting (its log tail)."""


def group_pids(pgid):
    """The live (not zombie) processes of a process group."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "pid (comm)": state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            pids.append(int(entry))
    return pids


class SystemProcess:
    """One system, started by `argv` in a new session (so one signal to its
    process group reaches every worker it forks), inside the server's cgroup."""

    def __init__(self, system, argv, env, log_path, accounting):
        self.system = system
        self.name = system.name  # the row's name; compare.sh sets "NAME+pgbouncer"
        self.log_path = log_path
        self.accounting = accounting
        self.port = None
        self.url = ""
        self.banner = ""
        self.ready_s = None
        self.started = time.monotonic()
        with open(log_path, "w", encoding="utf-8") as log_file:
            self.process = subprocess.Popen(
                accounting.wrap("server", argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        accounting.track("server", self.process.pid)

    @classmethod
    def start(cls, system, binary, server_args, db_url, pooler, tmp_dir, accounting):
        """Starts it on a free port over db_url; returns it answering /version."""
        port = free_port()
        if system.name == "reference":
            argv = [binary, "serve", "--bind", f"127.0.0.1:{port}", *server_args]
            if pooler:
                # Behind a transaction pooler, no statement may outlive its
                # transaction (docs/DEPLOY.md).
                argv += ["--statements", "unnamed"]
        else:
            argv = [os.path.join(PEERS, system.name, "start.sh"), str(port)]
        env = dict(os.environ, DATABASE_URL=db_url)
        if pooler:
            env["BAKEOFF_POOLER"] = pooler
        else:
            env.pop("BAKEOFF_POOLER", None)
        log_path = os.path.join(tmp_dir, f"{system.name}{'-' + pooler if pooler else ''}.log")
        started = cls(system, argv, env, log_path, accounting)
        started.port = port
        started.url = f"http://127.0.0.1:{port}"
        try:
            started.wait_ready()
        except (Unavailable, StartFailed):
            started.stop(quiet=True)
            raise
        return started

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "".join(self.log_text().splitlines(keepends=True)[-lines:])

    def alive(self):
        return self.process.poll() is None

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                if status == UNAVAILABLE_STATUS:
                    match = re.search(r"^unavailable: (.*)$", self.log_text(), re.M)
                    raise Unavailable(match.group(1) if match else "its start.sh says so")
                raise StartFailed(
                    f"exited with status {status} before answering /version:\n{self.log_tail()}"
                )
            if http_get(f"{self.url}/version", timeout=0.5)[0] == 200:
                break
            time.sleep(0.1)
        else:
            raise StartFailed(f"no answer on {self.url}/version in {timeout}s:\n{self.log_tail()}")
        self.ready_s = round(time.monotonic() - self.started, 1)
        self.banner = self.log_text().split("\n", 1)[0]

    def settle(self, seconds=20):
        """A process answers /version before its sibling workers may have
        finished importing: waits until the group uses (almost) no CPU over
        half a second (below 2% of a core), at most `seconds`."""
        before = self.accounting.usage_ns()["server"] if self.accounting.parent else None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if before is None:
                return  # no cgroup to read the whole group from: the waits above must do
            after = self.accounting.usage_ns()["server"]
            if after - before < 10_000_000:
                return
            before = after
        warn(f"{self.name} still busy {seconds}s after answering /version; measuring anyway")

    def processes(self):
        return len(group_pids(self.process.pid))

    def peak_rss_kib(self):
        """The sum of VmHWM over its processes (shared pages once per process)."""
        return sum(peak_rss_kib(pid) or 0 for pid in group_pids(self.process.pid))

    def stop(self, quiet=False, grace=15):
        """SIGTERM to the group, SIGKILL to what is left after `grace` s; then
        checks that no process of the group and no listener on its port
        remains. Returns how it stopped."""
        pgid = self.process.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        how = None
        deadline = time.monotonic() + grace
        while group_pids(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if group_pids(pgid):
            warn(f"{self.name}: processes still running {grace}s after SIGTERM; killing them")
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.5)
            how = "killed"
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        if how is None:
            how = (
                f"SIGTERM, died of signal {-status}"
                if status is not None and status < 0
                else f"SIGTERM, exit {status}"
            )
        left = group_pids(pgid)
        if left:
            raise Fatal(f"{self.name} left processes behind: {left}")
        if self.url and http_get(f"{self.url}/version", timeout=0.2)[0]:
            raise Fatal(f"{self.name} stopped, yet something still answers {self.url}")
        if not quiet:
            log(f"{self.name} stopped ({how}); nothing left behind")
        return how


class PgBouncer:
    """A throwaway PgBouncer in transaction mode in front of the database:
    the study's remedy for process-parallel Python. It runs in the "pooler"
    component's cgroup, as the postgres OS user when we are root."""

    def __init__(self, db_url, tmp_dir, pool_size, accounting):
        parsed = urllib.parse.urlsplit(db_url)
        dbname = parsed.path.lstrip("/") or "bakeoff"
        self.dir = os.path.join(tmp_dir, "pgbouncer")
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.dir, "postgres", "postgres")
        port = free_port()
        ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "userlist.txt"), "w", encoding="utf-8") as file:
            file.write('"postgres" ""\n')
        with open(ini, "w", encoding="utf-8") as file:
            file.write(
                f"""[databases]
{dbname} = host={parsed.hostname or "127.0.0.1"} port={parsed.port or 5432} dbname={dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir}/pgbouncer.log
"""
            )
        argv = accounting.wrap("pooler", as_pg([need_tool("pgbouncer"), ini]))
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        accounting.track("pooler", self.process.pid)
        self.pool_size = pool_size
        self.url = f"postgresql://postgres@127.0.0.1:{port}/{dbname}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Fatal(f"pgbouncer exited while starting:\n{self.log_tail()}")
            result = subprocess.run(
                [need_tool("psql"), "-X", "-At", "-d", self.url, "-c", "SELECT 1"],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise Fatal(f"pgbouncer does not answer on port {port}:\n{self.log_tail()}")
        log(f"pgbouncer (transaction mode, {pool_size} server connections) on port {port}")

    def reset(self):
        """Closes every connection PgBouncer holds (its admin console's KILL,
        then RESUME): it keeps idle server connections for minutes, which
        would count as the next system's backends."""
        admin = self.url.rsplit("/", 1)[0] + "/pgbouncer"
        dbname = self.url.rsplit("/", 1)[1]
        for command in (f"KILL {dbname}", f"RESUME {dbname}"):
            result = subprocess.run(
                [need_tool("psql"), "-X", "-q", "-d", admin, "-c", command],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise Fatal(f"pgbouncer's {command} failed: {result.stderr.strip()}")

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log"), encoding="utf-8") as file:
                return "".join(file.readlines()[-20:])
        except OSError:
            return ""

    def version(self):
        result = subprocess.run(
            [need_tool("pgbouncer"), "--version"], capture_output=True, text=True, check=False
        )
        return (result.stdout.splitlines() or [""])[0]

    def stop(self):
        if self.process.poll() is None:
            # SIGTERM is PgBouncer's immediate shutdown; runuser (as root)
            # is its parent, so it goes to the whole tree.
            for pid in [*descendants(self.process.pid), self.process.pid]:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- PostgreSQL's client backends -------------------------------------------------

# A client backend's process title: "postgres: USER DATABASE HOST(PORT) STATE"
# over TCP, "postgres: USER DATABASE [local] STATE" over a socket. Background
# processes ("postgres: checkpointer", "... walwriter", "... autovacuum
# launcher") have no host part.
BACKEND_TITLE = re.compile(r"^postgres: \S+ \S+ (\[local\]|\S+\(\d+\))")


def is_client_backend(title):
    return bool(BACKEND_TITLE.match(title))


def count_client_backends(pids):
    count = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                title = file.read().split(b"\0", 1)[0].decode("utf-8", "replace")
        except OSError:
            continue
        count += is_client_backend(title)
    return count


class BackendSampler:
    """Counts PostgreSQL's client backends every `interval` seconds in a
    thread while a system runs, and keeps the peak. Reading process titles
    from /proc needs no connection to the database, so the count does not
    include a connection of its own nor load PostgreSQL."""

    def __init__(self, pids_of_database, interval=0.2):
        self.pids_of_database = pids_of_database
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._paused_until = None  # monotonic time; float("inf") while paused
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def pause(self):
        """Stops counting: pgbench's own clients (a ceiling measured beside
        the system) are backends too, and are not the system's."""
        self._paused_until = float("inf")

    def resume(self, after=0.5):
        """Counts again `after` seconds from now, once the paused work's
        backends have exited."""
        self._paused_until = time.monotonic() + after

    def _loop(self):
        while not self._stop.is_set():
            if self._paused_until is None or time.monotonic() >= self._paused_until:
                self.sample()
            self._stop.wait(self.interval)

    def sample(self):
        count = count_client_backends(self.pids_of_database())
        self.peak = max(self.peak, count)
        self.samples += 1
        return count

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join()
        return False
