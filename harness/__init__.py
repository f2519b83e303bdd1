"""The benchmark harness: one Python package behind scripts/run.sh,
scripts/compare.sh and the other entry points. Data flows down: settings go
into a measuring object, typed records come back out, and a results file is
written from them.

Code map, in the order a run flows through it:

- cli.py: the subcommands (run, compare, table, agree, chart, and those of
  the modules below), exit statuses and signals.
- settings.py: every option, declared once (a frozen Settings with each
  field's flag, help, default and profile defaults); options.py puts them
  on a parser and turns parsed words into Settings; argtypes.py: the types.
- runner.py: `run`, one server: plan → tools → database → server → a loop
  over measure.Bench → the results file.
- study.py: `compare`, every system of peers/ in rounds over the same Bench;
  study_doc.py builds its document; contract.py checks each system against
  the API contract first.
- systems.py: systems as data (peers/*/system.toml), their set-up and start.
- site.py: where a run's parts live (temp dir, cgroups, database, poolers,
  hosts) and Placement (pooler, round trip, instances).
- measure.py: the measuring engine (Bench: wrk, pgbench, oha windows → records).
- process.py: the one process wrapper (process group, cgroup, readiness,
  peak RSS, log, stop with nothing left).
- pg.py: the throwaway PostgreSQL (or an external one); pooler.py: PgBouncer;
  ceilings.py: the nginx ceiling; backends.py: PostgreSQL's client backends
  and refused connections.
- workloads.py: the workload table and each workload's pgbench script.
- loadgen.py: wrk, pgbench and oha command lines and the parsing of their output.
- cpu.py: CPU time per component (cgroups, or /proc as a fallback).
- noise.py: how busy the rest of the machine was in a window; the gate.
- stats.py: median, spread, percentiles.
- results.py: the typed records and the document built from them;
  archive.py: how it is stored (figures in NAME.json, records gzipped beside).
- meta.py: the head of every results file (machine, commit, params, versions).
- report.py, study_report.py: the markdown; drawing.py with charts.py and
  study_charts.py: the charts (matplotlib, optional).
- agreement.py: `agree`, several run.sh results side by side, within bounds?
- tools.py: messages, paths, tool lookup and installs, cleanup, signals.

The commands built on run, each in a module of its own: pin.py (`pin`,
pinned layouts), allocators.py (`allocators`), flamegraph.py
(`flamegraph`), plans.py (`starts-plans`); findings.py (`findings`,
docs/FINDINGS.md's tables from the results they cite); sandbox.py
(`sandbox`, a throwaway PostgreSQL around a command: the check scripts').

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

Standard library only, except the charts (matplotlib, optional).
"""
