"""study.py, systems.py and study_report.py: the systems' table, process
groups stopped with nothing left, backend titles, and the comparison's
document and markdown built from known records (figures computed here by
hand, never read back from the code under test)."""

import argparse
import os
import tempfile
import time
import unittest

from harness import results, study_report, systems
from harness.study import Study


class FakeAccounting:
    """No cgroups: commands run as they are."""

    parent = None
    method = "proc"

    def wrap(self, _component, argv):
        return list(argv)

    def track(self, _component, _pid):
        pass

    def usage_ns(self):
        return {"server": 0}


class SystemsTable(unittest.TestCase):
    def test_select_keeps_table_order(self):
        chosen = systems.select("go_pq,reference")
        self.assertEqual([system.name for system in chosen], ["reference", "go_pq"])

    def test_select_rejects_unknown(self):
        with self.assertRaises(ValueError):
            systems.select("reference,rails")

    def test_every_peer_has_a_start_script(self):
        for system in systems.SYSTEMS[1:]:
            path = os.path.join(systems.PEERS, system.name, "start.sh")
            self.assertTrue(os.access(path, os.X_OK), path)


class BackendTitles(unittest.TestCase):
    def test_client_backends_over_tcp_and_socket(self):
        self.assertTrue(
            systems.is_client_backend("postgres: postgres bakeoff 127.0.0.1(40312) idle")
        )
        self.assertTrue(systems.is_client_backend("postgres: app bakeoff [local] SELECT"))

    def test_background_processes_are_not_clients(self):
        for title in (
            "postgres: checkpointer ",
            "postgres: background writer ",
            "postgres: walwriter ",
            "postgres: autovacuum launcher ",
            "postgres: logical replication launcher ",
            "/usr/lib/postgresql/15/bin/postgres -D /tmp/x",
        ):
            self.assertFalse(systems.is_client_backend(title), title)


class ProcessGroups(unittest.TestCase):
    def start(self, script):
        tmp = tempfile.mkdtemp()
        process = systems.SystemProcess(
            systems.System("sleepers", ""),
            ["sh", "-c", script],
            dict(os.environ),
            os.path.join(tmp, "log"),
            FakeAccounting(),
        )
        deadline = time.monotonic() + 5
        while process.processes() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return process

    def test_stop_leaves_nothing(self):
        process = self.start("sleep 30 & sleep 30 & wait")
        self.assertEqual(process.processes(), 3)
        how = process.stop(quiet=True, grace=5)
        self.assertTrue(how.startswith("SIGTERM"), how)
        self.assertEqual(systems.group_pids(process.process.pid), [])

    def test_a_worker_ignoring_sigterm_is_killed(self):
        process = self.start("trap '' TERM; sleep 30 & sleep 30 & wait")
        self.assertEqual(process.stop(quiet=True, grace=1), "killed")
        self.assertEqual(systems.group_pids(process.process.pid), [])


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
        options = argparse.Namespace(
            only="types",
            impls="reference,fastapi_asyncpg",
            pooler="both",
            ceilings=True,
            runs=3,
            common_rate=500,
        )
        self.study = Study(options, "scripts/compare.sh --test")
        self.study.plan()
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
        return self.study.variant_entry(self.by_name[name], self.infos)

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
        self.study.meta = {
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
        self.study.engine = argparse.Namespace(workload_infos=lambda: self.infos)
        doc = self.study.document()
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
        path = study_report.result_path("0123456789abcdef", True, "", True, "both")
        name = os.path.basename(path)
        self.assertTrue(name.startswith("compare-"))
        self.assertTrue(name.endswith("-0123456789-dirty-quick-both.json"), name)


if __name__ == "__main__":
    unittest.main()


class Sampler(unittest.TestCase):
    def test_paused_sampler_does_not_count(self):
        calls = []

        def pids():
            calls.append(time.monotonic())
            return []

        sampler = systems.BackendSampler(pids, interval=0.01)
        sampler.pause()
        with sampler:
            time.sleep(0.1)
            paused_calls = len(calls)
            sampler.resume(after=0)
            time.sleep(0.1)
        self.assertEqual(paused_calls, 0)
        self.assertGreater(len(calls), 0)
