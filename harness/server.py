"""The server under test (`bakeoff serve` on port 0, its address read from
its first stderr line) and the nginx ceiling; both started inside their
cgroups, stopped at exit, with their peak RSS."""

import os
import re
import subprocess
import time

from harness.tools import (
    SCRIPTS,
    Fatal,
    free_port,
    http_get,
    log,
    need_tool,
    pid_running,
    stop_process,
    wait_http,
)


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


class Server:
    """`BINARY serve --bind 127.0.0.1:0` against a database."""

    def __init__(self, binary, args, db_url, tmp_dir, accounting, pin_command):
        self.log_path = os.path.join(tmp_dir, "server.log")
        self.banner = ""
        self.url = ""
        env = dict(os.environ)
        if db_url:
            env["DATABASE_URL"] = db_url
        argv = accounting.wrap(
            "server", [*pin_command, binary, "serve", "--bind", "127.0.0.1:0", *args]
        )
        with (
            open(self.log_path, "w", encoding="utf-8") as log_file,
            open(os.path.join(tmp_dir, "server.out"), "w", encoding="utf-8") as out,
        ):
            self.process = subprocess.Popen(argv, stdout=out, stderr=log_file, env=env)
        accounting.track("server", self.process.pid)

    @property
    def pid(self):
        return self.process.pid

    def wait_started(self):
        """Waits for the start line, which names the real address."""
        line = ""
        for _ in range(300):
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                text = file.read()
            if "\n" in text:  # a whole line: never a half-written one
                line = text.split("\n", 1)[0]
                break
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            time.sleep(0.2)  # let it finish its message, if it is failing
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                text = file.read()
            if self.process.poll() is None:
                raise Fatal(f"the server's first line names no address to connect to:\n{text}")
            raise Fatal(
                f"the server did not start (exit status {self.process.returncode}):\n{text}"
            )
        self.url = match.group(1).rstrip("/")
        self.banner = line
        log(self.banner)
        if not wait_http(f"{self.url}/version", 30, alive=self.alive):
            raise Fatal("the server does not answer /version")

    def alive(self):
        return self.process.poll() is None and pid_running(self.process.pid)

    def log_tail(self):
        """What it wrote past its first line: warnings or errors during the run."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return "".join(file.readlines()[1:])
        except OSError:
            return ""

    def peak_rss_kib(self):
        return peak_rss_kib(self.process.pid)

    def stop(self):
        """SIGTERM; its exit status (0 is a graceful stop)."""
        return stop_process(self.process, seconds=15)


class Nginx:
    """A throwaway nginx (scripts/nginx.conf) answering /version with the
    server's own body, from memory: the ceiling of the /version workloads."""

    def __init__(self, body, tmp_dir, workers, accounting, pin_command):
        # The body goes into a single-quoted nginx string: keep it to
        # characters that need no escaping there (a version body always is).
        if not re.fullmatch(r'[][A-Za-z0-9{}":.,_+ -]+', body):
            raise Fatal(f"cannot put this /version body into nginx.conf: {body}")
        self.dir = os.path.join(tmp_dir, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"))
        os.makedirs(os.path.join(self.dir, "tmp"))
        port = free_port()
        with open(os.path.join(SCRIPTS, "nginx.conf"), encoding="utf-8") as file:
            conf = file.read()
        for key, value in (
            ("@PREFIX@", self.dir),
            ("@PORT@", str(port)),
            ("@WORKERS@", str(workers)),
            ("@BODY@", body),
        ):
            conf = conf.replace(key, value)
        conf_path = os.path.join(self.dir, "nginx.conf")
        with open(conf_path, "w", encoding="utf-8") as file:
            file.write(conf)
        argv = accounting.wrap(
            "nginx",
            [
                *pin_command,
                need_tool("nginx"),
                "-p",
                self.dir + "/",
                "-c",
                conf_path,
                "-e",
                f"{self.dir}/logs/error.log",
            ],
        )
        with open(os.path.join(self.dir, "logs", "stdout.log"), "w", encoding="utf-8") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        accounting.track("nginx", self.process.pid)
        self.url = f"http://127.0.0.1:{port}"
        if not wait_http(f"{self.url}/version", 10, alive=lambda: self.process.poll() is None):
            raise Fatal(f"nginx did not start; see {self.dir}/logs")
        status, got = http_get(f"{self.url}/version")
        if got.decode("utf-8", "replace") != body:
            raise Fatal(f"nginx answers /version with {got!r}, not {body}")
        log(f"nginx (ceiling of /version) on {self.url}, {workers} worker(s)")

    def stop(self):
        # TERM is nginx's fast shutdown; its workers exit with the master.
        stop_process(self.process, seconds=10)
