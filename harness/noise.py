"""The noise gate: how much CPU the rest of the machine used during a
measured window, and whether that was too much to keep the window.

"The rest" is all busy time from /proc/stat (user, nice, system and steal:
time a hypervisor gave to another guest counts, since it was taken from us)
minus what the run's own components used (cpu.py). Interrupt time (irq and
softirq) is kept apart and not held against the window: on loopback it is
mostly the benchmark's own network traffic, which the kernel does not
charge to any cgroup when it accounts interrupt time separately.
"""

import os
import time
from dataclasses import dataclass

from harness import cpu, results
from harness.tools import warn

TICKS = os.sysconf("SC_CLK_TCK")


def parse_proc_stat(text):
    """{user, nice, system, idle, iowait, irq, softirq, steal} in ns, from the
    aggregate `cpu` line of /proc/stat (in clock ticks there)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
            values = [int(value) for value in line.split()[1 : 1 + len(names)]]
            values += [0] * (len(names) - len(values))
            return {name: value * 1_000_000_000 // TICKS for name, value in zip(names, values)}
    raise ValueError("no aggregate cpu line in /proc/stat")


def read_proc_stat():
    with open("/proc/stat", encoding="ascii") as file:
        return parse_proc_stat(file.read())


@dataclass
class Busy:
    """CPU use during one window, in cores (1.0 = one core busy throughout)."""

    # Everything outside the run's components: what the gate judges.
    other_cores: float
    # The run's own components together.
    ours_cores: float
    # irq + softirq, not charged to either (see the module's doc).
    interrupts_cores: float
    # The window's wall-clock length.
    seconds: float


def busy_in_window(stat_before, stat_after, ours_ns, seconds):
    """Busy shares of one window from two /proc/stat reads and the ns the
    run's components used between them."""
    if seconds <= 0:
        raise ValueError("a window lasts more than 0 s")

    def delta(key):
        return stat_after[key] - stat_before[key]

    busy_ns = sum(delta(key) for key in ("user", "nice", "system", "steal"))
    interrupts_ns = delta("irq") + delta("softirq")
    # /proc/stat counts in ticks (10 ms); the components in ns: a quiet
    # window can come out slightly below 0, which means "nothing else".
    other_ns = max(busy_ns - ours_ns, 0)
    wall_ns = seconds * 1e9
    return Busy(
        other_cores=other_ns / wall_ns,
        ours_cores=ours_ns / wall_ns,
        interrupts_cores=interrupts_ns / wall_ns,
        seconds=seconds,
    )


def is_noisy(busy, threshold_cores):
    """True when other work took more than threshold_cores during the window."""
    return busy.other_cores > threshold_cores


def pick_attempt(attempts, threshold_cores):
    """Which of a window's attempts to keep: the first quiet one, else (all
    noisy: the retry limit was reached) the least noisy. attempts holds
    (Busy, anything) pairs, in the order they ran."""
    if not attempts:
        raise ValueError("no attempts")
    for attempt in attempts:
        if not is_noisy(attempt[0], threshold_cores):
            return attempt
    return min(attempts, key=lambda attempt: attempt[0].other_cores)


def gated(what, measure, accounting, threshold_cores, max_retries, retried):
    """Runs measure() as one measured window, again while other work took
    more than threshold_cores of the machine (up to max_retries times;
    retried(seconds) is told of each retry). Returns (result, {component:
    ns} of the components that ran, results.Noise) of the attempt kept."""
    attempts = []
    for attempt in range(1 + max_retries):
        stat_before = read_proc_stat()
        cpu_before = accounting.usage_ns()
        start = time.monotonic()
        result = measure()
        seconds = time.monotonic() - start
        cpu_after = accounting.usage_ns()
        stat_after = read_proc_stat()
        used = {
            component: ns
            for component, ns in cpu.deltas(cpu_before, cpu_after).items()
            if component in accounting.active
        }
        busy = busy_in_window(stat_before, stat_after, sum(used.values()), seconds)
        attempts.append((busy, (result, used)))
        if not is_noisy(busy, threshold_cores):
            break
        more = attempt < max_retries
        if more:
            retried(seconds)
        warn(
            f"{what}: other work used {busy.other_cores:.2f} cores during the window "
            f"(gate {threshold_cores:g}){': measuring it again' if more else ''}"
        )
    busy, (result, used) = pick_attempt(attempts, threshold_cores)
    kept = results.Noise(
        other_cores=round(busy.other_cores, 4),
        ours_cores=round(busy.ours_cores, 4),
        interrupts_cores=round(busy.interrupts_cores, 4),
        noisy=is_noisy(busy, threshold_cores),
        attempts=len(attempts),
    )
    return result, used, kept
