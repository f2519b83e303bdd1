#!/usr/bin/env bash
# The Django REST framework project of ../django (psycopg2) under gunicorn
# (WSGI): WORKERS gthread worker processes (default: one per core), THREADS
# threads each (default 4), one persistent PostgreSQL connection per thread
# (CONN_MAX_AGE, default 600 s), on BAKEOFF_HOST:PORT (default 127.0.0.1),
# over the database at $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): no server-side cursors (settings.py); the
# connections to PgBouncer stay persistent.
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host=${BAKEOFF_HOST:-127.0.0.1}
case $host in
*:*) bind="[$host]:$port" ;;
*) bind="$host:$port" ;;
esac

exec "$here/../.venv/bin/gunicorn" contacts_api.wsgi --chdir "$here/../django" \
	--bind "$bind" --workers "${WORKERS:-$(nproc)}" \
	--worker-class gthread --threads "${THREADS:-4}" \
	--no-control-socket
