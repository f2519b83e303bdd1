#!/usr/bin/env bash
# The Django REST framework project of ../django under gunicorn (WSGI): one
# gthread worker process per core, 4 threads each (THREADS), one persistent
# PostgreSQL connection per thread, on 127.0.0.1:PORT, over the database at
# $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): CONN_MAX_AGE 0 and no server-side cursors (settings.py).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

exec "$here/../.venv/bin/gunicorn" contacts_api.wsgi --chdir "$here/../django" \
	--bind "127.0.0.1:$port" --workers "$(nproc)" \
	--worker-class gthread --threads "${THREADS:-4}" \
	--no-control-socket
