"""The benchmark harness: one Python package behind scripts/run.sh.

Code map, in the order a run flows through it:

- cli.py: the one option parser (subcommands run, table, chart).
- runner.py: a run from start to end: tools, database, server, ceilings,
  the interleaved measuring loop, the results file.
- tools.py: messages, paths, tool lookup and installs, children, cleanup.
- pg.py: the throwaway PostgreSQL (or an external one).
- server.py: the server under test and the nginx ceiling.
- workloads.py: the workload table and each workload's pgbench script.
- loadgen.py: wrk, pgbench and oha runs and the parsing of their output.
- cpu.py: CPU time per component (cgroup cpuacct, or /proc as a fallback).
- noise.py: how busy the rest of the machine was in a window; the gate.
- stats.py: median, spread, percentiles.
- results.py: the typed records and the results JSON (SCHEMA_VERSION).
- report.py: the markdown table.
- charts.py: matplotlib charts, imported only when charts are drawn.

Standard library only, except charts.py (matplotlib, optional).
"""
