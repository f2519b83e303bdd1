#!/usr/bin/env bash
# Installs what the peers need, and is safe to rerun. Usage:
#   setup.sh [GROUP...]    # no GROUP: every group, in this order
# A row's system.toml names the group it needs (setup = ["../setup.sh", "GROUP"]):
#   python    peers/.venv: the pinned requirements of fastapi_asyncpg,
#             fastapi_orm, fastapi_aiopg and django (psycopg2), PYTHON picks
#             the interpreter (default python3, >= 3.11); and matplotlib for
#             the comparison's charts (requirements-chart.txt);
#   psycopg3  peers/.venv-psycopg3 (the same PYTHON): django on psycopg 3
#             (django/requirements-psycopg3.txt) and fastapi_psycopg3. Not in
#             peers/.venv: Django uses psycopg 3 wherever it can import it;
#   compat    peers/.venv-compat (the same PYTHON) with
#             fastapi_aiopg_compat/requirements.txt; with apt-get, libpq-dev and
#             gcc (psycopg2cffi compiles against libpq; Debian's python3-dev
#             too when PYTHON is Debian's python3);
#   pypy      peers/.venv-pypy (pypy3) with the same requirements; with
#             apt-get, pypy3, pypy3-venv, pypy3-dev, libpq-dev and gcc;
#   go        with apt-get, Debian's Go toolchain and its PostgreSQL drivers
#             (lib/pq, pgx v4); the binaries peers/go_pq/contacts and
#             peers/go_pgx/contacts, built offline against /usr/share/gocode.
# When a step cannot be done, it prints the command that would do it and
# fails; compat and pypy are optional instead: when they cannot be installed,
# setup.sh says why and goes on, and their start.sh says "unavailable".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
all_groups=(python psycopg3 compat pypy go)
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

# need_apt_packages WHY PACKAGE...: installs the missing ones; status 1 (after
# saying why and how) when that cannot be done.
need_apt_packages() {
	local why=$1 missing command
	shift
	read -r -a missing <<<"$(missing_packages "$@")"
	((${#missing[@]} == 0)) && return 0
	command="apt-get update && apt-get install -y ${missing[*]}"
	if ((EUID != 0)); then
		say "$why: need root to install ${missing[*]}; run: sudo sh -c '$command'"
		return 1
	fi
	apt_install "${missing[@]}" && return 0
	say "$why: could not install ${missing[*]}; run: $command"
	return 1
}

python_has_headers() {
	"$1" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null
}

check_python() {
	"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
		die "$python is not Python >= 3.11; run with PYTHON=/path/to/python3.11 $0"
}

# make_venv DIR INTERPRETER: creates the virtualenv unless it works already.
make_venv() {
	local venv=$1 interpreter=$2
	"$venv/bin/python" -c '' 2>/dev/null && return
	say "creating $venv"
	"$interpreter" -m venv --clear "$venv"
}

# install_venv DIR REQUIREMENTS-FILE...: the venv with the pinned files, or fail.
install_venv() {
	local venv=$1 file requirements=()
	shift
	check_python
	make_venv "$venv" "$python" ||
		die "could not create a virtualenv; run: apt-get install -y python3-venv (or use PYTHON=...)"
	for file in "$@"; do
		requirements+=(-r "$file")
	done
	say "installing the Python requirements into $venv"
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "${requirements[@]}" ||
		die "pip failed; run: $venv/bin/python -m pip install ${requirements[*]}"
}

setup_python() {
	install_venv "$here/.venv" "$here/fastapi_asyncpg/requirements.txt" \
		"$here/fastapi_orm/requirements.txt" "$here/fastapi_aiopg/requirements.txt" \
		"$here/django/requirements.txt" "$here/requirements-chart.txt"
}

setup_psycopg3() {
	install_venv "$here/.venv-psycopg3" "$here/django/requirements-psycopg3.txt" \
		"$here/fastapi_psycopg3/requirements.txt"
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

setup_compat() {
	local packages=(libpq-dev gcc)
	# psycopg2cffi compiles against the headers of CPython too; Debian's
	# python3 has them in python3-dev (another PYTHON brings its own).
	if [ "$(command -v "$python")" = /usr/bin/python3 ] && ! python_has_headers "$python"; then
		packages+=(python3-dev)
	fi
	if ! need_apt_packages "so no fastapi_aiopg_compat row" "${packages[@]}"; then
		return 0
	fi
	install_compat_stack "$here/.venv-compat" "$python" fastapi_aiopg_compat
}

setup_pypy() {
	if ! need_apt_packages "no PyPy, so no fastapi_aiopg_pypy row" \
		pypy3 pypy3-venv pypy3-dev libpq-dev gcc; then
		return 0
	fi
	install_compat_stack "$here/.venv-pypy" pypy3 fastapi_aiopg_pypy
}

setup_go() {
	need_apt_packages "no Go rows" golang-go golang-github-lib-pq-dev \
		golang-github-jackc-pgx-v4-dev || exit 1
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

groups=("$@")
((${#groups[@]} > 0)) || groups=("${all_groups[@]}")
for group in "${groups[@]}"; do
	case $group in
	python | psycopg3 | compat | pypy | go) ;;
	*) die "unknown group '$group'; the groups are: ${all_groups[*]} (none: all of them)" ;;
	esac
done
for group in "${groups[@]}"; do
	"setup_$group"
done
say "done (${groups[*]}): start a peer with DATABASE_URL=... $here/NAME/start.sh PORT"
