"""The benchmark harness: one Python package behind scripts/run.sh and
scripts/compare.sh.

Code map, in the order a run flows through it:

- cli.py: the one option parser (subcommands run, compare, table, agree,
  chart, and the four below that were bash scripts).
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
- agreement.py: `agree`, several run.sh results side by side, within bounds?

The bake-off (scripts/compare.sh, `compare`), which measures with runner.Run:

- study.py: the systems in rounds, each started, measured, checked, stopped;
  connection counts, the mixed load, asyncpg's split, the pooler.
- systems.py: the systems' table, their process groups, PgBouncer, and the
  count of PostgreSQL's client backends.
- study_report.py, study_charts.py: its markdown and charts.

The commands built on those (each was a bash script, now a thin entry point):

- pin.py: `pin` (scripts/pin.sh), runs pinned to CPU sets; a matrix of layouts.
- allocators.py: `allocators` (scripts/allocators.sh), one run per allocator.
- drive.py: what those two share: each run a child `python3 -m harness run`
  with signals forwarded, and the requests/s of several results side by side.
- flamegraph.py: `flamegraph` (scripts/flamegraph.sh), perf and inferno.
- plans.py: `starts-plans` (scripts/starts_plans.sh), fresh against primed.

The deployment past one machine (scripts/cluster.sh, `cluster`):

- hosts.py: each component on a host of its own, a network namespace with
  its own address on a bridge; removed at exit, stale ones of dead runs too.
- cluster_config.py: the plan (who runs where) and the settings; HAProxy's,
  Patroni's, PgBouncer's and etcd's configuration, as pure functions.
- cluster_state.py: the state directory's state.json, and the status
  document with the roles Patroni reports.
- cluster.py: a Deployment: its parts started, stopped and killed on their
  hosts; HAProxy's runtime API; Patroni's REST API.
- cluster_up.py: bringing a deployment up in order, and taking it down.
- cluster_cli.py: `cluster up | status | down`, and the parser of all five.
- cluster_load.py: the open-loop client that checks every body against the
  tables; cluster_report.py: the failure report's arithmetic.
- cluster_faults.py: `cluster test`, the five failure tests under load.
- cluster_cost.py: `cluster cost`, what HAProxy and PgBouncer cost.

Standard library only, except charts.py (matplotlib, optional).
"""
