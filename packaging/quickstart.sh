#!/usr/bin/env bash
# One command for a fresh machine: set up a virtual environment, install pinned dependencies, then either
# run the demo (`demo`) or the whole test suite (`test`). Re-running reuses the environment.
#   bash packaging/quickstart.sh demo     # train + score + report on the built-in demo data
#   bash packaging/quickstart.sh test     # the full test suite (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-demo}
shift || true
VENV=${ANOMALY_INSPECTOR_VENV:-.venv}
PY=${PYTHON:-python3}

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, found " + sys.version.split()[0])'
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0
# The test mode adds the cluster extra (Dask) so CI exercises cluster scoring; the demo stays lean.
extras=test
if [ "$what" = test ]; then extras=test,cluster; fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extras]"

case "$what" in
  demo) exec "$VENV/bin/anomaly-inspector" demo "$@" ;;
  test) QT_QPA_PLATFORM=offscreen exec "$VENV/bin/python" -m pytest -q "$@" ;;
  *) echo "usage: bash packaging/quickstart.sh demo|test" >&2; exit 2 ;;
esac
