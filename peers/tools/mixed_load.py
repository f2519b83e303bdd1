"""/types at a fixed rate beside a computation route, by hand.

Two oha at once, as the harness's mixed load runs them: /types at RATE per
second over 64 connections and FIB_PREFIX + "25" at 10 per second over 16,
for SECONDS, latencies from each request's intended send time
(--latency-correction). With FIB_PREFIX "none", /types alone. Prints the
achieved rates and p50/p90/p99 of each.

    python3 peers/tools/mixed_load.py http://127.0.0.1:8000 /experiments/fibonacci_thread/ 5 100

Needs oha on PATH (the harness installs it). Standard library only.
"""

import argparse
import json
import subprocess


def oha(url, rate, connections, seconds):
    argv = ["oha", "-z", f"{seconds}s", "-q", f"{rate:g}", "-c", str(connections)]
    argv += ["--latency-correction", "--no-tui", "--output-format", "json", url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def summary(name, text):
    doc = json.loads(text[text.find("{") :])
    percentiles = {key: value or 0 for key, value in doc["latencyPercentiles"].items()}
    answered = sum((doc.get("statusCodeDistribution") or {}).values())
    rate = answered / doc["summary"]["total"]
    return f"{name} {rate:5.1f}/s " + " ".join(
        f"{key} {percentiles[key] * 1000:6.1f}" for key in ("p50", "p90", "p99")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="the row's base URL")
    parser.add_argument(
        "fib_prefix", help='e.g. /fibonacci/ or /experiments/fibonacci_thread/; "none"'
    )
    parser.add_argument("seconds", type=int)
    parser.add_argument("rate", type=float, help="/types requests per second")
    options = parser.parse_args()
    running = {"types": oha(options.base + "/types", options.rate, 64, options.seconds)}
    if options.fib_prefix != "none":
        running["fib25"] = oha(options.base + options.fib_prefix + "25", 10, 16, options.seconds)
    lines = [summary(name, process.communicate()[0]) for name, process in running.items()]
    with open("/proc/loadavg", encoding="ascii") as file:
        load = file.read().split()[0]
    print(" | ".join(lines) + f" (ms) | load {load}")


if __name__ == "__main__":
    main()
