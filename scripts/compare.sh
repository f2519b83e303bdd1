#!/usr/bin/env bash
# scripts/compare.sh: the bake-off. Sets up the peers once (peers/setup.sh),
# builds the reference, creates one throwaway PostgreSQL seeded with
# `bakeoff seed`, then, one implementation after the other on that database:
# starts it in its own process group, waits for /version and for its workers
# to settle, measures it with scripts/run.sh --target (warm-up and wrk, the
# same parameters for all; the nginx and pgbench ceilings once, with the first
# one), checks it with scripts/conformance.py, and stops it, making sure
# nothing is left behind. Writes
# results/compare-<date>-<commit>.{json,md,png,svg}. `--help` says how.
set -euo pipefail

PROG=compare.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PEERS_DIR="$ROOT/peers"
VENV_PYTHON="$PEERS_DIR/.venv/bin/python"
BINARY="$ROOT/target/release/bakeoff"
# In the order they run: the reference first, so that its run measures the
# ceilings; then the study's variants (peers/NAME/start.sh, peers/README.md).
IMPLS=(reference fastapi_asyncpg fastapi_orm fastapi_aiopg fastapi_aiopg_compat fastapi_aiopg_pypy
	django_gthread django_uvicorn go_pgx go_pq)
# A start.sh exits with this status (EX_UNAVAILABLE) when its row cannot run on
# this machine (e.g. no PyPy): the table says so, and the run goes on.
UNAVAILABLE_STATUS=69

usage() {
	cat <<EOF
Usage: scripts/compare.sh [OPTIONS]

Runs the benchmark's workloads (scripts/run.sh) against the Rust reference and
every variant of peers/, one after the other, on one throwaway PostgreSQL
seeded with \`bakeoff seed\`, with the same wrk parameters. The nginx and
pgbench ceilings are measured once, during the first implementation's run,
and every implementation is compared with them. After its measurement, each
implementation is checked with scripts/conformance.py. Each one is started in
its own process group, waited for (/version, then until its processes are
idle), and stopped with SIGTERM to the group; nothing may be left behind.
Progress goes to stderr, the markdown
table to stdout; results/compare-<date>-<commit>[-dirty].{json,md,png,svg}
keep everything.

Implementations: ${IMPLS[*]}
Workloads: ${WORKLOADS[*]}

Options:
  --impls A[,B...]    only these implementations (run in the order above)
  --only W[,W...]     only these workloads
  --duration S        seconds of wrk per workload, and of its ceiling (default 10)
  --warmup S          seconds of wrk before each workload, not measured (default 2)
  --quick             a short run for CI: 2 s per workload, 1 s warm-up
  --connections C     wrk connections = pgbench clients (default 64)
  --threads T         wrk threads = pgbench threads (default 2)
  --contacts N        contacts to seed (default 10000)
  --no-ceilings       skip the nginx and pgbench measurements
  --no-setup          do not run peers/setup.sh (peers/.venv and peers/go_*/contacts
                      must exist)
  --no-build          use target/release/bakeoff as it is
  --conformance-first check conformance before measuring, not after (its many
                      different requests then precede the measurement)
  -h, --help          this help

Every implementation runs with its own defaults (peers/README.md: processes,
threads, pool sizes); POOL_SIZE in the environment reaches all of them. A
peer that cannot run on this machine (its start.sh exits $UNAVAILABLE_STATUS, e.g.
fastapi_aiopg_pypy without pypy3) is listed as unavailable, and is no failure.

Examples:
  scripts/compare.sh                      # everything, 10 s per workload: about 20 minutes
  scripts/compare.sh --quick              # CI: about 7 minutes after setup
  scripts/compare.sh --impls reference,go_pgx --only types,fetch100 --duration 5
EOF
}

# --- options --------------------------------------------------------------------

DURATION=""
WARMUP=""
QUICK=false
ONLY=""
IMPLS_ARG=""
CEILINGS=true
SETUP=true
BUILD=true
CONFORMANCE_FIRST=false
COMMAND_LINE=$(quote_command scripts/compare.sh "$@")

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
		--no-setup) SETUP=false ;;
		--no-build) BUILD=false ;;
		--conformance-first) CONFORMANCE_FIRST=true ;;
		--duration | --warmup | --connections | --threads | --contacts | --only | --impls)
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
	--contacts) positive_int "$option" "$value" && CONTACTS=$value ;;
	--only) ONLY=$value ;;
	--impls) IMPLS_ARG=$value ;;
	esac
}

apply_defaults() {
	if $QUICK; then
		DURATION=${DURATION:-2}
		WARMUP=${WARMUP:-1}
	fi
	DURATION=${DURATION:-10}
	WARMUP=${WARMUP:-2}
	[ "$THREADS" -le "$CONNECTIONS" ] ||
		die "--threads ($THREADS) cannot exceed --connections ($CONNECTIONS)"
}

# in_list ITEM A,B,C: true when ITEM is one of the comma-separated names.
in_list() {
	[[ ",$2," == *",$1,"* ]]
}

SELECTED=()
SELECTED_IMPLS=()
select_what() {
	local name wanted=()
	IFS=, read -r -a wanted <<<"$ONLY"
	for name in "${wanted[@]}"; do
		is_workload "$name" || die "unknown workload '$name'; the workloads are: ${WORKLOADS[*]}"
	done
	for name in "${WORKLOADS[@]}"; do
		if [ -z "$ONLY" ] || in_list "$name" "$ONLY"; then SELECTED+=("$name"); fi
	done
	IFS=, read -r -a wanted <<<"$IMPLS_ARG"
	for name in "${wanted[@]}"; do
		in_list "$name" "$(
			IFS=,
			echo "${IMPLS[*]}"
		)" || die "unknown implementation '$name'; they are: ${IMPLS[*]}"
	done
	for name in "${IMPLS[@]}"; do
		if [ -z "$IMPLS_ARG" ] || in_list "$name" "$IMPLS_ARG"; then SELECTED_IMPLS+=("$name"); fi
	done
	[ ${#SELECTED[@]} -gt 0 ] || die "--only selects no workload"
	[ ${#SELECTED_IMPLS[@]} -gt 0 ] || die "--impls selects no implementation"
}

# --- setting up -----------------------------------------------------------------

check_tools() {
	local tools=(python3 wrk cargo initdb pg_ctl postgres psql pgbench nginx setsid)
	[ "$(id -u)" -eq 0 ] && tools+=(runuser)
	ensure_tools "${tools[@]}"
}

# peers/setup.sh (apt-get, the virtualenv with matplotlib, the Go build) is
# idempotent; without peers, the chart still needs the virtualenv's matplotlib.
setup_peers() {
	if ! $SETUP; then
		[ -x "$VENV_PYTHON" ] || die "--no-setup, but there is no $VENV_PYTHON: run peers/setup.sh"
		return 0
	fi
	log "setting up the peers (peers/setup.sh)"
	local start=$SECONDS
	"$PEERS_DIR/setup.sh" || die "peers/setup.sh failed (see above)"
	log "peers set up in $((SECONDS - start))s"
}

build_reference() {
	if $BUILD; then
		build_release
	else
		[ -x "$BINARY" ] || die "--no-build, but there is no $BINARY: run cargo build --release"
	fi
}

setup_database() {
	# Room for pgbench's clients, the largest peer's pools and psql.
	pg_start_throwaway $((CONNECTIONS + 200))
	seed_db "$BINARY"
}

# --- one implementation's processes -----------------------------------------------

IMPL_PID=""  # the implementation's first process, the leader of its process group
IMPL_NAME=""
IMPL_URL=""
IMPL_LOG=""

# impl_command NAME PORT: sets IMPL_CMD to the command that serves NAME on
# 127.0.0.1:PORT (over DATABASE_URL, in the foreground).
IMPL_CMD=()
impl_command() {
	local name=$1 port=$2
	if [ "$name" = reference ]; then
		IMPL_CMD=("$BINARY" serve --bind "127.0.0.1:$port")
	else
		IMPL_CMD=("$PEERS_DIR/$name/start.sh" "$port")
	fi
}

# The live (not zombie) processes of a process group, one pid a line.
group_pids() {
	local pgid=$1 stat rest fields
	for stat in /proc/[0-9]*/stat; do
		IFS= read -r rest 2>/dev/null <"$stat" || continue
		rest=${rest##*) } # past "pid (comm) ", whatever comm holds
		read -r -a fields <<<"$rest"
		# fields: state ppid pgrp ...
		[ "${fields[2]:-}" = "$pgid" ] && [ "${fields[0]}" != Z ] && echo "${stat//[!0-9]/}"
	done
	return 0
}

# Sum of the peak resident memory (VmHWM, KiB) of the group's processes.
group_peak_rss_kib() {
	local pid total=0 kib
	while IFS= read -r pid; do
		kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || kib=""
		total=$((total + ${kib:-0}))
	done < <(group_pids "$1")
	echo "$total"
}

# CPU time (clock ticks) used so far by the group's processes.
group_cpu_ticks() {
	local pid total=0 rest fields
	while IFS= read -r pid; do
		IFS= read -r rest 2>/dev/null <"/proc/$pid/stat" || continue
		rest=${rest##*) }
		read -r -a fields <<<"$rest"
		# fields from state (field 3 of stat): utime is field 14, stime 15.
		total=$((total + ${fields[11]:-0} + ${fields[12]:-0}))
	done < <(group_pids "$1")
	echo "$total"
}

# wait_group_settled PGID: a process answers /version before its siblings
# (uvicorn's and gunicorn's other workers) may have finished importing; wait
# until the group uses (almost) no CPU over half a second, at most 20 s.
wait_group_settled() {
	local pgid=$1 before after i
	before=$(group_cpu_ticks "$pgid")
	for ((i = 0; i < 40; i++)); do
		sleep 0.5
		after=$(group_cpu_ticks "$pgid")
		[ $((after - before)) -le 2 ] && return 0
		before=$after
	done
	warn "$IMPL_NAME still busy 20s after answering /version; measuring anyway"
}

# start_impl NAME: starts it in a new session (its own process group, away
# from the terminal's Ctrl-C: cleanup stops it), waits for /version, then for
# its processes to settle. Status 1 (and a warning) when it does not come up;
# status 2 when its start.sh says it cannot run here (IMPL_UNAVAILABLE: why).
start_impl() {
	local name=$1 port start=$SECONDS started=$EPOCHREALTIME i
	IMPL_UNAVAILABLE=""
	port=$(bench_py free-port)
	impl_command "$name" "$port"
	IMPL_NAME=$name
	IMPL_URL="http://127.0.0.1:$port"
	IMPL_LOG="$TMP_DIR/$name.log"
	DATABASE_URL=$DB_URL setsid "${IMPL_CMD[@]}" </dev/null >"$IMPL_LOG" 2>&1 &
	IMPL_PID=$!
	# setsid execs in place when its parent's child is no group leader (a
	# script's background job is not): then its pid is the group's id.
	for ((i = 0; i < 20; i++)); do
		[ "$(ps -o pgid= -p "$IMPL_PID" | tr -d ' ')" = "$IMPL_PID" ] && break
		sleep 0.1 # setsid has not run yet
	done
	[ "$i" -lt 20 ] || die "$name (pid $IMPL_PID) is not the leader of its own process group"
	for ((i = 0; i < 120; i++)); do
		if ! pid_running "$IMPL_PID"; then
			local status=0
			wait "$IMPL_PID" || status=$?
			if [ "$status" -eq "$UNAVAILABLE_STATUS" ]; then
				IMPL_UNAVAILABLE=$(sed -n 's/^unavailable: //p' "$IMPL_LOG" | head -n 1)
				warn "$name cannot run on this machine: ${IMPL_UNAVAILABLE:-its start.sh says so}"
				return 2
			fi
			tail -n 30 "$IMPL_LOG" >&2
			warn "$name exited before answering $IMPL_URL/version (its log is above)"
			return 1
		fi
		bench_py wait-http "$IMPL_URL/version" --timeout 0.5 2>/dev/null && break
	done
	if ! bench_py wait-http "$IMPL_URL/version" --timeout 1; then
		tail -n 30 "$IMPL_LOG" >&2
		warn "$name does not answer $IMPL_URL/version after $((SECONDS - start))s (its log is above)"
		return 1
	fi
	IMPL_READY_S=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	wait_group_settled "$IMPL_PID"
	log "$name answers on $IMPL_URL ($(group_pids "$IMPL_PID" | wc -l) processes, ready in ${IMPL_READY_S}s)"
}

# stop_impl: SIGTERM to the whole process group, SIGKILL to whatever is left
# after 15 s; then makes sure no process of the group and no listener on its
# port remains (status 1 and a warning otherwise). Sets IMPL_STOPPED to how it
# went.
IMPL_STOPPED=""
IMPL_READY_S=""
IMPL_UNAVAILABLE=""
stop_impl() {
	[ -n "$IMPL_PID" ] || return 0
	local pgid=$IMPL_PID i rc=0 left
	IMPL_PID=""
	IMPL_STOPPED=""
	kill -TERM -- "-$pgid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		[ -z "$(group_pids "$pgid")" ] && break
		sleep 0.1
	done
	left=$(group_pids "$pgid")
	if [ -n "$left" ]; then
		warn "$IMPL_NAME: $(echo "$left" | wc -l) process(es) still running 15s after SIGTERM; killing them"
		kill -KILL -- "-$pgid" 2>/dev/null || true
		sleep 0.5
		IMPL_STOPPED="killed"
	fi
	wait "$pgid" 2>/dev/null || rc=$?
	if [ -z "$IMPL_STOPPED" ]; then
		if [ "$rc" -gt 128 ]; then
			IMPL_STOPPED="SIGTERM, died of signal $((rc - 128))"
		else
			IMPL_STOPPED="SIGTERM, exit $rc"
		fi
	fi
	left=$(group_pids "$pgid")
	if [ -n "$left" ]; then
		warn "$IMPL_NAME left processes behind: $(echo "$left" | tr '\n' ' ')"
		return 1
	fi
	if bench_py wait-http "$IMPL_URL/version" --timeout 0.2 2>/dev/null; then
		warn "$IMPL_NAME stopped, yet something still answers $IMPL_URL"
		return 1
	fi
	log "$IMPL_NAME stopped ($IMPL_STOPPED); nothing left behind"
}

# --- measuring ------------------------------------------------------------------

INFO=()           # --info NAME:KEY=VALUE for compare.py merge
IMPL_RESULTS=()   # --impl NAME=PATH
CONF_RESULTS=()   # --conformance NAME=PATH
FAILED_IMPLS=()

# run_visible OUT_FILE COMMAND...: a background child (so that a signal's trap
# runs at once; cleanup stops CHILD_PID), stdout to OUT_FILE, stderr shown.
run_visible() {
	local out=$1 rc=0
	shift
	"$@" >"$out" &
	CHILD_PID=$!
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=""
	return "$rc"
}

conformance() {
	local name=$1 out="$TMP_DIR/conformance-$1.json" rc=0
	log "$name: conformance (scripts/conformance.py)"
	run_visible "$TMP_DIR/conformance-$name.txt" "$PYTHON" "$SCRIPTS/conformance.py" \
		"$IMPL_URL" --name "$name" --json "$out" || rc=$?
	# 1 is "some rule failed", which is expected of the peers.
	if [ "$rc" -gt 1 ] || [ ! -f "$out" ]; then
		cat "$TMP_DIR/conformance-$name.txt" >&2
		warn "$name: conformance.py did not complete (status $rc)"
		return 0
	fi
	CONF_RESULTS+=(--conformance "$name=$out")
	log "$name: conformance: $(tail -n 1 "$TMP_DIR/conformance-$name.txt")"
}

# measure NAME WITH_CEILINGS: run.sh --target against the running implementation.
measure() {
	local name=$1 with_ceilings=$2 out="$TMP_DIR/run-$1.json" args=()
	args=(--target "$IMPL_URL" --name "$name" --target-pid "$IMPL_PID"
		--duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS"
		--threads "$THREADS" --only "$(
			IFS=,
			echo "${SELECTED[*]}"
		)" --out "$out")
	$with_ceilings || args+=(--no-ceilings)
	if ! run_visible "$TMP_DIR/run-$name.md" env DATABASE_URL="$DB_URL" \
		BAKEOFF_GIT_COMMIT="$GIT_COMMIT" BAKEOFF_GIT_DIRTY="$GIT_DIRTY" \
		"$SCRIPTS/run.sh" "${args[@]}"; then
		warn "$name: scripts/run.sh failed (see above)"
		tail -n 30 "$IMPL_LOG" >&2
		return 1
	fi
	IMPL_RESULTS+=(--impl "$name=$out")
}

seconds_per_impl() { # SELECTED x (warm-up + duration), plus start and conformance
	echo $((${#SELECTED[@]} * (WARMUP + DURATION) + 15))
}

CEILINGS_DONE=false
run_impl() {
	local index=$1 name=$2 left with_ceilings=false
	left=$(((${#SELECTED_IMPLS[@]} - index + 1) * $(seconds_per_impl)))
	if $CEILINGS && ! $CEILINGS_DONE; then
		with_ceilings=true
		left=$((left + ${#SELECTED[@]} * DURATION))
	fi
	log "[$index/${#SELECTED_IMPLS[@]}] $name (about $(fmt_duration "$left") left in all)"
	local started=0
	start_impl "$name" || started=$?
	if [ "$started" -ne 0 ]; then
		stop_impl || die "$name: could not stop it cleanly (see above)"
		if [ "$started" -eq 2 ]; then
			INFO+=(--info "$name:failure=unavailable on this machine: $IMPL_UNAVAILABLE")
		else
			FAILED_IMPLS+=("$name")
			INFO+=(--info "$name:failure=did not start (see the log of compare.sh)")
		fi
		IMPL_RESULTS+=(--impl "$name=")
		return 0
	fi
	INFO+=(--info "$name:ready_s=$IMPL_READY_S" --info "$name:url=$IMPL_URL"
		--info "$name:processes=$(group_pids "$IMPL_PID" | wc -l)")
	if $CONFORMANCE_FIRST; then conformance "$name"; fi
	if measure "$name" "$with_ceilings"; then
		$with_ceilings && CEILINGS_DONE=true
	else
		FAILED_IMPLS+=("$name")
		INFO+=(--info "$name:failure=scripts/run.sh failed")
		IMPL_RESULTS+=(--impl "$name=")
	fi
	# After the measurement, by default, as run.sh measures a fresh server:
	# conformance's varied requests change what follows them (its `starts`
	# requests with other limits and prefixes make PostgreSQL switch the
	# reference's prepared statement to its generic plan; docs/FINDINGS.md).
	if ! $CONFORMANCE_FIRST && pid_running "$IMPL_PID"; then conformance "$name"; fi
	INFO+=(--info "$name:peak_rss_kib=$(group_peak_rss_kib "$IMPL_PID")")
	if [ "$name" = reference ]; then
		INFO+=(--info "$name:banner=$(head -n 1 "$IMPL_LOG")"
			--info "$name:binary_sha256=$(sha256sum "$BINARY" | cut -d' ' -f1)")
	fi
	stop_impl || die "$name: could not stop it cleanly (see above)"
	INFO+=(--info "$name:stopped=$IMPL_STOPPED")
	if [ -s "$IMPL_LOG" ] && [ "$name" != reference ]; then
		INFO+=(--info "$name:log_tail=$(tail -n 20 "$IMPL_LOG")")
	fi
}

# --- reporting ------------------------------------------------------------------

META=()
meta() { META+=(--set "$1=$2"); }
meta_json() { META+=(--set-json "$1=$2"); }

collect_meta() {
	meta date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	meta command "$COMMAND_LINE"
	meta commit "$GIT_COMMIT"
	meta_json dirty "$GIT_DIRTY"
	meta conditions.loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
	meta_json conditions.cpu_busy_percent_before "$(bench_py cpu-busy --seconds 1)"
	meta_json params.duration_s "$DURATION"
	meta_json params.warmup_s "$WARMUP"
	meta_json params.connections "$CONNECTIONS"
	meta_json params.threads "$THREADS"
	meta_json params.contacts "$CONTACTS"
	meta_json params.quick "$QUICK"
	meta_json params.ceilings "$CEILINGS"
	meta_json params.conformance_first "$CONFORMANCE_FIRST"
	META+=(--set-list "params.workloads=$(
		IFS=,
		echo "${SELECTED[*]}"
	)" --set-list "params.implementations=$(
		IFS=,
		echo "${SELECTED_IMPLS[*]}"
	)")
	meta params.pool_size_env "${POOL_SIZE:-}"
	meta versions.rustc "$(rustc --version 2>/dev/null || true)"
	meta versions.go "$(go version 2>/dev/null || true)"
	meta versions.python "$("$VENV_PYTHON" --version 2>&1 || true)"
	meta versions.pypy "$(if command -v pypy3 >/dev/null; then pypy3 --version 2>&1 | tr '\n' ' '; fi)"
	meta versions.server "$("$BINARY" --version 2>&1 | head -n 1 || true)"
}

report() {
	local stamp commit=nocommit dirty="" base charts=()
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	[ "$GIT_COMMIT" = none ] || commit=${GIT_COMMIT:0:10}
	if $GIT_DIRTY; then dirty=-dirty; fi
	base="$ROOT/results/compare-$stamp-$commit$dirty"
	if $QUICK; then base+=-quick; fi
	mkdir -p "$ROOT/results"
	local chart_args=()
	if "$VENV_PYTHON" -c 'import matplotlib' 2>/dev/null; then
		charts=("$base.png" "$base.svg")
		chart_args=(--chart "$base.png" --chart "$base.svg")
	else
		warn "no matplotlib in peers/.venv (peers/setup.sh installs it): no chart"
	fi
	"$PYTHON" "$SCRIPTS/compare.py" merge "${IMPL_RESULTS[@]}" "${CONF_RESULTS[@]}" \
		"${INFO[@]}" "${META[@]}" "${chart_args[@]}" --out-json "$base.json" --out-md "$base.md"
	if [ ${#charts[@]} -gt 0 ]; then
		"$VENV_PYTHON" "$SCRIPTS/compare.py" chart "$base.json" --out "$base.png" --out "$base.svg" ||
			warn "the chart failed (see above)"
	fi
	log "results: ${base#"$ROOT"/}.{json,md${charts[*]:+,png,svg}}"
}

# --- cleanup --------------------------------------------------------------------

# The EXIT trap: run.sh (which cleans up after itself), the implementation's
# process group, then lib.sh's cleanup (PostgreSQL, the temp dir).
compare_cleanup() {
	trap '' INT TERM
	set +e
	if [ -n "$CHILD_PID" ]; then
		stop_pid "$CHILD_PID" TERM 20
		CHILD_PID=""
	fi
	stop_impl
	cleanup
}

compare_on_signal() {
	trap '' INT TERM
	log "interrupted (SIG$1): stopping everything this run started"
	compare_cleanup
	trap - EXIT "$1"
	kill -"$1" "$$"
	exit "$2"
}

main() {
	parse_args "$@"
	apply_defaults
	select_what
	check_tools
	make_tmp_dir
	trap compare_cleanup EXIT
	trap 'compare_on_signal INT 130' INT
	trap 'compare_on_signal TERM 143' TERM
	git_state
	setup_peers
	build_reference
	setup_database
	collect_meta
	local i
	for i in "${!SELECTED_IMPLS[@]}"; do
		run_impl $((i + 1)) "${SELECTED_IMPLS[$i]}"
	done
	report
	[ ${#FAILED_IMPLS[@]} -eq 0 ] || die "not measured: ${FAILED_IMPLS[*]} (see above; the results say so too)"
}

main "$@"
