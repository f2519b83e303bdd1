#!/usr/bin/env bash
# The reference, started like every system of the study: `start.sh PORT`,
# listening on $BAKEOFF_HOST (default 127.0.0.1), over $DATABASE_URL. The
# harness sets BAKEOFF_BINARY (the release build, or --binary) and
# BAKEOFF_SERVER_ARGS (--server-args); the server's own environment
# variables (POOL_SIZE, WORKER_THREADS, ...) pass through. Its first line on
# stderr names its address and pool.
# Pooled (BAKEOFF_POOLER=pgbouncer): --statements unnamed (docs/DEPLOY.md).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=${BAKEOFF_BINARY:-$here/../../target/release/bakeoff}
[ -x "$binary" ] || {
	echo "no server binary at $binary: run cargo build --release" >&2
	exit 1
}
read -r -a args <<<"${BAKEOFF_SERVER_ARGS:-}"
if [ "${BAKEOFF_POOLER:-}" = pgbouncer ]; then
	args+=(--statements unnamed)
fi
exec "$binary" serve --bind "${BAKEOFF_HOST:-127.0.0.1}:$port" "${args[@]}"
