"""workloads.py: --only, and the pgbench scripts generated from sql/."""

import unittest

from harness import workloads


class SelectTests(unittest.TestCase):
    def test_only_keeps_the_table_order(self):
        names = [workload.name for workload in workloads.select("contact_random,version,types")]
        self.assertEqual(names, ["version", "types", "contact_random"])

    def test_unknown_workload(self):
        with self.assertRaises(ValueError):
            workloads.select("version,nope")

    def test_empty_selects_all(self):
        self.assertEqual(len(workloads.select("")), len(workloads.WORKLOADS))


class PgbenchScriptTests(unittest.TestCase):
    def test_comments_dropped_and_parameters_become_variables(self):
        sql = "-- a comment with $1\nSELECT a FROM t\n  -- another\nWHERE b = $1 AND c = $12\n"
        self.assertEqual(
            workloads.sql_to_pgbench(sql), "SELECT a FROM t\nWHERE b = :p1 AND c = :p12\n;\n"
        )

    def test_random_contact_draws_an_id_per_transaction(self):
        script = workloads.pgbench_script(workloads.BY_NAME["contact_random"], 500)
        self.assertTrue(script.startswith("\\set p1 random(1, 500)\n"))
        self.assertIn("WHERE c.contact_id = :p1", script)
        self.assertNotIn("--", script)

    def test_fixed_parameters_as_definitions(self):
        self.assertEqual(
            workloads.pgbench_variables(workloads.BY_NAME["fetch_starts"]),
            ["p1=10", "p2=0", "p3=m"],
        )
        self.assertEqual(workloads.pgbench_variables(workloads.BY_NAME["contact_random"]), [])

    def test_pipeline_mode_wraps_depth_statements(self):
        script = workloads.pgbench_script(workloads.BY_NAME["types"], 10, pipeline_depth=3)
        lines = script.splitlines()
        self.assertEqual(lines[0], "\\startpipeline")
        self.assertEqual(lines[-1], "\\endpipeline")
        self.assertEqual(script.count("SELECT type_id"), 3)

    def test_wrk_arguments_fill_in_the_contact_count(self):
        self.assertEqual(workloads.wrk_arguments(workloads.BY_NAME["contact_random"], 777), ["777"])
        self.assertEqual(
            workloads.wrk_arguments(workloads.BY_NAME["version_pipelined"], 777), ["16"]
        )


if __name__ == "__main__":
    unittest.main()
