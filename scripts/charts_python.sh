#!/usr/bin/env bash
# scripts/charts_python.sh: prints the Python that run.sh and compare.sh run
# the harness with. The harness needs only the standard library; its charts
# need matplotlib. In order: $PYTHON if set; peers/.venv (peers/setup.sh puts
# matplotlib there); .venv-charts; otherwise it creates .venv-charts with
# peers/requirements-chart.txt (pinned; pip, about 30 s once). If that fails,
# python3, and the run says there are no charts.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then
	echo "$PYTHON"
	exit 0
fi
for candidate in "$root/peers/.venv/bin/python" "$root/.venv-charts/bin/python"; do
	if [ -x "$candidate" ] && "$candidate" -c 'import matplotlib' 2>/dev/null; then
		echo "$candidate"
		exit 0
	fi
done
if python3 -c 'import matplotlib' 2>/dev/null; then
	echo python3
	exit 0
fi
echo "charts_python.sh: no matplotlib: installing it into .venv-charts (peers/requirements-chart.txt)" >&2
if python3 -m venv "$root/.venv-charts" >&2 &&
	"$root/.venv-charts/bin/pip" install --quiet -r "$root/peers/requirements-chart.txt" >&2; then
	echo "$root/.venv-charts/bin/python"
else
	echo "charts_python.sh: could not install matplotlib (run: python3 -m venv .venv-charts && .venv-charts/bin/pip install -r peers/requirements-chart.txt); going on without charts" >&2
	rm -rf "$root/.venv-charts"
	echo python3
fi
