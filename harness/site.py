"""Where a run's parts live, and what starts a system there. On loopback
(the default) every part shares the machine's own network; with hosts
(--hosts, --rtt-ms above 0, --instances above 1), each part gets a network
namespace of its own (hosts.py): a client host for the load generators, a
database host for PostgreSQL (with a delay link per round trip and
PgBouncer in front of it), app hosts for the instances, and a front host
for HAProxy when there are several. `Placement` names one such layout for
one system; `Site.deploy` starts a system there and returns what to load."""

import os
import subprocess
import tempfile
from dataclasses import dataclass

from harness import cpu, pg, systems
from harness.measure import Target
from harness.pooler import PgBouncer
from harness.tools import Cleanup, Fatal, log


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

    def as_dict(self):
        return {"rtt_ms": self.rtt_ms, "instances": self.instances, "pooler": self.pooler}


def placements(settings):
    """Every placement of the settings, round trip outermost."""
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

    def stop(self):
        """Stops every part; the first instance's exit line, for the record."""
        how = [instance.stop() for instance in self.instances]
        if self.front is not None:
            self.front.stop(quiet=True)
        return how[0] if how else None


class Site:
    """One run's places and what they hold: a temp dir, the components'
    cgroups (cpu.Accounting), the database, its poolers and links, and the
    network of hosts when there is one. A context manager: everything it
    made or started is undone at its end, on a failure and on Ctrl-C."""

    def __init__(self, settings):
        self.settings = settings
        self.cleanup = Cleanup()
        self.tmp = None
        self.accounting = None
        self.network = None
        self.db = None
        self.poolers = {}  # rtt → PgBouncer

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.cleanup.push(lambda: subprocess.call(["rm", "-rf", self.tmp]))
        try:
            method = "proc" if self.settings.cpu_method == "proc" else None
            self.accounting = cpu.Accounting(force_method=method)
            self.cleanup.push(self.accounting.close)
            if self.settings.uses_hosts:
                raise Fatal("hosts (--hosts, --rtt-ms above 0, --instances above 1): not built yet")
        except BaseException:
            self.cleanup.run()
            raise
        return self

    def __exit__(self, *_exc):
        self.cleanup.run()
        return False

    def describe(self):
        """The topology, for the results: hosts (or loopback) and links."""
        return {
            "hosts": None if self.network is None else self.network.describe(),
            "rtt_ms_set": list(self.settings.rtt_ms),
            "instances": list(self.settings.instances),
            "max_connections": self.settings.max_connections,
            "pooler": self.settings.pooler,
        }

    # --- the database -----------------------------------------------------------------

    def throwaway_database(self, max_connections, transport="tcp", pin=()):
        self.db = pg.Postgres.throwaway(
            self.tmp, max_connections, transport, self.accounting, list(pin)
        )
        self.cleanup.push(self.db.stop)
        return self.db

    def database_url(self, placement):
        """What a system in this placement connects to."""
        if placement.pooler:
            return self.pooler(placement.rtt_ms).url
        return self.db.url

    def pooler(self, rtt_ms):
        if rtt_ms not in self.poolers:
            bouncer = PgBouncer(self.db.url, self.tmp, self.settings.pooler_size, self.accounting)
            self.cleanup.push(bouncer.stop)
            self.poolers[rtt_ms] = bouncer
        return self.poolers[rtt_ms]

    def reset_poolers(self):
        for bouncer in self.poolers.values():
            bouncer.reset()

    # --- the load generators ----------------------------------------------------------------

    def client_place(self):
        """argv prefix of the load generators (their host, when there are hosts)."""
        return ()

    # --- the systems -----------------------------------------------------------------------

    def deploy(self, system, launch, placement, name, prefix=()):
        """Starts `system` in `placement` (its start command behind `prefix`,
        e.g. taskset) and waits until it answers; raises process.Unavailable
        or process.StartFailed."""
        if placement.instances != 1 or placement.rtt_ms:
            raise Fatal(f"placement '{placement.label}' needs hosts")
        process = systems.start(
            system,
            launch,
            name=name,
            tmp=self.tmp,
            accounting=self.accounting,
            prefix=prefix,
        )
        self.cleanup.push(process.stop)
        log(f"{name} answers on {process.url} (ready in {process.ready_s}s)")
        target = Target(name, process.url, "server", process.check_alive)
        return Deployed(target, [process])

    def undeploy(self, deployed):
        for instance in deployed.instances:
            self.cleanup.remove(instance.stop)
        if deployed.front is not None:
            self.cleanup.remove(deployed.front.stop)
        return deployed.stop()
