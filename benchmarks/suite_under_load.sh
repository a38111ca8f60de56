#!/usr/bin/env bash
# The test suite on a busy machine: start one busy-loop process per core (default 2, as on the issue's
# 2-core machine), run the suite the way `packaging/quickstart.sh test` does, stop the loops, and report
# pass/fail, the test counts and the wall time.
#   bash benchmarks/suite_under_load.sh                 # the whole suite
#   bash benchmarks/suite_under_load.sh tests/test_app_e2e.py   # pytest arguments pass through
#   LOAD_PROCESSES=4 bash benchmarks/suite_under_load.sh
# Uses the project's virtual environment (ANOMALY_INSPECTOR_VENV, default .venv) when it exists, else the
# python3 on PATH; it installs nothing. Exit status: pytest's.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${ANOMALY_INSPECTOR_VENV:-.venv}
if [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"; else PY=${PYTHON:-python3}; fi
N=${LOAD_PROCESSES:-2}
LOG=${SUITE_LOG:-$(mktemp -t suite-under-load.XXXXXX.log)}

loops=()
stop_loops() {
  for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${loops[@]}"; do wait "$pid" 2>/dev/null; done
}
trap stop_loops EXIT INT TERM

for _ in $(seq "$N"); do
  "$PY" -c 'while True: pass' &
  loops+=("$!")
done
echo "load: $N busy-loop processes (pids ${loops[*]}) on $(nproc) cores; python $PY; log $LOG"

start=$(date +%s)
QT_QPA_PLATFORM=offscreen "$PY" -m pytest -q -p no:cacheprovider "$@" >"$LOG" 2>&1
status=$?
wall=$(( $(date +%s) - start ))
stop_loops
trap - EXIT INT TERM

summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$LOG" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
tail -n 25 "$LOG" | grep -E '^(FAILED|ERROR|Timeout)' || true
if [ "$status" -eq 0 ]; then verdict=PASS; else verdict=FAIL; fi
echo "suite under load: $verdict (pytest exit $status): ${summary:-no summary line, see $LOG}; wall ${wall} s" \
     "with $N busy loops on $(nproc) cores"
exit "$status"
