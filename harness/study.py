"""The study (`scripts/compare.sh`, `python3 -m harness compare`): every
system of peers/ (systems.py) on one throwaway PostgreSQL, measured by the
same engine as `run.sh` (measure.Bench), in rounds: round 1 measures every
system in every placement, then round 2 again, ..., so that a slow drift of
the machine falls on all alike. Each system is started afresh in each round
and stopped after it, with nothing left behind. A system in a placement
(site.Placement: behind PgBouncer, at a round trip, several instances) is a
`Variant`: one row of the tables.

Beside run.sh's figures, for each variant: the peak of PostgreSQL's client
backends while it ran and the connections PostgreSQL refused, the same
workloads at other connection counts, /types at a fixed rate with
/fibonacci/25 beside it (and the system's computation remedies), and for
fastapi_asyncpg, /contacts/for split into its parts. docs/benchmarks.md
says why; docs/RESULTS_SCHEMA.md describes the file."""

import os

from harness import archive, backends, contract, drawing, loadgen, meta, study_doc, systems
from harness.backends import BackendSampler
from harness.measure import Bench, Database, Progress, urls_file
from harness.process import StartFailed, Unavailable
from harness.runner import build_reference, pool_of
from harness.site import Placement, Site, placements
from harness.study_report import markdown
from harness.tools import Fatal, ensure_tools, git_state, log, result_path, warn
from harness.workloads import (
    BY_NAME,
    CONCURRENCY_WORKLOADS,
    SPLIT_LIMITS,
    SPLIT_ROUTES,
    SPLIT_SYSTEM,
    Workload,
)
from harness.workloads import select as select_workloads

# The computation remedies a system's manifest may declare under [routes],
# measured in the mixed load beside its /fibonacci/{n}.
REMEDY_ROUTES = ("fibonacci_thread", "fibonacci_process")


class Variant:
    """A system in a placement (and, in a sweep, with its knobs set), and
    its records over the rounds."""

    def __init__(self, system, placement, knobs=None):
        self.system = system
        self.placement = placement
        self.knobs = dict(knobs or {})
        self.name = system.name + (f"+{placement.pooler}" if placement.pooler else "")
        other = " ".join(part for part in placement.label.split() if part != placement.pooler)
        self.name += f"@{other}" if other else ""
        if self.knobs:
            self.name += "[" + " ".join(f"{k}={v}" for k, v in self.knobs.items()) + "]"
        self.status = "measured"
        self.reason = ""
        self.measurements = []
        self.fixed = []
        self.rounds = []
        self.contract = None

    @property
    def skipped(self):
        return self.status != "measured"


def sweep_grid(system, settings):
    """Every combination of the sweep's values over the knobs the system has
    (workers, pool, threads), in order; a system with none has one: {}."""
    values = {
        "workers": settings.sweep_workers,
        "pool": settings.sweep_pool,
        "threads": settings.sweep_threads,
    }
    grid = [{}]
    for knob in ("workers", "pool", "threads"):
        if knob in system.knobs:
            grid = [{**one, knob: value} for one in grid for value in values[knob]]
    return grid


class Study:
    def __init__(self, settings, command_line, available=None):
        """`available`: the systems to choose from (default: peers/'s)."""
        self.settings = settings
        self.command_line = command_line
        try:
            self.workloads = select_workloads(settings.only)
            chosen = systems.select(
                settings.systems, systems.discover() if available is None else available
            )
        except ValueError as error:
            raise Fatal(str(error)) from error
        # Each system in its placements one after the other: what is compared
        # across placements (direct against pooled, 0 against 2 ms) is
        # measured close together in time.
        self.variants = [
            Variant(system, placement, knobs)
            for system in chosen
            for placement in placements(settings)
            for knobs in (sweep_grid(system, settings) if settings.sweep else [{}])
        ]
        self.ceilings = []  # Measurement records of the ceilings, every round
        self.ceiling_fixed = []  # pgbench --rate records

    def selected(self, name):
        return any(workload.name == name for workload in self.workloads)

    def mixed_enabled(self):
        settings = self.settings
        return bool(settings.mixed_fib_rate and settings.fixed_rate and settings.common_rate)

    def rated(self, workload):
        settings = self.settings
        return workload.uses_database and settings.fixed_rate and bool(settings.rate_labels())

    # --- planning -----------------------------------------------------------------------

    def seconds_per_variant(self, variant):
        """What one variant takes in one round, for the progress lines."""
        settings = self.settings
        window = settings.warmup + settings.duration
        total = 15  # start, settle, stop
        for workload in self.workloads:
            total += window
            if self.rated(workload):
                total += len(settings.rate_labels()) * settings.fixed_rate_duration
        extra = sum(1 for name in CONCURRENCY_WORKLOADS if self.selected(name))
        total += len(settings.concurrency) * extra * window
        if self.mixed_enabled():
            remedies = sum(1 for route in REMEDY_ROUTES if route in variant.system.routes)
            total += (1 + remedies) * settings.fixed_rate_duration
        if settings.asyncpg_split and variant.system.name == SPLIT_SYSTEM:
            total += len(SPLIT_ROUTES) * len(SPLIT_LIMITS) * window
        return total

    def seconds_of_ceilings(self):
        settings = self.settings
        total = 0
        for workload in self.workloads:
            if settings.ceilings and workload.ceiling != "none":
                pipelined = workload.ceiling == "pgbench" and settings.pipeline_depth
                total += settings.duration * (2 if pipelined else 1)
                if self.rated(workload):
                    total += len(settings.rate_labels()) * settings.fixed_rate_duration
        return total

    def check_tools(self):
        needed = ["wrk", "initdb", "pg_ctl", "postgres", "psql", "pgbench"]
        if any(workload.ceiling == "nginx" for workload in self.workloads):
            needed.append("nginx")
        if os.geteuid() == 0:
            needed.append("runuser")
        if self.settings.pooler != "none":
            needed.append("pgbouncer")
        ensure_tools(needed)

    # --- one variant in one round ------------------------------------------------------------

    def measure_variant(self, run, variant, site, bench, with_ceilings, nginx_state):
        settings = self.settings
        log(f"[round {run}/{settings.runs}] {variant.name}: starting")
        deployed = self.start(site, variant, variant.placement, variant.name, variant.knobs)
        if deployed is None:
            return False
        for instance in deployed.instances:
            instance.settle()
        target = deployed.target
        first_instance = deployed.instances[0]
        bench.progress.prefix = f"[round {run}/{settings.runs}, {variant.name}] "
        measurements, fixed = [], []
        # The pipelined ceiling uses as many connections as the reference's pool.
        pool = pool_of(first_instance.banner if variant.system.name == "reference" else "")
        refused_before = backends.refusals(site.db.log_text())[0]
        sampler = BackendSampler(lambda: bench.accounting.pids("database"))
        backend_counts = {"run": run, "backends_idle": sampler.sample()}
        try:
            with sampler:
                for workload in self.workloads:
                    self.measure_workload(bench, target, workload, run, measurements, fixed)
                    if with_ceilings:
                        # A ceiling's pgbench clients are no backends of the
                        # system's, and what PostgreSQL refused them is not
                        # held against it.
                        before = backends.refusals(site.db.log_text())[0]
                        with sampler.paused():
                            measurements += self.measure_ceilings(
                                bench, workload, run, nginx_state.ensure(target), pool, measurements
                            )
                        refused_before += backends.refusals(site.db.log_text())[0] - before
                self.measure_extras(bench, variant, target, run, measurements, fixed)
            backend_counts["backends_peak"] = sampler.peak
            backend_counts["backend_samples"] = sampler.samples
        except Fatal as error:
            # One system failing (dying under load, a tool failing against
            # it) does not stop the others: its row says so, this round's
            # partial records are dropped, and the command exits 1 at the end.
            warn(f"{variant.name}: the measurement failed: {error}")
            variant.status, variant.reason = "failed", str(error).splitlines()[0][:200]
            site.undeploy(deployed)
            return False
        for measurement in measurements:
            if measurement.role == "server":
                variant.measurements.append(measurement)
            else:
                self.ceilings.append(measurement)
        for record in fixed:
            (variant.fixed if record.system != "pgbench" else self.ceiling_fixed).append(record)
        count, first = backends.refusals(site.db.log_text())
        backend_counts.update(
            refused_connections=count - refused_before,
            first_refusal=first if count > refused_before else "",
            ready_s=first_instance.ready_s,
            processes=sum(instance.processes() for instance in deployed.instances),
            peak_rss_kib=sum(instance.peak_rss_kib() or 0 for instance in deployed.instances),
        )
        if variant.system.name == "reference":
            backend_counts["banner"] = first_instance.banner
        else:
            backend_counts["log_tail"] = first_instance.log_tail(20)
        backend_counts["stopped"] = site.undeploy(deployed)
        variant.rounds.append(backend_counts)
        return True

    def measure_workload(self, bench, target, workload, run, measurements, fixed):
        server = bench.saturation(target, workload, run)
        measurements.append(server)
        if self.rated(workload):
            urls = None
            if workload.name == "contact_random":
                urls = urls_file(bench.tmp, target.url, workload, bench.database.contacts)
            fixed += bench.fixed_rates(
                target, workload, run, self.settings.rates_for(server.rps), urls
            )

    def measure_ceilings(self, bench, workload, run, nginx, pool, measured):
        """The round's ceilings of one workload, beside the round's first
        system; `measured` holds that system's window of the workload."""
        settings = self.settings
        if workload.ceiling == "none":
            return []
        if workload.ceiling == "nginx":
            return [bench.saturation(nginx, workload, run, role="ceiling")]
        out = [bench.pgbench_ceiling(workload, run)]
        if settings.pipeline_depth:
            out.append(bench.pgbench_ceiling(workload, run, pool, settings.pipeline_depth))
        if self.rated(workload):
            server = next(m for m in measured if m.workload == workload.name)
            self.ceiling_fixed += bench.database_rates(
                workload, run, settings.rates_for(server.rps)
            )
        return [record for record in out if record is not None]

    def measure_extras(self, bench, variant, target, run, measurements, fixed):
        """The connection counts, the mixed load and asyncpg's split."""
        settings = self.settings
        for connections in settings.concurrency:
            for name in CONCURRENCY_WORKLOADS:
                if self.selected(name):
                    measurements.append(
                        bench.saturation(
                            target,
                            BY_NAME[name],
                            run,
                            label=f"{name}@{connections}",
                            connections=connections,
                        )
                    )
        if self.mixed_enabled():
            rates = {"types": float(settings.common_rate), "fib25": settings.mixed_fib_rate}
            fixed += bench.mixed(target, run, rates)
            for route in REMEDY_ROUTES:
                if route in variant.system.routes:
                    paths = {"fib25": variant.system.routes[route] + "25"}
                    for record in bench.mixed(target, run, rates, paths):
                        record.workload += f"_{route}"
                        fixed.append(record)
        if settings.asyncpg_split and variant.system.name == SPLIT_SYSTEM:
            for limit in SPLIT_LIMITS:
                for key, path, _what in SPLIT_ROUTES:
                    label = f"split_{key}_{limit}"
                    workload = Workload(label, f"{path}?limit={limit}", "none")
                    measurements.append(bench.saturation(target, workload, run, label=label))

    # --- the rounds ------------------------------------------------------------------------

    def check_contracts(self, site, bench):
        """Each system once, before anything is measured, on an instance of
        its own (the TechEmpower habit: verify, then measure): the contract's
        varied requests change what follows them (the reference's `starts`
        statement's plan; docs/FINDINGS.md), so no measured instance sees them."""
        checked = {}  # (system, pooler) → (status, reason, contract)
        for variant in self.variants:
            key = (variant.system.name, variant.placement.pooler)
            if key not in checked:
                checked[key] = self.check_contract(site, bench, variant)
            status, reason, variant.contract = checked[key]
            if status != "measured":
                variant.status, variant.reason = status, reason

    def check_contract(self, site, bench, variant):
        """(status, reason, the contract's summary) of the variant's system,
        on an instance of its own, directly or behind the pooler."""
        placement = Placement(pooler=variant.placement.pooler)
        deployed = self.start(site, variant, placement, variant.system.name, {})
        if deployed is None:
            return variant.status, variant.reason, None
        try:
            return "measured", "", contract.check(variant.name, deployed.target.url, bench.tmp)
        finally:
            site.undeploy(deployed)

    def start(self, site, variant, placement, name, knobs):
        """The variant's system deployed in `placement`; None, with the
        variant's status and reason set, when it cannot run or start."""
        settings = self.settings
        site.reset_poolers()
        launch = systems.Launch(
            site.database_url(placement),
            settings.binary,
            settings.server_args,
            placement.pooler,
            knobs,
        )
        refused_before = backends.refusals(site.db.log_text())[0]
        try:
            return site.deploy(variant.system, launch, placement, name)
        except Unavailable as why:
            variant.status, variant.reason = "unavailable", str(why).splitlines()[0]
            warn(f"{name} cannot run on this machine: {why}")
        except StartFailed as why:
            refused, first = backends.refusals(site.db.log_text())
            if refused > refused_before:
                # Past max_connections a system may not even start: that is
                # what the study records of it, not a failure of the run.
                variant.status = "refused"
                variant.reason = (
                    f"PostgreSQL refused {refused - refused_before} connection(s) while it "
                    f"started ({first})"
                )
            else:
                variant.status, variant.reason = "failed", "did not start"
            warn(f"{name} did not start: {variant.reason}: {why}")
        return None

    def measure_all(self, site, bench, nginx_state):
        settings = self.settings
        per_variant = {variant.name: self.seconds_per_variant(variant) for variant in self.variants}
        bench.progress.planned = settings.runs * (
            sum(per_variant.values()) + self.seconds_of_ceilings()
        )
        log(
            f"measuring {len(self.variants)} system(s) x {len(self.workloads)} workload(s) x "
            f"{settings.runs} round(s), each round every system in turn: about "
            f"{bench.progress.planned // 60:.0f} min"
        )
        for run in range(1, settings.runs + 1):
            ceilings_pending = settings.ceilings
            for variant in self.variants:
                before = bench.progress.done
                if not variant.skipped and self.measure_variant(
                    run, variant, site, bench, ceilings_pending, nginx_state
                ):
                    ceilings_pending = False
                else:
                    bench.progress.done = before + per_variant[variant.name]

    # --- the whole study -------------------------------------------------------------------

    def run(self):
        settings = self.settings
        self.check_tools()
        oha = loadgen.ensure_oha() if settings.fixed_rate else None
        commit, dirty = git_state()  # before building: the commit that is built
        if settings.setup:
            systems.run_setups([variant.system for variant in self.variants])
        else:
            log("--no-setup: using peers/ as it is")
        build_reference(settings)
        with Site(settings) as site:
            # The limit is the study's (--max-connections, as shipped: 100);
            # the ceilings' pgbench clients run beside the first system only.
            db = site.throwaway_database(settings.max_connections)
            db.seed(settings.binary, settings.contacts)
            bench = Bench(
                settings,
                site.accounting,
                site.tmp,
                Progress(),
                Database(db.url, settings.contacts),
                oha,
                site.client_place(),
            )
            head = study_doc.head(self, commit, dirty, site.accounting, db, site, oha)
            head["conditions"] = meta.conditions()
            nginx_state = study_doc.NginxCeiling(site)
            self.check_contracts(site, bench)
            self.measure_all(site, bench, nginx_state)
            # Again after measuring: each round trip is measured when a
            # system is first placed at it, after the head was taken.
            head["topology"] = site.describe()
            self.write(study_doc.document(self, head), commit, dirty)
        failed = [variant.name for variant in self.variants if variant.status == "failed"]
        if failed:
            raise Fatal(f"not measured: {', '.join(failed)} (see above; the results say so too)")

    def write(self, doc, commit, dirty):
        settings = self.settings
        label = "-".join(
            part
            for part in (settings.pooler if settings.pooler != "none" else "", settings.label)
            if part
        )
        path = settings.out or result_path("compare", commit, dirty, settings.quick, label)
        archive.write_json(doc, path)
        text = markdown(doc, path)
        with open(path[: -len(".json")] + ".md", "w", encoding="utf-8") as file:
            file.write(text)
        print(text, flush=True)
        if settings.charts:
            drawing.draw(doc, path)
        log(f"results: {os.path.relpath(path)}")
