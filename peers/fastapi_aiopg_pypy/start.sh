#!/usr/bin/env bash
# FastAPI + aiopg on PyPy (Debian 12's pypy3, Python 3.9), from
# peers/.venv-pypy: the code and pinned versions of ../fastapi_aiopg_compat,
# whose start.sh runs them on CPython, and the same server: gunicorn with
# uvicorn's UvicornH11Worker (uvicorn's documentation for PyPy; why not
# `uvicorn --workers`: ../fastapi_aiopg_compat/start.sh), WORKERS worker
# processes (default: one per core), each one asyncio event loop with
# uvicorn's pure-Python h11 parser (uvloop and httptools are C extensions
# without a PyPy build), and an aiopg pool of at most POOL_SIZE connections
# (default 10). On BAKEOFF_HOST:PORT (default 127.0.0.1), over the database
# at $DATABASE_URL. Logs go to stderr.
# Exits 69 (EX_UNAVAILABLE) when there is no PyPy venv (no pypy3 on the
# machine, or peers/setup.sh could not install the stack into it).
# Pooled (BAKEOFF_POOLER=pgbouncer): nothing changes (psycopg2cffi: simple protocol, no prepared statements).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$(cd "$here/.." && pwd)/.venv-pypy
host=${BAKEOFF_HOST:-127.0.0.1}
case $host in
*:*) bind="[$host]:$port" ;;
*) bind="$host:$port" ;;
esac

if [ ! -e "$venv/setup-complete" ]; then
	echo "unavailable: $venv is not complete (no pypy3 here, or peers/setup.sh could not install the stack; its output says why)" >&2
	exit 69
fi
exec "$venv/bin/gunicorn" app:app --chdir "$here/../fastapi_aiopg_compat" --bind "$bind" \
	--workers "${WORKERS:-$(nproc)}" --worker-class uvicorn_worker.UvicornH11Worker \
	--timeout 120
