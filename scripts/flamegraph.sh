#!/usr/bin/env bash
# scripts/flamegraph.sh: where the server spends its CPU under one workload:
# perf samples the release binary (debug symbols, frame pointers) on a
# throwaway seeded PostgreSQL under wrk, and inferno renders the samples to
# flamegraphs/WORKLOAD.svg. All the work is the Python harness's
# (`python3 -m harness flamegraph`, harness/flamegraph.py); `--help` says how.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not cd'ing to the root: a relative --out stays the caller's.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
HARNESS_PROG=flamegraph.sh exec "${PYTHON:-python3}" -m harness flamegraph "$@"
