#!/usr/bin/env bash
# scripts/run.sh: the benchmark. Builds the release server, gives it a
# throwaway seeded PostgreSQL, runs wrk on each workload, measures each
# workload's ceiling (nginx or pgbench) under the same load, and prints a
# markdown table while writing the same results as JSON under results/.
# `--help` says how; docs/benchmarks.md says why.
set -euo pipefail

PROG=run.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<EOF
Usage: scripts/run.sh [OPTIONS]

Benchmarks the bakeoff server (or, with --target, any server that speaks
shared/API.md) with wrk, one workload after the other, and compares each
workload with its ceiling: nginx answering the same /version body, or pgbench
running the same SQL (generated from sql/) with the same client count, for the
same duration, against the same database. Prints a markdown table on stdout,
progress on stderr, and writes results/<date>-<commit>-<name>.json.

Workloads: ${WORKLOADS[*]}

Options:
  --duration S        seconds of wrk per workload, and of its ceiling (default 10)
  --warmup S          seconds of wrk before each workload, not measured (default 2)
  --connections C     wrk connections = pgbench clients (default 64)
  --threads T         wrk threads = pgbench threads (default 2)
  --contacts N        contacts to seed (default 10000; see DATABASE_URL below)
  --only W[,W...]     run only these workloads, in the order above
  --quick             a short run for CI: 2 s per workload and ceiling, 1 s warm-up
  --runs K            repeat the whole set K times; report median, min and max req/s
  --server-args "..." extra options for \`bakeoff serve\`, split on spaces
                      (e.g. "--runtime per-core --pool-size 8"); the server's
                      environment variables (RUNTIME, POOL_SIZE, ...) pass through too
  --target URL        benchmark the server at URL instead of starting ours
  --name NAME         name of that server in the results (required with --target)
  --target-pid PID    its process, to record its peak RSS (optional)
  --pin-server CPUS   run the server and nginx on these CPUs (taskset -c list)
  --pin-db CPUS       run the throwaway PostgreSQL on these CPUs
  --pin-wrk CPUS      run wrk and pgbench on these CPUs
  --no-ceilings       skip the nginx and pgbench measurements
  --transport T       tcp (default) or unix: how the server and pgbench reach the
                      throwaway PostgreSQL (always the same for both)
  --binary PATH       run this server binary (no build), e.g. another allocator's
  --allocators        (first option) build and compare mimalloc, jemalloc and
                      the system allocator: see scripts/allocators.sh
  --no-build          use target/release/bakeoff as it is (pin.sh builds once
                      for all its runs, so that they all measure one binary)
  --label TEXT        a label for this run, kept in the JSON and its file name
  --out FILE          write the JSON here instead of results/
  -h, --help          this help

Database:
  Without DATABASE_URL, a throwaway PostgreSQL cluster is created in a temp dir
  on a free port, seeded with \`bakeoff seed --contacts N\`, and removed at exit.
  With DATABASE_URL set, that database is used as it is: it is seeded only when
  --contacts is given (seeding DROPS and recreates the tables) or when the
  tables are missing, and otherwise its contact count is read from it.
  With --target and no DATABASE_URL there is no database to measure, so the
  pgbench ceilings are skipped; give the target's DATABASE_URL to get them, and
  --contacts N matching its data so that random ids exist.

Examples:
  scripts/run.sh --quick
  scripts/run.sh --duration 5 --only version,types,contact_random
  scripts/run.sh --runs 3 --server-args "--runtime per-core"
  DATABASE_URL=postgresql://postgres@127.0.0.1/bakeoff \\
      scripts/run.sh --target http://127.0.0.1:8001 --name fastapi-asyncpg
EOF
}

# --- options --------------------------------------------------------------------

DURATION=""
WARMUP=""
RUNS=1
QUICK=false
ONLY=""
CONTACTS_GIVEN=false
SERVER_ARGS_STR=""
TARGET=""
NAME=""
TARGET_PID=""
CEILINGS=true
BUILD=true
LABEL=""
OUT=""
COMMAND_LINE=$(quote_command scripts/run.sh "$@")

# need_value OPTION COUNT: an option's value must follow it.
need_value() {
	[ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

positive_int() {
	[[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		--quick) QUICK=true ;;
		--no-ceilings) CEILINGS=false ;;
		--no-build) BUILD=false ;;
		--allocators) die "--allocators must come first: scripts/run.sh --allocators [OPTIONS]" ;;
		--duration | --warmup | --connections | --threads | --contacts | --runs | --only | \
			--server-args | --target | --name | --target-pid | --pin-server | --pin-db | \
			--pin-wrk | --label | --out | --binary | --transport)
			need_value "$1" $#
			set_option "$1" "$2"
			shift
			;;
		--*=*) # --duration=5 is --duration 5
			set -- "${1%%=*}" "${1#*=}" "${@:2}"
			continue
			;;
		*) die "unknown option '$1' (see --help)" ;;
		esac
		shift
	done
}

set_option() {
	local option=$1 value=$2
	case $option in
	--duration) positive_int "$option" "$value" && DURATION=$value ;;
	--warmup)
		[[ $value =~ ^[0-9]+$ ]] || die "--warmup must be a whole number of seconds, not '$value'"
		WARMUP=$value
		;;
	--connections) positive_int "$option" "$value" && CONNECTIONS=$value ;;
	--threads) positive_int "$option" "$value" && THREADS=$value ;;
	--contacts) positive_int "$option" "$value" && CONTACTS=$value && CONTACTS_GIVEN=true ;;
	--runs) positive_int "$option" "$value" && RUNS=$value ;;
	--only) ONLY=$value ;;
	--transport)
		case $value in
		tcp | unix) TRANSPORT=$value ;;
		*) die "--transport is tcp or unix, not '$value'" ;;
		esac
		;;
	--binary)
		[ -x "$value" ] || die "--binary: no executable at $value"
		BINARY=$(cd "$(dirname "$value")" && pwd)/$(basename "$value")
		BUILD=false
		;;
	--server-args) SERVER_ARGS_STR=$value ;;
	--target) TARGET=${value%/} ;;
	--name) NAME=$value ;;
	--target-pid) positive_int "$option" "$value" && TARGET_PID=$value ;;
	--pin-server) PIN_SERVER=$value ;;
	--pin-db) PIN_DB=$value ;;
	--pin-wrk) PIN_WRK=$value ;;
	--label) LABEL=$value ;;
	--out) OUT=$value ;;
	esac
}

# Fills in the defaults that --quick changes, unless given explicitly.
apply_defaults() {
	if $QUICK; then
		DURATION=${DURATION:-2}
		WARMUP=${WARMUP:-1}
	fi
	DURATION=${DURATION:-10}
	WARMUP=${WARMUP:-2}
	[ "$THREADS" -le "$CONNECTIONS" ] ||
		die "--threads ($THREADS) cannot exceed --connections ($CONNECTIONS): wrk and pgbench need a connection per thread"
	if [ -n "$TARGET" ]; then
		[[ $TARGET =~ ^http://[^/]+(/.*)?$ ]] || die "--target must be an http:// URL, not '$TARGET'"
		[ -n "$NAME" ] || die "--target needs --name NAME, to tell its results apart"
	else
		[ -z "$NAME" ] || die "--name goes with --target (our server is always 'bakeoff')"
		[ -z "$TARGET_PID" ] || die "--target-pid goes with --target"
		NAME=bakeoff
	fi
	[ -z "$LABEL" ] || [[ $LABEL =~ ^[A-Za-z0-9._-]+$ ]] ||
		die "--label may hold only letters, digits, '.', '_' and '-'"
	read -r -a SERVER_ARGS <<<"$SERVER_ARGS_STR"
	if [ -n "$TARGET" ] && [ ${#SERVER_ARGS[@]} -gt 0 ]; then
		die "--server-args configures our server; with --target, configure the target yourself"
	fi
}

SELECTED=()
select_workloads() {
	local w wanted=()
	if [ -z "$ONLY" ]; then
		SELECTED=("${WORKLOADS[@]}")
		return
	fi
	IFS=, read -r -a wanted <<<"$ONLY"
	for w in "${wanted[@]}"; do
		is_workload "$w" || die "unknown workload '$w'; the workloads are: ${WORKLOADS[*]}"
	done
	# In the canonical order, whatever order --only gave them in.
	SELECTED=()
	for w in "${WORKLOADS[@]}"; do
		[[ ",$ONLY," == *",$w,"* ]] && SELECTED+=("$w")
	done
	return 0
}

# --- what this run needs --------------------------------------------------------

# DB_MODE: throwaway (ours, created here), external (DATABASE_URL) or none
# (a --target without DATABASE_URL: no database ceilings).
DB_MODE=""
SEED=false
BINARY="$ROOT/target/release/bakeoff"

uses_ceiling() { # KIND: true when a selected workload's ceiling is of this kind
	local w
	$CEILINGS || return 1
	for w in "${SELECTED[@]}"; do
		[ "${WORKLOAD_CEILING[$w]}" = "$1" ] && return 0
	done
	return 1
}

plan() {
	if [ -n "${DATABASE_URL:-}" ]; then
		DB_MODE=external
		DB_URL=$DATABASE_URL
		[ -z "$PIN_DB" ] || warn "--pin-db does nothing with DATABASE_URL: that PostgreSQL is not ours to start"
	elif [ -n "$TARGET" ]; then
		DB_MODE=none
		uses_ceiling pgbench &&
			warn "--target without DATABASE_URL: no database to run pgbench on, so no database ceilings"
	else
		DB_MODE=throwaway
		SEED=true
	fi
	if [ -n "$TARGET" ] && [ -n "$PIN_SERVER" ]; then
		warn "--pin-server pins only nginx with --target: pin the target yourself"
	fi
}

check_tools() {
	local tools=(python3 wrk)
	[ -z "$TARGET" ] && tools+=(cargo)
	case $DB_MODE in
	throwaway)
		tools+=(initdb pg_ctl postgres psql)
		[ "$(id -u)" -eq 0 ] && tools+=(runuser)
		;;
	external) tools+=(psql) ;;
	esac
	if [ "$DB_MODE" != none ] && uses_ceiling pgbench; then tools+=(pgbench); fi
	if uses_ceiling nginx; then tools+=(nginx); fi
	if [ -n "$PIN_SERVER$PIN_DB$PIN_WRK" ]; then tools+=(taskset); fi
	ensure_tools "${tools[@]}"
}

# --- setting up -----------------------------------------------------------------

build_if_needed() {
	[ -z "$TARGET" ] || return 0
	if $BUILD; then
		build_release
	else
		[ -x "$BINARY" ] || die "--no-build, but there is no $BINARY: run cargo build --release"
	fi
}

setup_database() {
	case $DB_MODE in
	throwaway)
		# Room for pgbench's clients, the server's pool(s) and psql.
		pg_start_throwaway $((CONNECTIONS + 200))
		;;
	external)
		log "using the database at DATABASE_URL"
		if $CONTACTS_GIVEN; then
			SEED=true
		elif ! db_has_tables; then
			log "its tables are missing: seeding it"
			SEED=true
		fi
		;;
	none) return 0 ;;
	esac
	if $SEED; then
		# Seeding a --target's database needs our binary, built or not.
		[ -x "$BINARY" ] || build_release
		seed_db "$BINARY"
	else
		count_contacts
	fi
}

# An existing database: random ids must be 1..count, as the seeder makes them.
count_contacts() {
	local row count max
	row=$(psql_value "SELECT count(*) || ' ' || coalesce(max(contact_id), 0) FROM contacts") ||
		die "cannot count the contacts at DATABASE_URL"
	read -r count max <<<"$row"
	[ "$count" -gt 0 ] || die "the database at DATABASE_URL has no contacts (give --contacts N to seed it)"
	[ "$count" = "$max" ] ||
		warn "contact ids are not 1..$count (max $max): some random ids will answer 404"
	CONTACTS=$count
	log "the database holds $CONTACTS contacts"
}

start_server() {
	if [ -n "$TARGET" ]; then
		SERVER_URL=$TARGET
		bench_py wait-http "$SERVER_URL/version" --timeout 10 ||
			die "nothing answers $SERVER_URL/version with 200"
		log "target $NAME at $SERVER_URL"
	else
		server_start "$BINARY" "${SERVER_ARGS[@]}"
	fi
	if [ "$DB_MODE" != none ]; then
		# The server starts even while the database is down (503 until it is
		# up): wait for a database endpoint before measuring.
		bench_py wait-http "$SERVER_URL/types" --timeout 30 ||
			die "$SERVER_URL/types does not answer 200: is its database up?"
	fi
}

start_ceilings() {
	local body
	uses_ceiling nginx || return 0
	# The same bytes the server answers, so that nginx sends as much per request.
	body=$(bench_py http-get "$SERVER_URL/version") || die "GET $SERVER_URL/version failed"
	nginx_start "$body"
}

# --- measuring ------------------------------------------------------------------

MEASUREMENTS=""
PLANNED_TOTAL=0
PLANNED_DONE=0

has_ceiling() { # WORKLOAD: true when its ceiling will be measured in this run
	local kind=${WORKLOAD_CEILING[$1]}
	$CEILINGS || return 1
	case $kind in
	nginx) return 0 ;;
	pgbench) [ "$DB_MODE" != none ] ;;
	*) return 1 ;;
	esac
}

plan_seconds() {
	local w
	PLANNED_TOTAL=0
	for w in "${SELECTED[@]}"; do
		PLANNED_TOTAL=$((PLANNED_TOTAL + WARMUP + DURATION))
		if has_ceiling "$w"; then PLANNED_TOTAL=$((PLANNED_TOTAL + DURATION)); fi
	done
	PLANNED_TOTAL=$((PLANNED_TOTAL * RUNS))
}

# progress RUN INDEX WORKLOAD WHAT SECONDS: one line on stderr per phase.
progress() {
	local run=$1 index=$2 workload=$3 what=$4 seconds=$5 prefix=""
	[ "$RUNS" -gt 1 ] && prefix="run $run/$RUNS, "
	log "[${prefix}$index/${#SELECTED[@]}] $workload: $what, ${seconds}s (about $(fmt_duration $((PLANNED_TOTAL - PLANNED_DONE))) left)"
	PLANNED_DONE=$((PLANNED_DONE + seconds))
}

# A server that died under load makes every later number meaningless: stop.
check_server_alive() {
	[ -z "$TARGET" ] || return 0
	pid_running "$SERVER_PID" && return 0
	local status=0
	wait "$SERVER_PID" || status=$?
	SERVER_PID=""
	server_log_tail | tail -n 20 >&2
	die "the server exited (status $status) during $1; its last lines are above"
}

measure_workload() {
	local run=$1 index=$2 w=$3 out="$TMP_DIR/out.txt" script
	if [ "$WARMUP" -gt 0 ]; then
		progress "$run" "$index" "$w" "warm-up" "$WARMUP"
		wrk_run "$SERVER_URL" "$w" "$WARMUP" "$out"
	fi

	progress "$run" "$index" "$w" "$NAME" "$DURATION"
	wrk_run "$SERVER_URL" "$w" "$DURATION" "$out"
	bench_py parse-wrk "$out" --workload "$w" --role server --run "$run" --kind "$NAME" \
		--url "$SERVER_URL${WORKLOAD_PATH[$w]}" >>"$MEASUREMENTS"
	check_server_alive "$w"

	has_ceiling "$w" || return 0
	case ${WORKLOAD_CEILING[$w]} in
	nginx)
		progress "$run" "$index" "$w" "ceiling (nginx)" "$DURATION"
		wrk_run "$NGINX_URL" "$w" "$DURATION" "$out"
		bench_py parse-wrk "$out" --workload "$w" --role ceiling --run "$run" --kind nginx \
			--url "$NGINX_URL${WORKLOAD_PATH[$w]}" >>"$MEASUREMENTS"
		;;
	pgbench)
		progress "$run" "$index" "$w" "ceiling (pgbench)" "$DURATION"
		script="$TMP_DIR/pgbench-$w.sql"
		pgbench_script "$w" "$script"
		local vars=() var
		while IFS= read -r var; do vars+=(--var "$var"); done < <(pgbench_vars "$w")
		if pgbench_run "$w" "$DURATION" "$script" "$out"; then
			bench_py parse-pgbench "$out" --workload "$w" --run "$run" --script "$script" \
				--pgoptions "${WORKLOAD_PGOPTIONS[$w]:-}" "${vars[@]}" >>"$MEASUREMENTS"
		fi
		;;
	esac
}

# Other work on the machine skews every number: measure how busy the CPUs are
# just before starting (everything of ours is idle then), say so, and keep it.
check_idle() {
	local busy
	busy=$(bench_py cpu-busy --seconds 1) || return 0
	meta_json conditions.cpu_busy_percent_before "$busy"
	meta conditions.loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
	if awk -v b="$busy" 'BEGIN { exit !(b > 10) }'; then
		warn "the CPUs were ${busy}% busy before the run, with nothing of ours running: expect noisy numbers"
	fi
}

measure_all() {
	local run i
	MEASUREMENTS="$TMP_DIR/measurements.jsonl"
	: >"$MEASUREMENTS"
	plan_seconds
	log "measuring ${#SELECTED[@]} workload(s) x $RUNS run(s): about $(fmt_duration "$PLANNED_TOTAL")"
	for ((run = 1; run <= RUNS; run++)); do
		for i in "${!SELECTED[@]}"; do
			measure_workload "$run" $((i + 1)) "${SELECTED[$i]}"
		done
	done
}

# --- reporting ------------------------------------------------------------------

META=()
meta() { META+=(--set "$1=$2"); }        # a string
meta_json() { META+=(--set-json "$1=$2"); } # a number, true/false, or JSON from a tool

# First line of a command's output (stdout and stderr), or empty.
first_line() {
	local out
	out=$("$@" 2>&1) || true
	printf '%s' "${out%%$'\n'*}"
}

collect_meta() {
	local date w
	date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	meta date "$date"
	meta name "$NAME"
	meta label "$LABEL"
	meta command "$COMMAND_LINE"
	meta commit "$GIT_COMMIT"
	meta_json dirty "$GIT_DIRTY"

	meta_json params.duration_s "$DURATION"
	meta_json params.warmup_s "$WARMUP"
	meta_json params.connections "$CONNECTIONS"
	meta_json params.threads "$THREADS"
	meta_json params.contacts "$CONTACTS"
	meta_json params.runs "$RUNS"
	meta_json params.quick "$QUICK"
	meta_json params.ceilings "$CEILINGS"
	meta_json params.pipeline_depth "$PIPELINE_DEPTH"
	meta params.transport "$TRANSPORT"
	meta_json params.wrk_timeout_s "$WRK_TIMEOUT"
	META+=(--set-list "params.workloads=$(
		IFS=,
		echo "${SELECTED[*]}"
	)")
	meta params.target "$TARGET"
	meta params.database "$DB_MODE"
	meta_json params.seeded "$SEED"
	meta params.server_args "$SERVER_ARGS_STR"
	meta params.pin.server "$PIN_SERVER"
	meta params.pin.db "$PIN_DB"
	meta params.pin.wrk "$PIN_WRK"
	# The server's own knobs, when they come from the environment.
	local var
	for var in RUNTIME POOL_SIZE POOL_MODE WORKER_THREADS POOL_TIMEOUT_MS STATEMENT_TIMEOUT_MS \
		HEADER_READ_TIMEOUT_S DRAIN_TIMEOUT_S; do
		[ -n "${!var:-}" ] && meta "params.server_env.$var" "${!var}"
	done

	for w in "${SELECTED[@]}"; do
		meta "workload_info.$w.path" "${WORKLOAD_PATH[$w]}"
		if has_ceiling "$w"; then
			meta "workload_info.$w.ceiling" "${WORKLOAD_CEILING[$w]}"
		else
			meta "workload_info.$w.ceiling" none
			if [ "${WORKLOAD_CEILING[$w]}" != none ]; then
				if $CEILINGS; then
					meta "workload_info.$w.ceiling_skipped" "${WORKLOAD_CEILING[$w]}: no database (--target without DATABASE_URL)"
				else
					meta "workload_info.$w.ceiling_skipped" "${WORKLOAD_CEILING[$w]}: --no-ceilings"
				fi
			fi
		fi
	done

	meta versions.wrk "$(first_line "$(tool_path wrk)" -v)"
	uses_ceiling nginx && meta versions.nginx "$(first_line "$(tool_path nginx)" -v)"
	if [ "$DB_MODE" != none ]; then
		meta versions.postgresql "$(psql_value 'SELECT version()')"
		uses_ceiling pgbench && meta versions.pgbench "$(first_line "$(tool_path pgbench)" --version)"
		meta_json postgresql.settings "$(psql_value "SELECT json_object_agg(name, setting ORDER BY name)
			FROM pg_settings WHERE name IN ('max_connections', 'shared_buffers', 'work_mem',
			'fsync', 'synchronous_commit', 'jit', 'effective_cache_size', 'random_page_cost',
			'max_parallel_workers_per_gather', 'lc_collate', 'server_encoding')")"
	fi
	if [ -z "$TARGET" ]; then
		meta versions.rustc "$(first_line rustc --version)"
		meta versions.server "$(first_line "$BINARY" --version)"
		# Which build was measured, exactly: two runs of one binary share it.
		meta server.binary_sha256 "$(sha256sum "$BINARY" | cut -d' ' -f1)"
		meta server.banner "$SERVER_BANNER"
	fi
	return 0
}

# Peak RSS and how the server stopped: taken at the very end of the run.
finish_server() {
	local rss="" status=0 extra
	if [ -n "$TARGET" ]; then
		[ -n "$TARGET_PID" ] && rss=$(server_peak_rss_kib "$TARGET_PID")
		[ -n "$rss" ] && meta_json server.peak_rss_kib "$rss"
		return 0
	fi
	rss=$(server_peak_rss_kib)
	[ -n "$rss" ] && meta_json server.peak_rss_kib "$rss"
	# What it said while under load (past its first line) may explain errors.
	extra=$(server_log_tail)
	if [ -n "$extra" ]; then
		warn "the server wrote to stderr during the run (last lines):"
		printf '%s\n' "$extra" | tail -n 10 >&2
		meta server.stderr_during_run "$(printf '%s\n' "$extra" | tail -n 50)"
	fi
	server_stop || status=$?
	meta_json server.exit_status "$status"
	[ "$status" -eq 0 ] ||
		warn "the server exited with status $status on SIGTERM (docs/CLI.md: 0, a graceful stop)"
}

report() {
	local path=$OUT
	[ -n "$path" ] || path=$(result_file "$NAME" "$LABEL")
	bench_py report --measurements "$MEASUREMENTS" --out "$path" "${META[@]}"
}

main() {
	if [ "${1:-}" = --allocators ]; then
		exec "$SCRIPTS/allocators.sh" "$@"
	fi
	parse_args "$@"
	apply_defaults
	select_workloads
	set_pinning
	plan
	check_tools
	make_tmp_dir
	install_cleanup_trap
	git_state # before building: the commit that is built
	build_if_needed
	setup_database
	start_server
	start_ceilings
	collect_meta
	check_idle
	measure_all
	finish_server
	report
}

main "$@"
