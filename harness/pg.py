"""The throwaway PostgreSQL: initdb in the run's temp dir (as the `postgres`
OS user when the harness runs as root: initdb and postgres refuse root), a
free port, no durability, started inside the database's cgroup, seeded with
`bakeoff seed`, stopped at exit; or an external one given by DATABASE_URL."""

import json
import os
import shutil
import signal
import subprocess
import time

from harness.tools import Fatal, free_port, log, need_tool, warn


def as_pg(argv):
    """argv run as the OS user that owns the throwaway cluster."""
    if os.geteuid() == 0:
        return [need_tool("runuser"), "-u", "postgres", "--", *argv]
    return list(argv)


class Postgres:
    """A database the run measures against; `url` is what the server and
    pgbench connect to."""

    def __init__(self, url, data_dir=None, postmaster_pid=None, log_path=None):
        self.url = url
        # Set for a throwaway cluster only: stop() stops it.
        self.data_dir = data_dir
        self.postmaster_pid = postmaster_pid
        # The server's log (a throwaway cluster's): refused connections are read from it.
        self.log_path = log_path

    def log_text(self):
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except OSError:
            return ""

    @classmethod
    def throwaway(cls, tmp_dir, max_connections, transport, accounting, pin_command, host=None):
        """A new cluster in tmp_dir, started; on `host` (hosts.Host: its
        network namespace and address) or on loopback."""
        directory = os.path.join(tmp_dir, "pg")
        os.mkdir(directory)
        if os.geteuid() == 0:
            try:
                shutil.chown(directory, "postgres", "postgres")
            except (LookupError, PermissionError) as error:
                raise Fatal(
                    "no 'postgres' OS user to run PostgreSQL as "
                    "(apt-get install -y postgresql creates it)"
                ) from error
            # postgres must get through the temp dir to its own; it holds no secrets.
            os.chmod(tmp_dir, 0o711)
        log(f"creating a throwaway PostgreSQL cluster in {directory}")
        data = os.path.join(directory, "data")
        initdb_log = os.path.join(tmp_dir, "initdb.log")
        with open(initdb_log, "w", encoding="utf-8") as out:
            status = subprocess.call(
                as_pg(
                    [
                        need_tool("initdb"),
                        "-D",
                        data,
                        "-U",
                        "postgres",
                        "--locale=C.UTF-8",
                        "-E",
                        "UTF8",
                        "--auth=trust",
                    ]
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if status != 0:
            raise Fatal(f"initdb failed:\n{_tail(initdb_log)}")
        port = free_port()
        address = host.address if host else "127.0.0.1"
        # A throwaway cluster: no durability (the data is rebuilt on every
        # run, and seeding is faster), TCP on loopback like the study's
        # servers, the socket in our own dir (not /var/run/postgresql).
        with open(os.path.join(data, "postgresql.conf"), "a", encoding="utf-8") as conf:
            conf.write(f"""
# Added by the harness (harness/pg.py) for a throwaway benchmark cluster.
listen_addresses = '{address}'
port = {port}
unix_socket_directories = '{directory}'
max_connections = {max_connections}
fsync = off
synchronous_commit = off
full_page_writes = off
""")
        if host:
            # The other hosts of the run reach it over the bridge: trust the
            # subnets the server's own addresses are on, as initdb trusts loopback.
            with open(os.path.join(data, "pg_hba.conf"), "a", encoding="utf-8") as hba:
                hba.write("host all all samenet trust\n")
        server_log = os.path.join(directory, "postgres.log")
        db = cls(None, data_dir=data, log_path=server_log)
        # pg_ctl forks the postmaster; started inside the database's cgroup,
        # the postmaster and every backend it forks are counted there.
        argv = accounting.wrap(
            "database",
            [
                *pin_command,
                *(host.wrap([]) if host else []),
                *as_pg(
                    [need_tool("pg_ctl"), "-D", data, "-l", server_log, "-w", "-t", "60", "start"]
                ),
            ],
        )
        status = subprocess.call(argv, stdout=subprocess.DEVNULL)
        if status != 0:
            raise Fatal(f"PostgreSQL did not start:\n{_tail(server_log)}")
        db.postmaster_pid = _postmaster_pid(data)
        if db.postmaster_pid:
            accounting.track("database", db.postmaster_pid)
        admin = f"postgresql://postgres@{address}:{port}/postgres"
        if (
            subprocess.call(
                [need_tool("psql"), "-X", "-q", "-d", admin, "-c", "CREATE DATABASE bakeoff"]
            )
            != 0
        ):
            raise Fatal("could not create the database")
        db.url = f"postgresql://postgres@{address}:{port}/bakeoff"
        if transport == "unix":
            # The same URL form for libpq (psql, pgbench) and tokio-postgres.
            db.url = f"postgresql://postgres@/bakeoff?host={directory}&port={port}"
        return db

    def stop(self):
        if not self.data_dir:
            return
        data, self.data_dir = self.data_dir, None
        subprocess.call(
            as_pg([need_tool("pg_ctl"), "-D", data, "-m", "fast", "-w", "-t", "30", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # pg_ctl failed or timed out: the postmaster must not outlive its data dir.
        pid = _postmaster_pid(data)
        if pid:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            warn(f"PostgreSQL ({pid}) did not stop; killing it")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            time.sleep(0.5)

    # --- queries ------------------------------------------------------------------

    def value(self, sql):
        """One value, unaligned, no headers."""
        result = subprocess.run(
            [
                need_tool("psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise Fatal(f"cannot query the database: {result.stderr.strip()}")
        return result.stdout.strip()

    def has_tables(self):
        """True when the four tables of sql/schema.sql exist."""
        return (
            self.value(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename IN ('contact_types', 'contacts', 'contact_phones', "
                "'contact_emails')"
            )
            == "4"
        )

    def count_contacts(self):
        """The contact count of an existing database: random ids must be
        1..count, as the seeder makes them."""
        count, highest = (
            int(value)
            for value in self.value(
                "SELECT count(*) || ' ' || coalesce(max(contact_id), 0) FROM contacts"
            ).split()
        )
        if count == 0:
            raise Fatal(
                "the database at DATABASE_URL has no contacts (give --contacts N to seed it)"
            )
        if count != highest:
            warn(f"contact ids are not 1..{count} (max {highest}): some random ids will answer 404")
        log(f"the database holds {count} contacts")
        return count

    def seed(self, binary, contacts):
        log(f"seeding {contacts} contacts")
        start = time.monotonic()
        env = dict(os.environ, DATABASE_URL=self.url)
        if subprocess.call([binary, "seed", "--contacts", str(contacts)], stdout=2, env=env) != 0:
            raise Fatal(f"bakeoff seed --contacts {contacts} failed")
        log(f"seeded in {time.monotonic() - start:.0f}s")

    def find_postmaster(self):
        """The postmaster's pid of an external database, when it runs on this
        machine and we may read its data directory's postmaster.pid."""
        try:
            return _postmaster_pid(self.value("SHOW data_directory"))
        except Fatal:
            return None

    def settings(self):
        """The settings that matter for speed."""
        return json.loads(
            self.value(
                "SELECT json_object_agg(name, setting ORDER BY name) FROM pg_settings "
                "WHERE name IN ('max_connections', 'shared_buffers', 'work_mem', 'fsync', "
                "'synchronous_commit', 'jit', 'effective_cache_size', 'random_page_cost', "
                "'max_parallel_workers_per_gather', 'lc_collate', 'server_encoding')"
            )
        )


def _postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="ascii") as file:
            return int(file.readline())
    except (OSError, ValueError):
        return None


def _tail(path, lines=20):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return ""
