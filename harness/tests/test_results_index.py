"""results/: the index (results/README.md) against the files, and the
budget. Every run the index lists has its JSON; every tracked file belongs
to a listed run (NAME.json, NAME.records.json.gz, NAME.md, NAME-*.png);
the tracked files stay under 4 MB; and each kept JSON reads (its records
put back) as a document of a schema the reports read."""

import os
import re
import subprocess
import unittest

from harness import archive, results
from harness.tools import ROOT

RESULTS = os.path.join(ROOT, "results")
BUDGET_BYTES = 4 * 1024 * 1024
# A run's files: its name, then one of these endings.
ENDINGS = (".json", ".records.json.gz", ".md", "-cpu.png", "-rps.png", "-latency.png", "-sweep.png")


def tracked_files():
    """The files git tracks under results/ (a run of yours that is not
    committed is no part of the budget), or every file outside git."""
    listed = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "results"], capture_output=True, text=True, check=False
    )
    if listed.returncode == 0 and listed.stdout.strip():
        return [os.path.basename(path) for path in listed.stdout.split()]
    return os.listdir(RESULTS)


def indexed_runs():
    """The run names the index links to, in its table."""
    with open(os.path.join(RESULTS, "README.md"), encoding="utf-8") as file:
        text = file.read()
    return re.findall(r"^\| [^|]+ \| \[`([^`]+)\.json`\]\(\1\.json\)", text, re.M)


def run_of(name):
    for ending in ENDINGS:
        if name.endswith(ending):
            return name[: -len(ending)]
    return None


class IndexTests(unittest.TestCase):
    def test_every_listed_run_has_its_json_and_reads(self):
        runs = indexed_runs()
        self.assertGreater(len(runs), 0)
        for run in runs:
            path = os.path.join(RESULTS, run + ".json")
            with self.subTest(run=run):
                self.assertTrue(os.path.exists(path), path)
                doc = archive.read_json(path)
                if doc.get("kind", "").startswith("cluster-"):
                    # The deployment's files (cluster_faults.py, cluster_cost.py).
                    self.assertIn(doc["kind"], run)
                    self.assertTrue(doc.get("results") or doc.get("windows"), run)
                    continue
                self.assertIn(doc["schema_version"], results.READABLE)
                entries = doc.get("workloads") or [
                    workload for system in doc["systems"] for workload in system["workloads"]
                ]
                # The records beside it came back: every workload has its runs.
                self.assertTrue(all("runs" in entry for entry in entries), run)

    def test_every_file_belongs_to_a_listed_run(self):
        runs = set(indexed_runs())
        for name in tracked_files():
            if name == "README.md":
                continue
            with self.subTest(file=name):
                self.assertIn(run_of(name), runs, f"results/{name} is in no row of the index")

    def test_the_files_stay_within_the_budget(self):
        total = sum(os.path.getsize(os.path.join(RESULTS, name)) for name in tracked_files())
        self.assertLess(total, BUDGET_BYTES, f"results/ holds {total} bytes")

    def test_one_naming_scheme(self):
        kinds = "run|compare|cluster-faults|cluster-cost"
        scheme = re.compile(
            rf"^\d{{8}}T\d{{6}}Z-([0-9a-f]{{10}}|nocommit)(-dirty)?-({kinds})(-.+)?$"
        )
        for run in indexed_runs():
            with self.subTest(run=run):
                self.assertRegex(run, scheme)


if __name__ == "__main__":
    unittest.main()
