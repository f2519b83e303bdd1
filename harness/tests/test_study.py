"""study.py, systems.py, process.py, backends.py, study_doc.py and
study_report.py: systems as folders with manifests, process groups stopped
with nothing left, backend titles and refusals, and the study's document
and markdown built from known records (figures computed here by hand, never
read back from the code under test)."""

import os
import tempfile
import time
import unittest

from harness import (
    backends,
    cli,
    options,
    process,
    results,
    study_doc,
    study_report,
    systems,
    tools,
)
from harness.study import Study


class FakeAccounting:
    """No cgroups: commands run as they are."""

    parent = None
    method = "proc"
    active = frozenset()

    def wrap(self, _component, argv):
        return list(argv)

    def track(self, _component, _pid):
        pass

    def usage_ns(self):
        return {"server": 0}


def a_system(name, order, **fields):
    values = dict(stack=name, server_model="", connections="", pooled="", order=order)
    values.update(fields)
    return systems.System(name=name, **values)


AVAILABLE = [
    a_system("reference", 0),
    a_system("fastapi_asyncpg", 10),
    a_system("go_pq", 90),
    a_system("experiment", 95, default=False),
]


class SystemsAreData(unittest.TestCase):
    def test_select_keeps_round_order(self):
        chosen = systems.select("go_pq,reference", AVAILABLE)
        self.assertEqual([system.name for system in chosen], ["reference", "go_pq"])
        # Without names: the default systems, not the experiments.
        self.assertEqual(
            [system.name for system in systems.select("", AVAILABLE)],
            ["reference", "fastapi_asyncpg", "go_pq"],
        )

    def test_select_rejects_unknown(self):
        with self.assertRaises(ValueError):
            systems.select("reference,rails", AVAILABLE)

    def test_a_folder_with_a_manifest_is_a_system(self):
        with tempfile.TemporaryDirectory() as peers:
            folder = os.path.join(peers, "litestar")
            os.mkdir(folder)
            os.mkdir(os.path.join(peers, "shared_code"))  # no manifest: no system
            with open(os.path.join(folder, "system.toml"), "w", encoding="utf-8") as file:
                file.write(
                    'stack = "Litestar"\nserver_model = "1 x 1"\nconnections = "5"\n'
                    'pooled = "nothing"\norder = 15\n[knobs]\nworkers = "WORKERS"\n'
                )
            start = os.path.join(folder, "start.sh")
            with open(start, "w", encoding="utf-8") as file:
                file.write('#!/bin/sh\nexec litestar --host "$BAKEOFF_HOST" --workers "$WORKERS"\n')
            os.chmod(start, 0o755)
            found = systems.discover(peers)
            self.assertEqual([system.name for system in found], ["litestar"])
            self.assertEqual(found[0].knobs, {"workers": "WORKERS"})
            self.assertEqual((found[0].ready_path, found[0].default), ("/version", True))
            os.chmod(start, 0o644)
            with self.assertRaises(ValueError):
                systems.discover(peers)
            # A start script that ignores the address it is given is refused too.
            with open(start, "w", encoding="utf-8") as file:
                file.write('#!/bin/sh\nexec litestar --host 127.0.0.1 --workers "$WORKERS"\n')
            os.chmod(start, 0o755)
            with self.assertRaisesRegex(ValueError, "BAKEOFF_HOST"):
                systems.discover(peers)

    def test_a_manifest_missing_a_field_or_with_an_unknown_one_is_refused(self):
        with tempfile.TemporaryDirectory() as peers:
            folder = os.path.join(peers, "x")
            os.mkdir(folder)
            for text in (
                'stack = "x"\n',
                'stack = "x"\nserver_model = ""\nconnections = ""\npooled = ""\n'
                'order = 1\ncolour = "red"\n',
            ):
                with open(os.path.join(folder, "system.toml"), "w", encoding="utf-8") as file:
                    file.write(text)
                with self.subTest(text=text), self.assertRaises(ValueError):
                    systems.read_manifest(folder)

    def test_every_system_in_peers_reads_and_can_start(self):
        found = systems.discover()
        self.assertEqual(found[0].name, "reference")
        for system in found:
            path = os.path.join(system.folder, system.start)
            self.assertTrue(os.access(path, os.X_OK), path)


class BackendTitles(unittest.TestCase):
    def test_client_backends_over_tcp_and_socket(self):
        self.assertTrue(
            backends.is_client_backend("postgres: postgres bakeoff 127.0.0.1(40312) idle")
        )
        self.assertTrue(backends.is_client_backend("postgres: app bakeoff [local] SELECT"))

    def test_background_processes_are_not_clients(self):
        for title in (
            "postgres: checkpointer ",
            "postgres: background writer ",
            "postgres: walwriter ",
            "postgres: autovacuum launcher ",
            "postgres: logical replication launcher ",
            "/usr/lib/postgresql/15/bin/postgres -D /tmp/x",
        ):
            self.assertFalse(backends.is_client_backend(title), title)

    def test_refusals_from_the_log(self):
        log = (
            "2026-12-06 LOG:  database system is ready\n"
            "2026-12-06 FATAL:  sorry, too many clients already\n"
            "2026-12-06 FATAL:  remaining connection slots are reserved for non-replication "
            "superuser connections\n"
        )
        count, first = backends.refusals(log)
        self.assertEqual(count, 2)
        self.assertEqual(first, "FATAL: sorry, too many clients already")
        self.assertEqual(backends.refusals("LOG: ready\n"), (0, ""))


class ProcessGroups(unittest.TestCase):
    def start(self, script):
        tmp = tempfile.mkdtemp()
        started = process.Process(
            "sleepers",
            ["sh", "-c", script],
            component="server",
            accounting=FakeAccounting(),
            log_path=os.path.join(tmp, "log"),
        )
        deadline = time.monotonic() + 5
        while started.processes() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return started

    def test_stop_leaves_nothing(self):
        started = self.start("sleep 30 & sleep 30 & wait")
        self.assertEqual(started.processes(), 3)
        how = started.stop(quiet=True, grace=5)
        self.assertTrue(how.startswith("SIGTERM"), how)
        self.assertEqual(process.group_pids(started.pid), [])

    def test_a_worker_ignoring_sigterm_is_killed(self):
        started = self.start("trap '' TERM; sleep 30 & sleep 30 & wait")
        self.assertEqual(started.stop(quiet=True, grace=1), "killed")
        self.assertEqual(process.group_pids(started.pid), [])


def measurement(workload, run, rps, server_us, role="server", target="x", requests=1000):
    return results.Measurement(
        workload=workload,
        run=run,
        role=role,
        tool="wrk" if role == "server" else "pgbench",
        target=target,
        requests=requests,
        duration_s=requests / rps,
        rps=rps,
        latency_us={"p50": 100, "p99": 900, "max": 2000},
        socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": 0},
        cpu_us_per_request={
            "server": server_us,
            "database": 20.0,
            "load_generator": 5.0,
            "total": (server_us or 0.0) + 25.0,
        },
    )


def fixed(workload, run, p99, label="common", rate=500):
    return results.FixedRate(
        workload=workload,
        run=run,
        system="server",
        label=label,
        offered_rps=rate,
        achieved_rps=rate,
        requests=rate * 4,
        errors=0,
        p50_ms=p99 / 4,
        p90_ms=p99 / 2,
        p99_ms=p99,
        p999_ms=p99 * 2,
        cpu_us_per_request={
            "server": 50.0,
            "database": 40.0,
            "load_generator": 10.0,
            "total": 100.0,
        },
    )


class Document(unittest.TestCase):
    def setUp(self):
        words = ["compare", "--only", "types", "--impls", "reference,fastapi_asyncpg"]
        words += ["--pooler", "both", "--runs", "3", "--common-rate", "500"]
        settings = options.from_args(cli.parser().parse_args(words), "compare")
        self.study = Study(settings, "scripts/compare.sh --test", AVAILABLE)
        self.infos = [{"name": "types", "path": "/types", "ceiling": "pgbench"}]
        by_name = {variant.name: variant for variant in self.study.variants}
        self.assertEqual(
            list(by_name),
            ["reference", "reference+pgbouncer", "fastapi_asyncpg", "fastapi_asyncpg+pgbouncer"],
        )
        # reference: 9000, 10000, 11000 req/s; asyncpg 2000, 2500, 3000;
        # asyncpg behind the pooler 1500 in every round.
        for run, (ref, apg) in enumerate(((9000, 2000), (10000, 2500), (11000, 3000)), start=1):
            by_name["reference"].measurements.append(
                measurement("types", run, ref, 30.0, target="reference")
            )
            by_name["fastapi_asyncpg"].measurements.append(measurement("types", run, apg, 300.0))
            by_name["fastapi_asyncpg+pgbouncer"].measurements.append(
                measurement("types", run, 1500, 350.0)
            )
            by_name["fastapi_asyncpg"].fixed.append(fixed("types", run, 8.0 * run))
            by_name["fastapi_asyncpg+pgbouncer"].fixed.append(fixed("types", run, 20.0))
            by_name["fastapi_asyncpg"].fixed.append(fixed("mixed_types", run, 80.0, label="mixed"))
            self.study.ceilings.append(
                measurement("types", run, 20000, None, role="ceiling", target="pgbench")
            )
            for name, idle, peak in (
                ("fastapi_asyncpg", 20, 20),
                ("fastapi_asyncpg+pgbouncer", 8, 8),
            ):
                by_name[name].rounds.append(
                    {"run": run, "backends_idle": idle, "backends_peak": peak - 1 + run // 3}
                )
        by_name["reference+pgbouncer"].status = "failed"
        by_name["reference+pgbouncer"].reason = "did not start"
        self.by_name = by_name

    def entry(self, name):
        return study_doc.variant_entry(self.study, self.by_name[name], self.infos)

    def test_figures_over_rounds(self):
        types = self.entry("fastapi_asyncpg")["workloads"][0]
        self.assertEqual((types["median"], types["min"], types["max"]), (2500, 2000, 3000))
        self.assertAlmostEqual(types["spread_pct"], 40.0)
        self.assertAlmostEqual(types["ratio_to_ceiling"], 2500 / 20000)
        self.assertEqual(types["fixed_rate"][0]["p99_ms"], 16.0)

    def test_backends_peak_is_the_highest_round(self):
        entry = self.entry("fastapi_asyncpg")
        self.assertEqual(entry["backends_peak"], 20)
        self.assertEqual(entry["backends_idle"], 20)

    def test_markdown(self):
        head = {
            "date": "2026-12-01T00:00:00Z",
            "commit": "abc",
            "command": "scripts/compare.sh --test",
            "machine": {"cores": 2},
            "params": {
                "workloads": ["types"],
                "runs": 3,
                "common_rate": 500,
                "connections": 64,
                "threads": 2,
                "duration_s": 5,
                "warmup_s": 2,
                "contacts": 10000,
                "noise_threshold_cores": 0.1,
                "fixed_rate": True,
                "rate_fractions_pct": [],
                "concurrency": [],
                "mixed_fib_rate": 10,
                "asyncpg_split": False,
            },
        }
        doc = study_doc.document(self.study, head)
        text = study_report.markdown(doc, "/tmp/x.json")
        # The types table: asyncpg's median 2500, ÷ reference 2500 / 10000.
        row = [line for line in text.splitlines() if line.startswith("| fastapi_asyncpg | 2500 |")]
        self.assertEqual(len(row), 1, text)
        self.assertIn("| 2000–3000 | 40% | 0.25 | 0.12 |", row[0])
        # The pooler: 1500 / 2500 = 0.60, backends 20 -> 8, p99 16ms -> 20ms.
        pooler = [
            line for line in text.splitlines() if line.startswith("| fastapi_asyncpg | 20 → 8")
        ]
        self.assertEqual(len(pooler), 1, text)
        self.assertIn("| 0.60 |", pooler[0])
        self.assertIn("16.00ms → 20.00ms", pooler[0])
        self.assertIn("reference+pgbouncer: not measured", text)
        # The mixed table: p99 80ms against 16ms alone = 5.00.
        self.assertIn("| 5.00 |", text)


class ResultPath(unittest.TestCase):
    def test_name_says_commit_state_and_kind(self):
        path = tools.result_path("compare", "0123456789abcdef", True, True, "pgbouncer")
        name = os.path.basename(path)
        self.assertRegex(name, r"^\d{8}T\d{6}Z-0123456789-dirty-compare-quick-pgbouncer\.json$")


class Sampler(unittest.TestCase):
    def test_paused_sampler_does_not_count(self):
        calls = []

        def pids():
            calls.append(time.monotonic())
            return []

        sampler = backends.BackendSampler(pids, interval=0.01)
        sampler.pause()
        with sampler:
            time.sleep(0.1)
            paused_calls = len(calls)
            sampler.resume(after=0)
            time.sleep(0.1)
        self.assertEqual(paused_calls, 0)
        self.assertGreater(len(calls), 0)


if __name__ == "__main__":
    unittest.main()
