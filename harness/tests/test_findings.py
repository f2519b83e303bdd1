"""findings.py: the rule for a finding, per-round ratios from a study's
records, and a marked block rebuilt in place (figures computed here by hand)."""

import os
import unittest

from harness import findings
from harness.tools import ROOT


def study(rounds_a, rounds_b, workload="types"):
    """A study document with systems a and b, their req/s per round."""

    def system(name, rounds):
        runs = [
            {"run": run, "server": {"rps": rps, "cpu_us_per_request": {"server": 1e6 / rps}}}
            for run, rps in enumerate(rounds, start=1)
        ]
        return {
            "name": name,
            "status": "measured",
            "backends_peak": 4,
            "workloads": [{"name": workload, "runs": runs}],
        }

    return {"systems": [system("a", rounds_a), system("b", rounds_b)]}


class VerdictTests(unittest.TestCase):
    def test_a_large_consistent_effect_is_a_finding_in_three_rounds(self):
        self.assertEqual(findings.verdict([0.29, 0.18, 0.36], 0.3, 0.2), "finding")

    def test_a_small_effect_needs_five_rounds_or_a_clear_margin(self):
        # 1.29 (1.19–1.32) with spreads of 15% and 10%: 0.29 < 2 x 0.15.
        self.assertTrue(findings.verdict([1.19, 1.29, 1.32], 0.15, 0.10).startswith("weak"))
        self.assertEqual(findings.verdict([1.19, 1.29, 1.32, 1.2, 1.25], 0.15, 0.10), "finding")
        # The same three rounds with spreads of 5%: 0.29 > 2 x 0.05.
        self.assertEqual(findings.verdict([1.19, 1.29, 1.32], 0.05, 0.05), "finding")

    def test_rounds_on_both_sides_or_one_round_are_weak(self):
        self.assertTrue(findings.verdict([0.9, 1.1, 2.0], 0.0, 0.0).startswith("weak"))
        self.assertTrue(findings.verdict([3.0], 0.0, 0.0).startswith("weak"))


class TableTests(unittest.TestCase):
    def test_per_round_ratio(self):
        doc = study([100.0, 200.0, 300.0], [50.0, 50.0, 100.0])
        ratios, spread_a, spread_b = findings.compare(doc, "a", "b", "types", "rps")
        self.assertEqual(ratios, [2.0, 4.0, 3.0])
        self.assertAlmostEqual(spread_a, (300 - 100) / 200)
        self.assertAlmostEqual(spread_b, (100 - 50) / 50)
        text = findings.ratio_table(doc, {"pairs": "a:b", "workloads": "types"})
        self.assertIn("| a ÷ b | types | 3.00 (2.00–4.00) | 3 | 100% / 100% | finding |", text)

    def test_a_block_is_rebuilt_and_the_prose_kept(self):
        doc = study([100.0, 110.0], [100.0, 100.0])
        text = (
            "Prose before.\n"
            "<!-- table: ratio file=results/x.json pairs=a:b workloads=types -->\n"
            "stale\n<!-- end table -->\nProse after.\n"
        )
        new = findings.regenerate(text, read=lambda _path: doc)
        self.assertTrue(new.startswith("Prose before.\n<!-- table: ratio file=results/x.json"))
        self.assertTrue(new.endswith("<!-- end table -->\nProse after.\n"))
        self.assertNotIn("stale", new)
        self.assertIn("| a ÷ b | types | 1.05 (1.00–1.10) | 2 |", new)
        self.assertIn("weak (rounds on both sides of 1)", new)
        self.assertEqual(findings.regenerate(new, read=lambda _path: doc), new)


if __name__ == "__main__":
    unittest.main()


class CoresTests(unittest.TestCase):
    def test_cores_used_per_round(self):
        doc = study([100.0, 100.0, 100.0], [1.0, 1.0, 1.0])
        for run, cores in zip(doc["systems"][0]["workloads"][0]["runs"], (1.2, 1.9, 1.5)):
            run["server"]["noise"] = {"ours_cores": cores}
        text = findings.cores_table(doc, {"workloads": "types"})
        self.assertIn("| a | 1.50 (1.20–1.90) |", text)
        self.assertIn("| b | - |", text)


class SectionTests(unittest.TestCase):
    def test_a_study_section_is_embedded_without_its_heading(self):
        doc = {
            "params": {"max_connections": 100},
            "systems": [
                {
                    "name": "a@x4",
                    "status": "measured",
                    "placement": {"rtt_ms": 0, "instances": 4},
                    "backends_peak": 80,
                    "refused_connections": 3,
                    "first_refusal": "too many clients already",
                    "reason": "",
                }
            ],
        }
        text = findings.section_table(doc, {"name": "connections"})
        self.assertFalse(text.startswith("#"))
        self.assertIn("| a@x4 | 0 ms x4 | measured | 80 | 3 | too many clients already |", text)

    def test_a_section_the_file_lacks_is_an_error(self):
        doc = {"params": {"max_connections": 100}, "systems": []}
        with self.assertRaises(findings.Fatal):
            findings.section_table(doc, {"name": "connections"})
        with self.assertRaises(findings.Fatal):
            findings.section_table(doc, {"name": "nonsense"})


class FindingsPageTests(unittest.TestCase):
    def test_every_generated_table_of_the_findings_page_matches_its_results_file(self):
        path = os.path.join(ROOT, "docs", "FINDINGS.md")
        with open(path, encoding="utf-8") as file:
            text = file.read()
        self.assertEqual(findings.regenerate(text), text)
