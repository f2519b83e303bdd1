#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: runs every cargo-fuzz target of fuzz/ for
# SECONDS each (default 60), on the stable toolchain (RUSTC_BOOTSTRAP=1 lets
# it take the nightly flags cargo-fuzz passes). Installs cargo-fuzz first if
# it is missing. New inputs go to fuzz/target/corpus/<target> (not committed);
# the committed seeds in fuzz/corpus/<target> are only read. A failure leaves
# its input in fuzz/artifacts/<target>/ and stops the script with exit 1.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_EACH=${1:-60}
case $SECONDS_EACH in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh [SECONDS]  (seconds per target, default 60)" >&2
	exit 2
	;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz)" >&2
	cargo install cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
targets=$(cargo fuzz list)
for target in $targets; do
	work="target/corpus/$target"
	mkdir -p "$work"
	echo "fuzz.sh: $target for ${SECONDS_EACH} s" >&2
	status=0
	# -max_total_time bounds the run; -timeout fails an input that hangs.
	cargo fuzz run "$target" "$work" "corpus/$target" -- \
		-max_total_time="$SECONDS_EACH" -timeout=10 >"$log" 2>&1 || status=$?
	grep -E '^(Done|#[0-9]+ +DONE)' "$log" || true
	if [ "$status" -ne 0 ]; then
		tail -n 60 "$log" >&2
		echo "fuzz.sh: $target FAILED (exit $status); its input is in fuzz/artifacts/$target/" >&2
		exit 1
	fi
done
echo "fuzz.sh: every target ran ${SECONDS_EACH} s without a failure" >&2
