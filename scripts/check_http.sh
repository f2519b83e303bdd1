#!/usr/bin/env bash
# scripts/check_http.sh: lints the raw response of every endpoint with
# httplint (the linter behind REDbot): 200s, 404s, 405, 422, 503, HEAD, the
# operational endpoints, and hyper's own 400, 414 and 431. Fails on any note of httplint's worst level
# ("bad") that the allow-list below does not name. `--help` says how.
set -euo pipefail

PROG=check_http.sh
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

# Pinned, so that a new release cannot change what passes. Bump on purpose,
# and read its new notes.
HTTPLINT_VERSION=2026.10.4

VENV=${HTTPLINT_VENV:-$ROOT/target/httplint-venv}
BUILD=true
PROFILE=debug
KEEP=""
CONTACTS=200

# The notes of level "bad" that are accepted, one per line: NOTE_NAME LABEL
# (a label from the list of requests below, or * for every one), then the
# reason. Each is explained in docs/CONFORMANCE.md. Keep it short.
ALLOW_BAD=(
	# httplint rates the 414 status itself "bad" (the server refuses a long
	# URI); refusing a 70 KB target is what the server means to do.
	"STATUS_URI_TOO_LONG uri-414"
)

# What is asked, one per line: LABEL METHOD TARGET, or LABEL RAW NAME for a
# malformed request hyper itself answers (NAME is one of CRAFTED in the
# Python below). Each answer is linted.
REQUESTS_UP=(
	"version GET /version"
	"version-head HEAD /version"
	"types GET /types"
	"fetch GET /contacts/fetch"
	"for GET /contacts/for"
	"contact GET /contacts/1"
	"contact-404 GET /contacts/999999"
	"fibonacci GET /fibonacci/10"
	"nope-404 GET /nope"
	"version-405 POST /version"
	"fetch-422 GET /contacts/fetch?limit=0"
	"healthz GET /healthz"
	"readyz GET /readyz"
	"openapi GET /openapi.json"
	"metrics GET /metrics"
	"bad-400 RAW bad-field-name"
	"uri-414 RAW long-target"
	"fields-431 RAW many-fields"
)
# With the database unreachable.
REQUESTS_DOWN=(
	"types-503 GET /types"
	"fetch-503 GET /contacts/fetch"
	"readyz-503 GET /readyz"
)

usage() {
	cat <<EOF
Usage: scripts/check_http.sh [OPTIONS]

1. Creates (once) a Python venv for httplint $HTTPLINT_VERSION in $VENV.
2. Builds the server (debug), starts a throwaway PostgreSQL seeded with
   $CONTACTS contacts (\`python3 -m harness sandbox\`, which then runs the
   rest of this script) and the server on a free port, and captures the raw
   response of every endpoint: 200s, 404s, 405, 422, HEAD, /healthz,
   /readyz, /openapi.json, /metrics, and hyper's own answers to malformed
   requests (400, 414, 431).
3. Restarts the server against an unreachable database and captures the 503s.
4. Lints each response with httplint and prints every note. Exits non-zero on
   a note of level "bad" that is not in the script's allow-list.

Options:
  --release      lint target/release/bakeoff (built with cargo build --release)
  --no-build     use the binary as it is
  --keep DIR     keep the raw requests and responses in DIR
  -h, --help     this help

Environment: HTTPLINT_VENV overrides the venv's location.
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--release)
		PROFILE=release
		shift
		;;
	--no-build)
		BUILD=false
		shift
		;;
	--keep)
		KEEP=${2:?--keep needs a directory}
		shift 2
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

# --- the tool -------------------------------------------------------------------

ensure_venv() {
	local want="httplint==$HTTPLINT_VERSION"
	if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.check_http-pins" ] &&
		[ "$(cat "$VENV/.check_http-pins")" = "$want" ]; then
		return 0
	fi
	if [ ! -x "$VENV/bin/python" ]; then
		log "creating the httplint venv in $VENV"
		"$PYTHON" -m venv "$VENV" ||
			die "could not create a venv with $PYTHON; on Debian: apt-get install -y python3-venv"
	fi
	log "installing $want into $VENV"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$want" >&2 ||
		die "pip install $want failed (PyPI must be reachable)"
	printf '%s' "$want" >"$VENV/.check_http-pins"
}

# lint OUT_DIR REQUEST...: captures each request's raw response from
# SERVER_URL into OUT_DIR and lints it; prints every note as
# `LABEL LEVEL NOTE_NAME summary` and writes the bad ones to OUT_DIR/bad.
lint() {
	local out=$1
	shift
	mkdir -p "$out"
	"$VENV/bin/python" - "$SERVER_URL" "$out" "$@" <<'PY'
"""Captures raw HTTP/1.1 responses over a socket and lints them with httplint."""
import os
import socket
import sys
import time
from urllib.parse import urlsplit

from httplint import HttpRequestLinter, HttpResponseLinter

base, out, *requests = sys.argv[1:]
address = urlsplit(base)
host, port = address.hostname, address.port


def dechunk(data):
    """(content, bytes used) of a whole chunked body at the front of data, or None."""
    content, at = b"", 0
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(data[at:line_end].split(b";")[0], 16)
        at = line_end + 2
        if size == 0:
            # Trailer fields, up to an empty line.
            while True:
                field_end = data.find(b"\r\n", at)
                if field_end < 0:
                    return None
                empty = field_end == at
                at = field_end + 2
                if empty:
                    return content, at
        if len(data) < at + size + 2:
            return None
        content += data[at : at + size]
        at += size + 2


def read_response(sock, head):
    """Reads one response; returns its raw bytes and its content (de-chunked)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"connection closed before the head ended: {data!r}")
        data += chunk
    head_bytes, rest = data.split(b"\r\n\r\n", 1)
    lines = head_bytes.split(b"\r\n")
    fields = {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip() for line in lines[1:]}
    status = int(lines[0].split(b" ")[1])
    raw_head = head_bytes + b"\r\n\r\n"
    if head or status in (204, 304) or status < 200:
        return raw_head, b""

    def more():
        nonlocal rest
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed inside the body")
        rest += chunk

    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        while (whole := dechunk(rest)) is None:
            more()
        content, used = whole
        return raw_head + rest[:used], content
    length = int(fields.get(b"content-length", b"0"))
    while len(rest) < length:
        more()
    return raw_head + rest[:length], rest[:length]


# Malformed requests, answered by hyper before the server's own code runs:
# a field name with "[" (400), a 70 KB target (414), 150 fields, more than
# hyper's 100 (431). Each is small enough to be read whole before the answer,
# so the server's close cannot reset the connection before the answer is read.
CRAFTED = {
    "bad-field-name": ("GET", "/version", [(b"Bad[Name", b"value")]),
    "long-target": ("GET", "/version?pad=" + "a" * 70000, []),
    "many-fields": ("GET", "/version", [(b"X-Field", b"value")] * 150),
}

bad = []
for spec in requests:
    label, method, target = spec.split(" ")
    extra_fields = []
    if method == "RAW":
        method, target, extra_fields = CRAFTED[target]
    request_fields = [
        (b"Host", f"{host}:{port}".encode()),
        (b"User-Agent", b"check_http.sh"),
        (b"Accept", b"*/*"),
    ] + extra_fields
    if method == "POST":
        request_fields.append((b"Content-Length", b"0"))
    raw_request = f"{method} {target} HTTP/1.1\r\n".encode() + b"".join(
        name + b": " + value + b"\r\n" for name, value in request_fields
    ) + b"\r\n"
    with socket.create_connection((host, port), timeout=30) as sock:
        started = time.time()
        sock.sendall(raw_request)
        raw, content = read_response(sock, method == "HEAD")
    with open(os.path.join(out, f"{label}.request"), "wb") as file:
        file.write(raw_request)
    with open(os.path.join(out, f"{label}.response"), "wb") as file:
        file.write(raw)

    request = HttpRequestLinter()
    request.process_request_topline(method.encode(), target.encode(), b"HTTP/1.1")
    request.process_headers(request_fields)
    request.finish_content(True)
    response = HttpResponseLinter(start_time=started)
    response.request = request
    response.is_head_response = method == "HEAD"
    head = raw.partition(b"\r\n\r\n")[0]
    top, *lines = head.split(b"\r\n")
    version, status, phrase = (top.split(b" ", 2) + [b""])[:3]
    response.process_response_topline(version, status, phrase)
    response.process_headers([(name, value.strip()) for name, value in (line.split(b":", 1) for line in lines)])
    # httplint wants the content, not its chunked framing.
    response.feed_content(content)
    response.finish_content(True)

    print(f"{label}: {method} {target[:40]} -> {status.decode()}")
    def show(note, depth):
        level = note.level.name
        print(f"{'  ' * depth}  [{level}] {type(note).__name__}: {note.summary}")
        if level == "BAD":
            bad.append(f"{type(note).__name__} {label}")
        for sub in note.subnotes:
            show(sub, depth + 1)
    for note in response.notes:
        show(note, 0)

with open(os.path.join(out, "bad"), "w") as file:
    file.write("".join(line + "\n" for line in bad))
PY
}

# allowed NOTE LABEL: true when the allow-list names the pair.
allowed() {
	local entry name label
	for entry in "${ALLOW_BAD[@]}"; do
		read -r name label _ <<<"$entry"
		if [ "$name" = "$1" ] && { [ "$label" = "*" ] || [ "$label" = "$2" ]; }; then
			return 0
		fi
	done
	return 1
}

# --- the server: started, waited for, stopped (scripts/check_server.sh) ----------

# shellcheck source-path=SCRIPTDIR source=check_server.sh
source "$ROOT/scripts/check_server.sh"

# --- outside the sandbox: the tool and the build, then the same script inside -----

BIN="$ROOT/target/$PROFILE/bakeoff"
if ! $inside_sandbox; then
	ensure_venv
	if $BUILD; then
		if [ "$PROFILE" = release ]; then
			log "building the release binary (cargo build --release)"
			(cd "$ROOT" && cargo build --release >&2) || die "cargo build --release failed (see above)"
		else
			log "building the server (cargo build)"
			(cd "$ROOT" && cargo build --bin bakeoff >&2) || die "cargo build failed (see above)"
		fi
	fi
	[ -x "$BIN" ] || die "no $BIN: run without --no-build"
	# The rest of this script runs inside the harness's sandbox
	# (harness/sandbox.py): a throwaway PostgreSQL seeded with $CONTACTS
	# contacts in DATABASE_URL, a scratch dir in BAKEOFF_SANDBOX, both gone
	# when it exits.
	PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HARNESS_PROG=$PROG CHECK_IN_SANDBOX=$PROG exec "$PYTHON" -m harness \
		sandbox --contacts "$CONTACTS" --binary "$BIN" -- "$BASH" "$0" "${ARGS[@]}"
fi

# --- inside the sandbox -----------------------------------------------------------

TMP_DIR=$BAKEOFF_SANDBOX
trap stop_server EXIT
start_server "${DATABASE_URL:?}" --pool-size 2
log "httplint $HTTPLINT_VERSION on ${#REQUESTS_UP[@]} answers with the database up"
lint "$TMP_DIR/up" "${REQUESTS_UP[@]}"

# The same server with no database: a short pool timeout keeps each 503 fast.
stop_server
# A port the OS just found free: nothing listens there.
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_server "postgresql://postgres@127.0.0.1:$port/bakeoff" --pool-size 2 --pool-timeout-ms 50
log "httplint on ${#REQUESTS_DOWN[@]} answers with the database unreachable"
lint "$TMP_DIR/down" "${REQUESTS_DOWN[@]}"

if [ -n "$KEEP" ]; then
	mkdir -p "$KEEP"
	cp -r "$TMP_DIR/up" "$TMP_DIR/down" "$KEEP/"
	log "raw requests and responses kept in $KEEP"
fi

failed=0
seen=$(cat "$TMP_DIR/up/bad" "$TMP_DIR/down/bad")
for entry in "${ALLOW_BAD[@]}"; do
	grep -qxF "$entry" <<<"$seen" || warn "allow-list entry not needed any more: $entry"
done
while read -r name label; do
	[ -n "$name" ] || continue
	if allowed "$name" "$label"; then
		log "allowed: $name on $label (see the allow-list in this script)"
	else
		warn "bad: $name on $label"
		failed=1
	fi
done < <(cat "$TMP_DIR/up/bad" "$TMP_DIR/down/bad")
[ "$failed" -eq 0 ] || die "httplint found notes of level bad that the allow-list does not name (above)"
log "every answer passes httplint (no unexplained note of level bad)"
