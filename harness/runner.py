"""One benchmark run (`scripts/run.sh`, `python3 -m harness run`), start to
end: plan → tools → database → server → a loop over the measuring engine
(measure.Bench) → the results file, the table and the charts. The loop is
interleaved (run 1 of every workload, then run 2 of every workload, ...), so
that a slow drift of the machine falls on every workload alike.
docs/benchmarks.md says why each step is there."""

import os
import re
import subprocess
import sys

from harness import archive, drawing, loadgen, meta, pg, report, results, systems
from harness.ceilings import start_nginx
from harness.measure import Bench, Database, Progress, Target, urls_file
from harness.process import peak_rss_kib
from harness.site import Deployed, Site, placements
from harness.tools import (
    ROOT,
    Fatal,
    ensure_tools,
    git_state,
    http_get,
    log,
    result_path,
    wait_http,
    warn,
)
from harness.workloads import PIPELINE_DEPTH
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


def build_reference(settings):
    """cargo build --release, unless told not to; the binary must exist."""
    if settings.build:
        ensure_tools(["cargo"])
        log("building the release binary (cargo build --release)")
        if subprocess.call(["cargo", "build", "--release"], cwd=ROOT, stdout=2) != 0:
            raise Fatal("cargo build --release failed (see above)")
    elif not os.access(settings.binary, os.X_OK):
        raise Fatal(f"--no-build, but there is no {settings.binary}: run cargo build --release")


def pool_of(banner):
    """The reference's shared pool size from its start line ("pool 4
    shared"): the pipelined ceiling uses as many connections; 4 otherwise."""
    match = re.search(r"pool (\d+) ", banner or "")
    return int(match.group(1)) if match else 4


class Run:
    """The state of one run; run() drives it, and only it changes the fields."""

    def __init__(self, settings, command_line):
        self.settings = settings
        self.command_line = command_line
        try:
            self.workloads = select_workloads(settings.only)
        except ValueError as error:
            raise Fatal(str(error)) from error
        if os.environ.get("DATABASE_URL"):
            self.db_mode = "external"
        elif settings.target:
            self.db_mode = "none"
        else:
            self.db_mode = "throwaway"
        self.placements = placements(settings)

    # --- planning ----------------------------------------------------------------------

    def has_ceiling(self, workload):
        if not self.settings.ceilings or workload.ceiling == "none":
            return False
        return workload.ceiling == "nginx" or self.db_mode != "none"

    def rated(self, workload):
        """A workload measured at fixed rates in this run (the database
        workloads and /version: workloads.py's `rated`)."""
        settings = self.settings
        return workload.rated and settings.fixed_rate and bool(settings.rate_labels())

    def planned_seconds(self):
        settings = self.settings
        total = 0
        for workload in self.workloads:
            total += len(self.placements) * (settings.warmup + settings.duration)
            if self.has_ceiling(workload):
                pipelined = workload.ceiling == "pgbench" and settings.pipeline_depth
                total += settings.duration * (2 if pipelined else 1)
            if self.rated(workload):
                rates = len(settings.rate_labels()) * settings.fixed_rate_duration
                total += rates * (len(self.placements) + self.has_ceiling(workload))
        return total * settings.runs

    def check_tools(self):
        settings = self.settings
        needed = ["wrk"]
        if self.db_mode == "throwaway":
            needed += ["initdb", "pg_ctl", "postgres", "psql"] + (
                ["runuser"] if os.geteuid() == 0 else []
            )
        elif self.db_mode == "external":
            needed.append("psql")
        if self.db_mode != "none" and any(
            self.has_ceiling(w) or self.rated(w) for w in self.workloads if w.uses_database
        ):
            needed.append("pgbench")
        if any(self.has_ceiling(w) and w.ceiling == "nginx" for w in self.workloads):
            needed.append("nginx")
        if settings.pin_server or settings.pin_db or settings.pin_wrk:
            needed.append("taskset")
        if settings.pooler != "none":
            needed.append("pgbouncer")
        ensure_tools(needed)
        for cpus in (settings.pin_server, settings.pin_db, settings.pin_wrk):
            if cpus and subprocess.call(["taskset", "-c", cpus, "true"], stderr=2) != 0:
                raise Fatal(
                    f"invalid CPU list '{cpus}' (try 0, 1 or 0-1; this machine has "
                    f"{os.cpu_count()} CPUs)"
                )

    @staticmethod
    def pin(cpus):
        return ["taskset", "-c", cpus] if cpus else []

    # --- setting up ----------------------------------------------------------------------

    def open_database(self, site, accounting):
        """The database of this run (None for a --target without one), seeded
        where it has to be; returns (Postgres or None, contacts, seeded)."""
        settings = self.settings
        if self.db_mode == "none":
            if settings.ceilings and any(w.uses_database for w in self.workloads):
                warn(
                    "--target without DATABASE_URL: no database to run pgbench on, "
                    "so no database ceilings"
                )
            return None, settings.contacts, False
        if self.db_mode == "throwaway":
            # Room for pgbench's clients, the server's pool(s) and psql.
            db = site.throwaway_database(
                max(settings.max_connections, settings.connections + 200),
                settings.transport,
                self.pin(settings.pin_db),
            )
            seed = True
        else:
            log("using the database at DATABASE_URL")
            db = pg.Postgres(os.environ["DATABASE_URL"])
            seed = settings.contacts_given or not db.has_tables()
            postmaster = db.find_postmaster()
            if postmaster and accounting.adopt("database", postmaster):
                log(f"counting the CPU of the PostgreSQL at DATABASE_URL (postmaster {postmaster})")
            else:
                warn("cannot find the postmaster of DATABASE_URL here: no database CPU per request")
        if not seed:
            return db, db.count_contacts(), False
        if not os.access(settings.binary, os.X_OK):
            build_reference(settings)  # seeding a --target's database needs our binary
        db.seed(settings.binary, settings.contacts)
        return db, settings.contacts, True

    def deploy_all(self, site, db):
        """{placement: Deployed} of our server (or the --target) in every placement."""
        settings = self.settings
        if settings.target:
            if not wait_http(f"{settings.target}/version", 10):
                raise Fatal(f"nothing answers {settings.target}/version with 200")
            log(f"target {settings.name} at {settings.target}")
            return {self.placements[0]: Deployed(Target(settings.name, settings.target), [])}
        reference = systems.read_manifest(os.path.join(systems.PEERS, "reference"))
        deployed = {}
        for placement in self.placements:
            launch = systems.Launch(
                site.database_url(placement),
                settings.binary,
                settings.server_args,
                placement.pooler,
            )
            name = _name(settings.name, placement)
            one = site.deploy(reference, launch, placement, name, self.pin(settings.pin_server))
            log(one.instances[0].banner)
            deployed[placement] = one
        if db is not None:
            # The server starts even while its database is down (503 until it
            # is up): wait for a database endpoint before measuring.
            for one in deployed.values():
                if not wait_http(f"{one.target.url}/types", 30):
                    raise Fatal(f"{one.target.url}/types does not answer 200: is its database up?")
        return deployed

    # --- measuring ------------------------------------------------------------------------

    def measure(self, bench, deployed, nginx, db):
        """Every run of every workload in every placement: the records."""
        settings = self.settings
        measurements, fixed = [], []
        first = next(iter(deployed.values()))
        pool = pool_of(first.instances[0].banner if first.instances else "")
        for run in range(1, settings.runs + 1):
            for index, workload in enumerate(self.workloads, start=1):
                runs = f"run {run}/{settings.runs}, " if settings.runs > 1 else ""
                bench.progress.prefix = f"[{runs}{index}/{len(self.workloads)}] "
                for placement, one in deployed.items():
                    target = one.target
                    server = bench.saturation(target, workload, run)
                    server.placement = placement.label
                    measurements.append(server)
                    if self.rated(workload):
                        urls = None
                        if workload.name == "contact_random":
                            urls = urls_file(
                                bench.tmp,
                                target.url,
                                workload,
                                bench.database.contacts if bench.database else settings.contacts,
                            )
                        for record in bench.fixed_rates(
                            target, workload, run, settings.rates_for(server.rps), urls
                        ):
                            record.placement = placement.label
                            fixed.append(record)
                if not self.has_ceiling(workload):
                    continue
                first = next(
                    m
                    for m in measurements
                    if m.run == run and m.workload == workload.name and m.role == "server"
                )
                if workload.ceiling == "nginx":
                    measurements.append(bench.saturation(nginx, workload, run, role="ceiling"))
                    if self.rated(workload):
                        # nginx at the server's rates: the low-load cost of
                        # a request with no application at all beside it.
                        rates = settings.rates_for(first.rps)
                        fixed += bench.fixed_rates(nginx, workload, run, rates, system="nginx")
                    continue
                for record in (
                    bench.pgbench_ceiling(workload, run),
                    bench.pgbench_ceiling(workload, run, pool, settings.pipeline_depth)
                    if settings.pipeline_depth
                    else None,
                ):
                    if record:
                        measurements.append(record)
                if self.rated(workload):
                    fixed += bench.database_rates(workload, run, settings.rates_for(first.rps))
        return measurements, fixed, pool

    # --- the whole run ----------------------------------------------------------------------

    def run(self):
        settings = self.settings
        self.check_tools()
        oha = loadgen.ensure_oha() if any(self.rated(w) for w in self.workloads) else None
        commit, dirty = git_state()  # before building: the commit that is built
        if not settings.target:
            build_reference(settings)
        with Site(settings) as site:
            db, contacts, seeded = self.open_database(site, site.accounting)
            deployed = self.deploy_all(site, db)
            nginx = self.start_nginx(deployed, site)
            progress = Progress(self.planned_seconds())
            bench = Bench(
                settings,
                site.accounting,
                site.tmp,
                progress,
                Database(db.url, contacts) if db else None,
                oha,
                self.pin(settings.pin_wrk) + list(site.client_place()),
            )
            doc_head = self.head(commit, dirty, site.accounting, db, contacts, seeded, oha)
            doc_head["conditions"] = meta.conditions()
            log(
                f"measuring {len(self.workloads)} workload(s) x {settings.runs} run(s), "
                f"interleaved: about {progress.planned // 60:.0f} min"
            )
            measurements, fixed, pool = self.measure(bench, deployed, nginx, db)
            doc_head["params"]["pipeline_ceiling_clients"] = pool
            doc_head["topology"] = site.describe()
            doc_head["server"] = self.finish(deployed, site)
            self.write(doc_head, measurements, fixed, commit, dirty)

    def start_nginx(self, deployed, site):
        if not any(self.has_ceiling(w) and w.ceiling == "nginx" for w in self.workloads):
            return None
        url = next(iter(deployed.values())).target.url
        status, body = http_get(f"{url}/version", timeout=10)
        if not 200 <= status < 300:
            raise Fatal(f"GET {url}/version failed")
        workers = len(os.sched_getaffinity(0))
        if self.settings.pin_server:
            out = subprocess.run(
                ["taskset", "-c", self.settings.pin_server, "nproc"],
                capture_output=True,
                text=True,
                check=False,
            )
            workers = int(out.stdout.strip() or workers)
        nginx = start_nginx(
            body.decode("utf-8", "replace"),
            site.tmp,
            workers,
            site.accounting,
            host=site.host("app1"),
            pin=self.pin(self.settings.pin_server),
        )
        site.cleanup.push(nginx.stop)
        return Target("nginx", nginx.url, "nginx", nginx.check_alive)

    def head(self, commit, dirty, accounting, db, contacts, seeded, oha):
        settings = self.settings
        params = meta.params(
            settings,
            self.workloads,
            contacts=contacts,
            pipeline_depth=PIPELINE_DEPTH,
            transport=settings.transport,
            wrk_timeout_s=5,
            target=settings.target,
            database=self.db_mode,
            seeded=seeded,
            pin={"server": settings.pin_server, "db": settings.pin_db, "wrk": settings.pin_wrk},
            placements=[placement.as_dict() for placement in self.placements],
        )
        env = {var: os.environ[var] for var in SERVER_ENV if os.environ.get(var)}
        if env:
            params["server_env"] = env
        head = meta.document_head(
            "run", settings, self.command_line, commit, dirty, accounting, params
        )
        tools = (
            ["wrk", "nginx", "pgbench", "pgbouncer"] if self.db_mode != "none" else ["wrk", "nginx"]
        )
        head["versions"] = meta.versions(tools + ([] if settings.target else ["rustc"]), oha)
        if db is not None:
            head["versions"]["postgresql"] = db.value("SELECT version()")
            head["postgresql"] = {"settings": db.settings()}
        if not settings.target:
            head["versions"]["server"] = subprocess.run(
                [settings.binary, "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
        return head

    def finish(self, deployed, site):
        """Peak RSS, the log past the start line, and how the server stopped."""
        settings = self.settings
        if settings.target:
            rss = peak_rss_kib(settings.target_pid) if settings.target_pid else None
            return {"peak_rss_kib": rss} if rss is not None else {}
        first = next(iter(deployed.values()))
        instance = first.instances[0]
        out = {"banner": instance.banner}
        digest = subprocess.run(
            ["sha256sum", settings.binary], capture_output=True, text=True, check=False
        ).stdout.split()
        out["binary_sha256"] = digest[0] if digest else ""
        rss = instance.peak_rss_kib()
        if rss is not None:
            out["peak_rss_kib"] = rss
        extra = instance.after_banner()
        if extra:
            tail = extra.splitlines()
            warn("the server wrote to stderr during the run (last lines):")
            print("\n".join(tail[-10:]), file=sys.stderr)
            out["stderr_during_run"] = "\n".join(tail[-50:])
        how = [site.undeploy(one) for one in deployed.values()]
        out["exit_status"] = instance.exit_status()
        if out["exit_status"] != 0:
            warn(
                f"the server exited with status {out['exit_status']} on SIGTERM ({how[0]}; "
                "docs/CLI.md: 0, a graceful stop)"
            )
        return out

    def write(self, head, measurements, fixed, commit, dirty):
        settings = self.settings
        infos = []
        for workload in self.workloads:
            info = {
                "name": workload.name,
                "path": workload.path,
                "ceiling": workload.ceiling if self.has_ceiling(workload) else "none",
            }
            if not self.has_ceiling(workload) and workload.ceiling != "none":
                info["ceiling_skipped"] = (
                    f"{workload.ceiling}: --no-ceilings"
                    if not settings.ceilings
                    else f"{workload.ceiling}: no database (--target without DATABASE_URL)"
                )
            infos.append(info)
        path = settings.out or result_path("run", commit, dirty, settings.quick, settings.label)
        labels = [
            p.label for p in self.placements if any(m.placement == p.label for m in measurements)
        ]
        doc = results.build_document(head, infos, measurements, fixed, labels or [""])
        archive.write_json(doc, path)
        print(report.markdown(doc, path), flush=True)
        if settings.charts:
            drawing.draw(doc, path)


def _name(name, placement):
    return f"{name} ({placement.label})" if placement.label else name
