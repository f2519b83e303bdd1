"""Messages, paths, the tools a run needs (found or installed), children,
and the cleanup that stops them: what every other module of the harness uses.
"""

import glob
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")

# Name in messages; cli.py sets it to what the user typed (run.sh).
PROG = "harness"


class Fatal(Exception):
    """A reason to stop the run: printed as `PROG: error: ...`, exit status 1."""


def log(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def warn(message):
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def fmt_duration(seconds):
    """'2m05s': progress lines say how long is left."""
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def quote_command(args):
    """A command line as it could be typed again: quoted only where needed."""
    return " ".join(
        arg if re.fullmatch(r"[A-Za-z0-9_./:=,@%+-]+", arg) else shlex.quote(arg) for arg in args
    )


# --- tools ---------------------------------------------------------------------

# The Debian package that brings each tool, for the install command.
TOOL_PACKAGE = {
    "wrk": "wrk",
    "nginx": "nginx-light",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "postgres": "postgresql",
    "pgbench": "postgresql",
    "psql": "postgresql-client",
    "perf": "linux-perf",
    "taskset": "util-linux",
    "runuser": "util-linux",
    "haproxy": "haproxy",
    "pgbouncer": "pgbouncer",
    "ip": "iproute2",
}
PG_TOOLS = ("initdb", "pg_ctl", "postgres", "psql", "pgbench")


def pg_bindir():
    """Debian keeps initdb, pg_ctl and postgres in /usr/lib/postgresql/<v>/bin,
    off PATH: the newest version there, so that all of them match."""
    dirs = [
        directory
        for directory in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(f"{directory}/initdb", os.X_OK)
    ]

    def version(path):
        return [
            int(part) if part.isdigit() else 0 for part in re.split(r"[/.]", path) if part.isdigit()
        ]

    return max(dirs, key=version) if dirs else None


def tool_path(name):
    """Path of a tool, or None."""
    if name in PG_TOOLS:
        bindir = pg_bindir()
        if bindir and os.access(f"{bindir}/{name}", os.X_OK):
            return f"{bindir}/{name}"
    found = shutil.which(name)
    if found:
        return found
    # nginx and runuser live in sbin, which a non-root PATH may not have;
    # oha in cargo's bin dir, which a fresh shell may not have on PATH.
    cargo_bin = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "bin")
    for directory in ("/usr/sbin", "/sbin", cargo_bin):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def need_tool(name):
    path = tool_path(name)
    if not path:
        raise Fatal(f"{name} is missing")
    return path


def ensure_tools(names):
    """Checks that every named tool is there; installs the missing ones with
    apt-get as root, or stops with the command that would."""
    if "cargo" in names and not shutil.which("cargo"):
        raise Fatal("cargo is not on PATH: install Rust with rustup, then add ~/.cargo/bin to PATH")
    missing = [name for name in names if name != "cargo" and not tool_path(name)]
    if not missing:
        return
    packages = []
    for name in missing:
        package = TOOL_PACKAGE.get(name, name)
        if package not in packages:
            packages.append(package)
    command = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Fatal(f"missing {' '.join(missing)}; install them with: sudo {command}")
    log(f"missing {' '.join(missing)}: running {command}")
    # apt's chatter goes to stderr: stdout is kept for the results table.
    if subprocess.call(["apt-get", "update"], stdout=sys.stderr) != 0:
        raise Fatal(f"apt-get update failed; run: {command}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.call(["apt-get", "install", "-y", *packages], stdout=sys.stderr, env=env) != 0:
        raise Fatal(f"could not install {' '.join(packages)}; run: {command}")
    for name in missing:
        if not tool_path(name):
            raise Fatal(f"{name} is still missing after installing {' '.join(packages)}")


def first_line(args):
    """First line of a command's output (stdout and stderr), or ''."""
    try:
        out = subprocess.run(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0] if out else ""


# --- network -------------------------------------------------------------------


def free_port():
    # The OS picks a free port; closing the socket frees it for the caller.
    # Another process could take it in between, which is harmless here: the
    # caller's start then fails loudly.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url, timeout=2.0):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError):
        return 0, b""


def wait_http(url, timeout, status=200, alive=None):
    """Polls url until it answers `status`; False at the timeout, or as soon
    as alive() says the process that should answer is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got, _ = http_get(url)
        if got == status:
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.1)
    return False


# --- children and cleanup ------------------------------------------------------


def pid_running(pid):
    """True while a process exists and has not exited (a zombie still has a
    /proc entry, with state Z)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("State:"):
                    return line.split()[1] != "Z"
    except OSError:
        return False
    return False


def stop_process(process, sig=signal.SIGTERM, seconds=15):
    """Signals a Popen child, gives it `seconds` to exit, then kills it.
    Returns its exit status (negative: the signal that ended it)."""
    if process.poll() is not None:
        return process.returncode
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        warn(
            f"process {process.pid} still running {seconds}s after "
            f"{signal.Signals(sig).name}; killing it"
        )
        process.kill()
        return process.wait()


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


class Cleanup:
    """What a run started, undone in reverse order at exit, on a failure and
    on Ctrl-C or SIGTERM. Each step runs once; a failing step does not stop
    the others."""

    def __init__(self):
        self.steps = []

    def push(self, step):
        self.steps.append(step)
        return step

    def remove(self, step):
        if step in self.steps:
            self.steps.remove(step)

    def run(self):
        # A second Ctrl-C must not cut the cleanup short.
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            while self.steps:
                step = self.steps.pop()
                try:
                    step()
                except Exception as error:  # noqa: BLE001 (the others must still run)
                    warn(f"cleanup step failed: {error}")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: clean up, then die of the same signal."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_on_signals():
    """Turns SIGINT and SIGTERM into Interrupted, so that the cleanup runs."""

    def handler(signum, _frame):
        raise Interrupted(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def die_of_signal(signum):
    """Exits by the signal itself, so that a calling script (pin.sh, a shell
    loop) sees it and stops too instead of taking it for a failure."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum  # only reached when the signal is blocked


# --- git and results paths ------------------------------------------------------


def git_state():
    """(commit, dirty) of the source that is built. The benchmark's own output
    (results/, flamegraphs/) does not make the tree dirty. A script that built
    the binary earlier passes what it saw in BAKEOFF_GIT_COMMIT and
    BAKEOFF_GIT_DIRTY, since src/ may have changed since."""
    commit = os.environ.get("BAKEOFF_GIT_COMMIT") or ""
    dirty = os.environ.get("BAKEOFF_GIT_DIRTY") or ""
    if not commit:
        result = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        commit = result.stdout.strip() if result.returncode == 0 else "none"
    if not dirty:
        result = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "--", ".", ":!results", ":!flamegraphs"],
            capture_output=True,
            text=True,
            check=False,
        )
        dirty = "true" if result.returncode == 0 and result.stdout.strip() else "false"
    return commit, dirty == "true"


def result_path(kind, commit, dirty, quick=False, label=""):
    """results/<UTC date>-<commit>[-dirty]-<kind>[-quick][-<label>].json, the
    one naming scheme of every command (kind: run, compare, pin-LAYOUT, ...),
    named so that `ls results/` sorts them by date."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    short = "nocommit" if commit == "none" else commit[:10]
    name = f"{stamp}-{short}{'-dirty' if dirty else ''}-{kind}"
    name += "-quick" if quick else ""
    name += f"-{label}" if label else ""
    return os.path.join(ROOT, "results", re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".json")
