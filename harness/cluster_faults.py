"""`cluster test`: what a deployment must survive, each under a steady
open-loop load through the front with every answer checked
(cluster_load.py), on a deployment of its own that is removed at exit:

1. rolling: every instance in turn SIGTERMed, waited for, started again;
   zero failed requests and zero 503s.
2. kill: one instance SIGKILLed (its host's every process), started again;
   HAProxy's retries and checks keep failed requests to zero.
3. failover: the primary's host killed (Patroni and PostgreSQL, SIGKILL);
   Patroni promotes the standby; 503s answered fast meanwhile, 200s again
   within a second of the promotion; the old primary rebuilt as a standby
   afterwards, outside the measured window.
4. standby: the standby's host killed, its data wiped, rebuilt from the
   primary with pg_basebackup: every answer a 200.
5. pooler: PgBouncer stopped (SIGTERM), down for a while, started again:
   503s only while it is down, 200s again within a second.

Each reports sent / 200 / 503 / failed / wrong / longest gap without a 200
(cluster_report.py) and its own figures; any failed check makes the
command exit 1. --quick is CI's form (a lower rate, shorter settles).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time

from harness import cluster_config as config
from harness import cluster_report as report
from harness import cluster_up, tools
from harness.cluster_load import Expected, OpenLoop
from harness.tools import Fatal, log, warn

TESTS = ("rolling", "kill", "failover", "standby", "pooler")
READY_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC \[\d+\] "
    r"LOG:  database system is ready to accept connections"
)


def promotion_time(log_path, after_wall):
    """Wall-clock time of the first 'ready to accept connections' line of a
    PostgreSQL log (log_line_prefix '%m') after `after_wall`: when the
    promoted standby took read-write connections."""
    import calendar

    try:
        with open(log_path, encoding="utf-8", errors="replace") as file:
            lines = file.readlines()
    except OSError:
        return None
    for line in lines:
        match = READY_LINE.match(line)
        if match:
            stamp, millis = match.group(1).split(".")
            wall = calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
            if wall >= after_wall:
                return wall
    return None


class Poller:
    """Records when a probe first succeeds, polled every `interval` s."""

    def __init__(self, probe, interval=0.05):
        self.probe, self.interval, self.at = probe, interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set() and self.at is None:
            if self.probe():
                self.at = time.monotonic()
            time.sleep(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.at


class FaultTests:
    def __init__(self, deployment, expected, options):
        self.d = deployment
        self.expected = expected
        self.options = options

    def under_load(self, name, action):
        """Runs action() between two settles of steady load; action returns
        (events {name: monotonic time}, figures, checks(summary) → dict)."""
        log(f"{name}: {self.options.rate:g} req/s through the front")
        load = OpenLoop(
            self.d.state["front_url"], self.options.rate, self.expected, self.options.timeout
        ).start()
        time.sleep(self.options.settle)
        events, figures, checks = action(load)
        time.sleep(self.options.settle)
        answers = load.stop()
        summary = report.summarize(answers, load.started, load.stopped)
        result = {
            "test": name,
            "summary": summary,
            "events_s": report.relative(events, load.started),
            "figures": figures(answers) if callable(figures) else figures,
            "anomalies": report.anomaly_runs(answers, load.started),
        }
        result["checks"] = checks(summary, answers)
        result["checks"].update(
            {
                "no wrong body": summary["wrong"] == 0,
                "no other status": summary["other"] == 0,
            }
        )
        log(f"{name}: {report.verdict_text(result)} {summary}")
        return result

    # --- the five ------------------------------------------------------------------

    def rolling(self):
        d, drain = self.d, self.options.drain

        def action(_load):
            events, took = {}, []
            for host in d.plan.app_hosts:
                events[f"{host}_term"] = time.monotonic()
                if drain == "lb":
                    # The load balancer's deregistration (Kubernetes takes the
                    # endpoint out), for a server whose /readyz cannot fail.
                    d.haproxy(f"set server instances/{host} state drain")
                    d.haproxy(f"set server live/{host} state drain")
                    time.sleep(1.0)
                took.append(round(d.stop(host, signal.SIGTERM, timeout=30), 3))
                events[f"{host}_exited"] = time.monotonic()
                d.start_instance(host)
                if drain == "lb":
                    d.haproxy(f"set server instances/{host} state ready")
                    d.haproxy(f"set server live/{host} state ready")
                d.wait_server("instances", host, "UP")
                events[f"{host}_up"] = time.monotonic()
            figures = {"drain": drain, "seconds_to_exit": took}
            return (
                events,
                figures,
                lambda s, _a: {
                    "zero failed": s["failed"] == 0,
                    "zero 503s": s["unavailable"] == 0,
                },
            )

        return self.under_load("rolling", action)

    def kill(self):
        d = self.d
        host = d.plan.app_hosts[-1]

        def action(_load):
            before = self.retries()
            events = {"kill": time.monotonic()}
            d.kill_host(host)
            d.wait_server("instances", host, "DOWN", timeout=20)
            events["marked_down"] = time.monotonic()
            time.sleep(1.0)
            d.start_instance(host)
            d.wait_server("instances", host, "UP")
            events["up"] = time.monotonic()
            after = self.retries()
            figures = {
                "killed": host,
                "detected_after_s": round(events["marked_down"] - events["kill"], 3),
                "haproxy_retries": after[0] - before[0],
                "haproxy_redispatches": after[1] - before[1],
            }
            return events, figures, lambda s, _a: {"zero failed": s["failed"] == 0}

        return self.under_load("kill", action)

    def retries(self):
        stats = self.d.server_stats()
        rows = [row for (backend, _), row in stats.items() if backend == "instances"]
        return (
            sum(int(row.get("wretr") or 0) for row in rows),
            sum(int(row.get("wredis") or 0) for row in rows),
        )

    def failover(self):
        d = self.d
        old = d.primary()
        new = next(node for node in d.plan.db_hosts if node != old)
        timeout = d.settings.ttl_s * 4

        def action(_load):
            patroni = Poller(lambda: d.patroni(new, "/primary", 0.5)[0] == 200)
            wall, events = time.time(), {"kill": time.monotonic()}
            d.kill_host(old)
            tools_deadline = time.monotonic() + timeout
            while patroni.at is None and time.monotonic() < tools_deadline:
                time.sleep(0.05)
            events["patroni_primary"] = patroni.stop()
            if events["patroni_primary"] is None:
                raise Fatal(f"{new} was not promoted within {timeout} s")
            d.wait_server("primary", new, "UP", timeout=10)
            events["haproxy_primary_up"] = time.monotonic()
            log_path = os.path.join(d.dir, new, "log", "postgresql.log")
            ready = None
            for _ in range(50):
                ready = promotion_time(log_path, wall)
                if ready:
                    break
                time.sleep(0.1)
            events["promoted"] = None if ready is None else events["kill"] + (ready - wall)

            def figures(answers):
                promoted = events["promoted"] or events["patroni_primary"]
                first = report.first_ok_after(answers, promoted)
                return {
                    "old_primary": old,
                    "kill_to_promotion_s": _diff(promoted, events["kill"]),
                    "kill_to_patroni_primary_s": _diff(events["patroni_primary"], events["kill"]),
                    "promotion_to_haproxy_up_s": _diff(events["haproxy_primary_up"], promoted),
                    "promotion_to_first_200_s": _diff(first, promoted),
                    "ttl_s": d.settings.ttl_s,
                }

            def checks(summary, answers):
                got = figures(answers)
                return {
                    "standby promoted": events["promoted"] is not None,
                    "200 within 1 s of the promotion": (got["promotion_to_first_200_s"] or 99)
                    <= 1.0,
                    "503s fast (max under 1 s)": (summary["unavailable_max_ms"] or 0) < 1000,
                    "zero failed": summary["failed"] == 0,
                }

            return events, figures, checks

        result = self.under_load("failover", action)
        log(f"failover: rebuilding {old} as a standby of {new}")
        d.start_patroni(old, wipe=True)
        d.wait_role(old, "replica", timeout=180)
        return result

    def standby(self):
        d = self.d
        primary = d.primary()
        node = next(name for name in d.plan.db_hosts if name != primary)

        def action(_load):
            events = {"kill": time.monotonic()}
            d.kill_host(node)
            time.sleep(1.0)
            events["rebuild"] = time.monotonic()
            d.start_patroni(node, wipe=True)
            d.wait_role(node, "replica", timeout=180)
            events["streaming"] = time.monotonic()
            figures = {
                "standby": node,
                "rebuild_s": round(events["streaming"] - events["rebuild"], 3),
            }
            return events, figures, lambda s, _a: {"every answer a 200": s["ok"] == s["sent"]}

        return self.under_load("standby", action)

    def pooler(self):
        d = self.d
        down_for = self.options.pooler_down_s
        address = (d.plan.address("pooler"), config.POOLER_PORT)

        def listening():
            try:
                with socket.create_connection(address, timeout=0.2):
                    return True
            except OSError:
                return False

        def action(_load):
            events = {"stop": time.monotonic()}
            d.stop("pooler", signal.SIGTERM, timeout=10)
            events["exited"] = time.monotonic()
            time.sleep(down_for)
            events["start"] = time.monotonic()
            d.start_pgbouncer(wait=False)
            poller = Poller(listening, interval=0.01)
            deadline = time.monotonic() + 20
            while poller.at is None and time.monotonic() < deadline:
                time.sleep(0.01)
            events["listening"] = poller.stop()
            if events["listening"] is None:
                raise Fatal("PgBouncer did not listen again")

            def figures(answers):
                first = report.first_ok_after(answers, events["listening"])
                return {
                    "down_s": _diff(events["listening"], events["stop"]),
                    "listening_to_first_200_s": _diff(first, events["listening"]),
                    "503s_outside_the_outage": report.outside(
                        answers, 503, events["stop"], events["listening"] + 1.0
                    ),
                }

            def checks(summary, answers):
                got = figures(answers)
                return {
                    "503s only while down (+1 s)": got["503s_outside_the_outage"] == 0,
                    "200 within 1 s of listening": (got["listening_to_first_200_s"] or 99) <= 1.0,
                    "zero failed": summary["failed"] == 0,
                }

            return events, figures, checks

        return self.under_load("pooler", action)


def _diff(later, earlier):
    if later is None or earlier is None:
        return None
    return round(later - earlier, 3)


def apply_defaults(options, selected):
    """--quick's and the full form's defaults, where not given."""
    quick = options.quick
    if options.rate is None:
        options.rate = 200.0 if quick else 1000.0
    if options.settle is None:
        options.settle = 2.0 if quick else 5.0
    if options.pooler_down_s is None:
        options.pooler_down_s = 1.0 if quick else 3.0
    if options.rounds is None:
        options.rounds = 1 if quick else 3
    if options.db_path == "direct" and "pooler" in selected:
        selected.remove("pooler")
        warn("--db-path direct: PgBouncer is not in the instances' path, so no pooler test")


def cmd_test(options, argv):
    selected = options.only.split(",") if options.only else list(TESTS)
    unknown = [name for name in selected if name not in TESTS]
    if unknown:
        raise Fatal(f"unknown test(s) {', '.join(unknown)}; the tests: {', '.join(TESTS)}")
    apply_defaults(options, selected)
    binary = cluster_up.resolve_binary(options)
    directory = tempfile.mkdtemp(prefix="bakeoff-cluster-test-")
    cleanup = tools.Cleanup()
    started, load_before = time.monotonic(), os.getloadavg()
    results, passed, meta = [], False, {}
    try:
        deployment, _ = cluster_up.bring_up(directory, options, binary, cleanup)
        if options.drain == "auto":
            delay = deployment.state["shutdown_delay"] and deployment.settings.shutdown_delay_ms
            options.drain = "readyz" if delay else "lb"
        meta = cluster_up.describe(deployment)
        primary = deployment.primary()
        expected = Expected.from_database(deployment.db_url(primary))
        log(f"{len(expected.bodies)} expected bodies read from the tables on {primary}")
        tests = FaultTests(deployment, expected, options)
        for run in range(1, options.rounds + 1):
            for name in selected:
                result = getattr(tests, name)()
                result["round"] = run
                results.append(result)
        passed = all(all(result["checks"].values()) for result in results)
    finally:
        cleanup.run()
        if (passed or not results) and not options.keep:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            warn(f"logs of the deployment kept in {directory}")
    elapsed = time.monotonic() - started
    command = tools.quote_command(["scripts/cluster.sh", *argv])
    print(report.table(results))
    if options.rounds > 1:
        print("\nAcross the rounds, median (min–max):\n")
        print(report.across_rounds(results))
    print(
        f"\n{len(results)} test(s) in {tools.fmt_duration(elapsed)}; "
        f"{options.rate:g} req/s offered, {options.settle:g} s of load before and after each "
        f"fault, drain: {options.drain}, "
        f"database path: {options.db_path}; load average {load_before[0]:.1f} at the start; "
        f"command: {command}"
    )
    out = options.out
    if out is None and not options.quick:
        commit, dirty = tools.git_state()
        out = tools.result_path("cluster-faults", commit, dirty, label=options.label)
    if out:
        document = {
            "kind": "cluster-faults",
            "command": command,
            "elapsed_s": round(elapsed),
            "load_average_at_start": load_before,
            "options": {
                key: getattr(options, key)
                for key in ("rate", "settle", "rounds", "drain", "db_path", "instances", "timeout")
            },
            **meta,
            "results": results,
        }
        with open(out, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=1)
            file.write("\n")
        log(f"results: {os.path.relpath(out)}")
    return 0 if passed else 1


def add_parsers(actions, add_deployment_options):
    test = actions.add_parser(
        "test",
        help="the five failure tests under load (their own deployment)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_deployment_options(test)
    add = test.add_argument
    add(
        "--quick",
        action="store_true",
        help="CI's form: 200 req/s, 2 s settles, PgBouncer down 1 s, one round, no results file",
    )
    add("--rounds", type=int, help="times each test runs (default 3; --quick 1)")
    add("--only", default="", metavar="T[,T...]", help=f"some of: {','.join(TESTS)}")
    add("--rate", type=float, help="requests per second offered (default 1000; --quick 200)")
    add("--settle", type=float, help="seconds of load before and after each fault (default 5)")
    add("--timeout", type=float, default=2.0, help="a request's deadline from its due time (2 s)")
    add("--pooler-down-s", type=float, help="how long PgBouncer stays down (default 3; --quick 1)")
    add(
        "--drain",
        choices=("auto", "readyz", "lb", "none"),
        default="auto",
        help="rolling restart: readyz (the server fails /readyz after SIGTERM), lb (HAProxy's "
        "drain state first), none (SIGTERM only); auto: readyz when the server can",
    )
    add(
        "--out",
        help="the results file (default: results/<date>-<commit>-cluster-faults[-LABEL].json)",
    )
    add("--label", default="", help="a label for the file name, e.g. the setting a run changes")
    add("--keep", action="store_true", help="keep the deployment's logs (kept anyway on a failure)")
    test.set_defaults(func=cmd_test)
