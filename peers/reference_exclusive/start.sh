#!/usr/bin/env bash
# The reference in exclusive pool mode: peers/reference/start.sh with
# --pool-mode exclusive after the harness's --server-args. Listens on
# $BAKEOFF_HOST:PORT over $DATABASE_URL, as every system; WORKER_THREADS and
# POOL_SIZE pass through.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export BAKEOFF_SERVER_ARGS="${BAKEOFF_SERVER_ARGS:-} --pool-mode exclusive"
exec "$here/../reference/start.sh" "$@"
