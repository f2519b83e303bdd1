"""CPU time per component (server, nginx, database, load generator) during a
measured window, at nanosecond resolution, counting processes that exit
during the window (PostgreSQL backends, a wrk run) as well.

How, in order of preference (the results record which one was used):

- "cgroup-v2": a cgroup per component under a harness-owned parent in the
  unified hierarchy, read from cpu.stat usage_usec.
- "cgroup-v1": the same in the cpuacct hierarchy, read from cpuacct.usage (ns).
  A component is started inside its cgroup (a two-line sh wrapper joins it
  and execs the command), so every child it forks is counted from its
  first instruction, and an exited child's time stays in the cgroup.
- "proc": where no cgroup is writable: /proc/<pid>/task/<tid>/schedstat (ns
  on CPU) summed over each component's live threads, plus the times of the
  children it has reaped (/proc/<pid>/stat cutime + cstime, in clock ticks);
  the load generator, a child of the harness, from getrusage(RUSAGE_CHILDREN).
  Coarser: a process or thread that exits within a window is missed until
  it is reaped (and a thread's time is then lost).

The arithmetic (deltas, µs per request) is in pure functions at the bottom.
"""

import os
import resource
import time

from harness.tools import warn

# "front": HAProxy in front of several instances; "link": the delay link
# between the app hosts and the database host (both with --hosts).
COMPONENTS = ("server", "nginx", "database", "pooler", "front", "link", "load_generator")

# The sh wrapper that starts a command inside a cgroup: it writes its own pid
# to cgroup.procs (so it and everything it execs and forks are in), then
# execs the command. $0 is the cgroup.procs path, "$@" the command.
JOIN_AND_EXEC = 'echo $$ > "$0" && exec "$@"'

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _mounts():
    with open("/proc/mounts", encoding="utf-8") as file:
        for line in file:
            device, mount_point, fs_type, options = line.split()[:4]
            yield mount_point, fs_type, options.split(",")


def _own_cgroup(controller):
    """Our own cgroup path in a v1 hierarchy (by controller) or v2 ("")."""
    with open("/proc/self/cgroup", encoding="utf-8") as file:
        for line in file:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if (
                controllers.split(",") == [""]
                and controller == ""
                or controller
                and controller in controllers.split(",")
            ):
                return path
    return None


def _find_hierarchy():
    """(method, directory of our own cgroup) of the best writable hierarchy."""
    candidates = []
    for mount_point, fs_type, options in _mounts():
        if fs_type == "cgroup2":
            own = _own_cgroup("")
            # Pure v2 (mounted at /sys/fs/cgroup) first; a hybrid's unified
            # hierarchy works the same way.
            if own is not None:
                candidates.append(
                    (0 if mount_point == "/sys/fs/cgroup" else 2, "cgroup-v2", mount_point + own)
                )
        elif fs_type == "cgroup" and "cpuacct" in options:
            own = _own_cgroup("cpuacct")
            if own is not None:
                candidates.append((1, "cgroup-v1", mount_point + own))
    for _, method, directory in sorted(candidates):
        probe = os.path.join(directory, f"bakeoff-probe-{os.getpid()}")
        try:
            os.mkdir(probe)
            os.rmdir(probe)
        except OSError:
            continue
        return method, directory
    return "proc", None


class Accounting:
    """The components' cgroups (or tracked process trees) for one run."""

    def __init__(self, force_method=None):
        method, directory = ("proc", None) if force_method == "proc" else _find_hierarchy()
        self.method = method
        self.parent = None
        self.roots = {component: [] for component in COMPONENTS}  # "proc": tracked root pids
        self.exited_ns = {component: 0 for component in COMPONENTS}
        # The components something was started in (or moved into): only
        # their CPU counts in a window. The load generator always runs.
        self.active = {"load_generator"}
        if directory:
            remove_stale(directory)
            self.parent = os.path.join(directory, f"bakeoff-harness-{os.getpid()}")
            os.mkdir(self.parent)
            for component in COMPONENTS:
                os.mkdir(os.path.join(self.parent, component))

    # --- putting processes in ---------------------------------------------------

    def _procs_file(self, component):
        return os.path.join(self.parent, component, "cgroup.procs")

    def wrap(self, component, argv):
        """argv, prefixed so that the command starts inside the component's
        cgroup (unchanged for "proc": call track() with its pid instead)."""
        self.active.add(component)
        if self.parent is None:
            return list(argv)
        return ["sh", "-c", JOIN_AND_EXEC, self._procs_file(component), *argv]

    def track(self, component, pid):
        """ "proc": count pid's process tree for this component."""
        self.active.add(component)
        if self.parent is None:
            self.roots[component].append(pid)

    def adopt(self, component, pid):
        """Counts a process started elsewhere (a --target's, an external
        PostgreSQL's postmaster) and its descendants: moved into the
        component's cgroup, their future children are born there. Returns
        how many processes were moved (or tracked)."""
        pids = [pid, *descendants(pid)]
        if self.parent is None:
            self.roots[component].append(pid)
            self.active.add(component)
            return len(pids)
        moved = 0
        for one in pids:
            try:
                with open(self._procs_file(component), "w", encoding="ascii") as file:
                    file.write(str(one))
                moved += 1
            except OSError:
                pass  # exited meanwhile, or not ours to move
        if moved:
            self.active.add(component)
        return moved

    def pids(self, component):
        """The live processes of a component now: its cgroup's members, or
        the tracked process trees."""
        if self.parent is None:
            return [pid for root in self.roots[component] for pid in (root, *descendants(root))]
        try:
            with open(self._procs_file(component), encoding="ascii") as file:
                return [int(line) for line in file if line.strip()]
        except OSError:
            return []

    # --- reading ----------------------------------------------------------------

    def usage_ns(self):
        """{component: cumulative CPU ns} now. Only deltas between two reads
        mean anything."""
        if self.parent is None:
            out = {
                component: sum(tree_cpu_ns(pid) for pid in pids)
                for component, pids in self.roots.items()
            }
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            out["load_generator"] = int((children.ru_utime + children.ru_stime) * 1e9)
            return out
        return {
            component: read_cgroup_ns(os.path.join(self.parent, component), self.method)
            for component in COMPONENTS
        }

    def close(self):
        """Moves anything left back to our own cgroup and removes the cgroups
        (a cgroup with a process in it cannot be removed)."""
        if self.parent is None:
            return
        home = os.path.join(os.path.dirname(self.parent), "cgroup.procs")
        for component in COMPONENTS:
            directory = os.path.join(self.parent, component)
            for _ in range(50):
                try:
                    with open(os.path.join(directory, "cgroup.procs"), encoding="ascii") as file:
                        left = [line.strip() for line in file if line.strip()]
                except OSError:
                    break
                for pid in left:
                    try:
                        with open(home, "w", encoding="ascii") as file:
                            file.write(pid)
                    except OSError:
                        pass
                try:
                    os.rmdir(directory)
                    break
                except OSError:
                    time.sleep(0.1)  # a process exiting is still listed briefly
            else:
                warn(f"could not remove the cgroup {directory}")
        try:
            os.rmdir(self.parent)
        except OSError as error:
            warn(f"could not remove the cgroup {self.parent}: {error}")
        self.parent = None


def remove_stale(directory):
    """Removes the empty cgroups of harness runs that died without cleaning
    up (kill -9): a bakeoff-harness-<pid> whose pid is gone."""
    for name in os.listdir(directory):
        if not name.startswith("bakeoff-harness-") or not name[16:].isdigit():
            continue
        if os.path.exists(f"/proc/{name[16:]}"):
            continue
        parent = os.path.join(directory, name)
        try:
            for component in os.listdir(parent):
                if os.path.isdir(os.path.join(parent, component)):
                    os.rmdir(os.path.join(parent, component))
            os.rmdir(parent)
        except OSError:
            pass  # a process still in it: leave it to whoever owns it


def read_cgroup_ns(directory, method):
    if method == "cgroup-v1":
        with open(os.path.join(directory, "cpuacct.usage"), encoding="ascii") as file:
            return int(file.read())
    with open(os.path.join(directory, "cpu.stat"), encoding="ascii") as file:
        return parse_cpu_stat_v2(file.read())


def parse_cpu_stat_v2(text):
    """usage_usec of a v2 cpu.stat, in ns."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) * 1000
    raise ValueError("no usage_usec in cpu.stat")


# --- /proc fallback ----------------------------------------------------------------


def _children_map():
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as file:
                ppid = int(parse_proc_stat(file.read())["ppid"])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(pid):
    """Every live descendant of pid."""
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def parse_proc_stat(text):
    """The fields of /proc/<pid>/stat we use: ppid, and cutime + cstime (the
    reaped children's CPU, in clock ticks). The command name may hold spaces
    and parentheses, so fields are counted from the last ')'."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); ppid is field 4, cutime 16, cstime 17.
    return {"ppid": rest[1], "children_ticks": int(rest[13]) + int(rest[14])}


def parse_schedstat(text):
    """ns on CPU: the first of /proc/<pid>/schedstat's three numbers."""
    return int(text.split()[0])


def tree_cpu_ns(pid):
    """CPU ns of a process tree: each live thread's schedstat (a process's
    own /proc/<pid>/schedstat is its main thread's alone, and a tokio
    server works in its other threads), plus what each process's reaped
    children used."""
    total = 0
    for one in [pid, *descendants(pid)]:
        try:
            for thread in os.listdir(f"/proc/{one}/task"):
                try:
                    with open(f"/proc/{one}/task/{thread}/schedstat", encoding="ascii") as file:
                        total += parse_schedstat(file.read())
                except OSError:
                    continue  # the thread exited meanwhile
            with open(f"/proc/{one}/stat", encoding="ascii", errors="replace") as file:
                ticks = parse_proc_stat(file.read())["children_ticks"]
            total += ticks * 1_000_000_000 // CLOCK_TICKS
        except (OSError, ValueError, IndexError):
            continue
    return total


# --- arithmetic ------------------------------------------------------------------


def deltas(before, after):
    """{component: ns used between two usage_ns() reads}; a counter that went
    backwards (a cgroup recreated, a tracked process gone) counts as 0."""
    return {
        component: max(after.get(component, 0) - before.get(component, 0), 0)
        for component in before
    }


def per_request_us(used_ns, requests, server_component):
    """CPU µs per request of each part of one measurement, and their total.

    used_ns: deltas() of the window, holding only the components that are
    counted (no "database" for a PostgreSQL that is not ours to watch);
    server_component: which one answered ("server", "nginx", or None for
    pgbench, where there is no server). The
    components that did not take part (the idle server during a ceiling) are
    left out of the total, but their time is not lost: it is in the noise
    figure's "ours" part.
    """
    if not requests:
        return None

    def us(ns):
        return ns / 1000.0 / requests

    out = {
        "server": us(used_ns[server_component]) if server_component in used_ns else None,
        "database": us(used_ns["database"]) if "database" in used_ns else None,
        "load_generator": us(used_ns["load_generator"]) if "load_generator" in used_ns else None,
    }
    for part in ("pooler", "front", "link"):
        # PgBouncer between the server and PostgreSQL (--pooler), HAProxy in
        # front of several instances, the delay link (--hosts): their own
        # parts, present only where they ran.
        if part in used_ns:
            out[part] = us(used_ns[part])
    out["total"] = sum(value for value in out.values() if value is not None)
    return out
