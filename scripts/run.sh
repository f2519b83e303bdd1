#!/usr/bin/env bash
# scripts/run.sh: the benchmark, as people type it. All the work is the
# Python harness's (harness/, `python3 -m harness run`): the release server
# on a throwaway seeded PostgreSQL, wrk on each workload with its ceiling
# (nginx or pgbench), interleaved runs with their spread, CPU per request
# per component, a noise gate, and latencies at fixed offered rates (oha).
# `--help` says how; docs/benchmarks.md says why.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${1:-}" = --allocators ]; then
	shift
	exec "$root/scripts/allocators.sh" "$@"
fi
# Not cd'ing to the root: relative --out and --binary paths stay the caller's.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
python=python3
case " $* " in
*" --help "* | *" -h "* | *" --no-charts "*) ;;
*) python=$("$root/scripts/charts_python.sh") ;;
esac
HARNESS_PROG=run.sh exec "${PYTHON:-$python}" -m harness run "$@"
