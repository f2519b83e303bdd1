#!/usr/bin/env bash
# Installs everything the peers need, and is safe to rerun:
#   - Debian's Go toolchain and its PostgreSQL driver (lib/pq), with apt-get;
#   - peers/.venv, one virtualenv with the pinned requirements of every
#     Python peer (PYTHON picks the interpreter, default python3, >= 3.11),
#     and matplotlib for scripts/compare.sh's chart (requirements-chart.txt);
#   - the Go peer's binary, peers/go/contacts, built offline against
#     /usr/share/gocode.
# When a step cannot be done, it prints the command that would do it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
apt_packages=(golang-go golang-github-lib-pq-dev)
python_peers=(fastapi_asyncpg fastapi_orm fastapi_aiopg django)

say() { printf 'setup.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

install_apt_packages() {
	local missing=() package
	for package in "${apt_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$package")
	done
	((${#missing[@]} == 0)) && return
	local command="apt-get update && apt-get install -y ${missing[*]}"
	((EUID == 0)) || die "need root to install ${missing[*]}; run: sudo sh -c '$command'"
	say "installing ${missing[*]}"
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; } >&2 ||
		die "could not install ${missing[*]}; run: $command"
}

install_python_peers() {
	"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
		die "$python is not Python >= 3.11; run with PYTHON=/path/to/python3.11 $0"
	local venv=$here/.venv
	if ! "$venv/bin/python" -c '' 2>/dev/null; then
		say "creating $venv"
		"$python" -m venv --clear "$venv" ||
			die "could not create a virtualenv; run: apt-get install -y python3-venv (or use PYTHON=...)"
	fi
	local requirements=() peer
	for peer in "${python_peers[@]}"; do
		requirements+=(-r "$here/$peer/requirements.txt")
	done
	requirements+=(-r "$here/requirements-chart.txt")
	say "installing the Python requirements into $venv"
	"$venv/bin/python" -m pip install -q --disable-pip-version-check "${requirements[@]}" ||
		die "pip failed; run: $venv/bin/python -m pip install ${requirements[*]}"
}

build_go_peer() {
	say "building $here/go/contacts"
	# Module mode, but offline: go.mod replaces lib/pq with Debian's copy.
	(cd "$here/go" && GO111MODULE=on GOFLAGS=-mod=mod GOPROXY=off go build -o contacts .) ||
		die "go build failed; run: cd $here/go && GO111MODULE=on GOFLAGS=-mod=mod GOPROXY=off go build -o contacts ."
}

install_apt_packages
install_python_peers
build_go_peer
say "done: start a peer with DATABASE_URL=... $here/NAME/start.sh PORT"
