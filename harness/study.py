"""The comparison (`scripts/compare.sh`, `python3 -m harness compare`): the
reference and every variant of peers/ on one throwaway PostgreSQL, measured
the way `run.sh` measures one server (the same windows, noise gate, CPU per
component and fixed rates: runner.Run does the measuring), in rounds: round 1
measures every system, then round 2 every system again, ..., so that a slow
drift of the machine falls on every system alike. Each system is started
afresh in each round and stopped after it, with nothing left behind.

Beside run.sh's figures, for each system: the peak of PostgreSQL's client
backends while it ran, the same workloads at other connection counts, /types
at a fixed rate with /fibonacci/25 at a fixed rate beside it, and (with
--pooler) the same system behind PgBouncer in transaction mode. For
fastapi_asyncpg, /contacts/for split into its parts. docs/benchmarks.md says
why each step is there; docs/RESULTS_SCHEMA.md describes the file."""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from harness import cpu, loadgen, pg, results, systems
from harness.runner import Run, draw_charts, machine_info, oha_record
from harness.systems import BackendSampler, PgBouncer, StartFailed, SystemProcess, Unavailable
from harness.tools import (
    ROOT,
    Cleanup,
    Fatal,
    ensure_tools,
    first_line,
    fmt_duration,
    git_state,
    log,
    need_tool,
    warn,
)
from harness.workloads import BY_NAME, Workload
from harness.workloads import select as select_workloads

# The workloads measured again at other connection counts (--concurrency).
CONCURRENCY_WORKLOADS = ("types", "fetch100")
# /contacts/for split for asyncpg: the route, what it isolates.
SPLIT_ROUTES = (
    ("fetch", "/contacts/fetch", "fetch, no transaction"),
    ("fetch_in_tx", "/experiments/fetch_in_tx", "fetch inside a transaction"),
    (
        "cursor_prefetch",
        "/experiments/cursor_prefetch",
        "cursor, prefetch = page size + 1: one Execute",
    ),
    ("for", "/contacts/for", "cursor inside a transaction (the study's /contacts/for)"),
)
SPLIT_LIMITS = (10, 100, 200)
SPLIT_SYSTEM = "fastapi_asyncpg"


class Variant:
    """A system as measured: directly on PostgreSQL, or behind the pooler.
    Collects its records over the rounds."""

    def __init__(self, system, pooler):
        self.system = system
        self.pooler = pooler
        self.name = system.name + (f"+{pooler}" if pooler else "")
        self.status = "measured"
        self.reason = ""
        self.measurements = []
        self.fixed = []
        self.rounds = []
        self.conformance = None

    @property
    def skipped(self):
        return self.status != "measured"


class Study:
    def __init__(self, options, command_line):
        self.options = options
        self.command_line = command_line
        self.cleanup = Cleanup()
        self.workloads = []
        self.variants = []
        self.ceilings = []  # Measurement records of the ceilings, every round
        self.ceiling_fixed = []  # pgbench --rate records
        self.engine = None
        self.db = None
        self.pooler = None
        self.tmp = None
        self.accounting = None
        self.meta = {}
        self.sampler = None  # the BackendSampler of the system being measured

    # --- planning ---------------------------------------------------------------

    def plan(self):
        options = self.options
        try:
            self.workloads = select_workloads(options.only)
            chosen = systems.select(options.impls)
        except ValueError as error:
            raise Fatal(str(error)) from error
        poolers = {"none": [None], "pgbouncer": ["pgbouncer"], "both": [None, "pgbouncer"]}
        for system in chosen:
            for pooler in poolers[options.pooler]:
                self.variants.append(Variant(system, pooler))

    def selected(self, name):
        return any(workload.name == name for workload in self.workloads)

    def seconds_per_variant(self):
        """What one system takes in one round, for the progress lines."""
        options = self.options
        engine = self.engine
        total = 15  # start, settle, stop
        for workload in self.workloads:
            total += options.warmup + options.duration
            if workload in engine.fixed_rate_workloads():
                total += len(engine.rate_labels()) * options.fixed_rate_duration
        total += self.concurrency_windows() * (options.warmup + options.duration)
        if self.mixed_enabled():
            total += options.fixed_rate_duration
        return total

    def concurrency_windows(self):
        return len(self.options.concurrency) * sum(
            1 for name in CONCURRENCY_WORKLOADS if self.selected(name)
        )

    def mixed_enabled(self):
        options = self.options
        return bool(options.mixed_fib_rate and options.fixed_rate and options.common_rate)

    # --- setting up ---------------------------------------------------------------

    def check_tools(self):
        tools = ["wrk", "initdb", "pg_ctl", "postgres", "psql", "pgbench"]
        if self.options.build:
            tools.append("cargo")
        if any(workload.ceiling == "nginx" for workload in self.workloads):
            tools.append("nginx")
        if os.geteuid() == 0:
            tools.append("runuser")
        if self.options.pooler != "none":
            tools.append("pgbouncer")
        ensure_tools(tools)

    def setup_peers(self):
        options = self.options
        if not any(variant.system.name != "reference" for variant in self.variants):
            return
        if not options.setup:
            log("--no-setup: using peers/ as it is")
            return
        log("setting up the peers (peers/setup.sh)")
        start = time.monotonic()
        if subprocess.call([os.path.join(systems.PEERS, "setup.sh")], stdout=2) != 0:
            raise Fatal("peers/setup.sh failed (see above)")
        log(f"peers set up in {time.monotonic() - start:.0f}s")

    def build(self):
        options = self.options
        if options.build:
            log("building the release binary (cargo build --release)")
            if subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2) != 0:
                raise Fatal("cargo build --release failed (see above)")
        elif not os.access(options.binary, os.X_OK):
            raise Fatal(f"--no-build, but there is no {options.binary}: run cargo build --release")

    def setup_engine(self):
        """runner.Run measures; here it gets the study's database, tools and
        accounting instead of making its own."""
        options = self.options
        engine = Run(options, self.command_line)
        engine.cleanup = self.cleanup
        engine.tmp = self.tmp
        engine.accounting = self.accounting
        engine.selected = self.workloads
        engine.db_mode = "throwaway"
        engine.counted = {"server", "database", "load_generator"}
        if options.fixed_rate:
            engine.oha = loadgen.ensure_oha()
        engine.progress = self.progress
        run_pgbench = engine.pgbench

        def pgbench(*args, **kwargs):
            # A ceiling's clients are no backends of the system beside it.
            self.sampler.pause()
            try:
                return run_pgbench(*args, **kwargs)
            finally:
                self.sampler.resume()

        engine.pgbench = pgbench
        self.engine = engine

    def progress(self, run, _index, workload, what, seconds):
        """runner.Run's progress line, naming the system and the round."""
        engine = self.engine
        log(
            f"[round {run}/{self.options.runs}, {self.options.name}] {workload}: {what}, "
            f"{seconds:g}s (about {fmt_duration(engine.planned - engine.done)} left)"
        )
        engine.done += seconds

    def setup_database(self):
        options = self.options
        # Room for pgbench's clients, the widest --concurrency, the peers'
        # pools (Django without persistent connections opens one per
        # request in flight) and psql.
        widest = max([options.connections, *options.concurrency])
        self.db = pg.Postgres.throwaway(
            self.tmp, widest + options.connections + 200, "tcp", self.accounting, []
        )
        self.cleanup.push(self.db.stop)
        self.db.seed(options.binary, options.contacts)
        self.engine.db = self.db
        if options.pooler != "none":
            self.pooler = PgBouncer(self.db.url, self.tmp, options.pooler_size, self.accounting)
            self.cleanup.push(self.pooler.stop)
            self.engine.counted.add("pooler")

    # --- one system in one round ----------------------------------------------------

    def measure_variant(self, run, variant, with_ceilings):
        options = self.options
        engine = self.engine
        log(f"[round {run}/{options.runs}] {variant.name}: starting")
        db_url = self.pooler.url if variant.pooler else self.db.url
        if self.pooler:
            self.pooler.reset()
        try:
            process = SystemProcess.start(
                variant.system,
                options.binary,
                options.server_args,
                db_url,
                variant.pooler,
                self.tmp,
                self.accounting,
            )
        except Unavailable as why:
            variant.status, variant.reason = "unavailable", str(why)
            warn(f"{variant.name} cannot run on this machine: {why}")
            return False
        except StartFailed as why:
            variant.status, variant.reason = "failed", "did not start"
            warn(f"{variant.name} did not start: {why}")
            return False
        process.name = variant.name
        self.cleanup.push(process.stop)
        process.settle()
        log(
            f"{variant.name} answers on {process.url} ({process.processes()} processes, "
            f"ready in {process.ready_s}s)"
        )
        engine.server = process
        engine.server_url = process.url
        if engine.nginx is None and with_ceilings and engine.uses_ceiling("nginx"):
            engine.start_nginx()
            engine.counted.add("nginx")
        if options.conformance_first and run == 1:
            variant.conformance = self.conformance(variant, process)

        options.name = variant.name
        saved_ceilings = options.ceilings
        options.ceilings = with_ceilings
        engine.measurements, engine.fixed = [], []
        backends = {"run": run}
        sampler = BackendSampler(lambda: self.accounting.pids("database"))
        self.sampler = sampler
        try:
            backends["backends_idle"] = sampler.sample()
            with sampler:
                for index, workload in enumerate(self.workloads, start=1):
                    engine.measure_workload(run, index, workload)
                self.measure_concurrency(run)
                if self.mixed_enabled():
                    self.measure_mixed(run)
                if options.asyncpg_split and variant.name == SPLIT_SYSTEM:
                    self.measure_split(run)
            backends["backends_peak"] = sampler.peak
            backends["backend_samples"] = sampler.samples
        except Fatal as error:
            # One system failing (dying under load, a tool failing against
            # it) does not stop the others: its row says so, this round's
            # partial records are dropped, and the command exits 1 at the end.
            warn(f"{variant.name}: the measurement failed: {error}")
            variant.status, variant.reason = "failed", str(error).splitlines()[0][:200]
            self.cleanup.remove(process.stop)
            process.stop()
            engine.server = None
            return False
        finally:
            options.ceilings = saved_ceilings
        for measurement in engine.measurements:
            (variant.measurements if measurement.role == "server" else self.ceilings).append(
                measurement
            )
        for record in engine.fixed:
            (variant.fixed if record.system != "pgbench" else self.ceiling_fixed).append(record)

        if not options.conformance_first and run == 1:
            # After the measurement by default, as run.sh measures a fresh
            # server: conformance's varied requests change what follows them
            # (the reference's `starts` statement's plan; docs/FINDINGS.md).
            variant.conformance = self.conformance(variant, process)
        backends.update(
            ready_s=process.ready_s,
            processes=process.processes(),
            peak_rss_kib=process.peak_rss_kib(),
        )
        if variant.system.name == "reference":
            backends["banner"] = process.banner
        self.cleanup.remove(process.stop)
        backends["stopped"] = process.stop()
        if variant.system.name != "reference":
            backends["log_tail"] = process.log_tail(20)
        variant.rounds.append(backends)
        engine.server = None
        return True

    def saturation_window(self, run, workload, label):
        """One extra wrk window against the system (a warm-up first), kept
        as a server Measurement under `label`: the connection counts and
        asyncpg's split."""
        options = self.options
        engine = self.engine
        if options.warmup:
            engine.progress(run, "+", label, "warm-up", options.warmup)
            engine.wrk(engine.server_url, workload, options.warmup)
        engine.progress(run, "+", label, options.name, options.duration)
        figures, used, kept = engine.window(
            f"{label} ({options.name})",
            lambda: engine.wrk(engine.server_url, workload, options.duration),
        )
        engine.check_server_alive(label)
        measurement = engine.record(
            workload,
            run,
            "server",
            "wrk",
            options.name,
            engine.server_url + workload.path,
            figures,
            used,
            kept,
            "server",
        )
        measurement.workload = label
        engine.measurements.append(measurement)

    def measure_concurrency(self, run):
        options = self.options
        main = options.connections
        for connections in options.concurrency:
            for name in CONCURRENCY_WORKLOADS:
                if not self.selected(name):
                    continue
                options.connections = connections
                try:
                    self.saturation_window(run, BY_NAME[name], f"{name}@{connections}")
                finally:
                    options.connections = main

    def measure_mixed(self, run):
        """/types at the common rate while /fibonacci/25 runs at
        --mixed-fib-rate beside it: two oha at once, one window."""
        options = self.options
        engine = self.engine
        seconds = options.fixed_rate_duration
        rates = {"types": float(options.common_rate), "fib25": float(options.mixed_fib_rate)}
        engine.progress(
            run,
            "+",
            "mixed",
            f"{options.name}: /types at {rates['types']:g}/s beside /fibonacci/25 at "
            f"{rates['fib25']:g}/s (oha x2)",
            seconds,
        )

        def both():
            running = {}
            for name, rate in rates.items():
                argv = loadgen.oha_argv(
                    engine.oha,
                    engine.server_url + BY_NAME[name].path,
                    seconds,
                    rate,
                    options.connections if name == "types" else 16,
                )
                out = open(os.path.join(self.tmp, f"oha-mixed-{name}.txt"), "w+", encoding="utf-8")
                process = subprocess.Popen(
                    self.accounting.wrap("load_generator", argv),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                self.accounting.track("load_generator", process.pid)
                running[name] = (process, out)
            figures = {}
            for name, (process, out) in running.items():
                status = process.wait()
                out.seek(0)
                text = out.read()
                out.close()
                engine.keep_raw(f"oha-mixed-{name}", text)
                if status != 0:
                    raise Fatal(f"oha failed on mixed {name}:\n{text[-2000:]}")
                figures[name] = loadgen.parse_oha(text)
            return figures

        figures, used, kept = engine.window(f"mixed ({options.name})", both)
        engine.check_server_alive("the mixed load")
        requests = sum(one["requests"] for one in figures.values())
        for name, one in figures.items():
            # Per request of both kinds: the window's CPU is shared.
            engine.fixed.append(
                oha_record(f"mixed_{name}", run, "mixed", rates[name], one, used, kept, requests)
            )

    def measure_split(self, run):
        """asyncpg's /contacts/for against /contacts/fetch in parts: every
        route of SPLIT_ROUTES at every page size, as saturation windows."""
        for limit in SPLIT_LIMITS:
            for key, path, _what in SPLIT_ROUTES:
                label = f"split_{key}_{limit}"
                self.saturation_window(run, Workload(label, f"{path}?limit={limit}", "none"), label)

    def conformance(self, variant, process):
        """scripts/conformance.py against the running system; its summary."""
        out = os.path.join(self.tmp, f"conformance-{variant.name}.json")
        text_path = os.path.join(self.tmp, f"conformance-{variant.name}.txt")
        log(f"{variant.name}: conformance (scripts/conformance.py)")
        with open(text_path, "w", encoding="utf-8") as text:
            status = subprocess.call(
                [
                    sys.executable,
                    os.path.join(ROOT, "scripts", "conformance.py"),
                    process.url,
                    "--name",
                    variant.name,
                    "--json",
                    out,
                ],
                stdout=text,
                stderr=subprocess.STDOUT,
            )
        # 1 is "some rule failed", which is expected of the peers.
        if status > 1 or not os.path.exists(out):
            with open(text_path, encoding="utf-8") as text:
                sys.stderr.write(text.read()[-3000:])
            warn(f"{variant.name}: conformance.py did not complete (status {status})")
            return None
        doc = results.read_json(out)
        summary = {
            "passed": doc["passed"],
            "failed": doc["failed"],
            "skipped": doc["skipped"],
            "failed_rules": [rule["rule"] for rule in doc["rules"] if rule["status"] == "FAIL"],
        }
        log(
            f"{variant.name}: conformance: {summary['passed']} passed, {summary['failed']} failed, "
            f"{summary['skipped']} skipped"
        )
        return summary

    # --- the rounds -------------------------------------------------------------------

    def measure_all(self):
        options = self.options
        engine = self.engine
        per_variant = self.seconds_per_variant()
        ceilings = 0
        for workload in self.workloads:
            if engine.has_ceiling(workload):
                ceilings += options.duration * (
                    2 if workload.ceiling == "pgbench" and options.pipeline_depth else 1
                )
                if workload in engine.fixed_rate_workloads():
                    ceilings += len(engine.rate_labels()) * options.fixed_rate_duration
        engine.planned = options.runs * (len(self.variants) * per_variant + ceilings)
        log(
            f"measuring {len(self.variants)} system(s) x {len(self.workloads)} workload(s) x "
            f"{options.runs} round(s), each round every system in turn: about "
            f"{fmt_duration(engine.planned)}"
        )
        for run in range(1, options.runs + 1):
            ceilings_pending = options.ceilings
            for variant in self.variants:
                if variant.skipped:
                    engine.done += per_variant
                    continue
                before = engine.done
                measured = self.measure_variant(run, variant, ceilings_pending)
                if measured:
                    ceilings_pending = False
                else:
                    engine.done = before + per_variant

    # --- the results ------------------------------------------------------------------

    def collect_meta(self, commit, dirty):
        options = self.options
        engine = self.engine
        meta = self.meta
        meta.update(
            {
                "kind": "compare",
                "name": "compare",
                "label": options.label or "",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "commit": commit,
                "dirty": dirty,
                "command": self.command_line,
                "machine": machine_info(),
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
            "workloads": [workload.name for workload in self.workloads],
            "implementations": [variant.name for variant in self.variants],
            "pooler": options.pooler,
            "pooler_pool_size": options.pooler_size if options.pooler != "none" else None,
            "concurrency": options.concurrency,
            "mixed_fib_rate": options.mixed_fib_rate if self.mixed_enabled() else 0,
            "asyncpg_split": options.asyncpg_split,
            "server_args": options.server_args_text,
            "pool_size_env": os.environ.get("POOL_SIZE", ""),
            "noise_threshold_cores": options.noise_threshold,
            "max_retries": options.max_retries,
            "fixed_rate": options.fixed_rate,
            "fixed_rate_duration_s": options.fixed_rate_duration,
            "rate_fractions_pct": options.rate_fractions,
            "common_rate": options.common_rate,
            "pipeline_ceiling_depth": options.pipeline_depth,
            "pipeline_ceiling_clients": 4,
            "conformance_first": options.conformance_first,
            "database": "throwaway",
            "transport": "tcp",
        }
        meta["cpu"] = {
            "method": self.accounting.method,
            "components": sorted(engine.counted),
        }
        venv_python = os.path.join(systems.PEERS, ".venv", "bin", "python")
        versions = {
            "wrk": first_line([need_tool("wrk"), "-v"]),
            "postgresql": self.db.value("SELECT version()"),
            "pgbench": first_line([need_tool("pgbench"), "--version"]),
            "rustc": first_line(["rustc", "--version"]),
            "server": first_line([options.binary, "--version"]),
            "go": first_line(["go", "version"]),
            "python": first_line([venv_python, "--version"]),
            "pypy": first_line(["pypy3", "--version"]),
        }
        if engine.oha:
            versions["oha"] = first_line([engine.oha, "--version"])
        if engine.uses_ceiling("nginx"):
            versions["nginx"] = first_line([need_tool("nginx"), "-v"])
        if self.pooler:
            versions["pgbouncer"] = self.pooler.version()
        meta["versions"] = versions
        meta["postgresql"] = {"settings": self.db.settings()}

    def document(self):
        engine = self.engine
        infos = engine.workload_infos()
        doc = {"schema_version": results.SCHEMA_VERSION}
        doc.update(self.meta)
        doc["systems"] = [self.variant_entry(variant, infos) for variant in self.variants]
        everything = [*self.ceilings, *self.ceiling_fixed]
        for variant in self.variants:
            everything += [*variant.measurements, *variant.fixed]
        doc["noise"] = {
            key: value
            for key, value in results.noise_summary(everything).items()
            if key != "windows"
        }
        return doc

    def variant_entry(self, variant, infos):
        entry = {
            "name": variant.name,
            "system": variant.system.name,
            "stack": variant.system.stack,
            "pooler": variant.pooler or "",
            "status": variant.status,
            "reason": variant.reason,
            "rounds": variant.rounds,
            "conformance": variant.conformance,
        }
        rounds = variant.rounds

        def values(key):
            return [one[key] for one in rounds if one.get(key) is not None]

        entry["backends_peak"] = max(values("backends_peak"), default=None)
        entry["backends_idle"] = (
            statistics.median(values("backends_idle")) if values("backends_idle") else None
        )
        entry["processes"] = max(values("processes"), default=None)
        entry["peak_rss_kib"] = max(values("peak_rss_kib"), default=None)
        entry["ready_s"] = statistics.median(values("ready_s")) if values("ready_s") else None
        if not variant.measurements:
            entry["workloads"] = []
            return entry
        names = [info["name"] for info in infos]
        entry["workloads"] = [
            results.workload_entry(
                info,
                [m for m in [*variant.measurements, *self.ceilings] if m.workload == info["name"]],
                [f for f in [*variant.fixed, *self.ceiling_fixed] if f.workload == info["name"]],
            )
            for info in infos
        ]
        extra = sorted(
            {m.workload for m in variant.measurements if m.workload not in names},
            key=lambda name: (name.split("@")[0], int(name.split("@")[1]) if "@" in name else 0),
        )
        entry["more"] = [
            results.workload_entry(
                {"name": name, "path": "", "ceiling": "none"},
                [m for m in variant.measurements if m.workload == name],
                [],
            )
            for name in extra
        ]
        entry["mixed"] = {
            name: results.fixed_rate_rows(
                [f for f in variant.fixed if f.workload == f"mixed_{name}"], "server"
            )
            for name in ("types", "fib25")
        }
        return entry

    def write_results(self, commit, dirty):
        from harness import study_report

        options = self.options
        path = options.out or study_report.result_path(
            commit, dirty, options.label, options.quick, options.pooler
        )
        doc = self.document()
        results.write_json(doc, path)
        text = study_report.markdown(doc, path)
        with open(path[: -len(".json")] + ".md", "w", encoding="utf-8") as file:
            file.write(text)
        print(text, flush=True)
        if options.charts:
            draw_charts(doc, path)
        log(f"results: {os.path.relpath(path)}")

    # --- the whole study -----------------------------------------------------------------

    def run(self):
        options = self.options
        self.plan()
        self.check_tools()
        self.tmp = tempfile.mkdtemp(prefix="bakeoff.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.cleanup.push(lambda: subprocess.call(["rm", "-rf", self.tmp]))
        self.accounting = cpu.Accounting(force_method=options.cpu_method)
        self.cleanup.push(self.accounting.close)
        try:
            commit, dirty = git_state()  # before building: the commit that is built
            self.setup_peers()
            self.build()
            self.setup_engine()
            self.setup_database()
            self.collect_meta(commit, dirty)
            self.engine.check_idle()
            self.meta["conditions"] = self.engine.meta["conditions"]
            self.measure_all()
            self.write_results(commit, dirty)
        finally:
            self.cleanup.run()
        failed = [variant.name for variant in self.variants if variant.status == "failed"]
        if failed:
            raise Fatal(f"not measured: {', '.join(failed)} (see above; the results say so too)")
