#!/usr/bin/env bash
# FastAPI + psycopg 3 (async, psycopg_pool's AsyncConnectionPool) under
# uvicorn (uvloop, httptools), from peers/.venv-psycopg3: WORKERS worker
# processes (default: one per core), each one event loop with a fixed pool of
# POOL_SIZE connections (default 10), on BAKEOFF_HOST:PORT (default
# 127.0.0.1), over the database at $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): psycopg's prepared statements off (app.py).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

exec "$here/../.venv-psycopg3/bin/uvicorn" app:app --app-dir "$here" \
	--host "${BAKEOFF_HOST:-127.0.0.1}" --port "$port" --workers "${WORKERS:-$(nproc)}" \
	--no-access-log
