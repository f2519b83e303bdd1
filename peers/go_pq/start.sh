#!/usr/bin/env bash
# Go (net/http + database/sql + lib/pq): one process, GOMAXPROCS = cores,
# with at most POOL_SIZE open connections (default 10, SetMaxOpenConns), on
# BAKEOFF_HOST:PORT (default 127.0.0.1), over the database at $DATABASE_URL.
# Logs go to stderr. The binary is built by ../setup.sh.
# Pooled (BAKEOFF_POOLER=pgbouncer): lib/pq's binary_parameters=yes, one batch per query (main.go).
set -euo pipefail

port=${1:?usage: start.sh PORT}
: "${DATABASE_URL:?set DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:5432/bakeoff}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
host=${BAKEOFF_HOST:-127.0.0.1}
case $host in
*:*) bind="[$host]:$port" ;;
*) bind="$host:$port" ;;
esac

# lib/pq defaults to sslmode=require where libpq prefers; the study's
# databases are local and without TLS.
export PGSSLMODE=${PGSSLMODE:-disable}
exec "$here/contacts" -addr "$bind"
