#!/usr/bin/env bash
# Measures `fetch_starts` on fresh servers and on servers "primed" first with
# the calls that make PostgreSQL's plan cache settle on the generic plan of a
# prepared `starts` statement (docs/PERFORMANCE.md, "Query plans"): 20 pages of
# `starts=m&limit=200` and 20 of `starts=m&limit=10&offset=100`.
#
#   DATABASE_URL=postgres://… scripts/starts_plans.sh [--runs N] [--duration S] BINARY...
#
# DATABASE_URL names a database seeded with `bakeoff seed` (run.sh's
# throwaway cluster is gone when it exits, so bring your own). Each binary is
# started anew for every measurement, on a free port; one line per binary
# and state: min / median / max req/s of wrk -t2 -c64 after a 1 s warm-up.
set -euo pipefail

runs=3
duration=5
binaries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "starts_plans.sh: unknown option $1" >&2; exit 2 ;;
    *) binaries+=("$1"); shift ;;
  esac
done
[ ${#binaries[@]} -gt 0 ] || { echo "starts_plans.sh: name at least one binary" >&2; exit 2; }
: "${DATABASE_URL:?starts_plans.sh: set DATABASE_URL to a database seeded with bakeoff seed}"
command -v wrk >/dev/null || { echo "starts_plans.sh: wrk is missing: apt-get install -y wrk" >&2; exit 1; }

# The harness's own free-port finder.
free_port() {
  python3 "$(dirname "$0")/bench.py" free-port
}

# measure BINARY fresh|primed: prints the req/s of one measurement.
measure() {
  local binary=$1 state=$2 port pid rate
  port=$(free_port)
  BIND=127.0.0.1:$port "$binary" serve 2>/dev/null &
  pid=$!
  trap 'kill "$pid" 2>/dev/null || true' RETURN
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
  local base="http://127.0.0.1:$port/contacts/fetch"
  if [ "$state" = primed ]; then
    for _ in $(seq 20); do
      curl -sf "$base?limit=200&starts=m" >/dev/null
      curl -sf "$base?limit=10&offset=100&starts=m" >/dev/null
    done
  fi
  wrk -t2 -c64 -d1s "$base?limit=10&starts=m" >/dev/null
  rate=$(wrk -t2 -c64 -d"${duration}s" "$base?limit=10&starts=m" | awk '/Requests\/sec/ {print $2}')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$rate"
}

echo "| binary | state | min / median / max req/s ($runs runs of ${duration} s) |"
echo "| --- | --- | ---: |"
for state in fresh primed; do
  for binary in "${binaries[@]}"; do
    rates=()
    for _ in $(seq "$runs"); do
      rates+=("$(measure "$binary" "$state")")
    done
    printf '%s\n' "${rates[@]}" | sort -n | awk -v b="$binary" -v s="$state" '
      { r[NR] = $1 }
      END { printf "| %s | %s | %.0f / %.0f / %.0f |\n", b, s, r[1], r[int((NR + 1) / 2)], r[NR] }'
  done
done
