#!/usr/bin/env bash
# FastAPI + aiopg on PyPy (Debian 12's pypy3, Python 3.9), from
# peers/.venv-pypy: the code and pinned versions of ../fastapi_aiopg_compat,
# whose start.sh runs them on CPython. One uvicorn worker process per core,
# each one asyncio event loop with uvicorn's pure-Python h11 parser (uvloop
# and httptools are C extensions without a PyPy build), on 127.0.0.1:PORT,
# over the database at $DATABASE_URL. Logs go to stderr.
# Exits 69 (EX_UNAVAILABLE) when there is no PyPy venv (no pypy3 on the
# machine, or peers/setup.sh could not install the stack into it).
# Pooled (BAKEOFF_POOLER=pgbouncer): nothing changes (psycopg2cffi: simple protocol, no prepared statements).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$(cd "$here/.." && pwd)/.venv-pypy

if [ ! -e "$venv/setup-complete" ]; then
	echo "unavailable: $venv is not complete (no pypy3 here, or peers/setup.sh could not install the stack; its output says why)" >&2
	exit 69
fi
exec "$venv/bin/uvicorn" app:app --app-dir "$here/../fastapi_aiopg_compat" \
	--host 127.0.0.1 --port "$port" --workers "$(nproc)" --no-access-log \
	--loop asyncio --http h11
