"""What the study's markdown (study_report.py, study_sections.py) shares:
the table layout, the formats of ratios and spreads, and finding a system's
workload and fixed-rate rows in a document."""

from harness.report import fmt_rps


def table(head, rows, left=1):
    align = ["---"] * left + ["---:"] * (len(head) - left)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt_ratio(value):
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.095 else f"{value:.3f}"


def fmt_with_spread(figures, runs):
    if not figures or figures.get("median") is None:
        return "-"
    text = fmt_rps(figures["median"])
    if runs > 1 and figures.get("spread_pct") is not None:
        text += f" ±{figures['spread_pct'] / 2:.0f}%"
    return text


def measured(doc):
    return [system for system in doc["systems"] if system["status"] == "measured"]


def workload_of(system, name):
    for workload in system.get("workloads", []) + system.get("more", []):
        if workload["name"] == name:
            return workload
    return None


def fixed_row(workload, label):
    for row in (workload or {}).get("fixed_rate", []):
        if row["label"] == label:
            return row
    return None
