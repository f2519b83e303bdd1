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
from harness.tools import (
    ROOT,
    Cleanup,
    Fatal,
    ensure_tools,
    first_line,
    fmt_duration,
    git_state,
    http_get,
    log,
    need_tool,
    result_path,
    wait_http,
    warn,
)
from harness.workloads import PIPELINE_DEPTH, pgbench_script, pgbench_variables
from harness.workloads import select as select_workloads

# The server's knobs that come from the environment, recorded when set.
SERVER_ENV = (
    "RUNTIME",
    "POOL_SIZE",
    "POOL_MODE",
    "WORKER_THREADS",
    "POOL_TIMEOUT_MS",
    "STATEMENT_TIMEOUT_MS",
    "HEADER_READ_TIMEOUT_S",
    "DRAIN_TIMEOUT_S",
)
# wrk gives up on a response after this long and counts a timeout.
WRK_TIMEOUT_S = 5


class Run:
    """The state of one run; run() drives it."""

    def __init__(self, options, command_line):
        self.options = options
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
        options = self.options
        try:
            self.selected = select_workloads(options.only)
        except ValueError as error:
            raise Fatal(str(error)) from error
        if os.environ.get("DATABASE_URL"):
            self.db_mode = "external"
            if options.pin_db:
                warn(
                    "--pin-db does nothing with DATABASE_URL: that PostgreSQL is not ours to start"
                )
        elif options.target:
            self.db_mode = "none"
            if self.uses_ceiling("pgbench"):
                warn(
                    "--target without DATABASE_URL: no database to run pgbench on, so no database ceilings"
                )
        else:
            self.db_mode = "throwaway"
            self.seed = True
        if options.target and options.pin_server:
            warn("--pin-server pins only nginx with --target: pin the target yourself")

    def uses_ceiling(self, kind):
        return self.options.ceilings and any(workload.ceiling == kind for workload in self.selected)

    def has_ceiling(self, workload):
        if not self.options.ceilings:
            return False
        if workload.ceiling == "nginx":
            return True
        return workload.ceiling == "pgbench" and self.db_mode != "none"

    def fixed_rate_workloads(self):
        """The database workloads measured at fixed rates in this run."""
        if not self.options.fixed_rate or not self.rate_labels():
            return []
        return [workload for workload in self.selected if workload.uses_database]

    def rate_labels(self):
        labels = [f"{percent:g}%" for percent in self.options.rate_fractions]
        return labels + (["common"] if self.options.common_rate else [])

    def check_tools(self):
        options = self.options
        tools = ["wrk"]
        if not options.target:
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
        if options.pin_server or options.pin_db or options.pin_wrk:
            tools.append("taskset")
        ensure_tools(tools)
        for cpus in (options.pin_server, options.pin_db, options.pin_wrk):
            if (
                cpus
                and subprocess.call(["taskset", "-c", cpus, "true"], stderr=subprocess.DEVNULL) != 0
            ):
                raise Fatal(
                    f"invalid CPU list '{cpus}' (try 0, 1 or 0-1; this machine has "
                    f"{os.cpu_count()} CPUs)"
                )
        if self.fixed_rate_workloads():
            self.oha = loadgen.ensure_oha()

    def pin(self, cpus):
        return ["taskset", "-c", cpus] if cpus else []

    # --- setting up ------------------------------------------------------------------

    def build(self):
        options = self.options
        if options.target:
            return
        if options.build:
            log("building the release binary (cargo build --release)")
            if subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2) != 0:
                raise Fatal("cargo build --release failed (see above)")
        elif not os.access(options.binary, os.X_OK):
            raise Fatal(f"--no-build, but there is no {options.binary}: run cargo build --release")

    def setup_database(self):
        options = self.options
        if self.db_mode == "throwaway":
            # Room for pgbench's clients, the server's pool(s) and psql.
            self.db = pg.Postgres.throwaway(
                self.tmp,
                options.connections + 200,
                options.transport,
                self.accounting,
                self.pin(options.pin_db),
            )
            self.cleanup.push(self.db.stop)
            self.counted.add("database")
        elif self.db_mode == "external":
            log("using the database at DATABASE_URL")
            self.db = pg.Postgres(os.environ["DATABASE_URL"])
            if options.contacts_given:
                self.seed = True
            elif not self.db.has_tables():
                log("its tables are missing: seeding it")
                self.seed = True
            postmaster = self.db.find_postmaster()
            if postmaster and self.accounting.adopt("database", postmaster):
                self.counted.add("database")
                log(f"counting the CPU of the PostgreSQL at DATABASE_URL (postmaster {postmaster})")
            else:
                warn(
                    "cannot find the postmaster of DATABASE_URL on this machine: "
                    "no database CPU per request"
                )
        else:
            return
        if self.seed:
            if not os.access(options.binary, os.X_OK):
                # Seeding a --target's database needs our binary.
                subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2)
            self.db.seed(options.binary, options.contacts)
        else:
            options.contacts = self.db.count_contacts()

    def start_server(self):
        options = self.options
        if options.target:
            self.server_url = options.target
            if not wait_http(f"{options.target}/version", 10):
                raise Fatal(f"nothing answers {options.target}/version with 200")
            log(f"target {options.name} at {options.target}")
            if options.target_pid:
                moved = self.accounting.adopt("server", options.target_pid)
                if moved:
                    self.counted.add("server")
                    log(
                        f"counting the CPU of the target's {moved} process(es) (pid {options.target_pid} and its children)"
                    )
        else:
            self.server = Server(
                options.binary,
                options.server_args,
                self.db.url if self.db else None,
                self.tmp,
                self.accounting,
                self.pin(options.pin_server),
            )
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
        if self.options.pin_server:
            workers = int(
                first_line(["taskset", "-c", self.options.pin_server, "nproc"]) or workers
            )
        self.nginx = Nginx(
            body.decode("utf-8", "replace"),
            self.tmp,
            workers,
            self.accounting,
            self.pin(self.options.pin_server),
        )
        self.cleanup.push(self.nginx.stop)
        self.counted.add("nginx")

    # --- one window --------------------------------------------------------------------

    def window(self, what, measure):
        """Runs measure() as one measured window, again while the noise gate
        says other work took too much of the machine (up to --max-retries).
        Returns (result, {component: ns}, Noise) of the attempt kept."""
        options = self.options
        attempts = []
        for attempt in range(1 + options.max_retries):
            stat_before = noise.read_proc_stat()
            cpu_before = self.accounting.usage_ns()
            start = time.monotonic()
            result = measure()
            seconds = time.monotonic() - start
            if attempt > 0:
                self.done += seconds  # a retry: planned when it was decided, below
            cpu_after = self.accounting.usage_ns()
            stat_after = noise.read_proc_stat()
            used_all = cpu.deltas(cpu_before, cpu_after)
            used = {
                component: ns for component, ns in used_all.items() if component in self.counted
            }
            busy = noise.busy_in_window(stat_before, stat_after, sum(used.values()), seconds)
            attempts.append((busy, (result, used)))
            if not noise.is_noisy(busy, options.noise_threshold):
                break
            more = attempt < options.max_retries
            if more:
                # The time left in the progress lines grows by the retry.
                self.planned += seconds
            warn(
                f"{what}: other work used {busy.other_cores:.2f} cores during the window "
                f"(gate {options.noise_threshold:g}){': measuring it again' if more else ''}"
            )
        busy, (result, used) = noise.pick_attempt(attempts, options.noise_threshold)
        kept = results.Noise(
            other_cores=round(busy.other_cores, 4),
            ours_cores=round(busy.ours_cores, 4),
            interrupts_cores=round(busy.interrupts_cores, 4),
            noisy=noise.is_noisy(busy, options.noise_threshold),
            attempts=len(attempts),
        )
        return result, used, kept

    def progress(self, run, index, workload, what, seconds):
        prefix = f"run {run}/{self.options.runs}, " if self.options.runs > 1 else ""
        log(
            f"[{prefix}{index}/{len(self.selected)}] {workload}: {what}, {seconds:g}s "
            f"(about {fmt_duration(self.planned - self.done)} left)"
        )
        self.done += seconds

    # --- the tools ---------------------------------------------------------------------

    def wrk(self, base_url, workload, seconds):
        options = self.options
        argv = self.pin(options.pin_wrk) + loadgen.wrk_argv(
            need_tool("wrk"),
            workload,
            base_url,
            seconds,
            options.connections,
            options.threads,
            WRK_TIMEOUT_S,
            options.contacts,
        )
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
        if not self.options.raw_dir:
            return
        os.makedirs(self.options.raw_dir, exist_ok=True)
        self.raw_count += 1
        with open(
            os.path.join(self.options.raw_dir, f"{self.raw_count:03d}-{name}.txt"),
            "w",
            encoding="utf-8",
        ) as file:
            file.write(text)

    def pgbench_script_file(self, workload, depth=0):
        path = os.path.join(self.tmp, f"pgbench-{workload.name}{'-pipeline' if depth else ''}.sql")
        with open(path, "w", encoding="utf-8") as file:
            file.write(pgbench_script(workload, self.options.contacts, depth))
        return path

    def pgbench(self, workload, seconds, rate=None, log_prefix=None, clients=None, depth=0):
        options = self.options
        script = self.pgbench_script_file(workload, depth)
        clients = clients or options.connections
        argv = self.pin(options.pin_wrk) + loadgen.pgbench_argv(
            need_tool("pgbench"),
            script,
            pgbench_variables(workload),
            seconds,
            clients,
            min(options.threads, clients),
            self.db.url,
            rate=rate,
            log_prefix=log_prefix,
        )
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
        raise Fatal(
            f"the server exited (status {self.server.process.poll()}) during {during}; "
            f"its last lines:\n{tail}"
        )

    # --- measuring ----------------------------------------------------------------------

    def plan_seconds(self):
        options = self.options
        total = 0
        for workload in self.selected:
            total += options.warmup + options.duration
            if self.has_ceiling(workload):
                total += options.duration
                if workload.ceiling == "pgbench" and options.pipeline_depth:
                    total += options.duration
            if workload in self.fixed_rate_workloads():
                rates = len(self.rate_labels())
                total += (
                    rates * options.fixed_rate_duration * (2 if self.has_ceiling(workload) else 1)
                )
        self.planned = total * options.runs

    def measure_workload(self, run, index, workload):
        options = self.options
        url = self.server_url + workload.path
        if options.warmup > 0:
            self.progress(run, index, workload.name, "warm-up", options.warmup)
            self.wrk(self.server_url, workload, options.warmup)

        self.progress(run, index, workload.name, options.name, options.duration)
        figures, used, kept = self.window(
            f"{workload.name} ({options.name})",
            lambda: self.wrk(self.server_url, workload, options.duration),
        )
        self.check_server_alive(workload.name)
        server = self.record(
            workload, run, "server", "wrk", options.name, url, figures, used, kept, "server"
        )
        self.measurements.append(server)

        if self.has_ceiling(workload):
            if workload.ceiling == "nginx":
                self.progress(run, index, workload.name, "ceiling (nginx)", options.duration)
                figures, used, kept = self.window(
                    f"{workload.name} (nginx)",
                    lambda: self.wrk(self.nginx.url, workload, options.duration),
                )
                self.measurements.append(
                    self.record(
                        workload,
                        run,
                        "ceiling",
                        "wrk",
                        "nginx",
                        self.nginx.url + workload.path,
                        figures,
                        used,
                        kept,
                        "nginx",
                    )
                )
            else:
                self.progress(run, index, workload.name, "ceiling (pgbench)", options.duration)
                (figures, script), used, kept = self.window(
                    f"{workload.name} (pgbench)", lambda: self.pgbench(workload, options.duration)
                )
                if figures:
                    self.record_pgbench(
                        workload, run, "ceiling", "pgbench", figures, script, used, kept
                    )
                if options.pipeline_depth:
                    self.measure_pipeline_ceiling(run, index, workload)

        if workload in self.fixed_rate_workloads():
            self.measure_fixed_rates(run, index, workload, server.rps)

    def pipeline_clients(self):
        """As many connections as the server holds for a statement: its
        shared pool, read from its start line ("pool 4 shared"); 4 (the
        reference's default) for a --target."""
        match = re.search(r"pool (\d+) ", self.server.banner if self.server else "")
        return int(match.group(1)) if match else 4

    def measure_pipeline_ceiling(self, run, index, workload):
        """The database's own capacity: pgbench in pipeline mode, the
        server's connection count, --pipeline-depth statements in flight on
        each, the same SQL. One pipeline is one pgbench transaction; its
        statements count as requests."""
        options = self.options
        clients = self.pipeline_clients()
        self.progress(
            run,
            index,
            workload.name,
            f"ceiling (pgbench, {clients} connections pipelined {options.pipeline_depth} deep)",
            options.duration,
        )
        (figures, script), used, kept = self.window(
            f"{workload.name} (pgbench pipelined)",
            lambda: self.pgbench(
                workload, options.duration, clients=clients, depth=options.pipeline_depth
            ),
        )
        if not figures:
            return
        figures = dict(
            figures,
            requests=(figures["requests"] or 0) * options.pipeline_depth,
            rps=figures["rps"] * options.pipeline_depth,
        )
        self.record_pgbench(
            workload, run, "ceiling_pipeline", "pgbench-pipeline", figures, script, used, kept
        )

    def record_pgbench(self, workload, run, role, target, figures, script, used, kept):
        """Records a pgbench window with the script, variables and session
        options it ran with."""
        measurement = self.record(
            workload, run, role, "pgbench", target, "", figures, used, kept, None
        )
        with open(script, encoding="utf-8") as file:
            measurement.script = file.read()
        measurement.variables = pgbench_variables(workload)
        measurement.pgoptions = workload.pgoptions
        self.measurements.append(measurement)

    def record(self, workload, run, role, tool, target, url, figures, used, kept, server_component):
        measurement = results.Measurement(
            workload=workload.name,
            run=run,
            role=role,
            tool=tool,
            target=target,
            url=url,
            requests=figures["requests"],
            duration_s=figures["duration_s"],
            rps=figures["rps"],
            cpu_ns=used,
            cpu_method=self.accounting.method,
            noise=kept,
            cpu_us_per_request=cpu.per_request_us(used, figures["requests"], server_component),
        )
        for key in ("latency_us", "non_2xx", "socket_errors", "bytes", "failed", "latency_avg_us"):
            if key in figures:
                setattr(measurement, key, figures[key])
        return measurement

    def rates_for(self, capacity):
        """(label, offered req/s) of one run: fractions of that run's
        measured capacity, then the common rate."""
        out = [
            (f"{percent:g}%", capacity * percent / 100.0) for percent in self.options.rate_fractions
        ]
        if self.options.common_rate:
            out.append(("common", float(self.options.common_rate)))
        return [(label, max(round(rate), 1)) for label, rate in out]

    def measure_fixed_rates(self, run, index, workload, capacity):
        options = self.options
        seconds = options.fixed_rate_duration
        urls_file = None
        if workload.name == "contact_random":
            # Every id once: oha picks a line at random for each request.
            # One file per server address (compare.sh measures several).
            port = self.server_url.rsplit(":", 1)[-1]
            urls_file = os.path.join(self.tmp, f"contact-urls-{port}.txt")
            if not os.path.exists(urls_file):
                with open(urls_file, "w", encoding="utf-8") as file:
                    for contact in range(1, options.contacts + 1):
                        file.write(f"{self.server_url}{workload.path}{contact}\n")
        for label, rate in self.rates_for(capacity):
            self.progress(
                run, index, workload.name, f"{options.name} at {rate}/s ({label}, oha)", seconds
            )
            argv = loadgen.oha_argv(
                self.oha,
                self.server_url + workload.path,
                seconds,
                rate,
                options.connections,
                urls_file,
            )
            argv = self.accounting.wrap("load_generator", self.pin(options.pin_wrk) + argv)

            def run_oha(argv=argv, label=label, rate=rate):
                status, text = loadgen.run_tool(argv, os.path.join(self.tmp, "oha.txt"))
                self.keep_raw(f"oha-{workload.name}-{label.rstrip('%')}", text)
                if status != 0:
                    raise Fatal(f"oha failed on {workload.name} at {rate}/s:\n{text[-2000:]}")
                return loadgen.parse_oha(text)

            figures, used, kept = self.window(f"{workload.name} at {rate}/s", run_oha)
            self.check_server_alive(f"{workload.name} at {rate}/s")
            self.fixed.append(
                oha_record(
                    workload.name, run, label, rate, figures, used, kept, figures["requests"]
                )
            )

            if not self.has_ceiling(workload):
                continue
            self.progress(run, index, workload.name, f"pgbench at {rate}/s ({label})", seconds)
            prefix = os.path.join(self.tmp, f"rate-{workload.name}-{run}-{label.rstrip('%')}")

            def run_pgbench(rate=rate, prefix=prefix):
                # A noisy attempt's log must not add to the next one's.
                for path in glob.glob(prefix + ".*"):
                    os.remove(path)
                figures, _ = self.pgbench(workload, seconds, rate=rate, log_prefix=prefix)
                return figures

            figures, used, kept = self.window(f"{workload.name} pgbench at {rate}/s", run_pgbench)
            if not figures:
                continue
            lines = []
            for path in glob.glob(prefix + ".*"):
                with open(path, encoding="utf-8") as file:
                    lines.extend(file.readlines())
                os.remove(path)
            self.keep_raw(f"pgbench-log-{workload.name}-{label.rstrip('%')}", "".join(lines))
            latencies = loadgen.parse_pgbench_log(lines)
            self.fixed.append(
                results.FixedRate(
                    workload=workload.name,
                    run=run,
                    system="pgbench",
                    label=label,
                    offered_rps=rate,
                    achieved_rps=figures["rps"],
                    requests=len(latencies),
                    errors=figures["failed"],
                    cpu_ns=used,
                    noise=kept,
                    cpu_us_per_request=cpu.per_request_us(used, len(latencies), None),
                    **loadgen.latency_percentiles_ms(latencies),
                )
            )

    def check_idle(self):
        """Other work skews every number: how busy the CPUs are just before
        the run starts (everything of ours is idle then)."""
        before = noise.read_proc_stat()
        time.sleep(1)
        after = noise.read_proc_stat()
        total = sum(after.values()) - sum(before.values())
        idle = (after["idle"] + after["iowait"]) - (before["idle"] + before["iowait"])
        busy = round(100.0 * (total - idle) / total, 1) if total else 0.0
        with open("/proc/loadavg", encoding="ascii") as file:
            loadavg = " ".join(file.read().split()[:3])
        self.meta["conditions"] = {"cpu_busy_percent_before": busy, "loadavg_before": loadavg}
        if busy > 10:
            warn(
                f"the CPUs were {busy}% busy before the run, with nothing of ours running: "
                "expect noisy numbers"
            )

    def measure_all(self):
        self.plan_seconds()
        log(
            f"measuring {len(self.selected)} workload(s) x {self.options.runs} run(s), interleaved: "
            f"about {fmt_duration(self.planned)}"
        )
        for run in range(1, self.options.runs + 1):
            for index, workload in enumerate(self.selected, start=1):
                self.measure_workload(run, index, workload)

    # --- reporting ----------------------------------------------------------------------

    def collect_meta(self, commit, dirty):
        options = self.options
        meta = self.meta
        meta.update(
            {
                "name": options.name,
                "label": options.label or "",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "commit": commit,
                "dirty": dirty,
                "command": self.command_line,
                "machine": machine_info(),
                "versions": {},
            }
        )
        meta["params"] = {
            "duration_s": options.duration,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "threads": options.threads,
            "contacts": options.contacts,
            "runs": options.runs,
            "quick": options.quick,
            "ceilings": options.ceilings,
            "pipeline_depth": PIPELINE_DEPTH,
            "transport": options.transport,
            "wrk_timeout_s": WRK_TIMEOUT_S,
            "workloads": [workload.name for workload in self.selected],
            "target": options.target or "",
            "database": self.db_mode,
            "seeded": self.seed,
            "server_args": options.server_args_text,
            "pin": {
                "server": options.pin_server or "",
                "db": options.pin_db or "",
                "wrk": options.pin_wrk or "",
            },
            "noise_threshold_cores": options.noise_threshold,
            "max_retries": options.max_retries,
            "fixed_rate": options.fixed_rate,
            "fixed_rate_duration_s": options.fixed_rate_duration,
            "rate_fractions_pct": options.rate_fractions,
            "common_rate": options.common_rate,
            "pipeline_ceiling_depth": options.pipeline_depth,
            "pipeline_ceiling_clients": self.pipeline_clients(),
        }
        env = {var: os.environ[var] for var in SERVER_ENV if os.environ.get(var)}
        if env:
            meta["params"]["server_env"] = env
        meta["cpu"] = {
            "method": self.accounting.method,
            "components": sorted(self.counted),
            "note": {
                "cgroup-v1": "cpuacct.usage of a cgroup per component",
                "cgroup-v2": "cpu.stat usage_usec of a cgroup per component",
                "proc": "/proc schedstat of each process tree",
            }[self.accounting.method],
        }
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
        if not options.target:
            versions["rustc"] = first_line(["rustc", "--version"])
            versions["server"] = first_line([options.binary, "--version"])
            digest = subprocess.run(
                ["sha256sum", options.binary], capture_output=True, text=True, check=False
            ).stdout.split()
            meta["server"] = {
                "binary_sha256": digest[0] if digest else "",
                "banner": self.server.banner,
            }

    def finish_server(self):
        """Peak RSS and how the server stopped: at the very end of the run."""
        options = self.options
        server_meta = self.meta.setdefault("server", {})
        if options.target:
            if options.target_pid:
                rss = peak_rss_kib(options.target_pid)
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
            warn(
                f"the server exited with status {status} on SIGTERM (docs/CLI.md: 0, a graceful stop)"
            )

    def workload_infos(self):
        infos = []
        for workload in self.selected:
            info = {
                "name": workload.name,
                "path": workload.path,
                "ceiling": workload.ceiling if self.has_ceiling(workload) else "none",
            }
            if not self.has_ceiling(workload) and workload.ceiling != "none":
                info["ceiling_skipped"] = (
                    f"{workload.ceiling}: --no-ceilings"
                    if not self.options.ceilings
                    else f"{workload.ceiling}: no database (--target without DATABASE_URL)"
                )
            infos.append(info)
        return infos

    def write_results(self, commit, dirty):
        options = self.options
        path = options.out or result_path(options.name, options.label, commit, dirty)
        doc = results.build_document(
            self.meta, self.workload_infos(), self.measurements, self.fixed
        )
        results.write_json(doc, path)
        print(report.markdown(doc, path), flush=True)
        if options.charts:
            draw_charts(doc, path)

    # --- the whole run -------------------------------------------------------------------

    def run(self):
        self.plan()
        self.check_tools()
        self.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.cleanup.push(lambda: subprocess.call(["rm", "-rf", self.tmp]))
        self.accounting = cpu.Accounting(force_method=self.options.cpu_method)
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


def oha_record(workload, run, label, offered_rps, figures, used, kept, cpu_requests):
    """A FixedRate of oha against the server (loadgen.parse_oha's figures);
    its CPU per request is the window's CPU over `cpu_requests`."""
    return results.FixedRate(
        workload=workload,
        run=run,
        system="server",
        label=label,
        offered_rps=offered_rps,
        achieved_rps=figures["rps"],
        requests=figures["requests"],
        errors=figures["errors"] + figures["requests"] - figures["ok"],
        p50_ms=figures["p50_ms"],
        p90_ms=figures["p90_ms"],
        p99_ms=figures["p99_ms"],
        p999_ms=figures["p999_ms"],
        cpu_ns=used,
        noise=kept,
        cpu_us_per_request=cpu.per_request_us(used, cpu_requests, "server"),
    )


def draw_charts(doc, json_path):
    """The charts beside the JSON; skipped with a note without matplotlib."""
    try:
        if doc.get("kind") == "compare":
            from harness import study_charts as charts
        else:
            from harness import charts
    except ImportError:
        log("no charts: matplotlib is not installed (pip install matplotlib, or use peers/.venv)")
        return
    for path in charts.draw_all(
        doc, json_path[: -len(".json")] if json_path.endswith(".json") else json_path
    ):
        log(f"chart: {os.path.relpath(path)}")


def machine_info():
    def read(path):
        try:
            with open(path, encoding="utf-8") as file:
                return file.read()
        except OSError:
            return ""

    model = re.search(r"^model name\s*:\s*(.*)$", read("/proc/cpuinfo"), re.M)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]*)', read("/etc/os-release"), re.M)
    return {
        "cpu_model": model.group(1) if model else platform.processor() or None,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "memory_bytes": int(memory.group(1)) * 1024 if memory else None,
        "os": os_name.group(1) if os_name else None,
        "arch": platform.machine(),
    }
