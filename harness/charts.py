"""The charts of a results file (matplotlib; imported only when charts are
drawn, so the rest of the harness needs nothing outside the standard library):

- PREFIX-cpu.png: CPU µs per request, one stacked bar (server / database /
  load generator) per system and workload, error bars on the total (min-max
  over the runs);
- PREFIX-rps.png: requests/s per workload, server beside its ceiling, error
  bars min-max, log scale;
- PREFIX-latency.png: latency against offered load (p50 and p99), one line
  per system, one panel per database workload.
"""

import matplotlib

matplotlib.use("Agg")  # files only: no display on a benchmark machine

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

PART_COLOURS = {"server": "#4c72b0", "database": "#dd8452", "load_generator": "#8c8c8c"}
PART_NAMES = {
    "server": "server (or nginx)",
    "database": "PostgreSQL",
    "load_generator": "load generator",
}


ROLES = ("server", "ceiling", "pipeline")


def _systems(doc):
    """(role, label, workload, figures) per bar: the server, its ceiling,
    and the database's pipelined ceiling."""
    out = []
    for workload in doc["workloads"]:
        out.append(("server", doc.get("name") or "server", workload, workload))
        if workload.get("ceiling_figures"):
            out.append(("ceiling", workload["ceiling"], workload, workload["ceiling_figures"]))
        if workload.get("pipeline_ceiling_figures"):
            out.append(
                ("pipeline", "pgbench pipelined", workload, workload["pipeline_ceiling_figures"])
            )
    return out


def cpu_chart(doc, path):
    bars = [
        (f"{workload['name']}\n{label}", figures)
        for _, label, workload, figures in _systems(doc)
        if (figures.get("cpu_us_per_request") or {}).get("total") is not None
    ]
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(bars) + 2), 5))
    positions = range(len(bars))
    bottoms = [0.0] * len(bars)
    for part in ("server", "database", "load_generator"):
        heights = [(figures["cpu_us_per_request"].get(part) or 0.0) for _, figures in bars]
        ax.bar(positions, heights, bottom=bottoms, color=PART_COLOURS[part], label=PART_NAMES[part])
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights)]
    # Error bars on the total: its min and max over the runs.
    low, high = [], []
    for total, (_, figures) in zip(bottoms, bars):
        spread = (figures.get("cpu_spread") or {}).get("total") or {}
        low.append(max(total - spread.get("min", total), 0))
        high.append(max(spread.get("max", total) - total, 0))
    ax.errorbar(positions, bottoms, yerr=[low, high], fmt="none", ecolor="black", capsize=3)
    ax.set_xticks(
        list(positions), [label for label, _ in bars], fontsize=7, rotation=45, ha="right"
    )
    ax.set_ylabel("CPU µs per request (median of runs)")
    ax.set_title(f"CPU per request at saturation: {doc.get('name')}, {doc.get('date')}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rps_chart(doc, path):
    systems = [system for system in _systems(doc) if system[3].get("median")]
    if not systems:
        return None
    names = [workload["name"] for workload in doc["workloads"]]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names) + 2), 5))
    width = 0.27
    legend = {
        "server": doc.get("name"),
        "ceiling": "ceiling (nginx / pgbench)",
        "pipeline": "database pipelined (pgbench)",
    }
    for offset, role in zip((-width, 0, width), ROLES):
        xs, ys, low, high = [], [], [], []
        for _, _, workload, figures in (system for system in systems if system[0] == role):
            xs.append(names.index(workload["name"]) + offset)
            ys.append(figures["median"])
            low.append(figures["median"] - figures["min"])
            high.append(figures["max"] - figures["median"])
        if xs:
            ax.bar(xs, ys, width=width, yerr=[low, high], capsize=3, label=legend[role])
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, fontsize=8, rotation=30, ha="right")
    ax.set_ylabel("requests/s (median, min-max)")
    ax.set_title("Capacity at saturation (wrk, closed loop)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_chart(doc, path):
    panels = [workload for workload in doc["workloads"] if workload.get("fixed_rate")]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, workload in zip(axes[0], panels):
        for system, rows in (
            (doc.get("name"), workload["fixed_rate"]),
            ("pgbench --rate", workload.get("database_fixed_rate") or []),
        ):
            rows = sorted(
                (row for row in rows if row["offered_rps"]), key=lambda row: row["offered_rps"]
            )
            if not rows:
                continue
            xs = [row["offered_rps"] for row in rows]
            for pct, style in (("p50_ms", "--"), ("p99_ms", "-")):
                ax.plot(
                    xs,
                    [row[pct] for row in rows],
                    style,
                    marker="o",
                    markersize=3,
                    label=f"{system} {pct[:-3]}",
                )
        ax.set_title(workload["name"], fontsize=9)
        ax.set_xlabel("offered requests/s")
        ax.set_ylabel("latency ms (from intended send)")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# The charts a results file gets, in order (drawing.draw).
CHARTS = (cpu_chart, rps_chart, latency_chart)
