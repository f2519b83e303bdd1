"""One benchmark run (`scripts/run.sh`, `python3 -m harness run`), start to
end: tools, database, server, ceilings, then the measuring loop, interleaved
(run 1 of every workload, then run 2 of every workload, ...) so that a slow
drift of the machine falls on every workload alike, then the results file,
the table and the charts. docs/benchmarks.md says why each step is there."""

import glob
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

from harness import cpu, loadgen, noise, pg, report, results
from harness.server import Nginx, Server, peak_rss_kib
from harness.tools import (ROOT, Cleanup, Fatal, ensure_tools, first_line, fmt_duration,
                           git_state, http_get, log, need_tool, result_path, wait_http, warn)
from harness.workloads import PIPELINE_DEPTH, pgbench_script, pgbench_variables
from harness.workloads import select as select_workloads

# The server's knobs that come from the environment, recorded when set.
SERVER_ENV = ("RUNTIME", "POOL_SIZE", "POOL_MODE", "WORKER_THREADS", "POOL_TIMEOUT_MS",
              "STATEMENT_TIMEOUT_MS", "HEADER_READ_TIMEOUT_S", "DRAIN_TIMEOUT_S")
# wrk gives up on a response after this long and counts a timeout.
WRK_TIMEOUT_S = 5


class Run:
    """The state of one run; run() drives it."""

    def __init__(self, options, command_line):
        self.o = options
        self.command_line = command_line
        self.cleanup = Cleanup()
        self.selected = []
        self.db_mode = None  # "throwaway", "external" or "none"
        self.seed = False
        self.db = None
        self.server = None
        self.server_url = ""
        self.nginx = None
        self.accounting = None
        self.counted = set()  # the components whose CPU this run can read
        self.measurements = []
        self.fixed = []
        self.meta = {}
        self.planned = 0
        self.done = 0
        self.tmp = None
        self.oha = None
        self.raw_count = 0

    # --- planning ------------------------------------------------------------------

    def plan(self):
        o = self.o
        try:
            self.selected = select_workloads(o.only)
        except ValueError as error:
            raise Fatal(str(error)) from error
        if os.environ.get("DATABASE_URL"):
            self.db_mode = "external"
            if o.pin_db:
                warn("--pin-db does nothing with DATABASE_URL: that PostgreSQL is not ours to start")
        elif o.target:
            self.db_mode = "none"
            if self.uses_ceiling("pgbench"):
                warn("--target without DATABASE_URL: no database to run pgbench on, so no database ceilings")
        else:
            self.db_mode = "throwaway"
            self.seed = True
        if o.target and o.pin_server:
            warn("--pin-server pins only nginx with --target: pin the target yourself")

    def uses_ceiling(self, kind):
        return self.o.ceilings and any(w.ceiling == kind for w in self.selected)

    def has_ceiling(self, workload):
        if not self.o.ceilings:
            return False
        if workload.ceiling == "nginx":
            return True
        return workload.ceiling == "pgbench" and self.db_mode != "none"

    def fixed_rate_workloads(self):
        """The database workloads measured at fixed rates in this run."""
        if not self.o.fixed_rate or not self.rate_labels():
            return []
        return [w for w in self.selected if w.uses_database]

    def rate_labels(self):
        labels = [f"{p:g}%" for p in self.o.rate_fractions]
        return labels + (["common"] if self.o.common_rate else [])

    def check_tools(self):
        o = self.o
        tools = ["wrk"]
        if not o.target:
            tools.append("cargo")
        if self.db_mode == "throwaway":
            tools += ["initdb", "pg_ctl", "postgres", "psql"]
            if os.geteuid() == 0:
                tools.append("runuser")
        elif self.db_mode == "external":
            tools.append("psql")
        if self.db_mode != "none" and (self.uses_ceiling("pgbench") or self.fixed_rate_workloads()):
            tools.append("pgbench")
        if self.uses_ceiling("nginx"):
            tools.append("nginx")
        if o.pin_server or o.pin_db or o.pin_wrk:
            tools.append("taskset")
        ensure_tools(tools)
        for cpus in (o.pin_server, o.pin_db, o.pin_wrk):
            if cpus and subprocess.call(["taskset", "-c", cpus, "true"],
                                        stderr=subprocess.DEVNULL) != 0:
                raise Fatal(f"invalid CPU list '{cpus}' (try 0, 1 or 0-1; this machine has "
                            f"{os.cpu_count()} CPUs)")
        if self.fixed_rate_workloads():
            self.oha = loadgen.ensure_oha()

    def pin(self, cpus):
        return ["taskset", "-c", cpus] if cpus else []

    # --- setting up ------------------------------------------------------------------

    def build(self):
        o = self.o
        if o.target:
            return
        if o.build:
            log("building the release binary (cargo build --release)")
            if subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2) != 0:
                raise Fatal("cargo build --release failed (see above)")
        elif not os.access(o.binary, os.X_OK):
            raise Fatal(f"--no-build, but there is no {o.binary}: run cargo build --release")

    def setup_database(self):
        o = self.o
        if self.db_mode == "throwaway":
            # Room for pgbench's clients, the server's pool(s) and psql.
            self.db = pg.Postgres.throwaway(self.tmp, o.connections + 200, o.transport,
                                            self.accounting, self.pin(o.pin_db))
            self.cleanup.push(self.db.stop)
            self.counted.add("database")
        elif self.db_mode == "external":
            log("using the database at DATABASE_URL")
            self.db = pg.Postgres(os.environ["DATABASE_URL"])
            if o.contacts_given:
                self.seed = True
            elif not self.db.has_tables():
                log("its tables are missing: seeding it")
                self.seed = True
            postmaster = self.db.find_postmaster()
            if postmaster and self.accounting.adopt("database", postmaster):
                self.counted.add("database")
                log(f"counting the CPU of the PostgreSQL at DATABASE_URL (postmaster {postmaster})")
            else:
                warn("cannot find the postmaster of DATABASE_URL on this machine: "
                     "no database CPU per request")
        else:
            return
        if self.seed:
            if not os.access(o.binary, os.X_OK):
                # Seeding a --target's database needs our binary.
                subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2)
            self.db.seed(o.binary, o.contacts)
        else:
            o.contacts = self.db.count_contacts()

    def start_server(self):
        o = self.o
        if o.target:
            self.server_url = o.target
            if not wait_http(f"{o.target}/version", 10):
                raise Fatal(f"nothing answers {o.target}/version with 200")
            log(f"target {o.name} at {o.target}")
            if o.target_pid:
                moved = self.accounting.adopt("server", o.target_pid)
                if moved:
                    self.counted.add("server")
                    log(f"counting the CPU of the target's {moved} process(es) (pid {o.target_pid} and its children)")
        else:
            self.server = Server(o.binary, o.server_args, self.db.url if self.db else None,
                                 self.tmp, self.accounting, self.pin(o.pin_server))
            self.cleanup.push(self.server.stop)
            self.server.wait_started()
            self.server_url = self.server.url
            self.counted.add("server")
        if self.db_mode != "none":
            # The server starts even while the database is down (503 until
            # it is up): wait for a database endpoint before measuring.
            if not wait_http(f"{self.server_url}/types", 30):
                raise Fatal(f"{self.server_url}/types does not answer 200: is its database up?")

    def start_nginx(self):
        if not self.uses_ceiling("nginx"):
            return
        status, body = http_get(f"{self.server_url}/version", timeout=10)
        if not 200 <= status < 300:
            raise Fatal(f"GET {self.server_url}/version failed")
        workers = len(os.sched_getaffinity(0))
        if self.o.pin_server:
            workers = int(first_line(["taskset", "-c", self.o.pin_server, "nproc"]) or workers)
        self.nginx = Nginx(body.decode("utf-8", "replace"), self.tmp, workers, self.accounting,
                           self.pin(self.o.pin_server))
        self.cleanup.push(self.nginx.stop)
        self.counted.add("nginx")

    # --- one window --------------------------------------------------------------------

    def window(self, what, measure):
        """Runs measure() as one measured window, again while the noise gate
        says other work took too much of the machine (up to --max-retries).
        Returns (result, {component: ns}, Noise) of the attempt kept."""
        o = self.o
        attempts = []
        for attempt in range(1 + o.max_retries):
            stat_before = noise.read_proc_stat()
            cpu_before = self.accounting.usage_ns()
            start = time.monotonic()
            result = measure()
            seconds = time.monotonic() - start
            cpu_after = self.accounting.usage_ns()
            stat_after = noise.read_proc_stat()
            used_all = cpu.deltas(cpu_before, cpu_after)
            used = {c: ns for c, ns in used_all.items() if c in self.counted}
            busy = noise.busy_in_window(stat_before, stat_after, sum(used.values()), seconds)
            attempts.append((busy, (result, used)))
            if not noise.is_noisy(busy, o.noise_threshold):
                break
            more = attempt < o.max_retries
            warn(f"{what}: other work used {busy.other_cores:.2f} cores during the window "
                 f"(gate {o.noise_threshold:g}){': measuring it again' if more else ''}")
        busy, (result, used) = noise.pick_attempt(attempts, o.noise_threshold)
        kept = results.Noise(other_cores=round(busy.other_cores, 4),
                             ours_cores=round(busy.ours_cores, 4),
                             interrupts_cores=round(busy.interrupts_cores, 4),
                             noisy=noise.is_noisy(busy, o.noise_threshold),
                             attempts=len(attempts))
        return result, used, kept

    def progress(self, run, index, workload, what, seconds):
        prefix = f"run {run}/{self.o.runs}, " if self.o.runs > 1 else ""
        log(f"[{prefix}{index}/{len(self.selected)}] {workload}: {what}, {seconds:g}s "
            f"(about {fmt_duration(self.planned - self.done)} left)")
        self.done += seconds

    # --- the tools ---------------------------------------------------------------------

    def wrk(self, base_url, workload, seconds):
        o = self.o
        argv = self.pin(o.pin_wrk) + loadgen.wrk_argv(
            need_tool("wrk"), workload, base_url, seconds, o.connections, o.threads,
            WRK_TIMEOUT_S, o.contacts)
        argv = self.accounting.wrap("load_generator", argv)
        out = os.path.join(self.tmp, "wrk.txt")
        status, text = loadgen.run_tool(argv, out)
        self.keep_raw(f"wrk-{workload.name}", text)
        if status != 0:
            print(text, file=sys.stderr)
            self.check_server_alive(workload.name)
            raise Fatal(f"wrk failed on {workload.name} against {base_url} (its output is above)")
        try:
            return loadgen.parse_wrk(text)
        except ValueError as error:
            raise Fatal(f"{error}:\n{text}") from error

    def keep_raw(self, name, text):
        """With --raw-dir, every tool's output as it came (numbered in the
        order they ran): to check a figure against its source."""
        if not self.o.raw_dir:
            return
        os.makedirs(self.o.raw_dir, exist_ok=True)
        self.raw_count += 1
        with open(os.path.join(self.o.raw_dir, f"{self.raw_count:03d}-{name}.txt"), "w",
                  encoding="utf-8") as f:
            f.write(text)

    def pgbench_script_file(self, workload, depth=0):
        path = os.path.join(self.tmp, f"pgbench-{workload.name}{'-pipeline' if depth else ''}.sql")
        with open(path, "w", encoding="utf-8") as f:
            f.write(pgbench_script(workload, self.o.contacts, depth))
        return path

    def pgbench(self, workload, seconds, rate=None, log_prefix=None, clients=None, depth=0):
        o = self.o
        script = self.pgbench_script_file(workload, depth)
        clients = clients or o.connections
        argv = self.pin(o.pin_wrk) + loadgen.pgbench_argv(
            need_tool("pgbench"), script, pgbench_variables(workload), seconds,
            clients, min(o.threads, clients), self.db.url, rate=rate, log_prefix=log_prefix)
        argv = self.accounting.wrap("load_generator", argv)
        env = dict(os.environ, PGOPTIONS=workload.pgoptions)
        status, text = loadgen.run_tool(argv, os.path.join(self.tmp, "pgbench.txt"), env=env)
        self.keep_raw(f"pgbench-{workload.name}", text)
        if status != 0:
            print(text, file=sys.stderr)
            warn(f"pgbench failed on {workload.name} (its output is above)")
            return None, script
        try:
            return loadgen.parse_pgbench(text), script
        except ValueError:
            warn(f"no result from pgbench on {workload.name}:\n{text}")
            return None, script

    def check_server_alive(self, during):
        """A server that died under load makes every later number meaningless."""
        if self.server is None or self.server.alive():
            return
        tail = "".join(self.server.log_tail().splitlines(keepends=True)[-20:])
        raise Fatal(f"the server exited (status {self.server.process.poll()}) during {during}; "
                    f"its last lines:\n{tail}")

    # --- measuring ----------------------------------------------------------------------

    def plan_seconds(self):
        o = self.o
        total = 0
        for w in self.selected:
            total += o.warmup + o.duration
            if self.has_ceiling(w):
                total += o.duration
                if w.ceiling == "pgbench" and o.pipeline_depth:
                    total += o.duration
            if w in self.fixed_rate_workloads():
                rates = len(self.rate_labels())
                total += rates * o.fixed_rate_duration * (2 if self.has_ceiling(w) else 1)
        self.planned = total * o.runs

    def measure_workload(self, run, index, w):
        o = self.o
        url = self.server_url + w.path
        if o.warmup > 0:
            self.progress(run, index, w.name, "warm-up", o.warmup)
            self.wrk(self.server_url, w, o.warmup)

        self.progress(run, index, w.name, o.name, o.duration)
        figures, used, kept = self.window(f"{w.name} ({o.name})",
                                          lambda: self.wrk(self.server_url, w, o.duration))
        self.check_server_alive(w.name)
        server = self.record(w, run, "server", "wrk", o.name, url, figures, used, kept, "server")
        self.measurements.append(server)

        if self.has_ceiling(w):
            if w.ceiling == "nginx":
                self.progress(run, index, w.name, "ceiling (nginx)", o.duration)
                figures, used, kept = self.window(f"{w.name} (nginx)",
                                                  lambda: self.wrk(self.nginx.url, w, o.duration))
                self.measurements.append(self.record(w, run, "ceiling", "wrk", "nginx",
                                                     self.nginx.url + w.path, figures, used,
                                                     kept, "nginx"))
            else:
                self.progress(run, index, w.name, "ceiling (pgbench)", o.duration)
                (figures, script), used, kept = self.window(
                    f"{w.name} (pgbench)", lambda: self.pgbench(w, o.duration))
                if figures:
                    m = self.record(w, run, "ceiling", "pgbench", "pgbench", "", figures, used,
                                    kept, None)
                    with open(script, encoding="utf-8") as f:
                        m.script = f.read()
                    m.variables = pgbench_variables(w)
                    m.pgoptions = w.pgoptions
                    self.measurements.append(m)
                if o.pipeline_depth:
                    self.measure_pipeline_ceiling(run, index, w)

        if w in self.fixed_rate_workloads():
            self.measure_fixed_rates(run, index, w, server.rps)

    def pipeline_clients(self):
        """As many connections as the server holds for a statement: its
        shared pool, read from its start line ("pool 4 shared"); 4 (the
        reference's default) for a --target."""
        match = re.search(r"pool (\d+) ", self.server.banner if self.server else "")
        return int(match.group(1)) if match else 4

    def measure_pipeline_ceiling(self, run, index, w):
        """The database's own capacity: pgbench in pipeline mode, the
        server's connection count, --pipeline-depth statements in flight on
        each, the same SQL. One pipeline is one pgbench transaction; its
        statements count as requests."""
        o = self.o
        clients = self.pipeline_clients()
        self.progress(run, index, w.name, f"ceiling (pgbench, {clients} connections pipelined "
                      f"{o.pipeline_depth} deep)", o.duration)
        (figures, script), used, kept = self.window(
            f"{w.name} (pgbench pipelined)",
            lambda: self.pgbench(w, o.duration, clients=clients, depth=o.pipeline_depth))
        if not figures:
            return
        figures = dict(figures, requests=(figures["requests"] or 0) * o.pipeline_depth,
                       rps=figures["rps"] * o.pipeline_depth)
        m = self.record(w, run, "ceiling_pipeline", "pgbench", "pgbench-pipeline", "", figures,
                        used, kept, None)
        with open(script, encoding="utf-8") as f:
            m.script = f.read()
        m.variables = pgbench_variables(w)
        m.pgoptions = w.pgoptions
        self.measurements.append(m)

    def record(self, w, run, role, tool, target, url, figures, used, kept, server_component):
        m = results.Measurement(
            workload=w.name, run=run, role=role, tool=tool, target=target, url=url,
            requests=figures["requests"], duration_s=figures["duration_s"], rps=figures["rps"],
            cpu_ns=used, cpu_method=self.accounting.method, noise=kept,
            cpu_us_per_request=cpu.per_request_us(used, figures["requests"], server_component))
        for key in ("latency_us", "non_2xx", "socket_errors", "bytes", "failed", "latency_avg_us"):
            if key in figures:
                setattr(m, key, figures[key])
        return m

    def rates_for(self, capacity):
        """(label, offered req/s) of one run: fractions of that run's
        measured capacity, then the common rate."""
        out = [(f"{p:g}%", capacity * p / 100.0) for p in self.o.rate_fractions]
        if self.o.common_rate:
            out.append(("common", float(self.o.common_rate)))
        return [(label, max(round(rate), 1)) for label, rate in out]

    def measure_fixed_rates(self, run, index, w, capacity):
        o = self.o
        seconds = o.fixed_rate_duration
        urls_file = None
        if w.name == "contact_random":
            # Every id once, in random order: oha picks one line per request.
            urls_file = os.path.join(self.tmp, "contact-urls.txt")
            if not os.path.exists(urls_file):
                with open(urls_file, "w", encoding="utf-8") as f:
                    for contact in range(1, o.contacts + 1):
                        f.write(f"{self.server_url}{w.path}{contact}\n")
        for label, rate in self.rates_for(capacity):
            self.progress(run, index, w.name, f"{o.name} at {rate}/s ({label}, oha)", seconds)
            argv = loadgen.oha_argv(self.oha, self.server_url + w.path, seconds, rate,
                                    o.connections, urls_file)
            argv = self.accounting.wrap("load_generator", self.pin(o.pin_wrk) + argv)

            def run_oha(argv=argv):
                status, text = loadgen.run_tool(argv, os.path.join(self.tmp, "oha.txt"))
                self.keep_raw(f"oha-{w.name}-{label.rstrip('%')}", text)
                if status != 0:
                    raise Fatal(f"oha failed on {w.name} at {rate}/s:\n{text[-2000:]}")
                return loadgen.parse_oha(text)

            figures, used, kept = self.window(f"{w.name} at {rate}/s", run_oha)
            self.check_server_alive(f"{w.name} at {rate}/s")
            self.fixed.append(results.FixedRate(
                workload=w.name, run=run, system="server", label=label, offered_rps=rate,
                achieved_rps=figures["rps"], requests=figures["requests"],
                errors=figures["errors"] + figures["requests"] - figures["ok"],
                p50_ms=figures["p50_ms"], p90_ms=figures["p90_ms"], p99_ms=figures["p99_ms"],
                p999_ms=figures["p999_ms"], cpu_ns=used, noise=kept,
                cpu_us_per_request=cpu.per_request_us(used, figures["requests"], "server")))

            if not self.has_ceiling(w):
                continue
            self.progress(run, index, w.name, f"pgbench at {rate}/s ({label})", seconds)
            prefix = os.path.join(self.tmp, f"rate-{w.name}-{run}-{label.rstrip('%')}")

            def run_pgbench(rate=rate, prefix=prefix):
                # A noisy attempt's log must not add to the next one's.
                for path in glob.glob(prefix + ".*"):
                    os.remove(path)
                figures, _ = self.pgbench(w, seconds, rate=rate, log_prefix=prefix)
                return figures

            figures, used, kept = self.window(f"{w.name} pgbench at {rate}/s", run_pgbench)
            if not figures:
                continue
            lines = []
            for path in glob.glob(prefix + ".*"):
                with open(path, encoding="utf-8") as f:
                    lines.extend(f.readlines())
                os.remove(path)
            self.keep_raw(f"pgbench-log-{w.name}-{label.rstrip('%')}", "".join(lines))
            latencies = loadgen.parse_pgbench_log(lines)
            self.fixed.append(results.FixedRate(
                workload=w.name, run=run, system="pgbench", label=label, offered_rps=rate,
                achieved_rps=figures["rps"], requests=len(latencies), errors=figures["failed"],
                cpu_ns=used, noise=kept,
                cpu_us_per_request=cpu.per_request_us(used, len(latencies), None),
                **loadgen.latency_percentiles_ms(latencies)))

    def check_idle(self):
        """Other work skews every number: how busy the CPUs are just before
        the run starts (everything of ours is idle then)."""
        before = noise.read_proc_stat()
        time.sleep(1)
        after = noise.read_proc_stat()
        total = sum(after.values()) - sum(before.values())
        idle = (after["idle"] + after["iowait"]) - (before["idle"] + before["iowait"])
        busy = round(100.0 * (total - idle) / total, 1) if total else 0.0
        with open("/proc/loadavg", encoding="ascii") as f:
            loadavg = " ".join(f.read().split()[:3])
        self.meta["conditions"] = {"cpu_busy_percent_before": busy, "loadavg_before": loadavg}
        if busy > 10:
            warn(f"the CPUs were {busy}% busy before the run, with nothing of ours running: "
                 "expect noisy numbers")

    def measure_all(self):
        self.plan_seconds()
        log(f"measuring {len(self.selected)} workload(s) x {self.o.runs} run(s), interleaved: "
            f"about {fmt_duration(self.planned)}")
        for run in range(1, self.o.runs + 1):
            for index, w in enumerate(self.selected, start=1):
                self.measure_workload(run, index, w)

    # --- reporting ----------------------------------------------------------------------

    def collect_meta(self, commit, dirty):
        o = self.o
        meta = self.meta
        meta.update({
            "name": o.name, "label": o.label or "",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": commit, "dirty": dirty, "command": self.command_line,
            "machine": machine_info(), "versions": {}})
        meta["params"] = {
            "duration_s": o.duration, "warmup_s": o.warmup, "connections": o.connections,
            "threads": o.threads, "contacts": o.contacts, "runs": o.runs, "quick": o.quick,
            "ceilings": o.ceilings, "pipeline_depth": PIPELINE_DEPTH, "transport": o.transport,
            "wrk_timeout_s": WRK_TIMEOUT_S, "workloads": [w.name for w in self.selected],
            "target": o.target or "", "database": self.db_mode, "seeded": self.seed,
            "server_args": o.server_args_text,
            "pin": {"server": o.pin_server or "", "db": o.pin_db or "", "wrk": o.pin_wrk or ""},
            "noise_threshold_cores": o.noise_threshold, "max_retries": o.max_retries,
            "fixed_rate": o.fixed_rate, "fixed_rate_duration_s": o.fixed_rate_duration,
            "rate_fractions_pct": o.rate_fractions, "common_rate": o.common_rate,
            "pipeline_ceiling_depth": o.pipeline_depth,
            "pipeline_ceiling_clients": self.pipeline_clients(),
        }
        env = {var: os.environ[var] for var in SERVER_ENV if os.environ.get(var)}
        if env:
            meta["params"]["server_env"] = env
        meta["cpu"] = {"method": self.accounting.method, "components": sorted(self.counted),
                       "note": {"cgroup-v1": "cpuacct.usage of a cgroup per component",
                                "cgroup-v2": "cpu.stat usage_usec of a cgroup per component",
                                "proc": "/proc schedstat of each process tree"}
                       [self.accounting.method]}
        versions = meta["versions"]
        versions["wrk"] = first_line([need_tool("wrk"), "-v"])
        if self.uses_ceiling("nginx"):
            versions["nginx"] = first_line([need_tool("nginx"), "-v"])
        if self.oha:
            versions["oha"] = first_line([self.oha, "--version"])
        if self.db_mode != "none":
            versions["postgresql"] = self.db.value("SELECT version()")
            if self.uses_ceiling("pgbench"):
                versions["pgbench"] = first_line([need_tool("pgbench"), "--version"])
            meta["postgresql"] = {"settings": self.db.settings()}
        if not o.target:
            versions["rustc"] = first_line(["rustc", "--version"])
            versions["server"] = first_line([o.binary, "--version"])
            digest = subprocess.run(["sha256sum", o.binary], capture_output=True, text=True,
                                    check=False).stdout.split()
            meta["server"] = {"binary_sha256": digest[0] if digest else "",
                              "banner": self.server.banner}

    def finish_server(self):
        """Peak RSS and how the server stopped: at the very end of the run."""
        o = self.o
        server_meta = self.meta.setdefault("server", {})
        if o.target:
            if o.target_pid:
                rss = peak_rss_kib(o.target_pid)
                if rss is not None:
                    server_meta["peak_rss_kib"] = rss
            return
        rss = self.server.peak_rss_kib()
        if rss is not None:
            server_meta["peak_rss_kib"] = rss
        extra = self.server.log_tail()
        if extra:
            tail = extra.splitlines()
            warn("the server wrote to stderr during the run (last lines):")
            print("\n".join(tail[-10:]), file=sys.stderr)
            server_meta["stderr_during_run"] = "\n".join(tail[-50:])
        self.cleanup.remove(self.server.stop)
        status = self.server.stop()
        server_meta["exit_status"] = status
        if status != 0:
            warn(f"the server exited with status {status} on SIGTERM (docs/CLI.md: 0, a graceful stop)")

    def workload_infos(self):
        infos = []
        for w in self.selected:
            info = {"name": w.name, "path": w.path,
                    "ceiling": w.ceiling if self.has_ceiling(w) else "none"}
            if not self.has_ceiling(w) and w.ceiling != "none":
                info["ceiling_skipped"] = (f"{w.ceiling}: --no-ceilings" if not self.o.ceilings else
                                           f"{w.ceiling}: no database (--target without DATABASE_URL)")
            infos.append(info)
        return infos

    def write_results(self, commit, dirty):
        o = self.o
        path = o.out or result_path(o.name, o.label, commit, dirty)
        doc = results.build_document(self.meta, self.workload_infos(), self.measurements, self.fixed)
        results.write_json(doc, path)
        print(report.markdown(doc, path), flush=True)
        if o.charts:
            draw_charts(doc, path)

    # --- the whole run -------------------------------------------------------------------

    def run(self):
        self.plan()
        self.check_tools()
        self.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.cleanup.push(lambda: subprocess.call(["rm", "-rf", self.tmp]))
        self.accounting = cpu.Accounting(force_method=self.o.cpu_method)
        self.cleanup.push(self.accounting.close)
        self.counted.add("load_generator")
        try:
            commit, dirty = git_state()  # before building: the commit that is built
            self.build()
            self.setup_database()
            self.start_server()
            self.start_nginx()
            self.collect_meta(commit, dirty)
            self.check_idle()
            self.measure_all()
            self.finish_server()
            self.write_results(commit, dirty)
        finally:
            self.cleanup.run()


def draw_charts(doc, json_path):
    """The charts beside the JSON; skipped with a note without matplotlib."""
    try:
        from harness import charts
    except ImportError:
        log("no charts: matplotlib is not installed (pip install matplotlib, or use peers/.venv)")
        return
    for path in charts.draw_all(doc, json_path[:-len(".json")] if json_path.endswith(".json") else json_path):
        log(f"chart: {os.path.relpath(path)}")


def machine_info():
    def read(path):
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError:
            return ""

    model = re.search(r"^model name\s*:\s*(.*)$", read("/proc/cpuinfo"), re.M)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]*)', read("/etc/os-release"), re.M)
    return {
        "cpu_model": model.group(1) if model else platform.processor() or None,
        "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "memory_bytes": int(memory.group(1)) * 1024 if memory else None,
        "os": os_name.group(1) if os_name else None, "arch": platform.machine(),
    }
