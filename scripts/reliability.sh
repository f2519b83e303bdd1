#!/usr/bin/env bash
# scripts/reliability.sh: runs the reliability suite (tests/reliability.rs:
# database faults, hostile clients, shutdown, security) and prints the figures
# it measured, the lines docs/RELIABILITY.md is written from.
# Extra arguments go to the test binary (e.g. a test name to run only it).
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --test reliability -- --nocapture "$@" >"$log" 2>&1 || status=$?
grep -E '^\[figure\]|^test result|^test .*FAILED|panicked' "$log" || true
if [ "$status" -ne 0 ]; then
	echo "reliability.sh: the suite failed (exit $status); full log follows" >&2
	cat "$log" >&2
fi
exit "$status"
