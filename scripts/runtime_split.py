#!/usr/bin/env python3
"""How the work splits between the server's runtimes, run after run (issue #22).

Starts a throwaway PostgreSQL (seeded once by the binary), then for each run
starts a fresh server, warms it up, scrapes /metrics and the CPU counters of
the server and of PostgreSQL, runs wrk, scrapes again, and prints one line
per run with the per-runtime deltas of every `bakeoff_runtime_` family:
connections accepted per runtime, requests per runtime, PostgreSQL queries
per socket write (pipelining depth), polls of the connection tasks per
query, and the CPU µs per request of the server and of PostgreSQL.

    python3 scripts/runtime_split.py --binary target/release/bakeoff --runs 8
    python3 scripts/runtime_split.py --binary A --binary B --runs 6   # interleaved

With several binaries (or --server-args sets, `--variant NAME=ARGS`), runs
alternate between them, so that a noisy neighbour hits each alike. Results
also go to --out as JSON lines. Stdlib only; run as root (PostgreSQL runs as
the `postgres` user) or as a user that may run initdb.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")

WORKLOADS = {
    # name: (path, extra wrk arguments)
    "contact_random": ("/contacts/", ["-s", os.path.join(ROOT, "scripts/wrk/random_contact.lua")]),
    "types": ("/types", []),
    "version": ("/version", []),
    "fetch100": ("/contacts/fetch?limit=100", []),
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(argv):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class Database:
    """A throwaway cluster, as the harness makes them (no durability)."""

    def __init__(self, binary, contacts):
        self.dir = tempfile.mkdtemp(prefix="bakeoff-split-")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        subprocess.run(
            as_postgres(
                [
                    f"{PG_BIN}/initdb",
                    "-D",
                    self.data,
                    "--locale=C.UTF-8",
                    "-E",
                    "UTF8",
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.port = free_port()
        with open(os.path.join(self.data, "postgresql.conf"), "a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        subprocess.run(
            as_postgres(
                [
                    f"{PG_BIN}/pg_ctl",
                    "-D",
                    self.data,
                    "-l",
                    os.path.join(self.dir, "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            as_postgres(
                [
                    f"{PG_BIN}/psql",
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    "CREATE DATABASE bakeoff",
                ]
            ),
            check=True,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/bakeoff"
        subprocess.run(
            [binary, "seed", "--contacts", str(contacts)],
            check=True,
            env={**os.environ, "DATABASE_URL": self.url},
            stdout=subprocess.DEVNULL,
        )
        with open(os.path.join(self.data, "postmaster.pid"), encoding="utf-8") as pid:
            self.postmaster = int(pid.readline())

    def pids(self):
        """The postmaster and its children (the backends)."""
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                fields = proc_stat(int(pid))
                if fields and (int(pid) == self.postmaster or fields[1] == self.postmaster):
                    found.append(int(pid))
        return found

    def cpu_ticks(self):
        """utime + stime of the postmaster and every child (the backends)."""
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            fields = proc_stat(int(pid))
            if fields and (int(pid) == self.postmaster or fields[1] == self.postmaster):
                total += fields[11] + fields[12]
        return total

    def stop(self):
        subprocess.run(
            as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def proc_stat(pid):
    """(state, ppid, …) of /proc/PID/stat after the command; fields[11],
    fields[12] are utime and stime in ticks. None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            text = stat.read()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()
    return [rest[0], int(rest[1])] + [int(value) for value in rest[2:15]]


def switches(pids):
    """Voluntary and involuntary context switches of every thread of `pids`."""
    voluntary = involuntary = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/status", encoding="utf-8") as status:
                    for line in status:
                        if line.startswith("voluntary_ctxt_switches"):
                            voluntary += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches"):
                            involuntary += int(line.split()[1])
            except OSError:
                continue
    return voluntary, involuntary


class Placement(threading.Thread):
    """Samples, every 5 ms, the CPU each runtime thread last ran on
    (/proc/PID/task/TID/stat, field 39): the share of samples where the
    runtimes' threads were on the same CPU, and their CPU changes per second."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.stop, self.samples = pid, threading.Event(), []
        self.tids = sorted(
            tid for tid in os.listdir(f"/proc/{pid}/task") if _comm(pid, tid).startswith("bakeoff-")
        )

    def run(self):
        while not self.stop.is_set():
            cpus = []
            for tid in self.tids:
                try:
                    with open(f"/proc/{self.pid}/task/{tid}/stat", encoding="utf-8") as stat:
                        text = stat.read()
                    cpus.append(int(text[text.rindex(")") + 2 :].split()[36]))
                except (OSError, IndexError, ValueError):
                    cpus.append(-1)
            self.samples.append((time.time(), cpus))
            time.sleep(0.005)

    def summary(self):
        if len(self.tids) < 2 or len(self.samples) < 2:
            return {"same_cpu_share": None, "moves_per_s": None}
        same = sum(1 for _, cpus in self.samples if len(set(cpus)) == 1) / len(self.samples)
        moves = sum(
            1
            for (_, a), (_, b) in zip(self.samples, self.samples[1:])
            for x, y in zip(a, b)
            if x != y
        )
        span = self.samples[-1][0] - self.samples[0][0]
        return {"same_cpu_share": round(same, 2), "moves_per_s": round(moves / span, 1)}


def _comm(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as comm:
            return comm.read().strip()
    except OSError:
        return ""


def machine_busy_ticks():
    """Busy ticks of every CPU (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat", encoding="utf-8") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def children_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid):
    fields = proc_stat(pid)
    return fields[11] + fields[12] if fields else 0


def runtime_threads_cpu(pid):
    """utime + stime of each `bakeoff-N` thread (a per-core runtime), by N."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name.startswith("bakeoff-") and name[8:].isdigit():
            fields = proc_stat(f"{pid}/task/{tid}")
            ticks[int(name[8:])] = fields[11] + fields[12] if fields else 0
    return ticks


SAMPLE = re.compile(r'^(bakeoff_runtime_\w+)\{runtime="(\d+)"\} (\S+)$', re.M)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for name, runtime, value in SAMPLE.findall(text):
        values.setdefault(name, {})[int(runtime)] = float(value)
    return values


def wait_ready(port, deadline=20):
    start = time.time()
    while time.time() - start < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("the server did not get ready")


# The last oha window's latency percentiles, in milliseconds.
LATENCY = {}


def oha(port, workload, duration, connections, rate, contacts):
    """A fixed offered rate (oha): CPU per request compared at the same rate
    does not feed back through throughput."""
    path, _ = WORKLOADS[workload]
    url = f"http://127.0.0.1:{port}{path}"
    argv = [
        "oha",
        "--no-tui",
        "--output-format",
        "json",
        "-z",
        f"{duration}s",
        "-q",
        str(rate),
        "-c",
        str(connections),
    ]
    if workload == "contact_random":
        # 1 to 9999, about evenly: the random ids of random_contact.lua.
        argv += ["--rand-regex-url", url + "[1-9][0-9]{3}"]
    else:
        argv.append(url)
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    percentiles = out.get("latencyPercentiles", {})
    LATENCY.update(p50_ms=percentiles.get("p50", 0) * 1e3, p99_ms=percentiles.get("p99", 0) * 1e3)
    return out["summary"]["requestsPerSec"]


def wrk(port, workload, duration, connections, threads, contacts, rate=None):
    if rate:
        return oha(port, workload, duration, connections, rate, contacts)
    path, extra = WORKLOADS[workload]
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        *extra,
        f"http://127.0.0.1:{port}{path}",
    ]
    if workload == "contact_random":
        argv += ["--", str(contacts)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def one_run(variant, binary, server_args, db, options):
    port = free_port()
    # Words like POOL_SIZE=2 are environment settings, the rest arguments.
    settings = dict(
        word.split("=", 1) for word in server_args if re.fullmatch(r"[A-Z_]+=\S*", word)
    )
    server_args = [word for word in server_args if not re.fullmatch(r"[A-Z_]+=\S*", word)]
    env = {**os.environ, **settings, "DATABASE_URL": db.url, "BIND": f"127.0.0.1:{port}"}
    # SCHED=batch runs the server under SCHED_BATCH (chrt -b 0).
    prefix = ["chrt", "-b", "0"] if settings.pop("SCHED", "") == "batch" else []
    server = subprocess.Popen(
        [*prefix, binary, "serve", *server_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(port)
        if options.warmup:
            wrk(
                port,
                options.workload,
                options.warmup,
                options.connections,
                options.threads,
                options.contacts,
            )
        before, server_cpu, pg_cpu = scrape(port), cpu_of(server.pid), db.cpu_ticks()
        threads = runtime_threads_cpu(server.pid)
        pg_pids = db.pids()
        server_switches, pg_switches = switches([server.pid]), switches(pg_pids)
        busy, wrk_cpu, started = machine_busy_ticks(), children_cpu_s(), time.time()
        placement = Placement(server.pid)
        placement.start()
        rate = wrk(
            port,
            options.workload,
            options.duration,
            options.connections,
            options.threads,
            options.contacts,
            options.rate,
        )
        placement.stop.set()
        placement.join()
        after, server_cpu2, pg_cpu2 = scrape(port), cpu_of(server.pid), db.cpu_ticks()
        threads2 = runtime_threads_cpu(server.pid)
        server_switches2, pg_switches2 = switches([server.pid]), switches(pg_pids)
        busy2, wrk_cpu2, elapsed = machine_busy_ticks(), children_cpu_s(), time.time() - started
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    delta = {
        name: {
            runtime: after[name][runtime] - before.get(name, {}).get(runtime, 0)
            for runtime in after[name]
        }
        for name in after
    }

    def total(name):
        return sum(delta.get(name, {}).values())

    requests = total("bakeoff_runtime_requests_total")
    runtimes = sorted(delta.get("bakeoff_runtime_requests_total", {}))
    per = {
        name.removeprefix("bakeoff_runtime_").removesuffix("_total"): [
            delta[name].get(runtime, 0) for runtime in runtimes
        ]
        for name in delta
    }
    per["open_connections"] = [
        after["bakeoff_runtime_open_connections"].get(runtime, 0) for runtime in runtimes
    ]
    queries, writes = (
        total("bakeoff_runtime_db_queries_total"),
        total("bakeoff_runtime_db_writes_total"),
    )
    record = {
        "variant": variant,
        "req_s": rate,
        "requests": requests,
        "server_cpu_us_per_req": (server_cpu2 - server_cpu) / TICKS * 1e6 / max(requests, 1),
        "pg_cpu_us_per_req": (pg_cpu2 - pg_cpu) / TICKS * 1e6 / max(requests, 1),
        "wrk_cpu_us_per_req": (wrk_cpu2 - wrk_cpu) * 1e6 / max(requests, 1),
        # Cores busy with anything but the server, PostgreSQL and wrk: the
        # neighbours' share of the window (other builds, other benchmarks).
        "others_cores": (
            (busy2 - busy) / TICKS
            - (server_cpu2 - server_cpu) / TICKS
            - (pg_cpu2 - pg_cpu) / TICKS
            - (wrk_cpu2 - wrk_cpu)
        )
        / elapsed,
        # Context switches per request: voluntary ones are wake-ups (a thread
        # or backend blocked for want of work), involuntary ones preemptions.
        "server_wakeups_per_req": (server_switches2[0] - server_switches[0]) / max(requests, 1),
        "server_preemptions_per_req": (server_switches2[1] - server_switches[1]) / max(requests, 1),
        "pg_wakeups_per_req": (pg_switches2[0] - pg_switches[0]) / max(requests, 1),
        "pg_preemptions_per_req": (pg_switches2[1] - pg_switches[1]) / max(requests, 1),
        **placement.summary(),
        **(LATENCY if options.rate else {}),
        "queries_per_write": queries / max(writes, 1),
        "queries_per_read": queries / max(total("bakeoff_runtime_db_reads_total"), 1),
        "polls_per_query": total("bakeoff_runtime_db_driver_polls_total") / max(queries, 1),
        "per_runtime": per,
    }
    # CPU seconds of each runtime's thread over the window (per core only).
    record["runtime_thread_cpu_s"] = [
        round((threads2.get(n, 0) - threads.get(n, 0)) / TICKS, 2) for n in sorted(threads2)
    ]
    record["queries_per_write_per_runtime"] = [
        round(q / max(w, 1), 2) for q, w in zip(per.get("db_queries", []), per.get("db_writes", []))
    ]
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", action="append", help="server binary (repeat to compare)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=SERVER ARGS, run with the first binary (repeatable)",
    )
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--workload", default="contact_random", choices=sorted(WORKLOADS))
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contacts", type=int, default=10000)
    parser.add_argument("--rate", type=int, help="a fixed offered rate (oha) instead of wrk")
    parser.add_argument("--out", default="/tmp/runtime_split.jsonl")
    options = parser.parse_args()
    binaries = options.binary or [os.path.join(ROOT, "target/release/bakeoff")]
    # Either one variant per binary, or the --variant argument sets on the
    # first binary.
    variants = [(os.path.basename(path), path, []) for path in binaries]
    if options.variant:
        # NAME=ARGS, where an @PATH word picks another binary than the first.
        variants = []
        for name, _, args in (spec.partition("=") for spec in options.variant):
            words = args.split()
            binary = next((word[1:] for word in words if word.startswith("@")), binaries[0])
            variants.append((name, binary, [word for word in words if not word.startswith("@")]))
    db = Database(binaries[0], options.contacts)
    try:
        with open(options.out, "a", encoding="utf-8") as out:
            for run in range(options.runs):
                for name, binary, args in variants:
                    record = one_run(name, binary, args, db, options)
                    record["run"] = run
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                    per = record["per_runtime"]
                    print(
                        f"{name:>12} run {run}: {record['req_s']:8.0f} req/s  "
                        f"server {record['server_cpu_us_per_req']:5.1f} µs/req  "
                        f"pg {record['pg_cpu_us_per_req']:5.1f} µs/req  "
                        f"wrk {record['wrk_cpu_us_per_req']:5.1f}  "
                        f"others {record['others_cores']:.2f} cores  "
                        f"wake/req srv {record['server_wakeups_per_req']:.2f} "
                        f"pg {record['pg_wakeups_per_req']:.2f}  "
                        f"preempt/req srv {record['server_preemptions_per_req']:.2f} "
                        f"pg {record['pg_preemptions_per_req']:.2f}  "
                        f"conns {per.get('connections_accepted')}  "
                        f"requests {per.get('requests')}  "
                        f"q/write {record['queries_per_write']:.2f} "
                        f"{record['queries_per_write_per_runtime']}  "
                        f"polls/q {record['polls_per_query']:.2f}  "
                        f"thread cpu {record['runtime_thread_cpu_s']}  "
                        f"same cpu {record['same_cpu_share']} moves/s {record['moves_per_s']}",
                        flush=True,
                    )
    finally:
        db.stop()


if __name__ == "__main__":
    sys.exit(main())
