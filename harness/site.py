"""Where a run's parts live, and what starts a system there. On loopback
(the default) every part shares the machine's own network. With hosts
(--hosts, --rtt-ms above 0, --instances above 1) each part gets a network
namespace of its own (hosts.py): `client` for the load generators, `db`
for PostgreSQL (with PgBouncer, and a delay link per round trip in front of
each), `app1`..`appN` for the instances, and `front` for HAProxy when there
are several. Where namespaces cannot be made (not root), the run says so,
measures what needs none, and lists the rest as unavailable.

`Placement` names one layout for one system; `Site.deploy` starts a system
there and returns what the windows load."""

import os
import subprocess
import tempfile
from dataclasses import dataclass, replace

from harness import cpu, hosts, link, pg, systems
from harness.front import start_haproxy
from harness.measure import Target
from harness.pooler import PgBouncer
from harness.process import Unavailable
from harness.tools import Cleanup, free_port, log, warn


@dataclass(frozen=True)
class Placement:
    """How one system is deployed for a measurement."""

    # Round trip between the app hosts and the database host, in ms.
    rtt_ms: float = 0.0
    # Copies of the system, each on an app host of its own.
    instances: int = 1
    # "" (directly on PostgreSQL) or "pgbouncer".
    pooler: str = ""

    @property
    def label(self):
        """'' for the plain layout; else e.g. 'pgbouncer', '2ms', 'x4', '2ms x4 pgbouncer'."""
        parts = []
        if self.rtt_ms:
            parts.append(f"{self.rtt_ms:g}ms")
        if self.instances > 1:
            parts.append(f"x{self.instances}")
        if self.pooler:
            parts.append(self.pooler)
        return " ".join(parts)

    @property
    def needs_hosts(self):
        return bool(self.rtt_ms) or self.instances > 1

    def as_dict(self):
        return {"rtt_ms": self.rtt_ms, "instances": self.instances, "pooler": self.pooler}


def placements(settings):
    """Every placement of the settings: round trip, then instances, then pooler."""
    poolers = {"none": [""], "pgbouncer": ["pgbouncer"], "both": ["", "pgbouncer"]}
    return [
        Placement(rtt, instances, pooler)
        for rtt in settings.rtt_ms
        for instances in settings.instances
        for pooler in poolers[settings.pooler]
    ]


@dataclass
class Deployed:
    """A system running in a placement: what windows load, and its parts."""

    target: Target
    # Its instances (process.Process), in order.
    instances: list
    # HAProxy's Process in front of several instances, or None.
    front: object = None


class Site:
    """One run's places and what they hold: a temp dir, the components'
    cgroups (cpu.Accounting), the network of hosts when there is one, the
    database, its poolers and delay links. A context manager: everything it
    made or started is undone at its end, on a failure and on Ctrl-C."""

    def __init__(self, settings):
        self.settings = settings
        self.cleanup = Cleanup()
        self.tmp = None
        self.accounting = None
        self.network = None
        self.no_hosts = ""  # why there are none, when they were asked for
        self.db = None
        self.poolers = {}  # rtt → PgBouncer (on the db host)
        self.links = {}  # (rtt, upstream port) → link.Link
        self.rtt_measured = {}  # rtt set → ms measured

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.cleanup.push(lambda: subprocess.call(["rm", "-rf", self.tmp]))
        try:
            method = "proc" if self.settings.cpu_method == "proc" else None
            self.accounting = cpu.Accounting(force_method=method)
            self.cleanup.push(self.accounting.close)
            if self.settings.uses_hosts:
                try:
                    self.network = hosts.Network(self.cleanup)
                    log(f"hosts: network namespaces on {self.network.subnet}")
                except hosts.Unavailable as why:
                    self.no_hosts = str(why)
                    warn(
                        f"no hosts ({why}): falling back to loopback; what needs hosts (a round "
                        "trip, several instances) is listed as unavailable"
                    )
        except BaseException:
            self.cleanup.run()
            raise
        return self

    def __exit__(self, *_exc):
        self.cleanup.run()
        return False

    def host(self, name):
        """The host `name`, made on first use; None on loopback."""
        if self.network is None:
            return None
        return self.network.hosts.get(name) or self.network.add(name)

    def describe(self):
        """The topology, for the results: hosts (or loopback) and links."""
        return {
            "hosts": None if self.network is None else self.network.record(),
            "no_hosts": self.no_hosts,
            "rtt_ms_set": list(self.settings.rtt_ms),
            "rtt_ms_measured": {f"{rtt:g}": ms for rtt, ms in self.rtt_measured.items()},
            "instances": list(self.settings.instances),
            "max_connections": self.settings.max_connections,
            "pooler": self.settings.pooler,
        }

    # --- the database ---------------------------------------------------------------

    def throwaway_database(self, max_connections, transport="tcp", pin=()):
        self.db = pg.Postgres.throwaway(
            self.tmp, max_connections, transport, self.accounting, list(pin), self.host("db")
        )
        self.cleanup.push(self.db.stop)
        return self.db

    def database_url(self, placement):
        """What a system in this placement connects to: PostgreSQL or
        PgBouncer, behind the delay link of the placement's round trip."""
        url = self.pooler(placement.rtt_ms).url if placement.pooler else self.db.url
        if not placement.rtt_ms or self.network is None:
            return url
        return self.link(placement.rtt_ms, url).url

    def pooler(self, rtt_ms):
        if rtt_ms not in self.poolers:
            bouncer = PgBouncer(
                self.db.url,
                self.tmp,
                self.settings.pooler_size,
                self.accounting,
                host=self.host("db"),
                name=f"pgbouncer-{rtt_ms:g}ms",
            )
            self.cleanup.push(bouncer.stop)
            self.poolers[rtt_ms] = bouncer
        return self.poolers[rtt_ms]

    def link(self, rtt_ms, upstream_url):
        """The delay link of a round trip in front of upstream_url (on the db
        host), made on first use, its round trip measured once."""
        key = (rtt_ms, upstream_url)
        if key not in self.links:
            made = link.start(rtt_ms, upstream_url, self.host("db"), self.tmp, self.accounting)
            self.cleanup.push(made.stop)
            self.links[key] = made
            if rtt_ms not in self.rtt_measured:
                self.rtt_measured[rtt_ms] = link.measure_rtt(
                    self.db.url, made.url, self.host("app1"), self.tmp
                )
                log(f"round trip set {rtt_ms:g} ms, measured {self.rtt_measured[rtt_ms]:.3f} ms")
        return self.links[key]

    def reset_poolers(self):
        for bouncer in self.poolers.values():
            bouncer.reset()

    # --- the load generators -----------------------------------------------------------

    def client_place(self):
        """argv prefix of the load generators: the client host, when there are hosts."""
        client = self.host("client")
        return tuple(client.wrap([])) if client else ()

    # --- the systems ---------------------------------------------------------------------

    def deploy(self, system, launch, placement, name, prefix=()):
        """Starts `system` in `placement` (each start command behind
        `prefix`, e.g. taskset) and waits until it answers; raises
        process.Unavailable or process.StartFailed."""
        if placement.needs_hosts and self.network is None:
            raise Unavailable(f"'{placement.label}' needs hosts: {self.no_hosts or 'none made'}")
        instances = []
        front_host = self.host("front") if placement.instances > 1 else None
        if front_host:
            launch = replace(launch, public_host=front_host.address)
        try:
            for number in range(1, placement.instances + 1):
                one = f"{name}#{number}" if placement.instances > 1 else name
                process = systems.start(
                    system,
                    launch,
                    name=one,
                    tmp=self.tmp,
                    accounting=self.accounting,
                    host=self.host(f"app{number}"),
                    prefix=prefix,
                )
                self.cleanup.push(process.stop)
                instances.append(process)
            front = None
            url = instances[0].url
            if placement.instances > 1:
                port = free_port()
                servers = [
                    (f"app{number}", *process.url.rsplit("//", 1)[1].split(":"))
                    for number, process in enumerate(instances, start=1)
                ]
                front = start_haproxy(
                    name,
                    servers,
                    system.ready_path,
                    host=self.host("front"),
                    port=port,
                    tmp=self.tmp,
                    accounting=self.accounting,
                )
                self.cleanup.push(front.stop)
                url = front.url
        except BaseException:
            for process in instances:
                self.cleanup.remove(process.stop)
                process.stop(quiet=True, grace=5)
            raise
        log(f"{name} answers on {url} (ready in {instances[0].ready_s}s)")
        parts = [*instances, *([front] if front else [])]

        def check_alive(during):
            for part in parts:
                part.check_alive(during)

        metrics = tuple(f"{process.url}{system.metrics_path}" for process in instances)
        target = Target(name, url, "server", check_alive, metrics if system.metrics_path else ())
        return Deployed(target, instances, front)

    def undeploy(self, deployed):
        """Stops a deployed system; how its first instance stopped."""
        if deployed.front is not None:
            self.cleanup.remove(deployed.front.stop)
            deployed.front.stop(quiet=True)
        how = []
        for instance in deployed.instances:
            self.cleanup.remove(instance.stop)
            how.append(instance.stop())
        return how[0] if how else None
