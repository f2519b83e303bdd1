#!/usr/bin/env bash
# The Django REST framework project of ../django on psycopg 3 with Django's
# own connection pool (DJANGO_DB_POOL=psycopg, settings.py), from
# peers/.venv-psycopg3, under gunicorn (WSGI): WORKERS gthread worker
# processes (default: one per core), THREADS threads each (default 4), and in
# each process one psycopg_pool.ConnectionPool of POOL_SIZE connections
# (default: psycopg's, 4, one per thread). On BAKEOFF_HOST:PORT (default
# 127.0.0.1), over the database at $DATABASE_URL. Logs go to stderr.
# Pooled (BAKEOFF_POOLER=pgbouncer): no server-side cursors (settings.py);
# Django's pool keeps its connections to PgBouncer.
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host=${BAKEOFF_HOST:-127.0.0.1}
case $host in
*:*) bind="[$host]:$port" ;;
*) bind="$host:$port" ;;
esac

export DJANGO_DB_POOL=psycopg
exec "$here/../.venv-psycopg3/bin/gunicorn" contacts_api.wsgi --chdir "$here/../django" \
	--bind "$bind" --workers "${WORKERS:-$(nproc)}" \
	--worker-class gthread --threads "${THREADS:-4}" \
	--no-control-socket
