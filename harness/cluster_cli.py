"""`cluster` (scripts/cluster.sh): the local deployment's commands.

    cluster.sh up [--instances N] [--rtt-ms MS]   bring it up, print the front URL
    cluster.sh status [--json]                    what runs where, roles as Patroni says
    cluster.sh down                               remove everything
    cluster.sh test [--quick] [--only T,...]      the failure tests (cluster_faults.py)
    cluster.sh cost [--quick]                     the layers' CPU and latency

up, status and down share a state directory: $BAKEOFF_CLUSTER_DIR, or
/tmp/bakeoff-cluster. test and cost bring up a deployment of their own in a
directory of their own, and remove it at exit.
"""

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from harness import cluster_config as config
from harness import cluster_state as cs
from harness import hosts, tools
from harness.cluster import Deployment, http_get, supports_shutdown_delay
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
    if options.binary:
        return os.path.abspath(options.binary)
    binary = os.path.join(ROOT, "target", "release", "bakeoff")
    if not options.no_build:
        log("building the release binary (cargo build --release --bin bakeoff)")
        if subprocess.call(["cargo", "build", "--release", "--bin", "bakeoff"], cwd=ROOT, stdout=2):
            raise Fatal("cargo build --release failed (see above)")
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
                "run `scripts/cluster.sh down` first, or set BAKEOFF_CLUSTER_DIR to another directory"
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


def bring_up(directory, options, binary, cleanup, settings=config.DEFAULTS):
    """Every part, in dependency order. Everything is undone by `cleanup`
    unless the caller detaches it (up)."""
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
    for name in config.host_names(options.instances):
        network.add(name)
    addresses = {name: host.address for name, host in network.hosts.items()}
    log(f"hosts on {network.subnet} (bridge {network.bridge}): {addresses}")
    state = {
        "dir": directory,
        "keeper": cs.process_record(keeper.pid),
        "network": network.record(),
        "instances": options.instances,
        "rtt_ms": options.rtt_ms,
        "binary": binary,
        "shutdown_delay": supports_shutdown_delay(binary),
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


def cmd_up(options, _argv):
    directory = cs.state_dir()
    binary = resolve_binary(options)
    cleanup = tools.Cleanup()
    try:
        deployment, network = bring_up(directory, options, binary, cleanup)
        network.detach()
        cleanup.steps.clear()  # everything stays up: `down` removes it
    finally:
        if cleanup.steps:
            log(f"bringing up failed: removing what was started (logs in {directory})")
            cleanup.run()
            state = cs.load(directory)
            if state is not None:
                os.remove(cs.state_path(directory))
    log(
        f"up: {options.instances} instance(s); state in {directory}; `scripts/cluster.sh down` removes it"
    )
    print(deployment.state["front_url"])
    return 0


def status_document(directory):
    state = cs.load(directory)
    if state is None:
        raise Fatal(f"no deployment in {directory} (scripts/cluster.sh up)")
    deployment = Deployment(directory, state)
    postmasters = {
        name: cs.postmaster_pid(component.get("data_dir", ""))
        for name, component in state["components"].items()
        if component["role"] == "database"
    }
    doc = cs.status_document(state, deployment.patroni_cluster(), cs.is_alive, postmasters)
    doc["haproxy"] = {
        f"{backend}/{server}": status
        for (backend, server), status in deployment.server_states().items()
    }
    return doc


def cmd_status(options, _argv):
    doc = status_document(cs.state_dir())
    if options.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"front: {doc['front_url']}")
    for c in doc["components"]:
        extra = ""
        if "patroni_pid" in c:
            extra = f"  patroni {c['patroni_pid']} ({c['patroni_state']}, timeline {c['timeline']})"
        running = "running" if c["running"] else "NOT RUNNING"
        print(
            f"  {c['name']:<8} {c['role'] or '-':<9} {c['address']:<15} pid {c['pid']} {running}{extra}"
        )
    for server, status in doc["haproxy"].items():
        print(f"  haproxy {server}: {status}")
    return 0


def cmd_down(options, _argv):
    directory = cs.state_dir()
    state = cs.load(directory) if os.path.isdir(directory) else None
    if state is None:
        hosts.remove_stale()
        log(f"no deployment in {directory}")
        return 0
    remove(directory, state, keep_dir=options.keep_dir)
    namespaces, links = hosts.existing()
    ours = [name for name in namespaces + links if hosts.owner_of(name) == state["keeper"]["pid"]]
    if ours:
        raise Fatal(f"still there after down: {' '.join(ours)}")
    log(
        f"down: every process stopped, the hosts removed{'' if options.keep_dir else ', ' + directory + ' removed'}"
    )
    return 0


def add_parser(sub, _prog=None):
    """Registers `cluster` and its actions."""
    from harness import cluster_faults

    parser = sub.add_parser(
        "cluster",
        help="the local deployment: HAProxy, N instances, PgBouncer, Patroni, etcd (cluster.sh)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="bring the deployment up and print its front URL")
    add_deployment_options(up)
    up.set_defaults(func=cmd_up)
    status = actions.add_parser("status", help="what runs where, and the roles Patroni reports")
    status.add_argument(
        "--json", action="store_true", help='{"front_url": ..., "components": [...]}'
    )
    status.set_defaults(func=cmd_status)
    down = actions.add_parser("down", help="stop everything and remove the hosts and the state")
    down.add_argument("--keep-dir", action="store_true", help="keep the state directory (logs)")
    down.set_defaults(func=cmd_down)
    cluster_faults.add_parsers(actions, add_deployment_options)


def positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not '{text}'")
    return int(text)


def non_negative_int(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not '{text}'")
    return int(text)


def add_deployment_options(parser, instances=2):
    add = parser.add_argument
    add(
        "--instances", type=positive_int, default=instances, help=f"app hosts (default {instances})"
    )
    add(
        "--rtt-ms",
        type=int,
        default=0,
        help="round trip added before PostgreSQL (bakeoff-link; 0: none)",
    )
    add("--contacts", type=positive_int, default=10000, help="contacts to seed (default 10000)")
    add("--binary", help="the bakeoff binary (default: target/release/bakeoff, built)")
    add("--no-build", action="store_true", help="do not run cargo build")
