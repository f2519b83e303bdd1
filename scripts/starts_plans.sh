#!/usr/bin/env bash
# Measures `fetch_starts` on fresh servers and on servers "primed" first with
# the calls that make PostgreSQL's plan cache settle on the generic plan of a
# prepared `starts` statement (docs/PERFORMANCE.md, "Query plans").
#
#   DATABASE_URL=postgres://… scripts/starts_plans.sh [--runs N] [--duration S] BINARY...
#
# All the work is the Python harness's (`python3 -m harness starts-plans`,
# harness/plans.py); `--help` says more.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not cd'ing to the root: relative binary paths stay the caller's.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
HARNESS_PROG=starts_plans.sh exec "${PYTHON:-python3}" -m harness starts-plans "$@"
