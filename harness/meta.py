"""What a results file says about the run itself, built in one place for
every command: when, which commit, the command line, the machine, how busy
it was before, the settings, the tools' versions, the CPU method."""

import dataclasses
import os
import platform
import re
import time

from harness import noise
from harness.tools import first_line, tool_path, warn

CPU_NOTES = {
    "cgroup-v1": "cpuacct.usage of a cgroup per component",
    "cgroup-v2": "cpu.stat usage_usec of a cgroup per component",
    "proc": "/proc schedstat of each process tree",
}


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


def conditions():
    """How busy the CPUs are just before measuring (everything of ours is
    idle then): other work skews every number."""
    before = noise.read_proc_stat()
    time.sleep(1)
    after = noise.read_proc_stat()
    total = sum(after.values()) - sum(before.values())
    idle = (after["idle"] + after["iowait"]) - (before["idle"] + before["iowait"])
    busy = round(100.0 * (total - idle) / total, 1) if total else 0.0
    with open("/proc/loadavg", encoding="ascii") as file:
        loadavg = " ".join(file.read().split()[:3])
    if busy > 10:
        warn(
            f"the CPUs were {busy}% busy before the run, with nothing of ours running: "
            "expect noisy numbers"
        )
    return {"cpu_busy_percent_before": busy, "loadavg_before": loadavg}


def params(settings, workloads, **extra):
    """The run's parameters under the names the reports read (schema 2's),
    and every setting as it was under "settings"."""
    out = {
        "duration_s": settings.duration,
        "warmup_s": settings.warmup,
        "connections": settings.connections,
        "threads": settings.threads,
        "contacts": settings.contacts,
        "runs": settings.runs,
        "quick": settings.quick,
        "ceilings": settings.ceilings,
        "workloads": [workload.name for workload in workloads],
        "server_args": " ".join(settings.server_args),
        "noise_threshold_cores": settings.noise_threshold,
        "max_retries": settings.max_retries,
        "fixed_rate": settings.fixed_rate,
        "fixed_rate_duration_s": settings.fixed_rate_duration,
        "rate_fractions_pct": list(settings.rate_fractions),
        "common_rate": settings.common_rate,
        "pipeline_ceiling_depth": settings.pipeline_depth,
        "max_connections": settings.max_connections,
        "rtt_ms": list(settings.rtt_ms),
        "instances": list(settings.instances),
        "pooler": settings.pooler,
        "pooler_pool_size": settings.pooler_size if settings.pooler != "none" else None,
    }
    out.update(extra)
    out["settings"] = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(settings).items()
    }
    return out


def versions(names, oha=None):
    """The first line each tool prints of its version, for those installed."""
    flags = {
        "wrk": ["-v"],
        "nginx": ["-v"],
        "pgbench": ["--version"],
        "pgbouncer": ["--version"],
        "haproxy": ["-v"],
        "rustc": ["--version"],
        "go": ["version"],
        "pypy3": ["--version"],
    }
    out = {}
    for name in names:
        path = tool_path(name) if name != "rustc" else "rustc"
        if path:
            out[name] = first_line([path, *flags.get(name, ["--version"])])
    if oha:
        out["oha"] = first_line([oha, "--version"])
    return out


def document_head(kind, settings, command_line, commit, dirty, accounting, run_params):
    """The fields every results file begins with."""
    return {
        "kind": kind,
        "name": settings.name if kind == "run" else kind,
        "label": settings.label,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        "dirty": dirty,
        "command": command_line,
        "machine": machine_info(),
        "params": run_params,
        "cpu": {
            "method": accounting.method,
            "components": sorted(accounting.active),
            "note": CPU_NOTES[accounting.method],
        },
    }
