#!/usr/bin/env bash
# Build the desktop bundle, one command from a clean clone:
#     bash packaging/build.sh
# Makes its own build environment (.venv-build: CPU torch first, then the project and PyInstaller), runs
# PyInstaller on packaging/anomaly-inspector.spec and leaves dist/anomaly-inspector/. Re-running reuses the
# environment. Check the result with:
#     QT_QPA_PLATFORM=offscreen dist/anomaly-inspector/anomaly-inspector --self-test
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ANOMALY_INSPECTOR_BUILD_VENV:-.venv-build}
PY=${PYTHON:-python3}

"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed, found " + sys.version.split()[0])'
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating the build environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
# torch first and pinned: a bare `torch` would pull a multi-GB CUDA build into the bundle.
pip_install torch==2.13.0
# Not editable: PyInstaller then finds the package metadata (the version) like any installed package.
pip_install ".[bundle]"
"$VENV/bin/python" -c 'import torch; assert not torch.version.cuda, "the bundle needs the CPU build of torch"'

rm -rf build/anomaly-inspector dist/anomaly-inspector
start=$(date +%s)
"$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath dist --workpath build packaging/anomaly-inspector.spec
# torch's two libraries come with their full symbol tables (about 90 MB); the loader needs only the dynamic
# symbols, which --strip-unneeded keeps. Every other large library in the wheels is stripped already.
if command -v strip >/dev/null; then
  strip --strip-unneeded dist/anomaly-inspector/_internal/torch/lib/libtorch_cpu.so \
    dist/anomaly-inspector/_internal/torch/lib/libtorch_python.so
else
  echo "note: no strip found (binutils); the bundle stays about 90 MB larger" >&2
fi
echo "built dist/anomaly-inspector in $(( $(date +%s) - start )) s; unpacked size: $(du -sh dist/anomaly-inspector | cut -f1)"
cp packaging/install-desktop-entry.sh dist/anomaly-inspector/
