#!/usr/bin/env bash
# Installs everything the peers need, and is safe to rerun:
#   - with apt-get: Debian's Go toolchain and its PostgreSQL drivers (lib/pq,
#     pgx v4), libpq-dev and gcc (psycopg2cffi compiles against libpq), and,
#     for the PyPy row, pypy3 with its venv module and headers;
#   - peers/.venv, one virtualenv with the pinned requirements of the Python
#     peers (PYTHON picks the interpreter, default python3, >= 3.11), and
#     matplotlib for scripts/compare.sh's chart (requirements-chart.txt);
#   - peers/.venv-compat (the same PYTHON) and peers/.venv-pypy (pypy3), each
#     with fastapi_aiopg_compat/requirements.txt: one stack, two interpreters;
#   - the Go peers' binaries, peers/go_pq/contacts and peers/go_pgx/contacts,
#     built offline against /usr/share/gocode.
# When a step cannot be done, it prints the command that would do it. The
# PyPy stack and its CPython twin are optional: when they cannot be installed,
# setup.sh says why and goes on, and their start.sh says "unavailable".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
apt_packages=(golang-go golang-github-lib-pq-dev golang-github-jackc-pgx-v4-dev libpq-dev gcc)
pypy_apt_packages=(pypy3 pypy3-venv pypy3-dev)
python_peers=(fastapi_asyncpg fastapi_orm fastapi_aiopg django)
compat_requirements=$here/fastapi_aiopg_compat/requirements.txt

say() { printf 'setup.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# missing_packages PACKAGE...: prints those not installed, space-separated.
missing_packages() {
	local missing=() package
	for package in "$@"; do
		dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$package")
	done
	echo "${missing[*]}"
}

APT_UPDATED=false
# apt_install PACKAGE...: status 1 when apt-get fails.
apt_install() {
	say "installing $*"
	if ! $APT_UPDATED; then
		apt-get update -q >&2 || return 1
		APT_UPDATED=true
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

install_apt_packages() {
	local missing command
	read -r -a missing <<<"$(missing_packages "${apt_packages[@]}")"
	# psycopg2cffi compiles against the headers of CPython too; Debian's
	# python3 has them in python3-dev (another PYTHON brings its own).
	if [ "$(command -v "$python")" = /usr/bin/python3 ] && ! python_has_headers "$python"; then
		missing+=(python3-dev)
	fi
	if ((${#missing[@]} > 0)); then
		command="apt-get update && apt-get install -y ${missing[*]}"
		((EUID == 0)) || die "need root to install ${missing[*]}; run: sudo sh -c '$command'"
		apt_install "${missing[@]}" || die "could not install ${missing[*]}; run: $command"
	fi
	read -r -a missing <<<"$(missing_packages "${pypy_apt_packages[@]}")"
	((${#missing[@]} == 0)) && return
	command="apt-get update && apt-get install -y ${missing[*]}"
	if ((EUID != 0)); then
		say "no PyPy, so no fastapi_aiopg_pypy row: need root to install ${missing[*]}; run: sudo sh -c '$command'"
	elif ! apt_install "${missing[@]}"; then
		say "no PyPy, so no fastapi_aiopg_pypy row: could not install ${missing[*]}; run: $command"
	fi
}

python_has_headers() {
	"$1" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
}

# make_venv DIR INTERPRETER: creates the virtualenv unless it works already.
make_venv() {
	local venv=$1 interpreter=$2
	"$venv/bin/python" -c '' 2>/dev/null && return
	say "creating $venv"
	"$interpreter" -m venv --clear "$venv"
}

install_python_peers() {
	"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
		die "$python is not Python >= 3.11; run with PYTHON=/path/to/python3.11 $0"
	local venv=$here/.venv
	make_venv "$venv" "$python" ||
		die "could not create a virtualenv; run: apt-get install -y python3-venv (or use PYTHON=...)"
	local requirements=() peer
	for peer in "${python_peers[@]}"; do
		requirements+=(-r "$here/$peer/requirements.txt")
	done
	requirements+=(-r "$here/requirements-chart.txt")
	say "installing the Python requirements into $venv"
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "${requirements[@]}" ||
		die "pip failed; run: $venv/bin/python -m pip install ${requirements[*]}"
}

# install_compat_stack DIR INTERPRETER ROW: the PyPy-compatible stack into its
# own venv. Optional: on failure it says why and returns 0. The venv's
# setup-complete file tells start.sh that the stack is whole.
install_compat_stack() {
	local venv=$1 interpreter=$2 row=$3
	if ! command -v "$interpreter" >/dev/null; then
		say "no $interpreter, so no $row row (see the apt-get command above)"
		return 0
	fi
	rm -f "$venv/setup-complete"
	if ! make_venv "$venv" "$interpreter"; then
		say "could not create $venv, so no $row row; run: $interpreter -m venv $venv"
		return 0
	fi
	say "installing fastapi_aiopg_compat's requirements into $venv"
	# --no-deps: the file lists every package; aiopg's own requirement,
	# psycopg2-binary, is what psycopg2cffi replaces.
	if "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
		-r "$compat_requirements" >&2; then
		touch "$venv/setup-complete"
	else
		say "pip failed, so no $row row; run: $venv/bin/python -m pip install --no-deps -r $compat_requirements"
	fi
}

build_go_peers() {
	say "building $here/go_pq/contacts and $here/go_pgx/contacts"
	# Module mode, but offline: go.mod replaces lib/pq with Debian's copy.
	(cd "$here/go_pq" && GO111MODULE=on GOFLAGS=-mod=mod GOPROXY=off go build -o contacts .) ||
		die "go build failed; run: cd $here/go_pq && GO111MODULE=on GOFLAGS=-mod=mod GOPROXY=off go build -o contacts ."
	# GOPATH mode over Debian's tree, as Debian builds its Go packages: in
	# module mode, pgx v4's go.mod (go 1.13, so its requirements are not
	# pruned) pulls in the go.mod of every module its tests use, some of
	# which Debian does not ship, and GOPROXY=off cannot fetch them.
	(cd "$here/go_pgx" && GO111MODULE=off GOPATH=/usr/share/gocode go build -o contacts .) ||
		die "go build failed; run: cd $here/go_pgx && GO111MODULE=off GOPATH=/usr/share/gocode go build -o contacts ."
}

install_apt_packages
install_python_peers
install_compat_stack "$here/.venv-compat" "$python" fastapi_aiopg_compat
install_compat_stack "$here/.venv-pypy" pypy3 fastapi_aiopg_pypy
build_go_peers
say "done: start a peer with DATABASE_URL=... $here/NAME/start.sh PORT"
