#!/usr/bin/env bash
# scripts/allocators.sh (also `scripts/run.sh --allocators`): the benchmark
# once per global allocator (the cargo features mimalloc and jemalloc, and the
# system allocator with --no-default-features), each built into its own
# target dir, and their requests/s side by side. All the work is the Python
# harness's (`python3 -m harness allocators`, harness/allocators.py).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Not cd'ing to the root: relative paths stay the caller's.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
HARNESS_PROG=allocators.sh exec "${PYTHON:-python3}" -m harness allocators "$@"
