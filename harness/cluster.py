"""The local deployment (`cluster up | status | down`, scripts/cluster.sh):
etcd, two PostgreSQL nodes under Patroni, HAProxy, PgBouncer and N
reference instances, each on a host of its own (hosts.py), configured by
cluster_config.py, recorded in a state directory (cluster_state.py).

`up` returns while the deployment runs on: every process is started in a
session of its own, and the hosts belong to a keeper process (`sleep
infinity`) whose pid names them, so that no other run takes them for a dead
run's. `down` reads the state: it stops the components in order (front,
instances, pooler, databases, etcd), then kills whatever still runs in the
deployment's namespaces (which finds every process of it even after a crash,
recorded or not), removes the namespaces and the bridge, ends the keeper and
removes the directory. The failure tests (cluster_faults.py) drive the same
Deployment: stop, kill and start its parts.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time

from harness import cluster_config as config
from harness import cluster_state as cs
from harness import hosts
from harness.tools import ROOT, Fatal, log, need_tool, pg_bindir, warn

SQL_ROLES = os.path.join(ROOT, "sql", "roles.sql")


def as_user(user, argv):
    """argv run as an OS user (and its group); setpriv execs (no fork), so
    the pid stays the command's, unlike runuser."""
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", *argv]


def instance_user(binary):
    """The instances run as `nobody` when it can run the binary (a build
    under a home directory may not be reachable), else as root."""
    try:
        check = subprocess.run(
            as_user("nobody", [binary, "--version"]), capture_output=True, timeout=30, check=False
        )
    except (KeyError, OSError, subprocess.TimeoutExpired):
        return None
    return "nobody" if check.returncode == 0 else None


def http_get(url, timeout=2.0, method="GET"):
    """(status, body) from a host's address, never through a proxy."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, ValueError):
        return 0, b""


def wait_for(predicate, timeout, what, tail=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = f":\n{_tail(tail)}" if tail else ""
    raise Fatal(f"{what} within {timeout:.0f} s{detail}")


def _tail(path, lines=25):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-lines:])
    except OSError:
        return f"(no {path})"


def supports_shutdown_delay(binary):
    result = subprocess.run(
        [binary, "serve", "--help"], capture_output=True, text=True, check=False, timeout=30
    )
    return "shutdown-delay" in result.stdout


class Deployment:
    """A deployment in its state directory; starts and stops its parts."""

    def __init__(self, directory, state, settings=None):
        self.dir = directory
        self.state = state
        if settings is None and "settings" in state:
            settings = config.Settings(**state["settings"])
        self.settings = settings or config.DEFAULTS
        self.children = {}  # name → Popen, for the processes this one started
        record = state["network"]
        self.hosts = {
            host["name"]: hosts.Host(
                host["name"], host["netns"], host["address"], veth=host["veth"]
            )
            for host in record["hosts"]
        }
        self.plan = config.Plan(
            addresses={name: host.address for name, host in self.hosts.items()},
            subnet=record["subnet"],
            instances=state["instances"],
            state_dir=directory,
            rtt_ms=state["rtt_ms"],
            db_path=state.get("db_path", "pooler"),
        )

    @property
    def components(self):
        return self.state["components"]

    def save(self):
        cs.save(self.dir, self.state)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # --- processes ------------------------------------------------------------------

    def spawn(self, name, role, host, argv, user=None, env=None, port=None):
        """Starts one component on its host, in a session of its own, its
        output in NAME.log; recorded in the state at once."""
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        base["HOME"] = self.path(name) if os.path.isdir(self.path(name)) else self.dir
        argv = self.hosts[host].wrap(as_user(user, argv) if user else argv)
        log_path = self.path(f"{name}.log")
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**base, **(env or {})},
                cwd=self.dir,
                start_new_session=True,
            )
        self.children[name] = process
        self.components[name] = {
            "role": role,
            "host": host,
            "address": self.hosts[host].address,
            "port": port,
            "process": cs.process_record(process.pid),
            "log": log_path,
            "started": time.time(),
        }
        self.save()
        return process

    def alive(self, name):
        child = self.children.get(name)
        if child is not None and child.poll() is not None:
            return False
        return cs.is_alive(self.components.get(name, {}).get("process"))

    def send(self, name, sig):
        record = self.components[name]["process"]
        if cs.is_alive(record):
            try:
                os.kill(record["pid"], sig)
            except ProcessLookupError:
                pass

    def stop(self, name, sig=signal.SIGTERM, timeout=20.0):
        """Signals a component and waits for it to exit (SIGKILL after
        timeout). Returns the seconds it took."""
        start = time.monotonic()
        self.send(name, sig)
        deadline = start + timeout
        while self.alive(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.alive(name):
            warn(
                f"{name} still running {timeout:.0f} s after {signal.Signals(sig).name}; killing it"
            )
            self.send(name, signal.SIGKILL)
            wait_for(lambda: not self.alive(name), 10, f"{name} did not die")
        return time.monotonic() - start

    def kill_host(self, host):
        """Everything on a host, SIGKILL at once: the host is lost."""
        killed = hosts.kill_namespace(self.hosts[host].netns, need_tool("ip"))
        for name, child in self.children.items():
            if self.components[name]["host"] == host:
                child.poll()
        return killed

    # --- the parts ------------------------------------------------------------------

    def make_dir(self, name, owner=None):
        directory = self.path(name)
        os.makedirs(directory, exist_ok=True)
        if owner:
            shutil.chown(directory, owner, owner)
            os.chmod(directory, 0o700)
        return directory

    def start_etcd(self):
        directory = self.make_dir("dcs", "etcd")
        self.spawn(
            "dcs",
            "dcs",
            "dcs",
            [need_tool("etcd"), *config.etcd_argv(self.plan, f"{directory}/data")[1:]],
            user="etcd",
            port=config.ETCD_PORT,
        )
        url = f"http://{self.plan.address('dcs')}:{config.ETCD_PORT}/health"
        wait_for(
            lambda: http_get(url)[0] == 200, 30, "etcd did not answer /health", self.path("dcs.log")
        )

    def start_patroni(self, node, wipe=False):
        """Patroni on a db host: the first bootstraps the cluster, a later one
        (or one whose data was wiped) clones the primary with pg_basebackup."""
        directory = self.path(node)
        if wipe and os.path.isdir(directory):
            shutil.rmtree(directory)
        directory = self.make_dir(node, "postgres")
        bin_dir = pg_bindir()
        if not bin_dir:
            raise Fatal("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        config_path = os.path.join(directory, "patroni.yml")
        with open(config_path, "w", encoding="utf-8") as file:
            file.write(config.patroni_yaml(self.plan, self.settings, node, directory, bin_dir))
        shutil.chown(config_path, "postgres", "postgres")
        self.spawn(
            node,
            "database",
            node,
            [need_tool("patroni"), config_path],
            user="postgres",
            port=config.PG_PORT,
        )
        self.components[node]["data_dir"] = os.path.join(directory, "data")
        self.save()
        if self.plan.rtt_ms:
            self.start_link(node)

    def patroni(self, node, path="/patroni", timeout=1.0):
        status, body = http_get(
            f"http://{self.plan.address(node)}:{config.PATRONI_PORT}{path}", timeout
        )
        return status, body

    def wait_role(self, node, role, timeout=120):
        """role: 'primary' or 'replica' (Patroni's health endpoints: 200 when
        the node is a running primary, or a running, streaming replica)."""
        wait_for(
            lambda: self.patroni(node, f"/{role}")[0] == 200,
            timeout,
            f"{node} did not become a running {role}",
            self.path(f"{node}.log"),
        )

    def patroni_cluster(self):
        """Patroni's GET /cluster from any node that answers, or None."""
        import json

        for node in self.plan.db_hosts:
            status, body = self.patroni(node, "/cluster")
            if status == 200:
                return json.loads(body)
        return None

    def primary(self):
        roles = cs.db_roles(self.patroni_cluster())
        found = [name for name, info in roles.items() if info["role"] == "primary"]
        return found[0] if found else None

    def start_link(self, node):
        binary = os.path.join(ROOT, "target", "release", "bakeoff-link")
        if not os.access(binary, os.X_OK):
            raise Fatal(
                "--rtt-ms needs bakeoff-link (branch link): merge it, then "
                "cargo build --release -p bakeoff-link"
            )
        argv = config.link_argv(binary, self.plan, node, self.plan.rtt_ms)
        self.spawn(f"link-{node}", "link", node, argv, port=config.LINK_PORT)

    def start_haproxy(self):
        directory = self.make_dir("front")
        socket_path = os.path.join(directory, "haproxy.sock")
        cfg = os.path.join(directory, "haproxy.cfg")
        error_503 = os.path.join(directory, "503.http")
        with open(error_503, "w", encoding="utf-8", newline="") as file:
            file.write(config.ERROR_503)
        with open(cfg, "w", encoding="utf-8") as file:
            file.write(config.haproxy_cfg(self.plan, self.settings, socket_path, error_503))
        check = subprocess.run(
            [need_tool("haproxy"), "-c", "-q", "-f", cfg], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise Fatal(f"haproxy -c refused {cfg}:\n{check.stderr}")
        self.spawn(
            "front",
            "front",
            "front",
            [need_tool("haproxy"), "-db", "-f", cfg],
            port=config.HTTP_PORT,
        )
        self.components["front"]["socket"] = socket_path
        self.save()
        wait_for(
            lambda: os.path.exists(socket_path), 20, "haproxy did not start", self.path("front.log")
        )

    def haproxy(self, command):
        """One command on HAProxy's runtime API (its stats socket)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(self.components["front"]["socket"])
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_stats(self):
        """{(backend, server): {column: value}} from `show stat`."""
        try:
            return cs.parse_show_stat(self.haproxy("show stat"))
        except OSError:
            return {}

    def server_states(self):
        """{(backend, server): 'UP' | 'DOWN' | 'MAINT' | ...}."""
        return {key: row["status"] for key, row in self.server_stats().items()}

    def wait_server(self, backend, server, state="UP", timeout=30):
        wait_for(
            lambda: self.server_states().get((backend, server), "").startswith(state),
            timeout,
            f"HAProxy did not see {backend}/{server} {state}",
        )

    def start_pgbouncer(self, wait=True):
        directory = self.make_dir("pooler", "postgres")
        os.chmod(directory, 0o755)
        for name, text in (
            ("pgbouncer.ini", config.pgbouncer_ini(self.plan, self.settings, directory)),
            ("userlist.txt", config.pgbouncer_userlist()),
        ):
            with open(os.path.join(directory, name), "w", encoding="utf-8") as file:
                file.write(text)
            shutil.chown(os.path.join(directory, name), "postgres", "postgres")
        self.spawn(
            "pooler",
            "pooler",
            "pooler",
            [need_tool("pgbouncer"), os.path.join(directory, "pgbouncer.ini")],
            user="postgres",
            port=config.POOLER_PORT,
        )
        if not wait:
            return
        wait_for(
            lambda: self.psql_ok(self.pooler_url()),
            30,
            "PgBouncer did not pass a query to the primary",
            os.path.join(directory, "pgbouncer.log"),
        )

    def pooler_url(self, user=config.APP_USER):
        return (
            f"postgresql://{user}@{self.plan.address('pooler')}:{config.POOLER_PORT}"
            f"/{config.DATABASE}"
        )

    def db_url(self, node, database=config.DATABASE):
        return f"postgresql://postgres@{self.plan.address(node)}:{config.PG_PORT}/{database}"

    def psql_ok(self, url, sql="SELECT 1"):
        result = subprocess.run(
            [need_tool("psql"), "-X", "-At", "-d", url, "-c", sql],
            capture_output=True,
            text=True,
            check=False,
            env=dict(os.environ, PGCONNECT_TIMEOUT="2"),
        )
        return result.returncode == 0

    def start_instance(self, host, db_path=None):
        binary = self.state["binary"]
        env = config.instance_env(
            self.plan, self.settings, host, self.state["shutdown_delay"], db_path
        )
        user = self.state.get("instance_user")
        self.spawn(
            host, "instance", host, [binary, "serve"], user=user, env=env, port=config.HTTP_PORT
        )
        url = self.hosts[host].url(config.HTTP_PORT, "/readyz")
        wait_for(
            lambda: http_get(url)[0] == 200 or not self.alive(host),
            30,
            f"instance {host} was not ready",
            self.path(f"{host}.log"),
        )
        if not self.alive(host):
            raise Fatal(f"instance {host} exited:\n{_tail(self.path(f'{host}.log'))}")

    def seed(self, contacts):
        """The database, its data and its read-only role, through the primary."""
        node = self.primary()
        if not node:
            raise Fatal("no primary to seed")
        admin = self.db_url(node, "postgres")
        if not self.psql_ok(admin, f"CREATE DATABASE {config.DATABASE}"):
            raise Fatal(f"could not create the database on {node}")
        log(f"seeding {contacts} contacts through the primary ({node})")
        env = dict(os.environ, DATABASE_URL=self.db_url(node))
        seed = [self.state["binary"], "seed", "--contacts", str(contacts)]
        if subprocess.call(seed, env=env, stdout=2) != 0:
            raise Fatal("bakeoff seed failed")
        roles = [need_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.db_url(node)]
        if subprocess.call([*roles, "-f", SQL_ROLES], stdout=subprocess.DEVNULL) != 0:
            raise Fatal("sql/roles.sql failed")
        self.state["contacts"] = contacts
        self.save()
