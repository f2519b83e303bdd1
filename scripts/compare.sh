#!/usr/bin/env bash
# scripts/compare.sh: the bake-off, as people type it. All the work is the
# Python harness's (harness/study.py, `python3 -m harness compare`): the
# reference and every variant of peers/ on one throwaway PostgreSQL, in
# rounds, with run.sh's measurements (spreads, CPU per request per component,
# the noise gate, fixed-rate latency), PostgreSQL's backend counts, other
# connection counts, the mixed load and, with --pooler, PgBouncer.
# `--help` says how; docs/benchmarks.md says why.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# The charts need matplotlib (peers/setup.sh puts it into peers/.venv; see
# charts_python.sh); the rest of the harness needs only the standard library.
python=python3
case " $* " in
*" --help "* | *" -h "* | *" --no-charts "*) ;;
*) python=$("$root/scripts/charts_python.sh") ;;
esac
HARNESS_PROG=compare.sh exec "$python" -m harness compare "$@"
