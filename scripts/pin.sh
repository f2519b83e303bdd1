#!/usr/bin/env bash
# scripts/pin.sh: the benchmark with the server, PostgreSQL and wrk pinned to
# CPU sets, one layout or a matrix of them (run.sh's --pin-server, --pin-db,
# --pin-wrk), their requests/s side by side. All the work is the Python
# harness's (`python3 -m harness pin`, harness/pin.py); `--help` says how.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not cd'ing to the root: relative paths stay the caller's.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
HARNESS_PROG=pin.sh exec "${PYTHON:-python3}" -m harness pin "$@"
