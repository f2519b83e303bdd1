"""Checks every row's peers/NAME/system.toml against the manifest format of
peers/README.md ("Rows as data"), and the start script it names against the
start-script contract, as far as reading them can tell.

    python3 peers/tools/check_manifests.py

A row is a folder of peers/ with a system.toml or a start.sh; the shared code
folders (django/, tools/) have neither. Prints one line per row and every
problem; exit status 1 when there is one. Standard library only (Python >=
3.11 for tomllib).
"""

import os
import re
import sys
import tomllib

PEERS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REQUIRED_TEXT = ("stack", "server_model", "connections", "pooled")
KNOWN_KEYS = {
    *REQUIRED_TEXT,
    "order",
    "default",
    "start",
    "ready_path",
    "metrics_path",
    "setup",
    "knobs",
    "routes",
}
KNOWN_KNOBS = {"workers", "pool", "threads"}
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")


def check_row(name):
    """The problems of one row's manifest, as sentences."""
    folder = os.path.join(PEERS, name)
    path = os.path.join(folder, "system.toml")
    if not os.path.exists(path):
        return ["no system.toml"], None
    try:
        with open(path, "rb") as file:
            manifest = tomllib.load(file)
    except tomllib.TOMLDecodeError as error:
        return [f"system.toml does not parse: {error}"], None
    problems = [f"unknown key '{key}'" for key in manifest if key not in KNOWN_KEYS]
    for key in REQUIRED_TEXT:
        value = manifest.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"'{key}' missing or not a non-empty string")
        elif "\n" in value:
            problems.append(f"'{key}' is more than one line")
    order = manifest.get("order")
    if not isinstance(order, int) or isinstance(order, bool) or order < 0:
        problems.append("'order' missing or not an integer >= 0 (the reference is 0)")
    if not isinstance(manifest.get("default", True), bool):
        problems.append("'default' is not true or false")

    start = os.path.join(folder, manifest.get("start", "start.sh"))
    script = ""
    if not os.access(start, os.X_OK):
        problems.append(f"{os.path.relpath(start, PEERS)} is missing or not executable")
    else:
        with open(start, encoding="utf-8") as file:
            script = file.read()
        # The contract's environment: every start script listens on BAKEOFF_HOST.
        if "BAKEOFF_HOST" not in script:
            problems.append("start script does not honour BAKEOFF_HOST")
    for key in ("ready_path", "metrics_path"):
        value = manifest.get(key, "/")
        if not isinstance(value, str) or (value and not value.startswith("/")):
            problems.append(f"'{key}' is not a path")

    setup = manifest.get("setup")
    if setup is not None:
        if not (isinstance(setup, list) and setup and all(isinstance(a, str) for a in setup)):
            problems.append("'setup' is not a non-empty list of strings (an argv)")
        elif not os.access(os.path.normpath(os.path.join(folder, setup[0])), os.X_OK):
            problems.append(f"setup's command {setup[0]} is missing or not executable")

    knobs = manifest.get("knobs", {})
    for knob, variable in knobs.items():
        if knob not in KNOWN_KNOBS:
            problems.append(f"unknown knob '{knob}' (known: {', '.join(sorted(KNOWN_KNOBS))})")
        if not isinstance(variable, str) or not VARIABLE.match(variable):
            problems.append(f"knob '{knob}' is not an environment variable's name")
        elif script and variable not in script:
            # Each start script says in its header which variables it honours.
            problems.append(f"knob {knob} = {variable}: the start script never names {variable}")

    for route, prefix in manifest.get("routes", {}).items():
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            problems.append(f"route '{route}' is not a path")
        elif route.startswith("fibonacci_") and not prefix.endswith("/"):
            problems.append(f"route '{route}' must end in / (the harness appends n)")
    return problems, manifest


def main():
    rows = sorted(
        entry
        for entry in os.listdir(PEERS)
        if os.path.isdir(os.path.join(PEERS, entry))
        and not entry.startswith(".")
        and any(
            os.path.exists(os.path.join(PEERS, entry, file)) for file in ("system.toml", "start.sh")
        )
    )
    failed = 0
    orders = {}
    for name in rows:
        problems, manifest = check_row(name)
        if manifest is not None and isinstance(manifest.get("order"), int):
            orders.setdefault(manifest["order"], []).append(name)
        print(f"{name:24} {'ok' if not problems else 'FAIL'}")
        for problem in problems:
            print(f"  {problem}")
        failed += bool(problems)
    shared = [names for _, names in sorted(orders.items()) if len(names) > 1]
    for names in shared:
        print(f"one order for {', '.join(names)}: each row needs its own place in a round")
    print(f"{len(rows) - failed} passed, {failed} failed")
    sys.exit(1 if failed or shared else 0)


if __name__ == "__main__":
    main()
