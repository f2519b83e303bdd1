# scripts/check_server.sh: the server the HTTP checks (check_http.sh,
# check_openapi.sh) start inside the harness's sandbox, sourced by them:
# `$BIN serve` on a port of its own choosing, waited for, stopped with
# nothing left. It expects PROG, PYTHON, BIN and TMP_DIR set, and log/die.
# shellcheck shell=bash

# wait_http URL SECONDS: polls URL until it answers 2xx; status 1 (and a line
# on stderr) when it has not within SECONDS.
wait_http() {
	"$PYTHON" - "$@" <<'PY'
import sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"{url} did not answer within {seconds:g} s")
PY
}

SERVER_PID=""
SERVER_URL=""

# start_server DATABASE_URL ARGS...: `$BIN serve` on a port of its own choosing
# (its first line on stderr names it); sets SERVER_PID and SERVER_URL once it
# answers /version.
start_server() {
	local url=$1 line="" i
	shift
	# Emptied first: the loop below must not read an earlier server's line.
	: >"$TMP_DIR/server.log"
	DATABASE_URL=$url "$BIN" serve --bind 127.0.0.1:0 "$@" >/dev/null 2>>"$TMP_DIR/server.log" &
	SERVER_PID=$!
	for ((i = 0; i < 300; i++)); do
		# `read` takes a whole line only, never a half-written one.
		IFS= read -r line <"$TMP_DIR/server.log" && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! [[ $line =~ listening\ on\ (http://[^ ]+) ]]; then
		sleep 0.2 # let it finish its message, if it is failing
		cat "$TMP_DIR/server.log" >&2
		die "the server did not start (its output is above)"
	fi
	SERVER_URL=${BASH_REMATCH[1]%/}
	log "$line"
	wait_http "$SERVER_URL/version" 30 || die "the server does not answer /version"
}

# Stops the server with SIGTERM (it drains and exits), killing it after 15 s.
stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	local i
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}
