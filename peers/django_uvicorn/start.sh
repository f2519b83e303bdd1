#!/usr/bin/env bash
# The Django REST framework project of ../django (psycopg2) under uvicorn
# (ASGI), as the study's original served it: WORKERS worker processes
# (default: one per core), each an event loop (uvloop, httptools) that hands
# every request to Django's synchronous views through asgiref, in a thread of
# the request's own (Django's ASGI handler opens a ThreadSensitiveContext per
# request): no bound on the views running at once. No persistent connections
# (CONN_MAX_AGE=0), as Django's documentation asks under ASGI: each request
# opens its own PostgreSQL connection and closes it at its end. (A persistent
# one belongs to the request's context: the next request does not reuse it,
# and it stays open until collected: 17 idle backends on two workers after a
# few hundred requests.) So the backends follow the requests in flight; the
# remedy Django documents is its own pool (../django_psycopg3_uvicorn). On
# BAKEOFF_HOST:PORT (default 127.0.0.1), over the database at $DATABASE_URL.
# Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): no server-side cursors (settings.py).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export CONN_MAX_AGE=${CONN_MAX_AGE:-0}
exec "$here/../.venv/bin/uvicorn" contacts_api.asgi:application --app-dir "$here/../django" \
	--host "${BAKEOFF_HOST:-127.0.0.1}" --port "$port" --workers "${WORKERS:-$(nproc)}" \
	--no-access-log
