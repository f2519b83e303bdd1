"""The charts of a comparison (matplotlib, imported only to draw):

- PREFIX-cpu.png: CPU µs per request at saturation, one stacked bar per
  system (server / PostgreSQL / pooler / load generator), one panel per
  workload, error bars on the total (min-max over the rounds);
- PREFIX-rps.png: requests/s per workload, one bar per system, error bars
  min-max, log scale;
- PREFIX-latency.png: p99 against offered load, one line per system, one
  panel per database workload.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

PARTS = (
    ("server", "system", "#4c72b0"),
    ("database", "PostgreSQL", "#dd8452"),
    ("pooler", "PgBouncer", "#55a868"),
    ("load_generator", "load generator", "#8c8c8c"),
)


def _measured(doc):
    return [system for system in doc["systems"] if system["status"] == "measured"]


def _workload(system, name):
    return next((w for w in system.get("workloads", []) if w["name"] == name), None)


def cpu_chart(doc, path):
    names = doc["params"]["workloads"]
    systems = _measured(doc)
    if not systems:
        return None
    fig, axes = plt.subplots(
        1, len(names), figsize=(max(6, 0.45 * len(systems) * len(names) + 2), 5), squeeze=False
    )
    for ax, name in zip(axes[0], names):
        bottoms = [0.0] * len(systems)
        positions = range(len(systems))
        for part, label, colour in PARTS:
            heights = [
                ((_workload(s, name) or {}).get("cpu_us_per_request") or {}).get(part) or 0.0
                for s in systems
            ]
            if any(heights):
                ax.bar(positions, heights, bottom=bottoms, color=colour, label=label)
                bottoms = [b + h for b, h in zip(bottoms, heights)]
        low, high = [], []
        for total, system in zip(bottoms, systems):
            spread = ((_workload(system, name) or {}).get("cpu_spread") or {}).get("total") or {}
            low.append(max(total - spread.get("min", total), 0))
            high.append(max(spread.get("max", total) - total, 0))
        ax.errorbar(positions, bottoms, yerr=[low, high], fmt="none", ecolor="black", capsize=2)
        ax.set_xticks(
            list(positions), [s["name"] for s in systems], fontsize=6, rotation=60, ha="right"
        )
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("CPU µs per request (median of rounds)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"CPU per request at saturation, {doc['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rps_chart(doc, path):
    names = doc["params"]["workloads"]
    systems = _measured(doc)
    if not systems:
        return None
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(names) + 2), 5))
    width = 0.8 / len(systems)
    for offset, system in enumerate(systems):
        xs, ys, low, high = [], [], [], []
        for index, name in enumerate(names):
            workload = _workload(system, name)
            if not workload or not workload.get("median"):
                continue
            xs.append(index - 0.4 + width * (offset + 0.5))
            ys.append(workload["median"])
            low.append(workload["median"] - workload["min"])
            high.append(workload["max"] - workload["median"])
        ax.bar(xs, ys, width=width, yerr=[low, high], capsize=1.5, label=system["name"])
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, fontsize=8, rotation=30, ha="right")
    ax.set_ylabel("requests/s (median, min-max over rounds)")
    ax.set_title("Capacity at saturation (wrk, closed loop)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def latency_chart(doc, path):
    systems = _measured(doc)
    panels = [
        name
        for name in doc["params"]["workloads"]
        if any((_workload(s, name) or {}).get("fixed_rate") for s in systems)
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, name in zip(axes[0], panels):
        for system in systems:
            rows = sorted(
                (r for r in (_workload(system, name) or {}).get("fixed_rate", []) if r["p99_ms"]),
                key=lambda row: row["offered_rps"],
            )
            if rows:
                ax.plot(
                    [r["offered_rps"] for r in rows],
                    [r["p99_ms"] for r in rows],
                    marker="o",
                    markersize=3,
                    label=system["name"],
                )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("offered requests/s")
        ax.set_ylabel("p99 ms (from intended send)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sweep_chart(doc, path):
    """The sweep: requests/s against the PostgreSQL backends held, one panel
    per workload, one line per system through its knob settings (each point
    labelled workers/pool/threads)."""
    if not doc["params"].get("sweep"):
        return None
    names = [name for name in doc["params"]["workloads"] if name in ("types", "fetch100")]
    systems = _measured(doc)
    if not names or not systems:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        by_system = {}
        for system in systems:
            workload = _workload(system, name)
            if workload and workload.get("median") and system.get("backends_peak") is not None:
                by_system.setdefault(system["system"], []).append(
                    (system["backends_peak"], workload["median"], system.get("knobs") or {})
                )
        for label, points in by_system.items():
            points.sort(key=lambda point: point[0])
            ax.plot([p[0] for p in points], [p[1] for p in points], "o", label=label)
            for backends, rps, knobs in points:
                text = "/".join(str(knobs.get(k, "-")) for k in ("workers", "pool", "threads"))
                ax.annotate(
                    text, (backends, rps), fontsize=5, xytext=(2, 2), textcoords="offset points"
                )
        ax.set_title(f"{name}: throughput against connections held", fontsize=9)
        ax.set_xlabel("PostgreSQL backends held (peak)")
        ax.set_ylabel("requests/s (median of rounds)")
        ax.legend(fontsize=7)
    fig.suptitle("The sweep: workers / pool per worker / threads", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# The charts a results file gets, in order (drawing.draw).
CHARTS = (cpu_chart, rps_chart, latency_chart, sweep_chart)
