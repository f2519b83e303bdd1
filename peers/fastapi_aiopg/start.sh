#!/usr/bin/env bash
# FastAPI + aiopg (psycopg2) under uvicorn (uvloop, httptools): WORKERS worker
# processes (default: one per core), each one event loop with an aiopg pool
# of at most POOL_SIZE connections (default 10), on BAKEOFF_HOST:PORT
# (default 127.0.0.1), over the database at $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): nothing changes (psycopg2: simple protocol, no prepared statements).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

exec "$here/../.venv/bin/uvicorn" app:app --app-dir "$here" \
	--host "${BAKEOFF_HOST:-127.0.0.1}" --port "$port" --workers "${WORKERS:-$(nproc)}" \
	--no-access-log
