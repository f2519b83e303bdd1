#!/usr/bin/env bash
# The PyPy-compatible FastAPI + aiopg stack (psycopg2cffi, the pins of
# requirements.txt) on CPython, from peers/.venv-compat: the twin of
# ../fastapi_aiopg_pypy, which runs this same app.py on PyPy. Served as
# uvicorn's documentation serves an app on PyPy: gunicorn with uvicorn's
# UvicornH11Worker (the uvicorn-worker package), that is, WORKERS worker
# processes (default: one per core), each one asyncio event loop with
# uvicorn's pure-Python h11 parser (uvloop and httptools have no PyPy build),
# and an aiopg pool of at most POOL_SIZE connections (default 10). On
# BAKEOFF_HOST:PORT (default 127.0.0.1), over the database at $DATABASE_URL.
# Logs go to stderr.
#
# Why gunicorn and not `uvicorn --workers N --loop asyncio --http h11`: that
# command leaves Nagle's algorithm on every connection (uvicorn binds its
# socket with proto 0, and asyncio sets TCP_NODELAY only on sockets whose
# proto is IPPROTO_TCP; uvicorn issue #3149, open), so each response's body
# waited for the client's delayed ACK of its headers: 48 ms per request, the
# machine idle (peers/README.md, "Stalled rows"). gunicorn sets TCP_NODELAY on
# its listening socket, and Linux passes it on to every accepted connection.
# --timeout 120: the worker's heartbeat to gunicorn runs on the event loop,
# which /fibonacci/40 (the contract's longest request) holds for 25 to 50 s
# of CPU here; gunicorn's default 30 s would kill the worker under it.
#
# Exits 69 (EX_UNAVAILABLE) when peers/setup.sh could not build the venv.
# Pooled (BAKEOFF_POOLER=pgbouncer): nothing changes (psycopg2cffi: simple protocol, no prepared statements).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=$(cd "$here/.." && pwd)/.venv-compat
host=${BAKEOFF_HOST:-127.0.0.1}
case $host in
*:*) bind="[$host]:$port" ;;
*) bind="$host:$port" ;;
esac

if [ ! -e "$venv/setup-complete" ]; then
	echo "unavailable: $venv is not complete (peers/setup.sh could not install this stack; its output says why)" >&2
	exit 69
fi
exec "$venv/bin/gunicorn" app:app --chdir "$here" --bind "$bind" \
	--workers "${WORKERS:-$(nproc)}" --worker-class uvicorn_worker.UvicornH11Worker \
	--timeout 120
