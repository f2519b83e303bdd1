"""The local deployment's configuration, as pure functions of its plan (who
runs on which host at which address) and its settings: HAProxy's config,
Patroni's YAML (written as JSON, which YAML reads), PgBouncer's ini, etcd's
and each instance's command line. Nothing here starts a process; cluster.py
does. The settings that mattered are named here once, with why, and
docs/DEPLOY.md quotes them.

The topology (each a network namespace of hosts.py, on one bridge):

    machine ── front (HAProxy :8000 HTTP, :5000 the PostgreSQL primary)
                 ├─ app1..appN (bakeoff :8000) ── pooler (PgBouncer :6432)
                 │                                  └─ front :5000 ─┐
                 └─ checks Patroni's REST (:8008) of db1, db2 ◀──────┘
               db1, db2 (Patroni + PostgreSQL 15 :5432, streaming)
               dcs (etcd :2379)

PgBouncer follows the primary through HAProxy's :5000, whose check asks
each Patroni `OPTIONS /primary` (Patroni's own HAProxy template): the
check that already decides who gets traffic needs no callback on the new
primary to reach the pooler, and a dead node is handled the same way as a
demoted one (`on-marked-down shutdown-sessions` cuts its connections).
"""

import dataclasses
import json

HTTP_PORT = 8000  # the front's and every instance's
PRIMARY_PORT = 5000  # HAProxy's PostgreSQL primary, on the front host
POOLER_PORT = 6432
PG_PORT = 5432
LINK_PORT = 5433  # bakeoff-link on a db host, in front of PG_PORT (--rtt-ms)
PATRONI_PORT = 8008
ETCD_PORT = 2379
DATABASE = "bakeoff"
APP_USER = "bakeoff_reader"  # sql/roles.sql's read-only role
REPLICATION_USER = "replicator"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting that the failure tests showed to matter."""

    # HAProxy, the instances' backend. A check every 500 ms, out after 2
    # failures: a draining instance is out within about 0.7 s.
    check_inter_ms: int = 500
    check_fastinter_ms: int = 200
    check_fall: int = 2
    check_rise: int = 2
    # An idempotent GET that met a refused or reset connection, or no answer,
    # is sent again, to another instance (redispatch on every retry).
    retries: int = 3
    redispatch: bool = True
    retry_on: str = "conn-failure empty-response junk-response response-timeout"
    # When no instance is ready, send the traffic to the live ones (their own
    # 503, and 200 the moment the database is back) rather than answer
    # HAProxy's 503 until a check rises.
    live_fallback: bool = True
    timeout_connect_ms: int = 1000
    timeout_server_ms: int = 5000
    # HAProxy, the primary: a down server is checked every 200 ms, up after
    # one success, so a promoted standby gets traffic within about 0.2 s.
    primary_inter_ms: int = 1000
    primary_downinter_ms: int = 200
    primary_fall: int = 2
    primary_rise: int = 1
    # No retry on the primary's port: HAProxy waits up to a second before
    # each, while PgBouncer holds its clients.
    primary_retries: int = 0
    # Patroni: the leader key lives ttl seconds unless renewed; a dead
    # primary is replaced within about ttl. loop_wait + 2 x retry_timeout
    # must stay within ttl.
    ttl_s: int = 10
    loop_wait_s: int = 1
    retry_timeout_s: int = 4
    # PgBouncer: transaction pooling (the instances run --statements
    # unnamed), few PostgreSQL connections, and a failed login retried after
    # 0.2 s instead of 15 s (clients that ask meanwhile fail fast). A client
    # already queued when the primary dies is not failed fast: it waits for
    # query_wait_timeout (measured: 5 s of hanging requests at 5), so that
    # is the bound of a 503's wait during a failover.
    pool_mode: str = "transaction"
    default_pool_size: int = 8
    max_client_conn: int = 500
    server_login_retry_s: float = 0.2
    query_wait_timeout_s: float = 0.5
    max_connections: int = 100
    # Each instance: one worker thread and four connections (this machine
    # has two cores for everything), /readyz answering 503 for this long
    # after SIGTERM (servers that have --shutdown-delay-ms), then a drain.
    instance_workers: int = 1
    instance_pool_size: int = 4
    shutdown_delay_ms: int = 1500
    drain_timeout_s: int = 10


DEFAULTS = Settings()


def parse_settings(pairs):
    """Settings from `--set KEY=VALUE` words (each converted to its field's
    type), checked against the rules the parts impose."""
    changes = {}
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {pair}: expected KEY=VALUE, KEY one of {', '.join(fields)}")
        kind = type(getattr(DEFAULTS, key))
        if kind is bool:
            if value not in ("true", "false"):
                raise ValueError(f"--set {pair}: true or false")
            changes[key] = value == "true"
        else:
            try:
                changes[key] = kind(value)
            except ValueError:
                raise ValueError(f"--set {pair}: not a {kind.__name__}") from None
    settings = dataclasses.replace(DEFAULTS, **changes)
    if settings.loop_wait_s + 2 * settings.retry_timeout_s > settings.ttl_s:
        raise ValueError("Patroni needs loop_wait_s + 2 x retry_timeout_s <= ttl_s")
    return settings


@dataclasses.dataclass(frozen=True)
class Plan:
    """Who runs where: host name → address, and the run's choices."""

    addresses: dict
    subnet: str
    instances: int
    state_dir: str
    rtt_ms: int = 0
    # "pooler": instances → PgBouncer → HAProxy's primary port; "direct":
    # instances → both nodes, target_session_attrs=primary (the server
    # finds the primary itself).
    db_path: str = "pooler"

    def address(self, host):
        return self.addresses[host]

    @property
    def app_hosts(self):
        return [f"app{index}" for index in range(1, self.instances + 1)]

    @property
    def db_hosts(self):
        return ["db1", "db2"]

    def pg_client_port(self):
        """Where HAProxy sends a node's PostgreSQL clients: the delay link
        in front of PostgreSQL when there is an RTT to add."""
        return LINK_PORT if self.rtt_ms else PG_PORT

    def front_url(self):
        return f"http://{self.address('front')}:{HTTP_PORT}"


def host_names(instances, extra=()):
    """Every host of a deployment of N instances, in the order they are made
    (extra: more hosts, for a measurement's own instance)."""
    apps = [f"app{i}" for i in range(1, instances + 1)]
    return ["dcs", "db1", "db2", "pooler", "front", *apps, *extra]


def _ms(value):
    return f"{value}ms"


def haproxy_cfg(plan, settings, socket_path, error_503_path):
    """HAProxy 2.6: the API's front (HTTP, checks on /readyz, retries and
    redispatch) and the primary's TCP front (checks on Patroni's /primary)."""
    s = settings
    front = plan.address("front")
    lines = [
        "# Generated by harness/cluster_config.py for the local deployment.",
        "global",
        # Server state changes, timestamped (ms): the failure tests' timeline.
        "    log stderr format iso local0 notice",
        f"    stats socket {socket_path} mode 600 level admin",
        # Binds as root, then runs as Debian's haproxy user.
        "    user haproxy",
        "    group haproxy",
        "    maxconn 4000",
        "",
        "defaults",
        "    log global",
        "    mode http",
        "    option dontlognull",
        f"    timeout connect {_ms(s.timeout_connect_ms)}",
        "    timeout client 30s",
        f"    timeout server {_ms(s.timeout_server_ms)}",
        "    timeout http-keep-alive 10s",
        "    timeout queue 2s",
        "    timeout check 2s",
        f"    retries {s.retries}",
        "    option redispatch 1" if s.redispatch else "    no option redispatch",
        f"    retry-on {s.retry_on}",
        f"    errorfile 503 {error_503_path}",
        "",
        "frontend api",
        f"    bind {front}:{HTTP_PORT}",
        "    # The ready instances (/readyz) take the traffic. When none is ready,",
        "    # which is what a database outage does to all at once, the live ones",
        "    # (/healthz) answer: their own fast 503 with Retry-After, and a 200",
        "    # the moment the database is back, before a check could rise.",
    ]
    if s.live_fallback:
        lines += [
            "    use_backend instances if { nbsrv(instances) gt 0 }",
            "    default_backend live",
        ]
    else:
        lines += ["    default_backend instances"]
    for backend, path in (("instances", "/readyz"), ("live", "/healthz")):
        lines += [
            "",
            f"backend {backend}",
            "    balance roundrobin",
            "    option httpchk",
            f"    http-check send meth GET uri {path} ver HTTP/1.1 hdr Host front",
            "    http-check expect status 200",
            f"    default-server inter {_ms(s.check_inter_ms)}"
            f" fastinter {_ms(s.check_fastinter_ms)} downinter {_ms(s.check_inter_ms)}"
            f" fall {s.check_fall} rise {s.check_rise}",
        ]
        for host in plan.app_hosts:
            lines.append(f"    server {host} {plan.address(host)}:{HTTP_PORT} check")
    lines += [
        "",
        "# Patroni's template: the primary is the node whose REST API answers",
        "# 200 to OPTIONS /primary; connections to a node marked down are cut.",
        "listen primary",
        f"    bind {front}:{PRIMARY_PORT}",
        "    mode tcp",
        "    option tcplog",
        "    # No retry: HAProxy waits up to a second before each, while PgBouncer",
        "    # holds its clients; failing at once lets PgBouncer fail them fast",
        "    # and try again after server_login_retry.",
        f"    retries {s.primary_retries}",
        "    timeout client 30m",
        "    timeout server 30m",
        "    option httpchk OPTIONS /primary",
        "    http-check expect status 200",
        f"    default-server inter {_ms(s.primary_inter_ms)}"
        f" fastinter {_ms(s.primary_downinter_ms)} downinter {_ms(s.primary_downinter_ms)}"
        f" fall {s.primary_fall} rise {s.primary_rise}"
        " on-marked-down shutdown-sessions",
    ]
    for host in plan.db_hosts:
        lines.append(
            f"    server {host} {plan.address(host)}:{plan.pg_client_port()}"
            f" check port {PATRONI_PORT}"
        )
    return "\n".join(lines) + "\n"


def patroni_config(plan, settings, node, node_dir, bin_dir):
    """Patroni 3.0's configuration of one node (a dict; written as JSON)."""
    s = settings
    address = plan.address(node)
    trust = [
        "local all all trust",
        f"host replication {REPLICATION_USER} {plan.subnet} trust",
        f"host replication {REPLICATION_USER} 127.0.0.1/32 trust",
        f"host all all {plan.subnet} trust",
        "host all all 127.0.0.1/32 trust",
    ]
    return {
        "scope": "bakeoff",
        "namespace": "/service/",
        "name": node,
        "log": {"level": "INFO", "format": "%(asctime)s %(levelname)s: %(message)s"},
        "restapi": {
            "listen": f"{address}:{PATRONI_PORT}",
            "connect_address": f"{address}:{PATRONI_PORT}",
        },
        "etcd3": {"hosts": [f"{plan.address('dcs')}:{ETCD_PORT}"]},
        "bootstrap": {
            "dcs": {
                "ttl": s.ttl_s,
                "loop_wait": s.loop_wait_s,
                "retry_timeout": s.retry_timeout_s,
                "maximum_lag_on_failover": 1048576,
                "postgresql": {
                    "use_pg_rewind": False,
                    "use_slots": True,
                    "parameters": {
                        "max_connections": s.max_connections,
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "128MB",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
            "pg_hba": trust,
        },
        "postgresql": {
            # PostgreSQL on the host's address and its loopback (the delay
            # link forwards to loopback).
            "listen": f"{address},127.0.0.1:{PG_PORT}",
            "connect_address": f"{address}:{PG_PORT}",
            "data_dir": f"{node_dir}/data",
            "bin_dir": bin_dir,
            "pgpass": f"{node_dir}/pgpass",
            "authentication": {
                "superuser": {"username": "postgres", "password": "postgres"},
                "replication": {"username": REPLICATION_USER, "password": "replicator"},
            },
            "pg_hba": trust,
            "create_replica_methods": ["basebackup"],
            "basebackup": [{"checkpoint": "fast"}],
            "remove_data_directory_on_diverged_timelines": True,
            "parameters": {
                "unix_socket_directories": node_dir,
                "logging_collector": "on",
                "log_directory": f"{node_dir}/log",
                "log_filename": "postgresql.log",
                "log_line_prefix": "%m [%p] ",
            },
        },
        "tags": {"nofailover": False, "noloadbalance": False},
    }


def patroni_yaml(plan, settings, node, node_dir, bin_dir):
    return "# Generated by harness/cluster_config.py (JSON is YAML).\n" + json.dumps(
        patroni_config(plan, settings, node, node_dir, bin_dir), indent=2
    )


def pgbouncer_ini(plan, settings, directory):
    s = settings
    return f"""; Generated by harness/cluster_config.py for the local deployment.
[databases]
; The primary, wherever it is: HAProxy's port checked with Patroni's /primary.
{DATABASE} = host={plan.address("front")} port={PRIMARY_PORT} dbname={DATABASE}

[pgbouncer]
listen_addr = {plan.address("pooler")},127.0.0.1
listen_port = {POOLER_PORT}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
admin_users = postgres
pool_mode = {s.pool_mode}
default_pool_size = {s.default_pool_size}
max_client_conn = {s.max_client_conn}
server_login_retry = {s.server_login_retry_s}
query_wait_timeout = {s.query_wait_timeout_s}
server_connect_timeout = 2
ignore_startup_parameters = extra_float_digits,options
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


# HAProxy's own 503 (no instance alive at all) in the contract's shape.
ERROR_503 = (
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Retry-After: 1\r\n"
    "Cache-Control: no-store\r\n"
    "Connection: close\r\n"
    "Content-Length: 33\r\n"
    "\r\n"
    '{"detail":"Service Unavailable"}\n'
)


def pgbouncer_userlist():
    return f'"{APP_USER}" ""\n"postgres" ""\n'


def etcd_argv(plan, data_dir):
    """etcd 3.4, one member: clients on the dcs host's address and loopback,
    peers on loopback only."""
    address = plan.address("dcs")
    return [
        "etcd",
        "--name",
        "dcs",
        "--data-dir",
        data_dir,
        "--listen-client-urls",
        f"http://{address}:{ETCD_PORT},http://127.0.0.1:{ETCD_PORT}",
        "--advertise-client-urls",
        f"http://{address}:{ETCD_PORT}",
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "dcs=http://127.0.0.1:2380",
        "--initial-cluster-state",
        "new",
    ]


def database_url(plan, db_path):
    """An instance's DATABASE_URL: PgBouncer, or both nodes in libpq's
    multi-host syntax with the primary as the target."""
    if db_path == "pooler":
        return f"postgresql://{APP_USER}@{plan.address('pooler')}:{POOLER_PORT}/{DATABASE}"
    nodes = ",".join(f"{plan.address(node)}:{plan.pg_client_port()}" for node in plan.db_hosts)
    return f"postgresql://{APP_USER}@{nodes}/{DATABASE}?target_session_attrs=primary"


def instance_env(plan, settings, host, shutdown_delay, db_path=None):
    """The environment of one reference instance (docs/CLI.md): through
    PgBouncer in transaction mode, so unnamed statements; or straight to
    the primary, with statements prepared once per session."""
    db_path = db_path or plan.db_path
    env = {
        "BIND": f"{plan.address(host)}:{HTTP_PORT}",
        "DATABASE_URL": database_url(plan, db_path),
        "STATEMENTS": "unnamed" if db_path == "pooler" else "prepared",
        "WORKER_THREADS": str(settings.instance_workers),
        "POOL_SIZE": str(settings.instance_pool_size),
        "DRAIN_TIMEOUT_S": str(settings.drain_timeout_s),
    }
    if shutdown_delay and settings.shutdown_delay_ms:
        env["SHUTDOWN_DELAY_MS"] = str(settings.shutdown_delay_ms)
    return env


def link_argv(binary, plan, node, rtt_ms):
    """bakeoff-link on a db host: PostgreSQL's clients pay rtt_ms per round
    trip (half each way); replication and Patroni keep the direct port."""
    return [
        binary,
        "--listen",
        f"{plan.address(node)}:{LINK_PORT}",
        "--upstream",
        f"127.0.0.1:{PG_PORT}",
        "--rtt-ms",
        f"{rtt_ms:g}",
    ]
