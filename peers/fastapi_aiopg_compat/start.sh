#!/usr/bin/env bash
# The PyPy-compatible FastAPI + aiopg stack (psycopg2cffi, the pins of
# requirements.txt) on CPython, from peers/.venv-compat: the twin of
# ../fastapi_aiopg_pypy, which runs this same app.py on PyPy. One uvicorn
# worker process per core, each one asyncio event loop with uvicorn's
# pure-Python h11 parser (as on PyPy, where uvloop and httptools cannot run),
# on 127.0.0.1:PORT, over the database at $DATABASE_URL. Logs go to stderr.
# Exits 69 (EX_UNAVAILABLE) when peers/setup.sh could not build the venv.
# Pooled (BAKEOFF_POOLER=pgbouncer): nothing changes (psycopg2cffi: simple protocol, no prepared statements).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$(cd "$here/.." && pwd)/.venv-compat

if [ ! -e "$venv/setup-complete" ]; then
	echo "unavailable: $venv is not complete (peers/setup.sh could not install this stack; its output says why)" >&2
	exit 69
fi
exec "$venv/bin/uvicorn" app:app --app-dir "$here" \
	--host 127.0.0.1 --port "$port" --workers "$(nproc)" --no-access-log \
	--loop asyncio --http h11
