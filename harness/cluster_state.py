"""The local deployment's state directory: state.json (what `cluster up`
started: its network, each component's host, address and pid), read by
`status` and `down` after the command that wrote it has exited; and the
status document, built from that state and Patroni's live view of the
cluster (pure functions, unit-tested).

A process is recorded as its pid and its start time (field 22 of
/proc/<pid>/stat), so that a pid reused by an unrelated process is never
taken for ours.
"""

import json
import os
import tempfile
import time

DEFAULT_DIR = "/tmp/bakeoff-cluster"
STATE_FILE = "state.json"
FORMAT = 1


def state_dir():
    return os.environ.get("BAKEOFF_CLUSTER_DIR") or DEFAULT_DIR


def state_path(directory):
    return os.path.join(directory, STATE_FILE)


def load(directory):
    """The state, or None when there is none."""
    try:
        with open(state_path(directory), encoding="utf-8") as file:
            state = json.load(file)
    except FileNotFoundError:
        return None
    if state.get("format") != FORMAT:
        raise ValueError(f"{state_path(directory)} is not a state file of this harness")
    return state


def save(directory, state):
    """Written whole or not at all (a new file renamed over the old), so that
    a crash midway leaves the previous state readable."""
    state = dict(state, format=FORMAT, updated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".state-")
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        json.dump(state, file, indent=2)
        file.write("\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, state_path(directory))


# --- processes ------------------------------------------------------------------------


def parse_start_ticks(stat_text):
    """Field 22 (starttime) of /proc/<pid>/stat; the command name may hold
    spaces and parentheses, so fields are counted from the last ')'."""
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(rest[19])


def start_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            return parse_start_ticks(file.read())
    except (OSError, ValueError, IndexError):
        return None


def process_record(pid):
    return {"pid": pid, "start": start_ticks(pid)}


def is_alive(record):
    """True while the recorded process runs (not a zombie, not a reused pid)."""
    if not record or not record.get("pid"):
        return False
    pid = record["pid"]
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return False
    state = text[text.rindex(")") + 2 :].split()[0]
    if state in ("Z", "X"):
        return False
    return record.get("start") is None or parse_start_ticks(text) == record["start"]


def postmaster_pid(data_dir):
    try:
        with open(os.path.join(data_dir, "postmaster.pid"), encoding="ascii") as file:
            return int(file.readline())
    except (OSError, ValueError):
        return None


def parse_show_stat(text):
    """HAProxy's `show stat` CSV → {(backend, server): {column: value}},
    servers only (not the FRONTEND and BACKEND rows)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        if len(row) < len(header) or row["svname"] in ("FRONTEND", "BACKEND"):
            continue
        out[(row["pxname"], row["svname"])] = row
    return out


# --- status ---------------------------------------------------------------------------

# Patroni's member roles → the deployment's.
PATRONI_ROLES = {
    "leader": "primary",
    "master": "primary",
    "primary": "primary",
    "replica": "standby",
    "sync_standby": "standby",
    "standby_leader": "standby",
}


def db_roles(cluster):
    """Patroni's GET /cluster → {member name: {role, patroni_role, state,
    timeline, lag}}; a member Patroni does not list is absent."""
    out = {}
    for member in (cluster or {}).get("members", []):
        patroni_role = member.get("role")
        out[member["name"]] = {
            "role": PATRONI_ROLES.get(patroni_role),
            "patroni_role": patroni_role,
            "state": member.get("state"),
            "timeline": member.get("timeline"),
            "lag": member.get("lag"),
        }
    return out


def status_document(state, cluster, alive, postmasters):
    """The status JSON: the front URL and every component with its role,
    host, address and pid; for the PostgreSQL nodes the postmaster's pid
    with Patroni's beside it, and the role Patroni reports now.

    cluster: Patroni's GET /cluster (None when no Patroni answered);
    alive(record) → bool; postmasters: {node: postmaster pid or None}."""
    roles = db_roles(cluster)
    components = []
    for name, component in state["components"].items():
        entry = {
            "name": name,
            "role": component["role"],
            "host": component["host"],
            "address": component["address"],
            "port": component.get("port"),
            "pid": component["process"]["pid"] if component.get("process") else None,
            "running": alive(component.get("process")),
        }
        if component["role"] == "database":
            reported = roles.get(name, {})
            pid = postmasters.get(name)
            entry.update(
                role=reported.get("role"),
                pid=pid,
                running=pid is not None and alive({"pid": pid}),
                patroni_pid=component["process"]["pid"] if component.get("process") else None,
                patroni_running=alive(component.get("process")),
                patroni_role=reported.get("patroni_role"),
                patroni_state=reported.get("state"),
                timeline=reported.get("timeline"),
                lag=reported.get("lag"),
            )
        components.append(entry)
    return {
        "front_url": state["front_url"],
        "state_dir": state.get("dir"),
        "patroni_answered": cluster is not None,
        "components": components,
    }
