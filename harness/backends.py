"""PostgreSQL's client backends, counted from the process titles of the
database's processes (no connection of our own, so the count neither
includes one nor loads PostgreSQL), sampled in a thread while a system runs;
and the connections it refused ("too many clients"), read from its log."""

import re
import threading
import time
from contextlib import contextmanager

# A client backend's process title: "postgres: USER DATABASE HOST(PORT) STATE"
# over TCP, "postgres: USER DATABASE [local] STATE" over a socket. Background
# processes ("postgres: checkpointer", "... walwriter", "... autovacuum
# launcher") have no host part.
BACKEND_TITLE = re.compile(r"^postgres: \S+ \S+ (\[local\]|\S+\(\d+\))")

# What PostgreSQL logs when a connection finds no free slot: past
# max_connections, or past it less the superuser-reserved ones.
REFUSAL = re.compile(
    r"FATAL:\s+(sorry, too many clients already"
    r"|remaining connection slots are reserved[^\n]*)"
)


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


def refusals(log_text):
    """(count, first message) of the refused connections in a PostgreSQL log."""
    found = REFUSAL.findall(log_text)
    return len(found), (f"FATAL: {found[0]}" if found else "")


class BackendSampler:
    """Counts the client backends every `interval` seconds in a thread while
    a system runs, and keeps the peak."""

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

    @contextmanager
    def paused(self):
        self.pause()
        try:
            yield
        finally:
            self.resume()

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
