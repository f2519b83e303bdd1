"""cpu.py: the arithmetic of CPU per request and the parsing of the kernel's
files, on figures worked out by hand."""

import sys
import unittest

from harness import cpu


class DeltaTests(unittest.TestCase):
    def test_deltas_per_component(self):
        before = {"server": 1_000, "database": 5_000, "load_generator": 0}
        after = {"server": 4_000, "database": 5_500, "load_generator": 2_000}
        self.assertEqual(
            cpu.deltas(before, after), {"server": 3_000, "database": 500, "load_generator": 2_000}
        )

    def test_a_counter_that_went_backwards_counts_as_nothing(self):
        self.assertEqual(cpu.deltas({"server": 9_000}, {"server": 1_000}), {"server": 0})


class PerRequestTests(unittest.TestCase):
    def test_server_database_load_generator_and_total(self):
        # 2 s of server CPU, 1 s of database, 0.5 s of wrk over 100,000
        # requests: 20, 10 and 5 µs per request, 35 in all.
        used = {
            "server": 2_000_000_000,
            "nginx": 0,
            "database": 1_000_000_000,
            "load_generator": 500_000_000,
        }
        cost = cpu.per_request_us(used, 100_000, "server")
        self.assertAlmostEqual(cost["server"], 20.0)
        self.assertAlmostEqual(cost["database"], 10.0)
        self.assertAlmostEqual(cost["load_generator"], 5.0)
        self.assertAlmostEqual(cost["total"], 35.0)

    def test_the_nginx_ceiling_counts_nginx_as_the_server(self):
        used = {
            "server": 7_000_000,
            "nginx": 300_000_000,
            "database": 0,
            "load_generator": 100_000_000,
        }
        cost = cpu.per_request_us(used, 10_000, "nginx")
        self.assertAlmostEqual(cost["server"], 30.0)
        self.assertAlmostEqual(cost["total"], 40.0)  # the idle server's 7 ms are not in it

    def test_pgbench_has_no_server(self):
        used = {"server": 0, "database": 600_000_000, "load_generator": 200_000_000}
        cost = cpu.per_request_us(used, 20_000, None)
        self.assertIsNone(cost["server"])
        self.assertAlmostEqual(cost["database"], 30.0)
        self.assertAlmostEqual(cost["total"], 40.0)

    def test_an_uncounted_database_is_unknown_not_zero(self):
        used = {"server": 1_000_000_000, "load_generator": 1_000_000_000}
        cost = cpu.per_request_us(used, 1_000_000, "server")
        self.assertIsNone(cost["database"])
        self.assertAlmostEqual(cost["total"], 2.0)

    def test_no_requests_no_cost(self):
        self.assertIsNone(cpu.per_request_us({"server": 5}, 0, "server"))


class KernelFileTests(unittest.TestCase):
    def test_proc_stat_with_a_command_name_holding_spaces_and_parentheses(self):
        # /proc/<pid>/stat of a process named "a) (b": ppid 1, utime 3,
        # stime 4, cutime 250, cstime 50.
        text = "4242 (a) (b) S 1 4242 4242 0 -1 4194560 100 0 0 0 3 4 250 50 20 0 1 0 5 0 0"
        fields = cpu.parse_proc_stat(text)
        self.assertEqual(fields["ppid"], "1")
        self.assertEqual(fields["children_ticks"], 300)

    def test_schedstat_first_field_is_ns_on_cpu(self):
        self.assertEqual(cpu.parse_schedstat("123456789 2000 31\n"), 123456789)

    def test_cgroup_v2_cpu_stat_in_ns(self):
        text = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
        self.assertEqual(cpu.parse_cpu_stat_v2(text), 1_500_000)
        with self.assertRaises(ValueError):
            cpu.parse_cpu_stat_v2("user_usec 1\n")

    def test_the_wrapper_joins_the_cgroup_before_the_command(self):
        accounting = cpu.Accounting.__new__(cpu.Accounting)
        accounting.active = set()
        accounting.parent = "/sys/fs/cgroup/cpuacct/bakeoff-harness-1"
        argv = accounting.wrap("server", ["/bin/server", "serve"])
        self.assertEqual(argv[:2], ["sh", "-c"])
        self.assertEqual(argv[3], "/sys/fs/cgroup/cpuacct/bakeoff-harness-1/server/cgroup.procs")
        self.assertEqual(argv[4:], ["/bin/server", "serve"])
        accounting.parent = None
        self.assertEqual(accounting.wrap("server", ["/bin/server"]), ["/bin/server"])
        # What was started in a component makes its CPU count in a window.
        self.assertEqual(accounting.active, {"server"})


if __name__ == "__main__":
    unittest.main()


class LiveAccountingTests(unittest.TestCase):
    """The real thing on this machine: a child that burns CPU and exits is
    still counted in its component. Skipped where no cgroup is writable."""

    def test_an_exited_child_is_counted_as_getrusage_counts_it(self):
        import resource
        import subprocess

        accounting = cpu.Accounting()
        try:
            if accounting.method == "proc":
                self.skipTest("no writable cgroup here")
            before = accounting.usage_ns()
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            burn = (
                "import time\nend = time.process_time() + 0.3\n"
                "while time.process_time() < end: pass\n"
            )
            subprocess.run(accounting.wrap("server", [sys.executable, "-c", burn]), check=True)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = cpu.deltas(before, accounting.usage_ns())
        finally:
            accounting.close()
        # The kernel's own count of the reaped child (and its sh wrapper).
        expected_ns = (
            (children_after.ru_utime + children_after.ru_stime)
            - (children_before.ru_utime + children_before.ru_stime)
        ) * 1e9
        self.assertGreater(expected_ns, 0.25e9)
        self.assertAlmostEqual(used["server"] / expected_ns, 1.0, delta=0.1)
        self.assertEqual(used["database"], 0)
        self.assertIsNone(accounting.parent)
