#!/usr/bin/env bash
# Go (net/http + pgx v4's pgxpool, pgx's default statement cache): one
# process, GOMAXPROCS = cores, with a pool of at most POOL_SIZE connections
# (default 10, MaxConns), on BAKEOFF_HOST:PORT (default 127.0.0.1), over the
# database at $DATABASE_URL. Logs go to stderr. The binary is built by
# ../setup.sh.
# Pooled (BAKEOFF_POOLER=pgbouncer): pgx's statement cache in describe mode (main.go).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host=${BAKEOFF_HOST:-127.0.0.1}
case $host in
*:*) bind="[$host]:$port" ;;
*) bind="$host:$port" ;;
esac

exec "$here/contacts" -addr "$bind"
