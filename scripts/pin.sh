#!/usr/bin/env bash
# scripts/pin.sh: the benchmark with the server, PostgreSQL and wrk pinned to
# CPU sets, one layout or a matrix of them. All the work is run.sh's
# (--pin-server, --pin-db, --pin-wrk); this script only chooses the layouts
# and puts their requests/s side by side.
set -euo pipefail

PROG=pin.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Each layout changes one thing against a neighbour: the runtime shape, or
# where the server runs relative to PostgreSQL and wrk.
#   name           runtime   server  db  wrk
LAYOUTS_TABLE="
multi          multi     -       -   -
per-core       per-core  -       -   -
multi-s0       multi     0       1   1
per-core-s0    per-core  0       1   1
multi-sdb0     multi     0       0   1
per-core-sdb0  per-core  0       0   1
"
DEFAULT_LAYOUTS=multi,per-core,multi-s0,per-core-s0

usage() {
	cat <<EOF
Usage: scripts/pin.sh [--server-cpus L] [--db-cpus L] [--wrk-cpus L] [RUN.SH OPTIONS]
       scripts/pin.sh --matrix [--layouts A,B,...] [RUN.SH OPTIONS]

The first form runs scripts/run.sh once with the server (and nginx, its
/version ceiling), the throwaway PostgreSQL, and wrk (and pgbench) pinned by
taskset to the given CPU lists (e.g. 0, 1, 0-1); an omitted one is not pinned.

--matrix runs scripts/run.sh once per layout, one after the other, each with a
fresh database and server, and prints a table of requests/s: workload rows,
layout columns. Each run's own table goes to stderr, its JSON to results/
(labelled pin-<layout>). Layouts (default: $DEFAULT_LAYOUTS; "all" for every one):

  layout         runtime   server  db  wrk   (CPUs; - = not pinned)
$(printf '%s' "$LAYOUTS_TABLE" | sed '/^$/d; s/^/  /')

A server pinned to one CPU sees one core, so it starts one worker thread and
sizes its pool for one core: that is part of what a layout measures.

Other options go to run.sh as they are (--quick, --duration, --only, --runs,
--server-args, ...; see scripts/run.sh --help). With --matrix, the release
binary is built once, before the first layout, and every layout runs that one
binary (run.sh --no-build). Each layout sets --runtime (after any --server-args
of yours) and the --pin-* options, so those and --target, --out and --label
cannot be given.

Examples:
  scripts/pin.sh --server-cpus 0 --db-cpus 1 --wrk-cpus 1 --quick
  scripts/pin.sh --matrix --quick
  scripts/pin.sh --matrix --layouts all --duration 5 --only types,contact_random
EOF
}

MATRIX=false
LAYOUTS=""
PIN_ARGS=()
RUN_ARGS=()
USER_SERVER_ARGS=""

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		-h | --help)
			usage
			exit 0
			;;
		--matrix) MATRIX=true ;;
		--layouts)
			[ $# -ge 2 ] || die "--layouts needs a value"
			LAYOUTS=$2
			shift
			;;
		--server-cpus | --db-cpus | --wrk-cpus)
			[ $# -ge 2 ] || die "$1 needs a CPU list"
			local who=${1#--}
			PIN_ARGS+=("--pin-${who%-cpus}" "$2")
			shift
			;;
		--server-args)
			[ $# -ge 2 ] || die "--server-args needs a value"
			USER_SERVER_ARGS=$2
			shift
			;;
		--pin-server | --pin-db | --pin-wrk | --target | --out | --label)
			$MATRIX && die "$1 cannot be given with --matrix: the layouts set it"
			RUN_ARGS+=("$1" "${2:-}")
			shift
			;;
		*) RUN_ARGS+=("$1") ;;
		esac
		shift
	done
	local i
	if $MATRIX; then
		[ ${#PIN_ARGS[@]} -eq 0 ] || die "--matrix sets the CPUs itself; drop --server-cpus/--db-cpus/--wrk-cpus"
		for i in "${RUN_ARGS[@]}"; do
			case $i in
			--pin-* | --target | --out | --label) die "$i cannot be given with --matrix: the layouts set it" ;;
			esac
		done
	else
		[ -z "$LAYOUTS" ] || die "--layouts goes with --matrix"
	fi
}

# layout_field NAME COLUMN: a field of LAYOUTS_TABLE (1 = name ... 5 = wrk).
layout_field() {
	printf '%s\n' "$LAYOUTS_TABLE" | awk -v n="$1" -v c="$2" '$1 == n { print $c }'
}

run_single() {
	local args=("${PIN_ARGS[@]}" "${RUN_ARGS[@]}")
	[ -n "$USER_SERVER_ARGS" ] && args+=(--server-args "$USER_SERVER_ARGS")
	run_sh "${args[@]}"
}

run_matrix() {
	local layouts=() layout runtime server db wrk files=() labels=() failed=() out args
	[ -n "$LAYOUTS" ] || LAYOUTS=$DEFAULT_LAYOUTS
	if [ "$LAYOUTS" = all ]; then
		read -r -a layouts <<<"$(printf '%s\n' "$LAYOUTS_TABLE" | awk 'NF { printf "%s ", $1 }')"
	else
		IFS=, read -r -a layouts <<<"$LAYOUTS"
	fi
	for layout in "${layouts[@]}"; do
		[ -n "$(layout_field "$layout" 1)" ] ||
			die "unknown layout '$layout'; the layouts are: $(printf '%s\n' "$LAYOUTS_TABLE" | awk 'NF { printf "%s ", $1 }')"
	done
	[ "$(nproc)" -ge 2 ] || die "the pinned layouts need 2 CPUs; this process may use $(nproc)"

	# One build for every layout: they must all measure the same binary (and
	# src/ changing between two layouts must not change the comparison).
	ensure_tools cargo
	git_state
	build_release
	export BAKEOFF_GIT_COMMIT=$GIT_COMMIT BAKEOFF_GIT_DIRTY=$GIT_DIRTY

	local i=0
	for layout in "${layouts[@]}"; do
		i=$((i + 1))
		runtime=$(layout_field "$layout" 2)
		server=$(layout_field "$layout" 3)
		db=$(layout_field "$layout" 4)
		wrk=$(layout_field "$layout" 5)
		out=$(result_file bakeoff "pin-$layout")
		args=("${RUN_ARGS[@]}" --no-build --label "pin-$layout" --out "$out"
			--server-args "${USER_SERVER_ARGS:+$USER_SERVER_ARGS }--runtime $runtime")
		[ "$server" = - ] || args+=(--pin-server "$server")
		[ "$db" = - ] || args+=(--pin-db "$db")
		[ "$wrk" = - ] || args+=(--pin-wrk "$wrk")
		log "layout $i/${#layouts[@]}: $layout (runtime $runtime, server CPUs $server, db $db, wrk $wrk)"
		# Each run's table goes to stderr: stdout is for the matrix.
		if run_sh "${args[@]}" >&2; then
			files+=("$out")
			labels+=(--label "$layout")
		else
			warn "layout $layout failed; going on with the others"
			failed+=("$layout")
		fi
	done

	if [ ${#files[@]} -gt 0 ]; then
		echo
		bench_py compare "${files[@]}" "${labels[@]}"
	fi
	[ ${#failed[@]} -eq 0 ] || die "these layouts failed: ${failed[*]}"
}

main() {
	parse_args "$@"
	forward_signals_to_run_sh
	if $MATRIX; then
		run_matrix
	else
		run_single
	fi
}

main "$@"
