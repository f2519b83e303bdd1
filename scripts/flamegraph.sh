#!/usr/bin/env bash
# scripts/flamegraph.sh: where the server spends its CPU under one workload.
# Builds the release binary with debug symbols and frame pointers, starts it
# on a throwaway seeded PostgreSQL (the same functions as run.sh), loads it
# with wrk while `perf record` samples it, and renders the samples with
# inferno to flamegraphs/WORKLOAD.svg.
set -euo pipefail

PROG=flamegraph.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	cat <<EOF
Usage: scripts/flamegraph.sh [OPTIONS] WORKLOAD

Profiles the server under one workload and writes flamegraphs/WORKLOAD.svg.
Workloads: ${WORKLOADS[*]}

Options:
  --duration S        seconds of sampling under wrk load (default 10)
  --warmup S          seconds of wrk before sampling starts (default 2)
  --connections C     wrk connections (default 64)
  --threads T         wrk threads (default 2)
  --contacts N        contacts to seed (default 10000)
  --frequency HZ      samples per second (default 999)
  --call-graph MODE   fp: perf -g, frame pointers (the default; the build
                      keeps them, but libc's and std's code has none, so a
                      stack that is in a syscall loses its Rust callers:
                      about half the samples under a database workload)
                      dwarf: complete stacks, inlined frames too; perf.data
                      is larger and rendering takes ~30 s more
  --server-args "..." extra options for \`bakeoff serve\`, split on spaces
  --out FILE          write the SVG here instead
  -h, --help          this help

The build goes to target/flamegraph (CARGO_PROFILE_RELEASE_DEBUG=true,
-C force-frame-pointers=yes), so it does not throw away target/release.
Sampling uses the cpu-clock software event: hardware counters are often
missing in virtual machines. Needs perf, wrk, PostgreSQL, and inferno
(installed with \`cargo install inferno\` when missing).
EOF
}

DURATION=10
WARMUP=2
FREQUENCY=999
CALL_GRAPH=fp
SERVER_ARGS_STR=""
WORKLOAD=""
OUT=""

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		--duration | --warmup | --connections | --threads | --contacts | --frequency | \
			--call-graph | --server-args | --out)
			[ $# -ge 2 ] || die "$1 needs a value (see --help)"
			set_option "$1" "$2"
			shift
			;;
		-*) die "unknown option '$1' (see --help)" ;;
		*)
			[ -z "$WORKLOAD" ] || die "one workload at a time (got '$WORKLOAD' and '$1')"
			WORKLOAD=$1
			;;
		esac
		shift
	done
	[ -n "$WORKLOAD" ] || die "which workload? (see --help)"
	is_workload "$WORKLOAD" || die "unknown workload '$WORKLOAD'; the workloads are: ${WORKLOADS[*]}"
	[ "$THREADS" -le "$CONNECTIONS" ] || die "--threads cannot exceed --connections"
	OUT=${OUT:-$ROOT/flamegraphs/$WORKLOAD.svg}
}

set_option() {
	local option=$1 value=$2
	case $option in
	--duration | --connections | --threads | --contacts | --frequency)
		[[ $value =~ ^[1-9][0-9]*$ ]] || die "$option must be a positive integer, not '$value'"
		;;
	--warmup)
		[[ $value =~ ^[0-9]+$ ]] || die "--warmup must be a whole number of seconds, not '$value'"
		;;
	esac
	case $option in
	--duration) DURATION=$value ;;
	--warmup) WARMUP=$value ;;
	--connections) CONNECTIONS=$value ;;
	--threads) THREADS=$value ;;
	--contacts) CONTACTS=$value ;;
	--frequency) FREQUENCY=$value ;;
	--call-graph)
		case $value in
		fp | dwarf) CALL_GRAPH=$value ;;
		*) die "--call-graph is fp or dwarf, not '$value'" ;;
		esac
		;;
	--server-args) SERVER_ARGS_STR=$value ;;
	--out) OUT=$value ;;
	esac
}

# inferno's two tools, from cargo's bin dir when it is not on PATH.
INFERNO_DIR=""
ensure_inferno() {
	local cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
	if command -v inferno-flamegraph >/dev/null && command -v inferno-collapse-perf >/dev/null; then
		INFERNO_DIR=$(dirname "$(command -v inferno-flamegraph)")
		return 0
	fi
	if [ ! -x "$cargo_bin/inferno-flamegraph" ] || [ ! -x "$cargo_bin/inferno-collapse-perf" ]; then
		log "inferno is missing: running cargo install inferno (a few minutes, once)"
		cargo install inferno >&2 || die "cargo install inferno failed; run it yourself and retry"
	fi
	INFERNO_DIR=$cargo_bin
}

build_profiling_binary() {
	# A target dir of its own: other flags than target/release, so building
	# here does not make the next run.sh rebuild everything, and back.
	export CARGO_TARGET_DIR="$ROOT/target/flamegraph"
	export CARGO_PROFILE_RELEASE_DEBUG=true
	# Without frame pointers, perf's default unwinder cuts most stacks short.
	export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C force-frame-pointers=yes"
	build_release
	unset CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_DEBUG RUSTFLAGS
	BINARY="$ROOT/target/flamegraph/release/bakeoff"
}

# record_profile PERF_DATA: perf samples the server for DURATION seconds while
# wrk loads it for the same time. Both are children that cleanup can stop
# (perf as AUX_PID, wrk as CHILD_PID).
record_profile() {
	local data=$1 wrk_out="$TMP_DIR/wrk.txt" rc=0 graph=(-g)
	[ "$CALL_GRAPH" = dwarf ] && graph=(--call-graph dwarf)
	"$(tool_path perf)" record -e cpu-clock -F "$FREQUENCY" "${graph[@]}" -p "$SERVER_PID" \
		-o "$data" -- sleep "$DURATION" >"$TMP_DIR/perf-record.log" 2>&1 &
	AUX_PID=$!
	# perf needs a moment to attach; the load starts once it has.
	sleep 0.5
	pid_running "$AUX_PID" || {
		cat "$TMP_DIR/perf-record.log" >&2
		die "perf record did not start (its output is above)"
	}
	log "sampling the server at ${FREQUENCY} Hz for ${DURATION}s under $WORKLOAD"
	wrk_run "$SERVER_URL" "$WORKLOAD" "$DURATION" "$wrk_out"
	wait "$AUX_PID" || rc=$?
	AUX_PID=""
	if [ "$rc" -ne 0 ]; then
		cat "$TMP_DIR/perf-record.log" >&2
		die "perf record failed (its output is above)"
	fi
	bench_py parse-wrk "$wrk_out" --workload "$WORKLOAD" --role server --run 1 --kind bakeoff \
		--url "$SERVER_URL${WORKLOAD_PATH[$WORKLOAD]}" >"$TMP_DIR/wrk.json"
}

render() {
	local data=$1 folded="$TMP_DIR/folded.txt" title rps dirty=""
	rps=$("$PYTHON" -c 'import json, sys; print(round(json.load(open(sys.argv[1]))["rps"]))' "$TMP_DIR/wrk.json")
	if $GIT_DIRTY; then dirty=" (dirty)"; fi
	title="bakeoff $WORKLOAD: commit ${GIT_COMMIT:0:10}$dirty, $CONNECTIONS connections, $rps req/s"
	"$(tool_path perf)" script -i "$data" 2>"$TMP_DIR/perf-script.log" |
		"$INFERNO_DIR/inferno-collapse-perf" >"$folded" ||
		die "perf script | inferno-collapse-perf failed: $(tail -n 5 "$TMP_DIR/perf-script.log")"
	[ -s "$folded" ] || die "no samples: did the server get any load?"
	mkdir -p "$(dirname "$OUT")"
	"$INFERNO_DIR/inferno-flamegraph" --title "$title" <"$folded" >"$OUT" ||
		die "inferno-flamegraph failed"
	# The frames that run themselves (leaves), heaviest first: where the time
	# goes, without reading the SVG. Kept beside it as WORKLOAD.leaves.txt.
	awk '{ n = $NF; sub(/ [0-9]+$/, ""); k = split($0, f, ";"); self[f[k]] += n; total += n }
		END { for (name in self) printf "%6.2f%%  %s\n", 100 * self[name] / total, name }' "$folded" |
		sort -rn | awk 'NR <= 40' >"${OUT%.svg}.leaves.txt" # not head: it would SIGPIPE sort
	log "$(wc -l <"$folded") distinct stacks, $rps req/s during sampling"
	log "wrote $OUT and ${OUT%.svg}.leaves.txt; the heaviest leaves:"
	awk 'NR <= 8' "${OUT%.svg}.leaves.txt" >&2
}

main() {
	parse_args "$@"
	ensure_tools cargo python3 wrk perf initdb pg_ctl postgres psql
	[ "$(id -u)" -ne 0 ] || ensure_tools runuser
	ensure_inferno
	make_tmp_dir
	install_cleanup_trap
	git_state
	build_profiling_binary
	pg_start_throwaway $((CONNECTIONS + 200))
	seed_db "$BINARY"
	local server_args=()
	read -r -a server_args <<<"$SERVER_ARGS_STR"
	server_start "$BINARY" "${server_args[@]}"
	bench_py wait-http "$SERVER_URL/types" --timeout 30 || die "the server's database is not up"
	if [ "$WARMUP" -gt 0 ]; then
		log "warming up for ${WARMUP}s"
		wrk_run "$SERVER_URL" "$WORKLOAD" "$WARMUP" "$TMP_DIR/warmup.txt"
	fi
	record_profile "$TMP_DIR/perf.data"
	render "$TMP_DIR/perf.data"
}

main "$@"
