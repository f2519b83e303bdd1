#!/usr/bin/env bash
# scripts/allocators.sh (also `scripts/run.sh --allocators`): the benchmark
# once per global allocator (the cargo features mimalloc and jemalloc, and the
# system allocator with --no-default-features),
# each built into its own target dir, the same workloads and database, and
# their requests/s side by side.
set -euo pipefail

PROG=allocators.sh
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# name     cargo options
ALLOCATORS_TABLE="
mimalloc
jemalloc --features jemalloc
system   --no-default-features
"

usage() {
	cat <<EOF
Usage: scripts/allocators.sh [RUN.SH OPTIONS]
       scripts/run.sh --allocators [RUN.SH OPTIONS]

Builds the release server once per allocator (mimalloc, the default;
jemalloc; the system allocator), each into target/alloc-NAME, then runs
scripts/run.sh with each binary, one after the other, and prints their
requests/s side by side. The ceilings are measured in the first run only
(they do not depend on the server). Other options go to run.sh as they are
(--quick, --duration, --only, --runs, --server-args, ...).
EOF
}

main() {
	local arg run_args=()
	for arg in "$@"; do
		case $arg in
		-h | --help)
			usage
			exit 0
			;;
		--allocators) ;;
		--binary | --no-build | --label | --out | --target)
			die "$arg cannot be given here: each allocator's run sets it"
			;;
		*) run_args+=("$arg") ;;
		esac
	done
	forward_signals_to_run_sh
	ensure_tools cargo
	git_state
	export BAKEOFF_GIT_COMMIT=$GIT_COMMIT BAKEOFF_GIT_DIRTY=$GIT_DIRTY

	local name options
	while read -r name options; do
		[ -n "$name" ] || continue
		log "building with the $name allocator (cargo build --release ${options:-})"
		# shellcheck disable=SC2086 # options is a list of cargo options
		(cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target/alloc-$name" cargo build --release $options >&2) ||
			die "the $name build failed (see above)"
	done <<<"$ALLOCATORS_TABLE"

	local out files=() labels=() first=true args
	while read -r name options; do
		[ -n "$name" ] || continue
		out=$(result_file bakeoff "alloc-$name")
		args=("${run_args[@]}" --binary "$ROOT/target/alloc-$name/release/bakeoff"
			--label "alloc-$name" --out "$out")
		$first || args+=(--no-ceilings)
		first=false
		log "allocator $name"
		run_sh "${args[@]}" >&2
		files+=("$out")
		labels+=(--label "$name")
	done <<<"$ALLOCATORS_TABLE"

	echo
	bench_py compare "${files[@]}" "${labels[@]}"
}

main "$@"
