"""How one running row shares a load between its processes.

Runs a load command (wrk, oha, ...) against a row listening on PORT and
prints, for each process that holds the listening socket (a uvicorn or
gunicorn supervisor and its workers; a Go binary alone): the CPU it used
during the command (user + system, from /proc/PID/stat, children and threads
included), in cores; the time its threads waited for a CPU while runnable
(/proc/PID/task/*/schedstat), in cores too: low CPU with little waiting is
a process with nothing to do, low CPU with much waiting one starved by other
work; its established client connections on PORT (from `ss -tnp`, sampled
while the command runs) and its threads. The peers/README.md
section "Stalled rows" has the figures this produced.

    python3 peers/tools/worker_split.py 18001 -- wrk -c16 -t2 -d5s http://127.0.0.1:18001/types

Standard library only; Linux only (/proc, ss from iproute2).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
SS_PID = re.compile(r"pid=(\d+)")


def listening_pids(port):
    """The processes holding a listening socket on the port."""
    out = subprocess.run(
        ["ss", "-Htlnp", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({int(pid) for pid in SS_PID.findall(out)})


def connections_by_pid(port):
    """Established connections on the port, by owning process (a socket
    shared by several processes counts for each)."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts = {}
    for line in out.splitlines():
        for pid in set(SS_PID.findall(line)):
            counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def cpu_seconds(pid):
    """utime + stime of the process, all its threads, and its waited-for children."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After "pid (comm)": state is field 0; utime, stime, cutime, cstime are 11-14.
    return sum(int(value) for value in fields[11:15]) / TICKS


def run_queue_seconds(pid):
    """Time its threads spent runnable but waiting for a CPU (the second
    field of /proc/PID/task/*/schedstat, in ns): what tells a process starved
    by other work from one with nothing to do."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as file:
                total += int(file.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int, help="the port the row listens on")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the load command")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("give the load command after --")

    pids = listening_pids(options.port)
    if not pids:
        sys.exit(f"nothing listens on port {options.port}")
    before = {pid: cpu_seconds(pid) for pid in pids}
    waited = {pid: run_queue_seconds(pid) for pid in pids}
    samples = {pid: [] for pid in pids}
    started = time.monotonic()
    load = subprocess.Popen(command)
    while load.poll() is None:
        time.sleep(options.interval)
        counts = connections_by_pid(options.port)
        for pid in pids:
            samples[pid].append(counts.get(pid, 0))
    elapsed = time.monotonic() - started

    print(
        f"\n{len(pids)} processes on port {options.port}, {elapsed:.1f} s of `{' '.join(command)}`"
    )
    print("pid      cores  waiting  connections (median, max)  threads  command")
    for pid in pids:
        after, queued = cpu_seconds(pid), run_queue_seconds(pid)
        cores = (after - before[pid]) / elapsed if None not in (after, before[pid]) else 0
        waiting = (queued - waited[pid]) / elapsed if None not in (queued, waited[pid]) else 0
        # Skip the first and last samples: the load tool is connecting or closing.
        steady = samples[pid][1:-1] or samples[pid] or [0]
        print(
            f"{pid:<8} {cores:5.2f}  {waiting:7.2f}  {statistics.median(steady):5.0f}"
            f" {max(steady):5d}                {threads(pid):7d}  {command_line(pid)[:70]}"
        )
    sys.exit(load.returncode)


if __name__ == "__main__":
    main()
