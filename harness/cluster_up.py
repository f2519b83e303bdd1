"""Bringing the local deployment up and taking it down: the packages it
needs (installed with apt-get as root, as run.sh does), the binary, a fresh
state directory, the keeper process that owns the hosts, every part in
dependency order (bring_up), and the ordered stop of a recorded deployment
(remove). Used by `cluster up/down` (cluster_cli.py) and by the failure tests
and the cost measurement, which bring up a deployment of their own.
"""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time

from harness import cluster_config as config
from harness import cluster_state as cs
from harness import hosts, tools
from harness.cluster import Deployment, http_get, instance_user, supports_shutdown_delay
from harness.tools import ROOT, Fatal, log, warn

# Tool → the Debian package that brings it.
PACKAGES = {
    "haproxy": "haproxy",
    "pgbouncer": "pgbouncer",
    "patroni": "patroni",
    "etcd": "etcd-server",
    "psql": "postgresql-client",
    "initdb": "postgresql",
    "setpriv": "util-linux",
    "ip": "iproute2",
}
MARKER = ".bakeoff-cluster"


def ensure_packages():
    """Installs what the deployment lacks with apt-get as root (run.sh's
    way), or stops with the command that would."""
    missing = [name for name in PACKAGES if not tools.tool_path(name)]
    if not missing:
        return
    packages = sorted({PACKAGES[name] for name in missing})
    command = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Fatal(f"missing {' '.join(missing)}; install them with: sudo {command}")
    log(f"missing {' '.join(missing)}: running {command}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.call(["apt-get", "update"], stdout=sys.stderr) != 0:
        raise Fatal(f"apt-get update failed; run: {command}")
    if subprocess.call(["apt-get", "install", "-y", *packages], stdout=sys.stderr, env=env) != 0:
        raise Fatal(f"could not install {' '.join(packages)}; run: {command}")


def resolve_binary(options):
    """The server's binary (built unless --no-build or --binary), and with
    --rtt-ms the delay link's (cargo build --release -p bakeoff-link)."""
    binary = os.path.abspath(options.binary) if options.binary else None
    builds = [] if options.no_build else [["--bin", "bakeoff"]] * (binary is None)
    if options.rtt_ms and not options.no_build:
        builds.append(["-p", "bakeoff-link"])
    for what in builds:
        log(f"building (cargo build --release {' '.join(what)})")
        if subprocess.call(["cargo", "build", "--release", *what], cwd=ROOT, stdout=2):
            raise Fatal(f"cargo build --release {' '.join(what)} failed (see above)")
    binary = binary or os.path.join(ROOT, "target", "release", "bakeoff")
    if not os.access(binary, os.X_OK):
        raise Fatal(f"no {binary}: run cargo build --release")
    return binary


def prepare_dir(directory):
    """A fresh state directory; a dead deployment's leftovers are removed,
    a live one is refused."""
    state = cs.load(directory) if os.path.isdir(directory) else None
    if state:
        if cs.is_alive(state.get("keeper")):
            raise Fatal(
                f"a deployment is already up in {directory} (front {state['front_url']}); "
                "run `scripts/cluster.sh down` first, or set BAKEOFF_CLUSTER_DIR to another "
                "directory"
            )
        warn(f"the deployment in {directory} died without `down`: removing what is left of it")
        remove(directory, state)
    if os.path.isdir(directory):
        if os.listdir(directory) and not os.path.exists(os.path.join(directory, MARKER)):
            raise Fatal(f"{directory} exists and is not a deployment's directory: remove it first")
        shutil.rmtree(directory)
    os.makedirs(directory)
    os.chmod(directory, 0o711)  # the postgres and etcd users reach their own subdirectories
    with open(os.path.join(directory, MARKER), "w", encoding="ascii") as file:
        file.write("a bakeoff deployment's state (harness/cluster_cli.py)\n")


def bring_up(directory, options, binary, cleanup, extra_hosts=()):
    """Every part, in dependency order, with the settings of options.set.
    Everything is undone by `cleanup` unless the caller detaches it (up).
    extra_hosts are made, left empty."""
    try:
        settings = config.parse_settings(options.set)
    except ValueError as error:
        raise Fatal(str(error)) from None
    ensure_packages()
    prepare_dir(directory)
    keeper = subprocess.Popen(
        ["sleep", "infinity"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    cleanup.push(lambda: (keeper.kill(), keeper.wait()))
    try:
        network = hosts.Network(cleanup, owner=keeper.pid)
    except hosts.Unavailable as reason:
        raise Fatal(f"the deployment needs network namespaces: {reason}") from None
    for name in config.host_names(options.instances, extra_hosts):
        network.add(name)
    # A deployment removed by its cleanup (test, cost, a failed up) is killed
    # outright, before the network's close (which warns about leftovers).
    ip = tools.need_tool("ip")
    cleanup.push(lambda: [hosts.kill_namespace(h.netns, ip) for h in network.hosts.values()])
    addresses = {name: host.address for name, host in network.hosts.items()}
    log(f"hosts on {network.subnet} (bridge {network.bridge}): {addresses}")
    state = {
        "dir": directory,
        "keeper": cs.process_record(keeper.pid),
        "network": network.record(),
        "instances": options.instances,
        "rtt_ms": options.rtt_ms,
        "db_path": options.db_path,
        "binary": binary,
        "shutdown_delay": supports_shutdown_delay(binary),
        "instance_user": instance_user(binary),
        "front_url": f"http://{addresses['front']}:{config.HTTP_PORT}",
        "settings": dataclasses.asdict(settings),
        "components": {},
    }
    cs.save(directory, state)
    deployment = Deployment(directory, state, settings)
    log("etcd")
    deployment.start_etcd()
    log("Patroni and PostgreSQL on db1 (bootstrap)")
    deployment.start_patroni("db1")
    deployment.wait_role("db1", "primary")
    deployment.seed(options.contacts)
    log("Patroni and PostgreSQL on db2 (a standby cloned from db1)")
    deployment.start_patroni("db2")
    log("HAProxy on front")
    deployment.start_haproxy()
    deployment.wait_server("primary", "db1")
    log("PgBouncer on pooler")
    deployment.start_pgbouncer()
    deployment.wait_role("db2", "replica")
    for host in deployment.plan.app_hosts:
        log(f"instance on {host}")
        deployment.start_instance(host)
    for host in deployment.plan.app_hosts:
        deployment.wait_server("instances", host)
    status, _ = http_get(state["front_url"] + "/types")
    if status != 200:
        raise Fatal(f"the front answered /types with {status}")
    if not state["shutdown_delay"]:
        warn("this server has no --shutdown-delay-ms: /readyz does not fail while it drains")
    return deployment, network


def remove(directory, state, keep_dir=False):
    """Stops a recorded deployment (down, or a dead one's leftovers)."""
    deployment = Deployment(directory, state)
    names = deployment.components
    order = [
        ["front"],
        [name for name, c in names.items() if c["role"] in ("instance", "link")],
        ["pooler"],
        [name for name, c in names.items() if c["role"] == "database"],
        ["dcs"],
    ]
    for group in order:
        group = [name for name in group if name in names and deployment.alive(name)]
        for name in group:
            deployment.send(name, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while any(deployment.alive(name) for name in group) and time.monotonic() < deadline:
            time.sleep(0.1)
    hosts.remove(state["network"], tools.need_tool("ip"), grace=2)
    keeper = state.get("keeper")
    if cs.is_alive(keeper):
        os.kill(keeper["pid"], signal.SIGKILL)
    if not keep_dir and os.path.exists(os.path.join(directory, MARKER)):
        shutil.rmtree(directory, ignore_errors=True)


def describe(deployment):
    """What a results file records of a deployment: versions, settings,
    the machine."""
    first_line = tools.first_line
    return {
        "versions": {
            "haproxy": first_line([tools.need_tool("haproxy"), "-v"]),
            "pgbouncer": first_line([tools.need_tool("pgbouncer"), "--version"]),
            "patroni": first_line([tools.need_tool("patroni"), "--version"]),
            "etcd": first_line([tools.need_tool("etcd"), "--version"]),
            "postgres": first_line([os.path.join(tools.pg_bindir(), "postgres"), "--version"]),
            "bakeoff": first_line([deployment.state["binary"], "--version"]),
        },
        "commit": tools.git_state()[0],
        "settings": deployment.state["settings"],
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
    }
