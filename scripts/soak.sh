#!/usr/bin/env bash
# scripts/soak.sh: the soak under faults (tests/soak.rs) for a chosen time:
# a mixed keep-alive load on every endpoint while PostgreSQL is restarted and
# the server's connections are killed, alternately; then the checks (statuses,
# no 503 a second after the database is back, memory flat, fds back to their
# start) and the figures it measured.
#
# Usage: scripts/soak.sh [--duration SECONDS] [--release | --debug]
#   --duration  how long the load runs (default 600; at least 12)
#   --release   a release build, the default (what the figures are quoted from)
#   --debug     a debug build (quicker to build; what `cargo test` runs, 24 s)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	sed -n 's/^# \{0,1\}//; 8,11p' "$0" >&2
	exit 2
}

duration=600
profile=(--release)
build=release
while [ $# -gt 0 ]; do
	case "$1" in
	--duration)
		[ $# -ge 2 ] || usage
		duration=$2
		shift 2
		;;
	--duration=*)
		duration=${1#--duration=}
		shift
		;;
	--release)
		profile=(--release)
		build=release
		shift
		;;
	--debug)
		profile=()
		build=debug
		shift
		;;
	-h | --help) usage ;;
	*)
		echo "soak.sh: unknown argument $1" >&2
		usage
		;;
	esac
done
case "$duration" in
'' | *[!0-9]*)
	echo "soak.sh: --duration takes whole seconds, not $duration" >&2
	exit 2
	;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "soak.sh: building, then ${duration} s of load under faults (${build} build)" >&2
status=0
SOAK_SECONDS=$duration cargo test "${profile[@]}" --test soak -- --nocapture >"$log" 2>&1 || status=$?
grep -E '^\[figure\]|^test result|^test .*FAILED|panicked' "$log" || true
if [ "$status" -ne 0 ]; then
	echo "soak.sh: the soak failed (exit $status); full log follows" >&2
	cat "$log" >&2
fi
exit "$status"
