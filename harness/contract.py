"""The API contract checked against a running system: scripts/check_contract.py
(every endpoint, status and byte of shared/API.md, from the tables) run as a
child, its JSON summarised for the study's systems table. A system that
deviates still gets measured: its deviations are listed beside its figures
(peers/README.md explains each)."""

import os
import subprocess
import sys

from harness import archive
from harness.tools import SCRIPTS, log, warn

SCRIPT = os.path.join(SCRIPTS, "check_contract.py")


def check(name, url, tmp):
    """{passed, failed, skipped, failed_rules} of the system at url, or None
    when the checker could not complete."""
    out = os.path.join(tmp, f"contract-{name}.json")
    text_path = os.path.join(tmp, f"contract-{name}.txt")
    log(f"{name}: the API contract (scripts/check_contract.py)")
    with open(text_path, "w", encoding="utf-8") as text:
        status = subprocess.call(
            [sys.executable, SCRIPT, url, "--name", name, "--json", out],
            stdout=text,
            stderr=subprocess.STDOUT,
        )
    # 1 is "some rule failed", which is expected of the peers.
    if status > 1 or not os.path.exists(out):
        with open(text_path, encoding="utf-8") as text:
            sys.stderr.write(text.read()[-3000:])
        warn(f"{name}: check_contract.py did not complete (status {status})")
        return None
    doc = archive.read_json(out)
    summary = {
        "passed": doc["passed"],
        "failed": doc["failed"],
        "skipped": doc["skipped"],
        "failed_rules": [rule["rule"] for rule in doc["rules"] if rule["status"] == "FAIL"],
    }
    log(
        f"{name}: the contract: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['skipped']} skipped"
    )
    return summary
