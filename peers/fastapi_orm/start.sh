#!/usr/bin/env bash
# FastAPI + SQLAlchemy ORM (asyncpg) under uvicorn (uvloop, httptools):
# WORKERS worker processes (default: one per core), each one event loop with
# an engine whose pool_size is POOL_SIZE (default 5, plus SQLAlchemy's 10 of
# overflow), on BAKEOFF_HOST:PORT (default 127.0.0.1), over the database at
# $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): SQLAlchemy's and asyncpg's statement caches off (app.py).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

exec "$here/../.venv/bin/uvicorn" app:app --app-dir "$here" \
	--host "${BAKEOFF_HOST:-127.0.0.1}" --port "$port" --workers "${WORKERS:-$(nproc)}" \
	--no-access-log
