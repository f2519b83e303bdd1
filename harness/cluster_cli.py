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
import json
import os

from harness import cluster_cost, cluster_faults, hosts, tools
from harness import cluster_state as cs
from harness.cluster import Deployment
from harness.cluster_up import bring_up, remove, resolve_binary
from harness.tools import Fatal, log


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
        f"up: {options.instances} instance(s); state in {directory}; "
        "`scripts/cluster.sh down` removes it"
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
            f"  {c['name']:<8} {c['role'] or '-':<9} {c['address']:<15} pid {c['pid']} "
            f"{running}{extra}"
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
    removed = "" if options.keep_dir else f", {directory} removed"
    log(f"down: every process stopped, the hosts removed{removed}")
    return 0


def add_parser(sub, _prog=None):
    """Registers `cluster` and its actions."""
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
    cluster_cost.add_parser(actions, add_deployment_options)


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
    add(
        "--db-path",
        choices=("pooler", "direct"),
        default="pooler",
        help="instances reach PostgreSQL through PgBouncer (default), or directly: "
        "both nodes with target_session_attrs=primary",
    )
    add("--contacts", type=positive_int, default=10000, help="contacts to seed (default 10000)")
    add(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting of harness/cluster_config.py's Settings (repeatable), "
        "e.g. --set ttl_s=20 --set query_wait_timeout_s=5",
    )
    add("--binary", help="the bakeoff binary (default: target/release/bakeoff, built)")
    add("--no-build", action="store_true", help="do not run cargo build")
