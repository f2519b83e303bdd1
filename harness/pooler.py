"""A throwaway PgBouncer in transaction mode in front of the database: the
study's remedy for process-parallel Python (--pooler). It runs in the
"pooler" component's cgroup, on the database's host, as the postgres OS user
when we are root."""

import os
import shutil
import subprocess
import time
import urllib.parse

from harness.pg import as_pg
from harness.process import Process
from harness.tools import Fatal, free_port, log, need_tool


class PgBouncer:
    """`url` is what a system connects to instead of the database."""

    def __init__(self, db_url, tmp_dir, pool_size, accounting, host=None, name="pgbouncer"):
        parsed = urllib.parse.urlsplit(db_url)
        dbname = parsed.path.lstrip("/") or "bakeoff"
        self.dir = os.path.join(tmp_dir, name)
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        address = host.address if host else "127.0.0.1"
        port = free_port()
        ini = os.path.join(self.dir, "pgbouncer.ini")
        with open(os.path.join(self.dir, "userlist.txt"), "w", encoding="utf-8") as file:
            file.write('"postgres" ""\n')
        with open(ini, "w", encoding="utf-8") as file:
            file.write(
                f"""[databases]
{dbname} = host={parsed.hostname or "127.0.0.1"} port={parsed.port or 5432} dbname={dbname}

[pgbouncer]
listen_addr = {address}
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 5000
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir}/pgbouncer.log
"""
            )
        self.process = Process(
            name,
            as_pg([need_tool("pgbouncer"), ini]),
            component="pooler",
            accounting=accounting,
            log_path=os.path.join(self.dir, "stdout.log"),
            host=host,
        )
        self.pool_size = pool_size
        self.url = f"postgresql://postgres@{address}:{port}/{dbname}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise Fatal(f"pgbouncer exited while starting:\n{self.log_tail()}")
            if self.psql(self.url, "SELECT 1").returncode == 0:
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise Fatal(f"pgbouncer does not answer on {address}:{port}:\n{self.log_tail()}")
        log(f"pgbouncer (transaction mode, {pool_size} server connections) on {address}:{port}")

    @staticmethod
    def psql(url, command):
        return subprocess.run(
            [need_tool("psql"), "-X", "-q", "-At", "-d", url, "-c", command],
            capture_output=True,
            text=True,
            check=False,
        )

    def reset(self):
        """Closes every connection PgBouncer holds (its admin console's KILL,
        then RESUME): it keeps idle server connections for minutes, which
        would count as the next system's backends."""
        admin = self.url.rsplit("/", 1)[0] + "/pgbouncer"
        dbname = self.url.rsplit("/", 1)[1]
        for command in (f"KILL {dbname}", f"RESUME {dbname}"):
            result = self.psql(admin, command)
            if result.returncode != 0:
                raise Fatal(f"pgbouncer's {command} failed: {result.stderr.strip()}")

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.log"), encoding="utf-8") as file:
                return "".join(file.readlines()[-20:])
        except OSError:
            return ""

    def stop(self):
        # SIGTERM is PgBouncer's immediate shutdown; to the whole group, so
        # that it reaches pgbouncer under runuser too.
        if self.process.alive():
            self.process.stop(quiet=True, grace=10)
