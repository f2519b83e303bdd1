#!/usr/bin/env bash
# The Django REST framework project of ../django on psycopg 3 with Django's
# own connection pool (DJANGO_DB_POOL=psycopg, settings.py), from
# peers/.venv-psycopg3, under uvicorn (ASGI; uvloop, httptools): WORKERS
# worker processes (default: one per core), each an event loop handing every
# request to Django's synchronous views in a thread of the request's own
# (asgiref), and one psycopg_pool.ConnectionPool of POOL_SIZE connections
# (default: psycopg's, 4) per process, which the views in flight share: what
# Django's documentation asks for under ASGI instead of persistent
# connections. On BAKEOFF_HOST:PORT (default 127.0.0.1), over the database at
# $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): no server-side cursors (settings.py).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export DJANGO_DB_POOL=psycopg
exec "$here/../.venv-psycopg3/bin/uvicorn" contacts_api.asgi:application \
	--app-dir "$here/../django" \
	--host "${BAKEOFF_HOST:-127.0.0.1}" --port "$port" --workers "${WORKERS:-$(nproc)}" \
	--no-access-log
