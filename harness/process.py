"""The one process wrapper: a child started in a session of its own (one
signal to its process group reaches every worker it forks), inside one
component's cgroup (cpu.py) and, where the run has hosts, inside one host's
network namespace (hosts.py); its output in a log file; waited for until it
answers; stopped with nothing of it left behind. The reference, the peers,
nginx and PgBouncer all run in one."""

import os
import re
import signal
import subprocess
import time

from harness.tools import Fatal, http_get, log, warn

# A peers/NAME/start.sh exits with this status (EX_UNAVAILABLE) when its row
# cannot run on this machine (no PyPy, say), after a line "unavailable: WHY".
UNAVAILABLE_STATUS = 69


class Unavailable(Exception):
    """The system's start script says it cannot run on this machine (and why)."""


class StartFailed(Exception):
    """The process exited, or never answered, while starting (its log tail)."""


def peak_rss_kib(pid):
    """Peak resident memory (VmHWM) of a process in KiB, None when unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


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


class Process:
    """One started command. `name` is what messages call it; `component` is
    the cgroup its CPU is counted in; `host` (hosts.Host or None) the
    network namespace it runs in."""

    def __init__(self, name, argv, *, component, accounting, log_path, env=None, host=None):
        self.name = name
        self.log_path = log_path
        self.accounting = accounting
        self.component = component
        self.url = ""
        self.ready_s = None
        self.started = time.monotonic()
        command = host.wrap(argv) if host else list(argv)
        with open(log_path, "w", encoding="utf-8") as log_file:
            self.process = subprocess.Popen(
                accounting.wrap(component, command),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        accounting.track(component, self.process.pid)

    @property
    def pid(self):
        return self.process.pid

    # --- what it says -------------------------------------------------------------

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except OSError:
            return ""

    def log_tail(self, lines=30):
        return "".join(self.log_text().splitlines(keepends=True)[-lines:])

    @property
    def banner(self):
        """Its first whole line (the reference's names its address and pool)."""
        text = self.log_text()
        return text.split("\n", 1)[0] if "\n" in text else ""

    def after_banner(self):
        """What it wrote past its first line: warnings or errors of a run."""
        return self.log_text().split("\n", 1)[1] if "\n" in self.log_text() else ""

    # --- starting ---------------------------------------------------------------------

    def alive(self):
        return self.process.poll() is None

    def check_alive(self, during):
        """A process that died under load makes every later number meaningless."""
        if self.alive():
            return
        raise Fatal(
            f"{self.name} exited (status {self.process.poll()}) during {during}; its last "
            f"lines:\n{self.log_tail(20)}"
        )

    def wait_ready(self, url, path="/version", timeout=60):
        """Waits until GET url+path answers 200; sets self.url. Raises
        Unavailable (exit 69) or StartFailed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                if status == UNAVAILABLE_STATUS:
                    match = re.search(r"^unavailable: (.*)$", self.log_text(), re.M)
                    raise Unavailable(match.group(1) if match else "its start script says so")
                raise StartFailed(
                    f"exited with status {status} before answering {path}:\n{self.log_tail()}"
                )
            if http_get(f"{url}{path}", timeout=0.5)[0] == 200:
                break
            time.sleep(0.1)
        else:
            raise StartFailed(f"no answer on {url}{path} in {timeout}s:\n{self.log_tail()}")
        self.url = url
        self.ready_s = round(time.monotonic() - self.started, 1)

    def settle(self, seconds=20):
        """A process answers before its sibling workers may have finished
        importing: waits until its component uses (almost) no CPU over half a
        second (below 2% of a core), at most `seconds`."""
        if self.accounting.parent is None:
            return  # no cgroup to read the whole group from: the waits above must do
        before = self.accounting.usage_ns()[self.component]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.5)
            after = self.accounting.usage_ns()[self.component]
            if after - before < 10_000_000:
                return
            before = after
        warn(f"{self.name} still busy {seconds}s after answering; measuring anyway")

    # --- what it used ---------------------------------------------------------------------

    def processes(self):
        return len(group_pids(self.process.pid))

    def peak_rss_kib(self):
        """The sum of VmHWM over its processes (shared pages once per process)."""
        pids = group_pids(self.process.pid) or [self.process.pid]
        rss = [peak_rss_kib(pid) for pid in pids]
        return sum(value for value in rss if value) or None

    # --- stopping -----------------------------------------------------------------------

    def signal(self, sig):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, quiet=False, grace=15):
        """SIGTERM to the group, SIGKILL to what is left after `grace` s;
        then checks that no process of the group, and nothing answering its
        URL, remains. Returns how it stopped ("SIGTERM, exit 0", "killed")."""
        pgid = self.process.pid
        self.signal(signal.SIGTERM)
        killed = False
        deadline = time.monotonic() + grace
        while group_pids(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_pids(pgid):
            warn(f"{self.name}: processes still running {grace}s after SIGTERM; killing them")
            self.signal(signal.SIGKILL)
            time.sleep(0.5)
            killed = True
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        if killed:
            how = "killed"
        elif status is not None and status < 0:
            how = f"SIGTERM, died of signal {-status}"
        else:
            how = f"SIGTERM, exit {status}"
        left = group_pids(pgid)
        if left:
            raise Fatal(f"{self.name} left processes behind: {left}")
        if self.url and http_get(f"{self.url}/version", timeout=0.2)[0]:
            raise Fatal(f"{self.name} stopped, yet something still answers {self.url}")
        if not quiet:
            log(f"{self.name} stopped ({how}); nothing left behind")
        return how

    def exit_status(self):
        """The exit status once stopped (0: a graceful stop), None before."""
        return self.process.poll()
