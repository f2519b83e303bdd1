#!/usr/bin/env bash
# scripts/test.sh: the README's test command. Checks for what the tests need
# (PostgreSQL's server binaries and pgbench, PgBouncer), installs what is
# missing with apt-get when run as root or stops with the command that would,
# then runs `cargo test --workspace` (the server, the test kit and the delay
# link of link/) with the arguments given.
set -euo pipefail
cd "$(dirname "$0")/.."

PROG=test.sh

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

usage() {
	cat <<-'EOF'
		Usage: scripts/test.sh [CARGO TEST ARGUMENTS]

		Runs every test (`cargo test --workspace`: the server, the test kit
		and the delay link), after making sure that what the tests need is
		installed:
		  initdb, postgres, pg_ctl, pgbench
		                            under /usr/lib/postgresql/*/bin, or $PG_BIN
		                            (Debian package: postgresql)
		  pgbouncer                 on PATH, /usr/sbin/pgbouncer, or $PGBOUNCER
		                            (Debian package: pgbouncer)
		As root, the missing packages are installed with apt-get; otherwise the
		script stops and prints the command to run.

		Every argument goes to cargo test, e.g.
		  scripts/test.sh --test api
		  scripts/test.sh -p bakeoff-link --test link pgbench -- --nocapture
		  scripts/test.sh --release -- --nocapture
	EOF
}

case ${1:-} in
-h | --help)
	usage
	exit 0
	;;
esac

# The tests start a throwaway cluster with initdb, postgres and pg_ctl from
# one directory: $PG_BIN when set, else Debian's, which keeps them off PATH
# in /usr/lib/postgresql/<version>/bin. The link's acceptance test runs
# pgbench from there too (Debian ships it in the same package).
has_pg_binaries() {
	local dir=$1 name
	for name in initdb postgres pg_ctl pgbench; do
		[ -x "$dir/$name" ] || return 1
	done
}

postgresql_found() {
	local dir
	if [ -n "${PG_BIN:-}" ]; then
		has_pg_binaries "$PG_BIN"
		return
	fi
	for dir in /usr/lib/postgresql/*/bin; do
		has_pg_binaries "$dir" && return 0
	done
	return 1
}

# tests/pgbouncer.rs runs a real PgBouncer: $PGBOUNCER, else the one on PATH
# or in /usr/sbin (Debian's, which a non-root PATH may not include).
pgbouncer_found() {
	if [ -n "${PGBOUNCER:-}" ]; then
		[ -x "$PGBOUNCER" ]
		return
	fi
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]
}

# Sets PACKAGES to the Debian packages that would supply what is missing.
find_missing() {
	PACKAGES=()
	postgresql_found || PACKAGES+=(postgresql)
	pgbouncer_found || PACKAGES+=(pgbouncer)
	# initdb, postgres and PgBouncer refuse to run as root; the tests then run
	# them as the `postgres` user, which Debian's postgresql-common creates.
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1 &&
		[[ " ${PACKAGES[*]} " != *" postgresql "* ]]; then
		PACKAGES+=(postgresql-common)
	fi
	return 0
}

command -v cargo >/dev/null 2>&1 ||
	die "cargo is not on PATH: install Rust with rustup, then add ~/.cargo/bin to PATH"
# A wrong PG_BIN or PGBOUNCER is a mistake to fix, not a package to install.
if [ -n "${PG_BIN:-}" ] && ! has_pg_binaries "$PG_BIN"; then
	die "PG_BIN=$PG_BIN holds no initdb, postgres, pg_ctl and pgbench: point it at the directory that does (e.g. /usr/lib/postgresql/15/bin), or unset it"
fi
if [ -n "${PGBOUNCER:-}" ] && [ ! -x "$PGBOUNCER" ]; then
	die "PGBOUNCER=$PGBOUNCER is not an executable file: fix it, or unset it"
fi

find_missing
if [ ${#PACKAGES[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		die "missing ${PACKAGES[*]}; install with: sudo apt-get update && sudo apt-get install -y ${PACKAGES[*]}"
	fi
	cmd="apt-get update && apt-get install -y ${PACKAGES[*]}"
	log "missing ${PACKAGES[*]}: running $cmd"
	# apt's chatter goes to stderr, like the tests' own progress.
	apt-get update >&2 || die "apt-get update failed; run: $cmd"
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}" >&2 ||
		die "could not install ${PACKAGES[*]}; run: $cmd"
	installed=("${PACKAGES[@]}")
	find_missing
	[ ${#PACKAGES[@]} -eq 0 ] ||
		die "still missing ${PACKAGES[*]} after installing ${installed[*]}"
fi

# --workspace: a plain `cargo test` at the root tests the root package only,
# and would skip link/'s tests.
exec cargo test --workspace "$@"
