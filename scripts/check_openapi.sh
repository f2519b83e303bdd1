#!/usr/bin/env bash
# scripts/check_openapi.sh: checks docs/openapi.json, the OpenAPI 3.1
# description of ../shared/API.md, twice: statically with
# openapi-spec-validator, and against the live server with schemathesis
# (generated requests, every answer checked against the document).
# `--help` says how.
set -euo pipefail

PROG=check_openapi.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The interpreter itself, not a version manager's shim (pyenv's is a bash
# script): it makes the venv, and runs the harness's sandbox.
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PYTHON=python3
ARGS=("$@") # for the run inside the sandbox, below
# Set to this script's name for that run only (not for another script run
# inside some sandbox, nor for what this one starts).
inside_sandbox=false
[ "${CHECK_IN_SANDBOX:-}" = "$PROG" ] && inside_sandbox=true
unset CHECK_IN_SANDBOX

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# Pinned, so that a new release cannot change what passes. Bump on purpose.
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
SCHEMATHESIS_VERSION=4.32.5

SPEC="$ROOT/docs/openapi.json"
BIN="$ROOT/target/release/bakeoff"
VENV=${TOOLS_VENV:-$ROOT/target/tools-venv}
MAX_EXAMPLES=50
SEED=1
BUILD=true
FUZZ=true
TARGET=""
CONTACTS=1000
# The checks every answer must pass. Each one and why:
#   not_a_server_error            no 5xx (a 503 is documented where it can happen)
#   status_code_conformance       the status is one the operation documents
#   content_type_conformance      the Content-Type is the documented one
#   response_schema_conformance   the body matches the documented schema
#   response_headers_conformance  documented headers (Retry-After, Allow) are there and valid
#   negative_data_rejection       a request breaking a parameter rule gets a 4xx
#   positive_data_acceptance      a request within every rule is not refused with a 4xx
#   unsupported_method            another method on a path: 405 with an Allow header
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,positive_data_acceptance,unsupported_method

usage() {
	cat <<EOF
Usage: scripts/check_openapi.sh [OPTIONS]

1. Creates (once) a Python venv for the tools in $VENV
   with openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION and schemathesis $SCHEMATHESIS_VERSION.
2. Validates docs/openapi.json as an OpenAPI 3.1 document.
3. Builds the release server (the document is built into it), starts a
   throwaway PostgreSQL seeded with $CONTACTS contacts (\`python3 -m harness
   sandbox\`, which then runs the rest of this script) and the server on a
   free port, and runs schemathesis against it: positive and negative generated requests
   for every operation, each answer checked for:
     ${CHECKS//,/ }
   The schema comes from the server's /openapi.json when it serves one,
   else from the file (a warning says so, and if the two differ).
Exits non-zero on any failed check; schemathesis prints each failure with a
curl command that reproduces it.

Options:
  --max-examples N   generated requests per operation and phase (default $MAX_EXAMPLES)
  --seed N           schemathesis/hypothesis seed, for a reproducible run (default $SEED)
  --contacts N       contacts to seed (default $CONTACTS)
  --target URL       check the server already running at URL (no build, no
                     throwaway PostgreSQL); its database must be seeded
  --validate-only    only step 2 (and 1)
  --no-build         use target/release/bakeoff as it is
  -h, --help         this help

Environment: TOOLS_VENV overrides the venv's location.
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--max-examples)
		MAX_EXAMPLES=${2:?--max-examples needs a number}
		shift 2
		;;
	--seed)
		SEED=${2:?--seed needs a number}
		shift 2
		;;
	--contacts)
		CONTACTS=${2:?--contacts needs a number}
		shift 2
		;;
	--target)
		TARGET=${2:?--target needs a URL}
		TARGET=${TARGET%/}
		shift 2
		;;
	--validate-only)
		FUZZ=false
		shift
		;;
	--no-build)
		BUILD=false
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown option: $1"
		;;
	esac
done
[[ $MAX_EXAMPLES =~ ^[1-9][0-9]*$ ]] || die "--max-examples must be a positive integer, not '$MAX_EXAMPLES'"
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer, not '$SEED'"
[[ $CONTACTS =~ ^[0-9]+$ ]] || die "--contacts must be a non-negative integer, not '$CONTACTS'"

# --- the tools ------------------------------------------------------------------

# Creates the venv, or brings its packages to the pinned versions.
ensure_venv() {
	local want="openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION schemathesis==$SCHEMATHESIS_VERSION"
	if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.check_openapi-pins" ] &&
		[ "$(cat "$VENV/.check_openapi-pins")" = "$want" ]; then
		return 0
	fi
	if [ ! -x "$VENV/bin/python" ]; then
		log "creating the tools venv in $VENV"
		"$PYTHON" -m venv "$VENV" ||
			die "could not create a venv with $PYTHON; on Debian: apt-get install -y python3-venv"
	fi
	log "installing $want into $VENV"
	# shellcheck disable=SC2086 # $want is a list of requirements
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2 ||
		die "pip install $want failed (PyPI must be reachable)"
	printf '%s' "$want" >"$VENV/.check_openapi-pins"
}

# --- the server: started, waited for, stopped (scripts/check_server.sh) ----------

# shellcheck source-path=SCRIPTDIR source=check_server.sh
source "$ROOT/scripts/check_server.sh"

# schemathesis, a background child while it runs (see run_schemathesis).
CHILD_PID=""
# --target's scratch dir, made here; inside the sandbox it is the sandbox's.
OWN_TMP_DIR=""

cleanup() {
	if [ -n "$CHILD_PID" ]; then
		kill -TERM "$CHILD_PID" 2>/dev/null || true
		wait "$CHILD_PID" 2>/dev/null || true
	fi
	stop_server
	[ -z "$OWN_TMP_DIR" ] || rm -rf "$OWN_TMP_DIR"
}

# --- outside the sandbox: 1. and 2., the build, then the same script inside --------

if ! $inside_sandbox; then
	ensure_venv
	log "validating docs/openapi.json (openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION)"
	"$VENV/bin/openapi-spec-validator" "$SPEC" >&2 || die "docs/openapi.json is not a valid OpenAPI document"
	# The document's own version must be the server's.
	spec_version=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["info"]["version"])' "$SPEC")
	crate_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)
	[ "$spec_version" = "$crate_version" ] ||
		die "docs/openapi.json says info.version $spec_version, Cargo.toml says $crate_version"
	$FUZZ || exit 0
	if [ -z "$TARGET" ]; then
		if $BUILD; then
			log "building the release binary (cargo build --release)"
			(cd "$ROOT" && cargo build --release >&2) || die "cargo build --release failed (see above)"
		fi
		[ -x "$BIN" ] || die "no target/release/bakeoff: run without --no-build"
		# The rest of this script runs inside the harness's sandbox
		# (harness/sandbox.py): a throwaway PostgreSQL seeded with $CONTACTS
		# contacts in DATABASE_URL, a scratch dir in BAKEOFF_SANDBOX, both
		# gone when it exits.
		PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HARNESS_PROG=$PROG CHECK_IN_SANDBOX=$PROG exec "$PYTHON" -m harness \
			sandbox --contacts "$CONTACTS" --binary "$BIN" -- "$BASH" "$0" "${ARGS[@]}"
	fi
fi

# --- 3. the live server: --target's, or ours inside the sandbox ---------------------

trap cleanup EXIT
if [ -n "$TARGET" ]; then
	OWN_TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bakeoff.XXXXXX")
	TMP_DIR=$OWN_TMP_DIR
	SERVER_URL=$TARGET
	wait_http "$SERVER_URL/healthz" 10 || die "nothing answers $SERVER_URL/healthz"
else
	TMP_DIR=$BAKEOFF_SANDBOX
	start_server "${DATABASE_URL:?}" --pool-size 4
fi

# The served document when there is one (it is what clients see); else the file.
schema_location=$SPEC
if "$PYTHON" -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=10).read())' \
	"$SERVER_URL/openapi.json" >"$TMP_DIR/served.json" 2>/dev/null &&
	"$VENV/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d.get("paths") else 1)' "$TMP_DIR/served.json" 2>/dev/null; then
	# Kept as a file: the server is restarted below, on another port.
	schema_location="$TMP_DIR/served.json"
	if ! "$VENV/bin/python" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
		"$TMP_DIR/served.json" "$SPEC"; then
		warn "the server's /openapi.json differs from docs/openapi.json (a stale build?); checking the served one"
	fi
else
	warn "the server does not serve /openapi.json with paths; checking docs/openapi.json"
fi

# run_schemathesis LOG CHECKS MAX_EXAMPLES: one schemathesis run of every
# operation against SERVER_URL. Phases: the coverage phase (boundaries and
# rule-breaking values of each parameter) and random fuzzing, positive and
# negative. No stateful phase: the API has no links between operations.
run_schemathesis() {
	local out=$1 checks=$2 examples=$3 rc=0
	(cd "$TMP_DIR" && exec "$VENV/bin/schemathesis" run "$schema_location" \
		--url "$SERVER_URL" \
		--checks "$checks" \
		--phases examples,coverage,fuzzing \
		--max-examples "$examples" \
		--seed "$SEED" \
		--workers 2 \
		--request-timeout 10 \
		--max-failures 20 \
		--generation-database none \
		--no-color) >"$out" 2>&1 &
	# In the background, waited for: bash runs a trap only once the foreground
	# command ends, so a SIGTERM would wait for the whole run; `wait` returns
	# at once, and cleanup stops CHILD_PID.
	CHILD_PID=$!
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=""
	cat "$out" >&2
	if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
		tail -n +2 "$TMP_DIR/server.log" | tail -n 20 >&2
		die "the server exited during the run (its last lines are above)"
	fi
	return "$rc"
}

log "schemathesis $SCHEMATHESIS_VERSION: ${schema_location#"$TMP_DIR"/} against $SERVER_URL, $MAX_EXAMPLES examples per operation, seed $SEED"
run_schemathesis "$TMP_DIR/schemathesis.log" "$CHECKS" "$MAX_EXAMPLES" ||
	die "schemathesis found failures with the database up (details above)"
[ -n "$TARGET" ] && exit 0

# The same server with no database: the documented 503s (body, Retry-After)
# and everything that needs no database must still conform. A short pool
# timeout keeps each 503 fast; not_a_server_error and
# positive_data_acceptance are left out, since 503 is the right answer here.
stop_server
# A port the OS just found free: nothing listens there.
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server "postgresql://postgres@127.0.0.1:$port/bakeoff" --pool-size 2 --pool-timeout-ms 50
"$PYTHON" - "$SERVER_URL/types" <<'PY' || die "with no database, /types is not a 503 with Retry-After"
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=10)
    sys.exit("/types answered 2xx with no database")
except urllib.error.HTTPError as e:
    if e.code != 503 or not e.headers.get("Retry-After"):
        sys.exit(f"/types answered {e.code}, Retry-After={e.headers.get('Retry-After')!r}")
PY
DOWN_CHECKS=status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,unsupported_method
log "schemathesis with the database unreachable: $((MAX_EXAMPLES / 5 + 1)) examples per operation"
run_schemathesis "$TMP_DIR/schemathesis-down.log" "$DOWN_CHECKS" "$((MAX_EXAMPLES / 5 + 1))" ||
	die "schemathesis found failures with the database down (details above)"
log "docs/openapi.json is valid and the server conforms to it, with the database up and down"
