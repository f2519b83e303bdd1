# shellcheck shell=bash
# Many globals here are read only by the scripts that source this file.
# shellcheck disable=SC2034
# scripts/lib.sh: the shell functions that the scripts not yet moved into the
# Python harness share (compare.sh, flamegraph.sh, pin.sh, allocators.sh,
# check_openapi.sh, check_docker.sh). Sourced, never run. scripts/run.sh is
# the harness's entry point now (harness/, `python3 -m harness run`), with
# its own copy of the workload table (harness/workloads.py): keep the two
# alike until these scripts move too.
#
# What it holds: the workload table, tool checks (and installs), the run's temp
# dir and its cleanup, a throwaway PostgreSQL, the server, a throwaway nginx,
# and one measurement with wrk or pgbench. JSON, HTTP polling and arithmetic
# are in scripts/bench.py.
#
# Globals the caller sets before using the functions (defaults below):
#   PROG                 name used in messages
#   CONNECTIONS THREADS  wrk's -c and -t, also pgbench's -c and -j
#   CONTACTS             contacts in the database (random ids are 1..CONTACTS)
#   PIN_SERVER PIN_DB PIN_WRK   CPU lists for taskset, empty = not pinned
# Globals the functions set: TMP_DIR, DB_URL, PG_DATA, SERVER_PID, SERVER_URL,
# SERVER_BANNER, NGINX_PID, NGINX_URL, CHILD_PID; cleanup() undoes them all,
# and stops AUX_PID too when a script sets it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS="$ROOT/scripts"
BENCH_PY="$SCRIPTS/bench.py"

PROG=${PROG:-$(basename "$0")}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
CONTACTS=${CONTACTS:-10000}
PIN_SERVER=${PIN_SERVER:-}
PIN_DB=${PIN_DB:-}
PIN_WRK=${PIN_WRK:-}
# wrk gives up on a response after this long and counts a timeout.
WRK_TIMEOUT=${WRK_TIMEOUT:-5}

TMP_DIR=""
DB_URL=""
# How the server and pgbench reach a throwaway cluster: tcp (loopback) or unix.
TRANSPORT=tcp
PG_DATA=""
SERVER_PID=""
SERVER_URL=""
SERVER_BANNER=""
NGINX_PID=""
NGINX_URL=""
CHILD_PID=""
GIT_COMMIT=""
GIT_DIRTY=false
AUX_PID="" # one more background child of a script (perf), stopped by cleanup

# --- messages -----------------------------------------------------------------

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

# The interpreter itself, not a version manager's shim (pyenv's is a bash
# script): faster to start, and it dies of SIGINT on Ctrl-C as bash expects.
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PYTHON=python3
bench_py() { "$PYTHON" "$BENCH_PY" "$@"; }

# "2m05s" for a number of seconds: progress lines say how long is left.
fmt_duration() {
	printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# A command line as it could be typed again: arguments quoted only when needed.
quote_command() {
	local arg quoted=()
	for arg in "$@"; do
		if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
			quoted+=("$arg")
		else
			quoted+=("$(printf '%q' "$arg")")
		fi
	done
	printf '%s' "${quoted[*]}"
}

# --- workloads ----------------------------------------------------------------

# In the order they run. The path is appended to the base URL of the server.
WORKLOADS=(version types fetch100 for100 fetch_starts contact_random fib25 version_pipelined)

declare -A WORKLOAD_PATH=(
	[version]=/version
	[types]=/types
	[fetch100]="/contacts/fetch?limit=100"
	[for100]="/contacts/for?limit=100"
	[fetch_starts]="/contacts/fetch?limit=10&starts=m"
	[contact_random]=/contacts/ # random_contact.lua appends the id
	[fib25]=/fibonacci/25
	[version_pipelined]=/version
)

# What each workload's ceiling is: nginx answering the same /version body,
# pgbench running the same SQL, or none (fib25 is pure CPU in the server).
declare -A WORKLOAD_CEILING=(
	[version]=nginx
	[types]=pgbench
	[fetch100]=pgbench
	[for100]=pgbench
	[fetch_starts]=pgbench
	[contact_random]=pgbench
	[fib25]=none
	[version_pipelined]=nginx
)

# The sql/ file each database workload runs and the values of its $1 $2 $3,
# exactly what the server passes for the workload's URL (limit, offset,
# starts; see the header comment of each file). "random" is an id drawn from
# 1..CONTACTS per transaction, like random_contact.lua draws one per request.
declare -A WORKLOAD_SQL=(
	[types]="types.sql"
	[fetch100]="page.sql 100 0"
	[for100]="page.sql 100 0"
	[fetch_starts]="page_starts.sql 10 0 m"
	[contact_random]="contact.sql random"
)

# The session settings the server gives the connections a workload's
# statement runs on (src/db.rs), so that its ceiling plans it the same way:
# the `starts` page is planned for its parameters on every call.
declare -A WORKLOAD_PGOPTIONS=(
	[fetch_starts]="-c plan_cache_mode=force_custom_plan"
)

PIPELINE_DEPTH=16

is_workload() {
	local w
	for w in "${WORKLOADS[@]}"; do
		[ "$w" = "$1" ] && return 0
	done
	return 1
}

# --- tools --------------------------------------------------------------------

# The Debian package that brings each tool, for the install command.
declare -A TOOL_PACKAGE=(
	[wrk]=wrk
	[nginx]=nginx-light
	[initdb]=postgresql
	[pg_ctl]=postgresql
	[postgres]=postgresql
	[pgbench]=postgresql
	[psql]=postgresql-client
	[python3]=python3
	[perf]=linux-perf
	[taskset]=util-linux
	[runuser]=util-linux
)

PG_BINDIR=""

# Debian keeps initdb, pg_ctl and postgres off PATH, in
# /usr/lib/postgresql/<version>/bin; take the newest version there.
find_pg_bindir() {
	local dir
	PG_BINDIR=""
	while IFS= read -r dir; do
		[ -x "$dir/initdb" ] && PG_BINDIR=$dir
	done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V)
	return 0
}

# Path of a tool, or status 1. PostgreSQL's tools come from one version's
# bindir when there is one, so that initdb, postgres and pgbench match.
tool_path() {
	local name=$1 dir
	case $name in
	initdb | pg_ctl | postgres | psql | pgbench)
		[ -z "$PG_BINDIR" ] && find_pg_bindir
		if [ -n "$PG_BINDIR" ] && [ -x "$PG_BINDIR/$name" ]; then
			echo "$PG_BINDIR/$name"
			return 0
		fi
		;;
	esac
	command -v "$name" 2>/dev/null && return 0
	# nginx and runuser live in sbin, which a non-root PATH may not have.
	for dir in /usr/sbin /sbin; do
		if [ -x "$dir/$name" ]; then
			echo "$dir/$name"
			return 0
		fi
	done
	return 1
}

# Checks that every named tool is there; installs the missing ones with
# apt-get when running as root, or stops with the command that would.
ensure_tools() {
	local tool pkg missing=() packages=()
	for tool in "$@"; do
		if [ "$tool" = cargo ]; then
			command -v cargo >/dev/null ||
				die "cargo is not on PATH: install Rust with rustup, then add ~/.cargo/bin to PATH"
			continue
		fi
		tool_path "$tool" >/dev/null && continue
		missing+=("$tool")
		pkg=${TOOL_PACKAGE[$tool]:-$tool}
		[[ " ${packages[*]} " == *" $pkg "* ]] || packages+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0

	local cmd="apt-get update && apt-get install -y ${packages[*]}"
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
		die "missing ${missing[*]}; install them with: sudo $cmd"
	fi
	log "missing ${missing[*]}: running $cmd"
	# apt's chatter goes to stderr: stdout is kept for the results table.
	apt-get update >&2 || die "apt-get update failed; run: $cmd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" >&2 ||
		die "could not install ${packages[*]}; run: $cmd"
	find_pg_bindir
	for tool in "${missing[@]}"; do
		tool_path "$tool" >/dev/null || die "$tool is still missing after installing ${packages[*]}"
	done
}

# The commands that run a program on a CPU list (empty when not pinned),
# e.g. `"${PIN_SERVER_CMD[@]}" nginx ...`.
PIN_SERVER_CMD=()
PIN_DB_CMD=()
PIN_WRK_CMD=()
set_pinning() {
	PIN_SERVER_CMD=()
	PIN_DB_CMD=()
	PIN_WRK_CMD=()
	local cpus
	for cpus in "$PIN_SERVER" "$PIN_DB" "$PIN_WRK"; do
		[ -z "$cpus" ] && continue
		taskset -c "$cpus" true 2>/dev/null || die "invalid CPU list '$cpus' (try 0, 1 or 0-1; this machine has $(nproc --all) CPUs)"
	done
	if [ -n "$PIN_SERVER" ]; then PIN_SERVER_CMD=(taskset -c "$PIN_SERVER"); fi
	if [ -n "$PIN_DB" ]; then PIN_DB_CMD=(taskset -c "$PIN_DB"); fi
	if [ -n "$PIN_WRK" ]; then PIN_WRK_CMD=(taskset -c "$PIN_WRK"); fi
	return 0
}

# How many CPUs the server may use: its pinning, or the whole machine.
server_cpu_count() {
	"${PIN_SERVER_CMD[@]}" nproc
}

# --- temp dir, children and cleanup ---------------------------------------

make_tmp_dir() {
	TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bakeoff.XXXXXX")
}

# True while a process exists and has not exited (an exited child that is not
# reaped yet is a zombie, and `kill -0` still finds it).
pid_running() {
	local state
	state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# stop_pid PID SIGNAL SECONDS: signals a child, gives it SECONDS to exit, then
# kills it. Returns the child's exit status.
stop_pid() {
	local pid=$1 signal=$2 seconds=$3 i rc=0
	kill -"$signal" "$pid" 2>/dev/null || true
	for ((i = 0; i < seconds * 10; i++)); do
		pid_running "$pid" || break
		sleep 0.1
	done
	if pid_running "$pid"; then
		warn "process $pid still running ${seconds}s after SIG$signal; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return "$rc"
}

# run_child OUT_FILE COMMAND...: runs a command as a background child, its
# stdout and stderr in OUT_FILE, and waits for it. Why not in the foreground:
# bash runs a trap only after the foreground command ends, so a SIGTERM would
# wait for a whole wrk run; `wait` returns at once instead, and cleanup stops
# CHILD_PID. (The output is redirected here, not around the call, so that the
# trap's messages still reach the terminal.)
run_child() {
	local out=$1 rc=0
	shift
	"$@" >"$out" 2>&1 &
	CHILD_PID=$!
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=""
	return "$rc"
}

# The EXIT trap: stops whatever this run started, in reverse order, and
# removes the temp dir. Idempotent; never fails.
cleanup() {
	# A second Ctrl-C must not cut the cleanup short and leave processes behind.
	trap '' INT TERM
	set +e
	if [ -n "$CHILD_PID" ]; then
		stop_pid "$CHILD_PID" TERM 5
		CHILD_PID=""
	fi
	if [ -n "$AUX_PID" ]; then
		stop_pid "$AUX_PID" TERM 5
		AUX_PID=""
	fi
	server_stop
	nginx_stop
	pg_stop
	if [ -n "$TMP_DIR" ] && [ -d "$TMP_DIR" ]; then
		rm -rf "$TMP_DIR"
	fi
	TMP_DIR=""
}

install_cleanup_trap() {
	trap cleanup EXIT
	trap 'on_signal INT 130' INT
	trap 'on_signal TERM 143' TERM
}

# on_signal SIGNAL STATUS: Ctrl-C or a kill. Cleans up, then dies of the same
# signal, so that a calling script (pin.sh, a shell loop) stops as well
# instead of taking it for a failure and going on.
on_signal() {
	trap '' INT TERM # one signal is enough: never start the cleanup twice
	log "interrupted (SIG$1): stopping everything this run started"
	cleanup
	trap - EXIT "$1"
	kill -"$1" "$$"
	exit "$2" # only reached when the signal was ignored when the script started
}

# Sets GIT_COMMIT (full hash, or "none" before the first commit) and
# GIT_DIRTY (true/false): the source that was built. The benchmark's own output
# (results/, flamegraphs/) does not make the tree dirty. A script that built
# the binary earlier passes what it saw then in BAKEOFF_GIT_COMMIT and
# BAKEOFF_GIT_DIRTY, since src/ may have changed since.
git_state() {
	GIT_COMMIT=${BAKEOFF_GIT_COMMIT:-}
	GIT_DIRTY=${BAKEOFF_GIT_DIRTY:-}
	if [ -z "$GIT_COMMIT" ]; then
		GIT_COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || GIT_COMMIT=none
	fi
	if [ -z "$GIT_DIRTY" ]; then
		GIT_DIRTY=false
		if [ -n "$(git -C "$ROOT" status --porcelain -- . ':!results' ':!flamegraphs' 2>/dev/null)" ]; then
			GIT_DIRTY=true
		fi
	fi
	return 0
}

# result_file NAME [LABEL]: results/<UTC date>-<commit>[-dirty]-NAME[-LABEL].json,
# one new file per run, named so that `ls results/` sorts them by date.
# Uses git_state's GIT_COMMIT and GIT_DIRTY.
result_file() {
	local name=$1 label=${2:-} stamp commit=nocommit dirty=""
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	[ "$GIT_COMMIT" = none ] || commit=${GIT_COMMIT:0:10}
	if $GIT_DIRTY; then dirty=-dirty; fi
	name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')
	echo "$ROOT/results/$stamp-$commit$dirty-$name${label:+-$label}.json"
}

# --- build --------------------------------------------------------------------

# cargo build --release, its output on stderr. Cargo's environment variables
# (CARGO_TARGET_DIR, CARGO_PROFILE_RELEASE_DEBUG, RUSTFLAGS) pass through.
build_release() {
	log "building the release binary (cargo build --release)"
	(cd "$ROOT" && cargo build --release >&2) ||
		die "cargo build --release failed (see above)"
}

# --- PostgreSQL ---------------------------------------------------------------

# Runs a command as the OS user that owns the throwaway cluster: initdb and
# postgres refuse to run as root, so as root that is `postgres`.
as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# pg_start_throwaway MAX_CONNECTIONS: initdb in the temp dir, start it on a
# free port (pinned to PIN_DB), create the database; sets DB_URL and PG_DATA.
pg_start_throwaway() {
	local max_connections=$1 dir="$TMP_DIR/pg" port
	mkdir "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 ||
			die "no 'postgres' OS user to run PostgreSQL as (apt-get install -y postgresql creates it)"
		chown postgres: "$dir"
		# postgres must get through the temp dir to its own dir; it holds no secrets.
		chmod 711 "$TMP_DIR"
	fi
	log "creating a throwaway PostgreSQL cluster in $dir"
	if ! as_pg "$(tool_path initdb)" -D "$dir/data" -U postgres --locale=C.UTF-8 -E UTF8 \
		--auth=trust >"$TMP_DIR/initdb.log" 2>&1; then
		tail -n 20 "$TMP_DIR/initdb.log" >&2
		die "initdb failed (its output is above)"
	fi
	PG_DATA="$dir/data" # from here on, cleanup stops it
	port=$(bench_py free-port)
	# Settings of a throwaway cluster: no durability (the data is rebuilt on
	# every run, and seeding is faster), TCP on loopback like the study's
	# servers, the socket in our own dir (not /var/run/postgresql).
	cat >>"$PG_DATA/postgresql.conf" <<-EOF

		# Added by scripts/lib.sh for a throwaway benchmark cluster.
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$dir'
		max_connections = $max_connections
		fsync = off
		synchronous_commit = off
		full_page_writes = off
	EOF
	if ! as_pg "${PIN_DB_CMD[@]}" "$(tool_path pg_ctl)" -D "$PG_DATA" -l "$dir/postgres.log" \
		-w -t 60 start >/dev/null; then
		tail -n 20 "$dir/postgres.log" >&2
		die "PostgreSQL did not start (its log is above)"
	fi
	"$(tool_path psql)" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c "CREATE DATABASE bakeoff" || die "could not create the database"
	DB_URL="postgresql://postgres@127.0.0.1:$port/bakeoff"
	if [ "$TRANSPORT" = unix ]; then
		# The same URL form for libpq (psql, pgbench) and tokio-postgres.
		DB_URL="postgresql://postgres@/bakeoff?host=$dir&port=$port"
	fi
}

pg_stop() {
	[ -n "$PG_DATA" ] || return 0
	local data=$PG_DATA pid
	PG_DATA=""
	as_pg "$(tool_path pg_ctl)" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1
	# pg_ctl failed or timed out: the postmaster must not outlive its data dir.
	if [ -f "$data/postmaster.pid" ]; then
		pid=$(head -n 1 "$data/postmaster.pid")
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			warn "PostgreSQL ($pid) did not stop; killing it"
			kill -KILL "$pid" 2>/dev/null
			sleep 0.5
		fi
	fi
	return 0
}

# psql_value SQL: one value from DB_URL, unaligned, no headers.
psql_value() {
	"$(tool_path psql)" -X -q -At -v ON_ERROR_STOP=1 -d "$DB_URL" -c "$1"
}

# True when the four tables of sql/schema.sql exist in DB_URL.
db_has_tables() {
	local n
	n=$(psql_value "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()
		AND tablename IN ('contact_types', 'contacts', 'contact_phones', 'contact_emails')") ||
		die "cannot query the database at DATABASE_URL"
	[ "$n" = 4 ]
}

# seed_db BINARY: `bakeoff seed --contacts CONTACTS` into DB_URL.
seed_db() {
	local start=$SECONDS
	log "seeding $CONTACTS contacts"
	DATABASE_URL=$DB_URL "$1" seed --contacts "$CONTACTS" >&2 ||
		die "bakeoff seed --contacts $CONTACTS failed"
	log "seeded in $((SECONDS - start))s"
}

# --- the server -----------------------------------------------------------------

# server_start BINARY [SERVER_ARGS...]: runs `BINARY serve` on a free port
# against DB_URL, pinned to PIN_SERVER; sets SERVER_PID, SERVER_URL and
# SERVER_BANNER (its first stderr line, which names the real address).
server_start() {
	local bin=$1 log_file="$TMP_DIR/server.log" i line=""
	shift
	: >"$log_file" # exists before the loop below reads it
	DATABASE_URL=$DB_URL "${PIN_SERVER_CMD[@]}" "$bin" serve --bind 127.0.0.1:0 "$@" \
		>"$TMP_DIR/server.out" 2>"$log_file" &
	SERVER_PID=$!
	# `read` succeeds only on a whole line, so a half-written one is not taken.
	for ((i = 0; i < 300; i++)); do
		IFS= read -r line <"$log_file" && break
		line=""
		pid_running "$SERVER_PID" || break
		sleep 0.1
	done
	if [[ $line =~ listening\ on\ (http://[^ ]+) ]]; then
		SERVER_URL=${BASH_REMATCH[1]%/}
		SERVER_BANNER=$line
	else
		sleep 0.2 # let it finish its message, if it is failing
		cat "$log_file" >&2
		if pid_running "$SERVER_PID"; then
			die "the server's first line (above) names no address to connect to"
		fi
		local status=0
		wait "$SERVER_PID" || status=$?
		SERVER_PID=""
		die "the server did not start (exit status $status; its output is above)"
	fi
	log "$SERVER_BANNER"
	bench_py wait-http "$SERVER_URL/version" --timeout 30 || die "the server does not answer /version"
}

# Peak resident memory of the server in KiB (VmHWM), empty when unknown.
server_peak_rss_kib() {
	local pid=${1:-$SERVER_PID}
	[ -n "$pid" ] || return 0
	awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true
}

# Stops the server with SIGTERM; returns its exit status (0 is graceful).
server_stop() {
	[ -n "$SERVER_PID" ] || return 0
	local pid=$SERVER_PID rc=0
	SERVER_PID=""
	stop_pid "$pid" TERM 15 || rc=$?
	return "$rc"
}

# The server's stderr past its first line: warnings or errors during the run.
server_log_tail() {
	[ -n "$TMP_DIR" ] && [ -f "$TMP_DIR/server.log" ] || return 0
	tail -n +2 "$TMP_DIR/server.log"
}

# --- nginx ----------------------------------------------------------------------

# nginx_start BODY: a throwaway nginx (scripts/nginx.conf) answering /version
# with BODY, on a free port, pinned like the server; sets NGINX_PID, NGINX_URL.
nginx_start() {
	local body=$1 dir="$TMP_DIR/nginx" port workers got
	# The body goes into a single-quoted nginx string through sed: keep it to
	# characters that need no escaping in either (a version body always is).
	[[ $body =~ ^[][A-Za-z0-9{}\":.,_+\ -]+$ ]] ||
		die "cannot put this /version body into nginx.conf: $body"
	mkdir -p "$dir/logs" "$dir/tmp"
	port=$(bench_py free-port)
	workers=$(server_cpu_count)
	sed -e "s|@PREFIX@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@WORKERS@|$workers|g" \
		-e "s|@BODY@|$body|g" "$SCRIPTS/nginx.conf" >"$dir/nginx.conf"
	"${PIN_SERVER_CMD[@]}" "$(tool_path nginx)" -p "$dir/" -c "$dir/nginx.conf" \
		-e "$dir/logs/error.log" >"$dir/logs/stdout.log" 2>&1 &
	NGINX_PID=$!
	NGINX_URL="http://127.0.0.1:$port"
	if ! bench_py wait-http "$NGINX_URL/version" --timeout 10; then
		cat "$dir/logs/stdout.log" "$dir/logs/error.log" >&2 2>/dev/null
		die "nginx did not start (its log is above)"
	fi
	got=$(bench_py http-get "$NGINX_URL/version")
	[ "$got" = "$body" ] || die "nginx answers /version with $got, not $body"
	log "nginx (ceiling of /version) on $NGINX_URL, $workers worker(s)"
}

nginx_stop() {
	[ -n "$NGINX_PID" ] || return 0
	local pid=$NGINX_PID
	NGINX_PID=""
	# TERM is nginx's fast shutdown; its workers exit with the master.
	stop_pid "$pid" TERM 10 || true
}

# --- measurements ---------------------------------------------------------------

# wrk_run BASE_URL WORKLOAD SECONDS OUT_FILE: one wrk run of a workload,
# pinned to PIN_WRK, its whole output in OUT_FILE.
wrk_run() {
	local base=$1 workload=$2 seconds=$3 out=$4 script=report.lua args=()
	case $workload in
	contact_random)
		script=random_contact.lua
		args=(-- "$CONTACTS")
		;;
	version_pipelined)
		script=pipeline.lua
		args=(-- "$PIPELINE_DEPTH")
		;;
	esac
	if ! run_child "$out" "${PIN_WRK_CMD[@]}" "$(tool_path wrk)" -t "$THREADS" \
		-c "$CONNECTIONS" -d "${seconds}s" --timeout "${WRK_TIMEOUT}s" \
		-s "$SCRIPTS/wrk/$script" "$base${WORKLOAD_PATH[$workload]}" "${args[@]}"; then
		cat "$out" >&2
		if [ -n "$SERVER_PID" ] && [ "$base" = "$SERVER_URL" ] && ! pid_running "$SERVER_PID"; then
			server_log_tail | tail -n 20 >&2
			die "the server is gone: it exited during $workload (its last lines are above)"
		fi
		die "wrk failed on $workload against $base (its output is above)"
	fi
}

# pgbench_script WORKLOAD OUT_FILE: the pgbench script of a database workload,
# generated from sql/ so it can never drift from what the server runs: the
# same statement text, with $N turned into the pgbench variable :pN.
# Whole-line comments are dropped (pgbench would scan them for :variables).
pgbench_script() {
	local workload=$1 out=$2 file p1
	read -r file p1 _ <<<"${WORKLOAD_SQL[$workload]}"
	{
		if [ "$p1" = random ]; then
			printf '\\set p1 random(1, %d)\n' "$CONTACTS"
		fi
		# shellcheck disable=SC2016 # $N is SQL's, not the shell's
		sed -E -e '/^[[:space:]]*--/d' -e 's/\$([0-9]+)/:p\1/g' "$ROOT/sql/$file"
		printf ';\n'
	} >"$out"
}

# The -D NAME=VALUE options of a database workload's fixed parameters.
pgbench_vars() {
	local workload=$1 file p1 p2 p3
	read -r file p1 p2 p3 <<<"${WORKLOAD_SQL[$workload]}"
	[ -n "$p1" ] && [ "$p1" != random ] && echo "p1=$p1"
	[ -n "$p2" ] && echo "p2=$p2"
	[ -n "$p3" ] && echo "p3=$p3"
	return 0
}

# pgbench_run WORKLOAD SECONDS SCRIPT OUT_FILE: `pgbench -M prepared -n` with
# wrk's client and thread counts against DB_URL, pinned like wrk, in sessions
# set up like the server's for that workload (WORKLOAD_PGOPTIONS).
pgbench_run() {
	local workload=$1 seconds=$2 script=$3 out=$4 var defs=()
	while IFS= read -r var; do
		defs+=(-D "$var")
	done < <(pgbench_vars "$workload")
	if ! PGOPTIONS="${WORKLOAD_PGOPTIONS[$workload]:-}" run_child "$out" "${PIN_WRK_CMD[@]}" \
		"$(tool_path pgbench)" -M prepared -n \
		-c "$CONNECTIONS" -j "$THREADS" -T "$seconds" -f "$script" "${defs[@]}" "$DB_URL"; then
		cat "$out" >&2
		warn "pgbench failed on $workload (its output is above); no ceiling for it"
		return 1
	fi
}

# --- driving run.sh from another script (pin.sh, allocators) -------------------

# The child run.sh, so that a signal to this script reaches it too.
RUN_PID=""

forward_signal() {
	trap '' INT TERM
	if [ -n "$RUN_PID" ]; then
		# run.sh cleans up and exits on TERM; wait so nothing is left behind.
		kill -TERM "$RUN_PID" 2>/dev/null || true
		wait "$RUN_PID" 2>/dev/null || true
	fi
	trap - "$1"
	kill -"$1" "$$"
	exit "$2" # only reached when the signal was ignored when the script started
}

# run_sh ARGS...: scripts/run.sh in the background, waited for (see run_child in
# lib.sh for why). Its SIGINT is reset: bash would have it ignore Ctrl-C.
run_sh() {
	local rc=0
	(
		trap - INT
		exec "$SCRIPTS/run.sh" "$@"
	) &
	RUN_PID=$!
	wait "$RUN_PID" || rc=$?
	RUN_PID=""
	return "$rc"
}

# Ctrl-C or TERM to the driving script reaches its child run.sh, which then
# cleans up before the driver exits.
forward_signals_to_run_sh() {
	trap 'forward_signal INT 130' INT
	trap 'forward_signal TERM 143' TERM
}
