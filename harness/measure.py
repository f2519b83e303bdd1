"""The measuring engine: a `Bench` is built from the settings, the CPU
accounting, the database, where the load generator runs and a `Progress`,
and turns one measurement at a time into typed records (results.py): a
saturation window of wrk against a target, a ceiling (pgbench plain and
pipelined), windows at fixed offered rates (oha against a target, pgbench
--rate against the database), the mixed load. It reads no options
namespace and changes nothing of its callers: `runner.py` (one server) and
`study.py` (systems in rounds) both measure through it.

Every window runs under the noise gate (noise.gated): measured again while
other work took more than --noise-threshold cores, up to --max-retries."""

import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from harness import counters, cpu, loadgen, noise, results
from harness.tools import Fatal, fmt_duration, log, need_tool, warn
from harness.workloads import BY_NAME, pgbench_script, pgbench_variables

# wrk gives up on a response after this long and counts a timeout.
WRK_TIMEOUT_S = 5


class Progress:
    """The progress lines: what runs now, and about how long is left."""

    def __init__(self, planned=0.0):
        self.planned = planned
        self.done = 0.0
        self.prefix = ""

    def step(self, what, seconds):
        left = fmt_duration(self.planned - self.done)
        log(f"{self.prefix}{what}, {seconds:g}s (about {left} left)")
        self.done += seconds

    def retried(self, seconds):
        """A window measured again: planned and done both grow by it."""
        self.planned += seconds
        self.done += seconds

    def skip(self, seconds):
        self.done += seconds


@dataclass(frozen=True)
class Target:
    """What a window loads: a name for the records, its base URL, the
    component whose CPU is its own, and a check that it is still alive."""

    name: str
    url: str
    component: str = "server"
    check_alive: object = None  # callable(during) raising Fatal, or None
    # Its instances' metrics pages (Prometheus text), read around each
    # saturation window; () when it has none.
    metrics_urls: tuple = ()

    def alive_after(self, during):
        if self.check_alive is not None:
            self.check_alive(during)


@dataclass(frozen=True)
class Database:
    """What pgbench reaches: the URL (from the load generator's host) and
    the contact count that random ids are drawn from."""

    url: str
    contacts: int


class Bench:
    """One run's measuring instrument."""

    def __init__(self, settings, accounting, tmp, progress, database=None, oha=None, place=()):
        self.settings = settings
        self.accounting = accounting
        self.tmp = tmp
        self.progress = progress
        self.database = database
        self.oha = oha
        # argv prefix of every load generator: taskset or a host's `ip netns exec`.
        self.place = tuple(place)
        self.raw_count = 0

    # --- one window -------------------------------------------------------------------

    def window(self, what, measure):
        """measure() as one window under the noise gate: (result, {component:
        ns}, Noise) of the attempt kept."""
        settings = self.settings
        return noise.gated(
            what,
            measure,
            self.accounting,
            settings.noise_threshold,
            settings.max_retries,
            self.progress.retried,
        )

    # --- the tools ------------------------------------------------------------------------

    def keep_raw(self, name, text):
        """With --raw-dir, every tool's output as it came, numbered in order."""
        if not self.settings.raw_dir:
            return
        os.makedirs(self.settings.raw_dir, exist_ok=True)
        self.raw_count += 1
        path = os.path.join(self.settings.raw_dir, f"{self.raw_count:03d}-{name}.txt")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)

    def load(self, component, argv):
        """A load generator's command line: placed, inside its cgroup."""
        return self.accounting.wrap(component, [*self.place, *argv])

    def wrk(self, url, workload, seconds, connections=None):
        settings = self.settings
        connections = connections or settings.connections
        argv = loadgen.wrk_argv(
            need_tool("wrk"),
            workload,
            url,
            seconds,
            connections,
            min(settings.threads, connections),
            WRK_TIMEOUT_S,
            self.database.contacts if self.database else settings.contacts,
        )
        status, text = loadgen.run_tool(
            self.load("load_generator", argv), os.path.join(self.tmp, "wrk.txt")
        )
        self.keep_raw(f"wrk-{workload.name}", text)
        if status != 0:
            print(text, file=sys.stderr)
            raise Fatal(f"wrk failed on {workload.name} against {url} (its output is above)")
        try:
            return loadgen.parse_wrk(text)
        except ValueError as error:
            raise Fatal(f"{error}:\n{text}") from error

    def pgbench(self, workload, seconds, *, rate=None, log_prefix=None, clients=None, depth=0):
        """(figures or None, script path) of one pgbench run on the workload's SQL."""
        settings = self.settings
        script = os.path.join(
            self.tmp, f"pgbench-{workload.name}{'-pipeline' if depth else ''}.sql"
        )
        with open(script, "w", encoding="utf-8") as file:
            file.write(pgbench_script(workload, self.database.contacts, depth))
        clients = clients or settings.connections
        argv = loadgen.pgbench_argv(
            need_tool("pgbench"),
            script,
            pgbench_variables(workload),
            seconds,
            clients,
            min(settings.threads, clients),
            self.database.url,
            rate=rate,
            log_prefix=log_prefix,
        )
        env = dict(os.environ, PGOPTIONS=workload.pgoptions)
        status, text = loadgen.run_tool(
            self.load("load_generator", argv), os.path.join(self.tmp, "pgbench.txt"), env=env
        )
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

    # --- records --------------------------------------------------------------------------

    def record(self, workload, run, role, tool, target, url, figures, used, kept, component):
        measurement = results.Measurement(
            workload=workload,
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
            cpu_us_per_request=cpu.per_request_us(used, figures["requests"], component),
        )
        for key in ("latency_us", "non_2xx", "socket_errors", "bytes", "failed", "latency_avg_us"):
            if key in figures:
                setattr(measurement, key, figures[key])
        return measurement

    def saturation(self, target, workload, run, *, label=None, connections=None, role="server"):
        """A warm-up, then one wrk window against the target: its Measurement
        (kept under `label` when given: the extra windows of the study)."""
        settings = self.settings
        name = label or workload.name
        if settings.warmup > 0:
            self.progress.step(f"{name}: warm-up", settings.warmup)
            self.wrk(target.url, workload, settings.warmup, connections)
        self.progress.step(f"{name}: {target.name}", settings.duration)

        def measure():
            # The system's own counters around the window (counters.py):
            # a noisy attempt's are dropped with it.
            before = counters.scrape(target.metrics_urls)
            figures = self.wrk(target.url, workload, settings.duration, connections)
            return figures, counters.delta(before, counters.scrape(target.metrics_urls))

        (figures, counted), used, kept = self.window(f"{name} ({target.name})", measure)
        target.alive_after(name)
        measurement = self.record(
            name,
            run,
            role,
            "wrk",
            target.name,
            target.url + workload.path,
            figures,
            used,
            kept,
            target.component,
        )
        measurement.counters = counted or None
        return measurement

    def pgbench_ceiling(self, workload, run, clients=None, depth=0):
        """The database's ceiling for a workload: pgbench with as many clients
        as wrk has connections (role "ceiling"), or, with depth, in pipeline
        mode on `clients` connections, depth statements in flight on each:
        the database's own capacity (role "ceiling_pipeline"; a pipeline is
        one pgbench transaction, its statements count as requests)."""
        settings = self.settings
        what = (
            f"ceiling (pgbench, {clients} connections pipelined {depth} deep)"
            if depth
            else "ceiling (pgbench)"
        )
        self.progress.step(f"{workload.name}: {what}", settings.duration)
        (figures, script), used, kept = self.window(
            f"{workload.name} ({what})",
            lambda: self.pgbench(workload, settings.duration, clients=clients, depth=depth),
        )
        if not figures:
            return None
        if depth:
            figures = dict(
                figures, requests=(figures["requests"] or 0) * depth, rps=figures["rps"] * depth
            )
        role = "ceiling_pipeline" if depth else "ceiling"
        tool = "pgbench-pipeline" if depth else "pgbench"
        measurement = self.record(
            workload.name, run, role, "pgbench", tool, "", figures, used, kept, None
        )
        with open(script, encoding="utf-8") as file:
            measurement.script = file.read()
        measurement.variables = pgbench_variables(workload)
        measurement.pgoptions = workload.pgoptions
        return measurement

    def fixed_rates(self, target, workload, run, rates, urls_file=None, system="server"):
        """oha at each (label, rate) against the target: FixedRate records
        (`system` "server", or "nginx" for the ceiling of /version)."""
        settings = self.settings
        seconds = settings.fixed_rate_duration
        records = []
        for label, rate in rates:
            self.progress.step(
                f"{workload.name}: {target.name} at {rate}/s ({label}, oha)", seconds
            )
            argv = loadgen.oha_argv(
                self.oha,
                target.url + workload.path,
                seconds,
                rate,
                settings.connections,
                urls_file,
            )

            def run_oha(argv=argv, label=label, rate=rate):
                status, text = loadgen.run_tool(
                    self.load("load_generator", argv), os.path.join(self.tmp, "oha.txt")
                )
                self.keep_raw(f"oha-{workload.name}-{label.rstrip('%')}", text)
                if status != 0:
                    raise Fatal(f"oha failed on {workload.name} at {rate}/s:\n{text[-2000:]}")
                return loadgen.parse_oha(text)

            figures, used, kept = self.window(f"{workload.name} at {rate}/s", run_oha)
            target.alive_after(f"{workload.name} at {rate}/s")
            record = oha_record(
                workload.name,
                run,
                label,
                rate,
                figures,
                used,
                kept,
                figures["requests"],
                target.component,
            )
            record.system = system
            records.append(record)
        return records

    def database_rates(self, workload, run, rates):
        """pgbench --rate at each (label, rate) on the workload's SQL: the
        database's own latency at the same offered loads."""
        seconds = self.settings.fixed_rate_duration
        records = []
        for label, rate in rates:
            self.progress.step(f"{workload.name}: pgbench at {rate}/s ({label})", seconds)
            prefix = os.path.join(self.tmp, f"rate-{workload.name}-{run}-{label.rstrip('%')}")

            def run_pgbench(rate=rate, prefix=prefix):
                # A noisy attempt's log must not add to the next one's.
                for path in glob.glob(prefix + ".*"):
                    os.remove(path)
                return self.pgbench(workload, seconds, rate=rate, log_prefix=prefix)[0]

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
            records.append(
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
        return records

    def mixed(self, target, run, rates, paths=None):
        """Several oha at once in one window, each at its rate (name →
        req/s) on its workload (or `paths[name]`): the mixed load. Their
        records share the window's CPU, per request of all kinds."""
        seconds = self.settings.fixed_rate_duration
        paths = paths or {}
        what = " beside ".join(
            f"{paths.get(name, BY_NAME[name].path)} at {rate:g}/s" for name, rate in rates.items()
        )
        self.progress.step(f"mixed: {target.name}: {what} (oha x{len(rates)})", seconds)

        def together():
            running = {}
            for name, rate in rates.items():
                connections = self.settings.connections if name == "types" else 16
                argv = loadgen.oha_argv(
                    self.oha,
                    target.url + paths.get(name, BY_NAME[name].path),
                    seconds,
                    rate,
                    connections,
                )
                out = open(os.path.join(self.tmp, f"oha-mixed-{name}.txt"), "w+", encoding="utf-8")  # noqa: SIM115
                process = subprocess.Popen(
                    self.load("load_generator", argv), stdout=out, stderr=subprocess.STDOUT
                )
                self.accounting.track("load_generator", process.pid)
                running[name] = (process, out)
            figures = {}
            for name, (process, out) in running.items():
                status = process.wait()
                out.seek(0)
                text = out.read()
                out.close()
                self.keep_raw(f"oha-mixed-{name}", text)
                if status != 0:
                    raise Fatal(f"oha failed on mixed {name}:\n{text[-2000:]}")
                figures[name] = loadgen.parse_oha(text)
            return figures

        figures, used, kept = self.window(f"mixed ({target.name})", together)
        target.alive_after("the mixed load")
        requests = sum(one["requests"] for one in figures.values())
        return [
            oha_record(
                f"mixed_{name}",
                run,
                "mixed",
                rates[name],
                one,
                used,
                kept,
                requests,
                target.component,
            )
            for name, one in figures.items()
        ]


def oha_record(workload, run, label, offered_rps, figures, used, kept, cpu_requests, component):
    """A FixedRate of oha against a server (loadgen.parse_oha's figures);
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
        cpu_us_per_request=cpu.per_request_us(used, cpu_requests, component),
    )


def urls_file(tmp, base_url, workload, contacts):
    """contact_random at a fixed rate: every id once, oha picks a line at
    random per request; one file per base URL."""
    path = os.path.join(tmp, f"urls-{re.sub(r'[^A-Za-z0-9]', '_', base_url)}.txt")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as file:
            for contact in range(1, contacts + 1):
                file.write(f"{base_url}{workload.path}{contact}\n")
    return path
