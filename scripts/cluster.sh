#!/usr/bin/env bash
# scripts/cluster.sh: the local deployment, as people type it. All the work
# is the Python harness's (`python3 -m harness cluster`, harness/cluster*.py):
#
#   scripts/cluster.sh up [--instances N] [--rtt-ms MS]   HAProxy, N instances, PgBouncer,
#                                                         Patroni x2 on etcd; prints the front URL
#   scripts/cluster.sh status [--json]                    what runs where, roles as Patroni says
#   scripts/cluster.sh down                               everything stopped and removed
#   scripts/cluster.sh test [--quick]                     the five failure tests under load
#   scripts/cluster.sh cost [--quick]                     the layers' CPU and latency
#
# Needs root (network namespaces, the postgres user); installs what it lacks
# with apt-get. docs/DEPLOY.md says what was measured with it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
HARNESS_PROG=cluster.sh exec "${PYTHON:-python3}" -m harness cluster "$@"
