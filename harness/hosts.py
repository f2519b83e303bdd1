"""Hosts: each component of a run on a host of its own, made as a network
namespace with its own IPv4 address on a bridge (client host, front host,
app hosts, database host), so that traffic between components crosses a
network stack instead of loopback, and a delay link can sit between them.

    network = hosts.Network(cleanup)            # the bridge, in the root namespace
    db = network.add("db")                      # a namespace with an address
    argv = accounting.wrap("database", db.wrap(["postgres", ...]))
    subprocess.Popen(argv)                      # in the cgroup AND the namespace

The bridge holds an address of its own (the subnet's .1), so the machine's
own namespace reaches every host: a URL on a host's address works from the
harness itself. Nothing routes further: the hosts reach each other, the
root namespace and their own loopback, and no other address.

Names and the subnet are unique per run: they carry the owner's pid
(`bk<pid>-<host>` namespaces, `bkbr<pid>` bridge, `bk<pid>v<n>` veths), and
the /24 is the first of 10.213.0.0/16, starting at pid % 256, that no
address or route of the machine overlaps (chosen under a lock, so that two
runs starting at once cannot take the same one). Everything is removed by
close(), which the run's Cleanup calls at exit, on a failure and on Ctrl-C
or SIGTERM (the harness turns both into tools.Interrupted). A run killed
with SIGKILL leaves its namespaces behind: the next Network removes those
whose owner pid is no longer alive (killing what still runs inside them),
and never touches a live owner's.

Making namespaces needs root and iproute2's `ip`: without them Network()
raises Unavailable, whose message the caller prints before falling back to
loopback (loopback_host() is that layout's Host: same interface, no
namespace).
"""

import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time

from harness.tools import pid_running, warn

PREFIX = "bk"
# The private range the /24s are taken from: 256 of them.
POOL = ipaddress.IPv4Network("10.213.0.0/16")
LOCK_PATH = "/run/lock/bakeoff-hosts.lock"
HOST_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# Interface names are at most 15 bytes (IFNAMSIZ - 1).
IFNAME_MAX = 15


class Unavailable(Exception):
    """Network namespaces cannot be made here; the message says why."""


# --- names and address plans (pure) ------------------------------------------------


def netns_name(owner, host, prefix=PREFIX):
    """`bk<pid>-<host>`: the namespace of one host of the run owned by pid."""
    return f"{prefix}{owner}-{host}"


def bridge_name(owner, prefix=PREFIX):
    name = f"{prefix}br{owner}"
    if len(name) > IFNAME_MAX:
        raise ValueError(f"bridge name {name} is longer than {IFNAME_MAX} bytes")
    return name


def veth_name(owner, index, prefix=PREFIX):
    """The root namespace's end of host number `index`'s veth pair (the
    other end is eth0 inside the host)."""
    name = f"{prefix}{owner}v{index}"
    if len(name) > IFNAME_MAX:
        raise ValueError(f"veth name {name} is longer than {IFNAME_MAX} bytes")
    return name


def owner_of(name, prefix=PREFIX):
    """The owner pid of one of our namespaces, bridges or veths, None for any
    other name (someone else's, which is never touched)."""
    p = re.escape(prefix)
    for pattern in (rf"{p}(\d+)-[a-z][a-z0-9]*", rf"{p}br(\d+)", rf"{p}(\d+)v\d+"):
        match = re.fullmatch(pattern, name)
        if match:
            return int(match.group(1))
    return None


def choose_subnet(owner, used, pool=POOL):
    """The first /24 of the pool, starting at owner % count and wrapping,
    that overlaps none of `used` (ip_network objects)."""
    subnets = list(pool.subnets(new_prefix=24))
    start = owner % len(subnets)
    for step in range(len(subnets)):
        candidate = subnets[(start + step) % len(subnets)]
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise Unavailable(f"every /24 of {pool} is in use on this machine")


def address_plan(subnet, index):
    """The address of host number `index` (0, 1, ...): .2, .3, ...; the
    bridge has .1."""
    hosts = list(subnet.hosts())
    if index + 1 >= len(hosts):
        raise ValueError(f"{subnet} has room for {len(hosts) - 1} hosts")
    return str(hosts[index + 1])


def gateway_address(subnet):
    return str(next(subnet.hosts()))


def networks_in_use(addresses_json, routes_json):
    """The IPv4 networks of `ip -j -4 addr` and `ip -j -4 route` (the
    default route aside): a new subnet must overlap none of them."""
    used = []
    for link in json.loads(addresses_json or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family", "inet") == "inet" and "local" in info:
                used.append(
                    ipaddress.ip_network(f"{info['local']}/{info.get('prefixlen', 32)}", False)
                )
    for route in json.loads(routes_json or "[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", False))
    return used


# --- the hosts ----------------------------------------------------------------------


class Host:
    """One host: a namespace with loopback up and one address on the run's
    bridge. `netns` is None for the loopback layout (no namespace)."""

    def __init__(self, name, netns, address, ip_path="ip", veth=None):
        self.name = name
        self.netns = netns
        self.address = address
        self.veth = veth
        self._ip = ip_path

    def wrap(self, argv):
        """argv run inside the namespace (`ip netns exec NS argv`, which
        execs, so the pid is the command's). Composes with
        cpu.Accounting.wrap either way round: the cgroup wrapper execs too."""
        if self.netns is None:
            return list(argv)
        return [self._ip, "netns", "exec", self.netns, *argv]

    def url(self, port, path=""):
        return f"http://{self.address}:{port}{path}"

    def record(self):
        return {"name": self.name, "netns": self.netns, "address": self.address, "veth": self.veth}

    def __repr__(self):
        return f"Host({self.name!r}, {self.netns!r}, {self.address!r})"


def loopback_host(name):
    """The loopback layout's host: everything on 127.0.0.1, no namespace."""
    return Host(name, None, "127.0.0.1")


def _ip_tool():
    if os.geteuid() != 0:
        raise Unavailable("not root: network namespaces need root")
    for path in (shutil.which("ip"), "/usr/sbin/ip", "/sbin/ip"):
        if path and os.access(path, os.X_OK):
            return path
    raise Unavailable("no `ip` (iproute2): apt-get install -y iproute2")


def _run(argv, check=True):
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise Unavailable(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


class Network:
    """The bridge and the hosts of one run (see the module's doc)."""

    def __init__(self, cleanup, owner=None, prefix=PREFIX):
        self._ip = _ip_tool()
        self.owner = owner if owner is not None else os.getpid()
        self.prefix = prefix
        self.hosts = {}
        self.bridge = bridge_name(self.owner, prefix)
        remove_stale(prefix, ip_path=self._ip)
        # The lock covers the choice and the bridge's address, which is what
        # the next run's choice reads.
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        with open(LOCK_PATH, "w", encoding="ascii") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            used = networks_in_use(
                _run([self._ip, "-j", "-4", "addr", "show"]).stdout,
                _run([self._ip, "-j", "-4", "route", "show", "table", "all"]).stdout,
            )
            self.subnet = choose_subnet(self.owner, used)
            self.gateway = gateway_address(self.subnet)
            _run([self._ip, "link", "add", self.bridge, "type", "bridge"])
            self._cleanup = cleanup
            self._step = cleanup.push(self.close)
            try:
                prefix_len = self.subnet.prefixlen
                _run([self._ip, "addr", "add", f"{self.gateway}/{prefix_len}", "dev", self.bridge])
                _run([self._ip, "link", "set", self.bridge, "up"])
            except Unavailable:
                cleanup.remove(self._step)
                self.close()
                raise

    def add(self, name):
        """A new host: its namespace, loopback up, a veth pair to the bridge,
        and the next address of the subnet."""
        if not HOST_NAME.match(name):
            raise ValueError(f"host name {name!r}: lower-case letters and digits, at most 16")
        if name in self.hosts:
            raise ValueError(f"host {name} exists already")
        index = len(self.hosts)
        netns = netns_name(self.owner, name, self.prefix)
        veth = veth_name(self.owner, index, self.prefix)
        address = address_plan(self.subnet, index)
        _run([self._ip, "netns", "add", netns])
        host = Host(name, netns, address, self._ip, veth)
        self.hosts[name] = host
        _run(
            [self._ip, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns]
        )
        _run([self._ip, "link", "set", veth, "master", self.bridge, "up"])
        _run([self._ip, "-n", netns, "link", "set", "lo", "up"])
        _run(
            [
                self._ip,
                "-n",
                netns,
                "addr",
                "add",
                f"{address}/{self.subnet.prefixlen}",
                "dev",
                "eth0",
            ]
        )
        _run([self._ip, "-n", netns, "link", "set", "eth0", "up"])
        return host

    def record(self):
        """What remove() needs, for a state file (a deployment that outlives
        the command that made it)."""
        return {
            "owner": self.owner,
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "gateway": self.gateway,
            "hosts": [host.record() for host in self.hosts.values()],
        }

    def detach(self):
        """Leaves everything in place at exit (`cluster up`): the caller keeps
        record() and calls remove() later."""
        self._cleanup.remove(self._step)
        return self.record()

    def close(self):
        remove(self.record(), ip_path=self._ip)
        self.hosts = {}


def namespace_pids(netns, ip_path="ip"):
    """Pids of the processes in a namespace."""
    result = _run([ip_path, "netns", "pids", netns], check=False)
    return [int(word) for word in result.stdout.split() if word.isdigit()]


def kill_namespace(netns, ip_path="ip", grace=0.0):
    """Stops everything still running in a namespace: SIGTERM and `grace`
    seconds to exit, then SIGKILL. Returns how many were left to kill."""
    pids = namespace_pids(netns, ip_path)
    if not pids:
        return 0
    if grace > 0:
        _signal_all(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pid_running(pid) for pid in pids):
            time.sleep(0.1)
    left = [pid for pid in namespace_pids(netns, ip_path) if pid_running(pid)]
    _signal_all(left, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_running(pid) for pid in left):
        time.sleep(0.05)
    return len(left)


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def remove(record, ip_path="ip", grace=0.0):
    """Removes a recorded network: whatever still runs in its namespaces
    (killed), the namespaces (their veths go with them) and the bridge."""
    for host in record["hosts"]:
        netns = host["netns"]
        if not netns:
            continue
        left = kill_namespace(netns, ip_path, grace)
        if left:
            warn(f"killed {left} process(es) still running on host {host['name']} ({netns})")
        # Deleting a namespace frees its devices later, in the kernel's own
        # time; deleting the veth pair now leaves nothing to wait for.
        if host.get("veth"):
            _run([ip_path, "link", "delete", host["veth"]], check=False)
        _run([ip_path, "netns", "delete", netns], check=False)
    _run([ip_path, "link", "delete", record["bridge"]], check=False)


def existing(ip_path="ip", prefix=PREFIX):
    """(namespaces, links: bridges and veths) on this machine whose names
    are ours."""
    listed = _run([ip_path, "netns", "list"], check=False).stdout.split("\n")
    namespaces = [line.split()[0] for line in listed if line.strip()]
    links = []
    for kind in ("bridge", "veth"):
        shown = _run([ip_path, "-j", "link", "show", "type", kind], check=False).stdout
        links += [link["ifname"] for link in json.loads(shown or "[]")]
    return (
        [name for name in namespaces if owner_of(name, prefix) is not None],
        [name for name in links if owner_of(name, prefix) is not None],
    )


def remove_stale(prefix=PREFIX, ip_path="ip"):
    """Removes the namespaces and bridges of runs whose owner pid is no
    longer alive (a kill -9, a crash); a live owner's are left alone."""
    namespaces, links = existing(ip_path, prefix)
    for name in namespaces:
        if not pid_running(owner_of(name, prefix)):
            warn(f"removing the namespace {name} of a run that is gone")
            kill_namespace(name, ip_path)
            _run([ip_path, "netns", "delete", name], check=False)
    for name in links:
        if not pid_running(owner_of(name, prefix)):
            warn(f"removing the link {name} of a run that is gone")
            _run([ip_path, "link", "delete", name], check=False)
