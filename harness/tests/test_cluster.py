"""The local deployment's pure parts: its configuration (cluster_config.py),
state and status (cluster_state.py), the load's bodies and HTTP parsing
(cluster_load.py), the failure report's arithmetic (cluster_report.py) and
the promotion time read from PostgreSQL's log (cluster_faults.py)."""

import asyncio
import calendar
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import cluster_config as config
from harness import cluster_faults, cluster_load
from harness import cluster_report as report
from harness import cluster_state as cs
from harness.cluster_load import Answer

ADDRESSES = {
    "dcs": "10.213.9.2",
    "db1": "10.213.9.3",
    "db2": "10.213.9.4",
    "pooler": "10.213.9.5",
    "front": "10.213.9.6",
    "app1": "10.213.9.7",
    "app2": "10.213.9.8",
}


def plan(**changes):
    fields = dict(
        addresses=ADDRESSES, subnet="10.213.9.0/24", instances=2, state_dir="/tmp/x", rtt_ms=0
    )
    fields.update(changes)
    return config.Plan(**fields)


class ConfigTests(unittest.TestCase):
    def test_hosts_in_order(self):
        self.assertEqual(
            config.host_names(2), ["dcs", "db1", "db2", "pooler", "front", "app1", "app2"]
        )

    def test_haproxy_front_checks_retries_and_the_primary(self):
        cfg = config.haproxy_cfg(plan(), config.DEFAULTS, "/s/haproxy.sock", "/s/503.http")
        for line in (
            "    bind 10.213.9.6:8000",
            "    retry-on conn-failure empty-response junk-response response-timeout",
            "    option redispatch 1",
            "    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host front",
            "    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host front",
            "    use_backend instances if { nbsrv(instances) gt 0 }",
            "    server app2 10.213.9.8:8000 check",
            "    bind 10.213.9.6:5000",
            "    option httpchk OPTIONS /primary",
            "    retries 0",
            "    server db2 10.213.9.4:5432 check port 8008",
            "    errorfile 503 /s/503.http",
        ):
            self.assertIn(line + "\n", cfg)
        self.assertIn("on-marked-down shutdown-sessions", cfg)
        self.assertNotIn("0.0.0.0", cfg)

    def test_an_rtt_sends_postgresql_clients_through_the_link(self):
        cfg = config.haproxy_cfg(plan(rtt_ms=10), config.DEFAULTS, "/s", "/e")
        self.assertIn("server db1 10.213.9.3:5433 check port 8008", cfg)
        argv = config.link_argv("/bin/link", plan(rtt_ms=10), "db1", 10)
        self.assertEqual(
            argv,
            ["/bin/link", "--listen", "10.213.9.3:5433", "--upstream", "127.0.0.1:5432"]
            + ["--rtt-ms", "10"],
        )

    @unittest.skipUnless(shutil.which("haproxy"), "no haproxy")
    def test_haproxy_accepts_the_generated_config(self):
        with tempfile.TemporaryDirectory() as directory:
            error = os.path.join(directory, "503.http")
            with open(error, "w", encoding="utf-8", newline="") as file:
                file.write(config.ERROR_503)
            path = os.path.join(directory, "haproxy.cfg")
            with open(path, "w", encoding="utf-8") as file:
                file.write(config.haproxy_cfg(plan(), config.DEFAULTS, f"{directory}/sock", error))
            result = subprocess.run(
                ["haproxy", "-c", "-f", path], capture_output=True, text=True, check=False
            )
            self.assertEqual(result.returncode, 0, result.stderr)

    def test_the_503_page_is_the_contracts(self):
        head, body = config.ERROR_503.split("\r\n\r\n")
        self.assertIn("Retry-After: 1", head)
        self.assertIn(f"Content-Length: {len(body.encode())}", head)
        self.assertEqual(json.loads(body), {"detail": "Service Unavailable"})

    def test_patroni(self):
        node = config.patroni_config(plan(), config.DEFAULTS, "db2", "/d/db2", "/usr/lib/pg/bin")
        dcs = node["bootstrap"]["dcs"]
        # Patroni's rule: loop_wait + 2 x retry_timeout <= ttl.
        self.assertLessEqual(dcs["loop_wait"] + 2 * dcs["retry_timeout"], dcs["ttl"])
        self.assertEqual(node["restapi"]["listen"], "10.213.9.4:8008")
        self.assertEqual(node["etcd3"]["hosts"], ["10.213.9.2:2379"])
        self.assertEqual(node["postgresql"]["listen"], "10.213.9.4,127.0.0.1:5432")
        self.assertEqual(node["postgresql"]["data_dir"], "/d/db2/data")
        self.assertIn("host all all 10.213.9.0/24 trust", node["postgresql"]["pg_hba"])
        text = config.patroni_yaml(plan(), config.DEFAULTS, "db2", "/d/db2", "/b")
        self.assertEqual(json.loads(text.split("\n", 1)[1])["name"], "db2")

    def test_pgbouncer_follows_the_primary_through_haproxy(self):
        ini = config.pgbouncer_ini(plan(), config.DEFAULTS, "/d/pooler")
        self.assertIn("bakeoff = host=10.213.9.6 port=5000 dbname=bakeoff\n", ini)
        self.assertIn("listen_addr = 10.213.9.5,127.0.0.1\n", ini)
        self.assertIn("pool_mode = transaction\n", ini)
        self.assertIn("server_login_retry = 0.2\n", ini)
        self.assertIn("query_wait_timeout = 0.5\n", ini)

    def test_instances_use_unnamed_statements_and_drain_past_the_checks(self):
        env = config.instance_env(plan(), config.DEFAULTS, "app1", shutdown_delay=True)
        self.assertEqual(env["BIND"], "10.213.9.7:8000")
        self.assertEqual(env["DATABASE_URL"], "postgresql://bakeoff_reader@10.213.9.5:6432/bakeoff")
        self.assertEqual(env["STATEMENTS"], "unnamed")
        s = config.DEFAULTS
        # HAProxy takes a failing instance out within inter + (fall - 1) x
        # fastinter; /readyz must fail for longer than that.
        detection = s.check_inter_ms + (s.check_fall - 1) * s.check_fastinter_ms
        self.assertGreater(int(env["SHUTDOWN_DELAY_MS"]), detection)
        self.assertNotIn("SHUTDOWN_DELAY_MS", config.instance_env(plan(), s, "app1", False))

    def test_direct_instances_find_the_primary_themselves(self):
        env = config.instance_env(plan(db_path="direct"), config.DEFAULTS, "app1", True)
        self.assertEqual(
            env["DATABASE_URL"],
            "postgresql://bakeoff_reader@10.213.9.3:5432,10.213.9.4:5432/bakeoff"
            "?target_session_attrs=primary",
        )
        self.assertEqual(env["STATEMENTS"], "prepared")
        env = config.instance_env(plan(db_path="direct", rtt_ms=4), config.DEFAULTS, "app1", True)
        self.assertIn("10.213.9.3:5433,10.213.9.4:5433", env["DATABASE_URL"])

    def test_settings_from_the_command_line(self):
        settings = config.parse_settings(["ttl_s=20", "query_wait_timeout_s=5", "redispatch=false"])
        self.assertEqual((settings.ttl_s, settings.query_wait_timeout_s), (20, 5.0))
        self.assertFalse(settings.redispatch)
        self.assertEqual(config.parse_settings([]), config.DEFAULTS)
        for bad in (["ttl"], ["nosuch=1"], ["ttl_s=x"], ["redispatch=yes"], ["ttl_s=5"]):
            with self.assertRaises(ValueError, msg=bad):
                config.parse_settings(bad)
        cfg = config.haproxy_cfg(
            plan(),
            config.parse_settings(["live_fallback=false", "redispatch=false", "primary_retries=3"]),
            "/s",
            "/e",
        )
        self.assertIn("    default_backend instances\n", cfg)
        self.assertNotIn("nbsrv", cfg)
        self.assertIn("    no option redispatch\n", cfg)
        self.assertIn("    retries 3\n", cfg)

    def test_etcd_listens_on_its_host_and_loopback(self):
        argv = config.etcd_argv(plan(), "/d/etcd")
        self.assertIn("http://10.213.9.2:2379,http://127.0.0.1:2379", argv)
        self.assertNotIn("0.0.0.0", " ".join(argv))


PATRONI_CLUSTER = {
    "members": [
        {"name": "db1", "role": "leader", "state": "running", "timeline": 2},
        {"name": "db2", "role": "replica", "state": "streaming", "timeline": 2, "lag": 0},
    ]
}

SHOW_STAT = (
    "# pxname,svname,qcur,status,wretr,wredis,\n"
    "api,FRONTEND,,OPEN,,,\n"
    "instances,app1,0,UP,0,3,\n"
    "instances,app2,0,DOWN,1,4,\n"
    "instances,BACKEND,0,UP,1,7,\n"
)


class StateTests(unittest.TestCase):
    def test_start_ticks_past_a_name_with_spaces_and_parentheses(self):
        stat = "42 (a b) c) S 1 42 42 0 -1 4194560 0 0 0 0 1 2 0 0 20 0 1 0 98765 1 2 3"
        self.assertEqual(cs.parse_start_ticks(stat), 98765)
        own = cs.process_record(os.getpid())
        self.assertTrue(cs.is_alive(own))
        self.assertFalse(cs.is_alive(dict(own, start=own["start"] + 1)))
        self.assertFalse(cs.is_alive(None))

    def test_roles_as_patroni_reports_them(self):
        roles = cs.db_roles(PATRONI_CLUSTER)
        self.assertEqual(roles["db1"]["role"], "primary")
        self.assertEqual(roles["db2"]["role"], "standby")
        self.assertEqual(roles["db2"]["state"], "streaming")
        self.assertEqual(cs.db_roles(None), {})

    def test_show_stat(self):
        stats = cs.parse_show_stat(SHOW_STAT)
        self.assertEqual(sorted(stats), [("instances", "app1"), ("instances", "app2")])
        self.assertEqual(stats[("instances", "app2")]["status"], "DOWN")
        self.assertEqual(stats[("instances", "app1")]["wredis"], "3")
        self.assertEqual(cs.parse_show_stat("Unknown command\n"), {})

    def test_status_document(self):
        state = {
            "front_url": "http://10.213.9.6:8000",
            "dir": "/d",
            "components": {
                "front": {
                    "role": "front",
                    "host": "front",
                    "address": "10.213.9.6",
                    "process": {"pid": 10, "start": 1},
                },
                "db1": {
                    "role": "database",
                    "host": "db1",
                    "address": "10.213.9.3",
                    "process": {"pid": 11, "start": 1},
                },
                "db2": {
                    "role": "database",
                    "host": "db2",
                    "address": "10.213.9.4",
                    "process": {"pid": 12, "start": 1},
                },
            },
        }
        doc = cs.status_document(
            state, PATRONI_CLUSTER, lambda record: bool(record), {"db1": 21, "db2": None}
        )
        self.assertEqual(doc["front_url"], "http://10.213.9.6:8000")
        by_name = {c["name"]: c for c in doc["components"]}
        self.assertEqual(by_name["front"]["pid"], 10)
        self.assertEqual(by_name["db1"]["role"], "primary")
        self.assertEqual(by_name["db1"]["pid"], 21)
        self.assertEqual(by_name["db1"]["patroni_pid"], 11)
        self.assertEqual(by_name["db2"]["role"], "standby")
        self.assertFalse(by_name["db2"]["running"])
        # Patroni down everywhere: no role to report.
        doc = cs.status_document(state, None, lambda record: False, {})
        self.assertIsNone({c["name"]: c for c in doc["components"]}["db1"]["role"])

    def test_save_and_load(self):
        with tempfile.TemporaryDirectory() as directory:
            self.assertIsNone(cs.load(directory))
            cs.save(directory, {"front_url": "x", "components": {}})
            state = cs.load(directory)
            self.assertEqual(state["front_url"], "x")
            self.assertEqual(state["format"], cs.FORMAT)
            self.assertEqual(os.listdir(directory), ["state.json"])


class LoadTests(unittest.TestCase):
    def test_a_contact_as_the_contract_writes_it(self):
        body = cluster_load.contact_body(
            17, "José", "O'Brien", 2, "Friends", ["+1-202-555-0147"], []
        )
        self.assertEqual(
            body,
            '{"contact_id":17,"first_name":"José","last_name":"O\'Brien",'
            '"contact_type":{"type_id":2,"type_name":"Friends"},'
            '"phone_number":["+1-202-555-0147"],"email":[]}'.encode(),
        )
        self.assertEqual(
            cluster_load.types_body([(1, "Relatives"), (2, None)]),
            b'[{"type_id":1,"type_name":"Relatives"},{"type_id":2,"type_name":null}]',
        )

    def parse(self, raw):
        async def run():
            reader = asyncio.StreamReader()
            reader.feed_data(raw)
            reader.feed_eof()
            return await cluster_load.read_response(reader)

        return asyncio.run(run())

    def test_responses(self):
        self.assertEqual(
            self.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra"), (200, b"{}", True)
        )
        self.assertEqual(
            self.parse(
                b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n"
                b"content-length: 3\r\n\r\n{x}"
            ),
            (503, b"{x}", False),
        )
        self.assertEqual(
            self.parse(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n"
            ),
            (200, b"abcd", True),
        )
        with self.assertRaises(cluster_load.ProtocolError):
            self.parse(b"SSH-2.0\r\n\r\n")


class IdleConnectionTests(unittest.TestCase):
    def test_connections_idle_past_the_limit_are_closed_not_reused(self):
        class Writer:
            closed = False

            def close(self):
                self.closed = True

        load = cluster_load.OpenLoop(
            "http://10.0.0.1:8000", 1, cluster_load.Expected({"/types": b""})
        )
        now = time.monotonic()
        old, fresh = Writer(), Writer()
        load._idle = [("r1", old, now - cluster_load.IDLE_LIMIT_S - 1), ("r2", fresh, now - 0.5)]
        reader, writer, idle = load._take_idle()
        self.assertEqual((reader, writer), ("r2", fresh))
        self.assertLess(idle, cluster_load.IDLE_LIMIT_S)
        self.assertIsNone(load._take_idle())
        self.assertTrue(old.closed)
        self.assertFalse(fresh.closed)


def answer(intended, status, ok=None, latency=0.01):
    return Answer(
        intended=intended,
        path="/types",
        sent=intended,
        done=intended + latency,
        status=status,
        ok=status == 200 if ok is None else ok,
    )


class ReportTests(unittest.TestCase):
    def test_percentile(self):
        self.assertIsNone(report.percentile([], 0.5))
        self.assertEqual(report.percentile([3, 1, 2, 4], 0.5), 2)
        self.assertEqual(report.percentile(list(range(1, 101)), 0.99), 99)
        self.assertEqual(report.percentile([5], 1.0), 5)

    def test_longest_gap_counts_the_edges(self):
        self.assertEqual(report.longest_gap([2.0, 3.0], 0.0, 10.0), (7.0, 3.0, 10.0))
        self.assertEqual(report.longest_gap([], 1.0, 4.0), (3.0, 1.0, 4.0))
        self.assertEqual(report.longest_gap([5.0, 6.0], 0.0, 7.0), (5.0, 0.0, 5.0))

    def test_summary(self):
        answers = [
            answer(0.0, 200),
            answer(0.1, 200, ok=False),
            answer(0.2, 503, latency=0.002),
            answer(0.3, 0, latency=2.0),
            answer(0.4, 404),
            answer(1.0, 200),
        ]
        answers[3].error = "TimeoutError"
        summary = report.summarize(answers, 0.0, 1.5)
        self.assertEqual(
            {k: summary[k] for k in ("sent", "ok", "unavailable", "failed", "wrong", "other")},
            {"sent": 6, "ok": 2, "unavailable": 1, "failed": 1, "wrong": 1, "other": 1},
        )
        self.assertEqual(summary["longest_gap_s"], 1.0)  # 0.01 → 1.01
        self.assertEqual(summary["unavailable_max_ms"], 2.0)
        self.assertEqual(summary["errors"], ["TimeoutError"])
        self.assertEqual(report.first_ok_after(answers, 0.05), 1.01)
        self.assertIsNone(report.first_ok_after(answers, 1.2))
        self.assertEqual(report.outside(answers, 503, 0.0, 0.1), 1)
        self.assertEqual(report.outside(answers, 503, 0.1, 0.3), 0)
        self.assertEqual(
            report.anomaly_runs(answers, 0.0),
            [
                [0.1, 0.1, 200, 1, 10.0, ""],
                [0.2, 0.2, 503, 1, 2.0, ""],
                [0.3, 0.3, 0, 1, 2000.0, "TimeoutError"],
                [0.4, 0.4, 404, 1, 10.0, ""],
            ],
        )
        runs = report.anomaly_runs([answer(t / 10, 503) for t in range(5)] + [answer(1, 200)], 0)
        self.assertEqual(runs, [[0.0, 0.4, 503, 5, 10.0, ""]])
        self.assertEqual(report.spread([3, 1, 2]), "2 (1–3)")
        self.assertEqual(report.spread([None, 4.5]), "4.5")

    def test_table(self):
        result = {
            "test": "kill",
            "summary": report.summarize([answer(0.0, 200)], 0.0, 1.0),
            "figures": {"detected_after_s": 0.5},
            "checks": {"zero failed": True, "zero 503s": False},
        }
        text = report.table([result])
        self.assertIn("| kill | 1 | 1 | 0 | 0 | 0 | 0 | 0.99 |", text)
        self.assertIn("| FAIL |", text)
        self.assertIn("  - FAIL: zero 503s", text)


class PromotionTests(unittest.TestCase):
    def test_the_first_ready_line_after_the_kill(self):
        text = (
            "2026-12-06 20:55:00.100 UTC [7] LOG:  database system is ready to accept read-only"
            " connections\n"
            "2026-12-06 20:55:11.600 UTC [7] LOG:  received promote request\n"
            "2026-12-06 20:55:11.804 UTC [7] LOG:  database system is ready to accept connections\n"
        )
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as file:
            file.write(text)
        try:
            kill = calendar.timegm(time.strptime("2026-12-06 20:55:01", "%Y-%m-%d %H:%M:%S"))
            found = cluster_faults.promotion_time(file.name, kill)
            self.assertAlmostEqual(found - kill, 10.804, places=3)
            self.assertIsNone(cluster_faults.promotion_time(file.name, kill + 11))
        finally:
            os.remove(file.name)


if __name__ == "__main__":
    unittest.main()
