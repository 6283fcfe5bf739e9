#!/usr/bin/env bash
# Build the stand-alone Linux bundle of SSL Studio with PyInstaller.
#
#   packaging/build_linux.sh [VENV]        # default VENV: .venv in the repository root
#
# The bundle freezes exactly the PyTorch that VENV has: a CUDA wheel (PyPI's
# default on Linux) gives a bundle that uses an NVIDIA GPU when present and is
# several GB; a CPU wheel (pip install torch --index-url
# https://download.pytorch.org/whl/cpu) gives a much smaller CPU-only bundle.
# See packaging/README.md.
#
# Outputs (never committed; both are git-ignored when inside the repository):
#   BUILD_DIR (default packaging/build)   PyInstaller's work files
#   DIST_DIR  (default packaging/dist)    the bundle: DIST_DIR/sslstudio/sslstudio
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
BUILD_DIR="${BUILD_DIR:-$ROOT/packaging/build}"
DIST_DIR="${DIST_DIR:-$ROOT/packaging/dist}"
PY="$VENV/bin/python"

[ -x "$PY" ] || { echo "no python in $VENV (create it with ./dev first)" >&2; exit 1; }
cd "$ROOT"

# PyInstaller lives in the venv being frozen (it must see the same packages).
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
    "$PY" -m pip install --quiet "pyinstaller>=6.11"
fi
# The package itself must be importable from the venv (editable or regular install).
"$PY" -c "import sslstudio" 2>/dev/null || "$PY" -m pip install --quiet -e .

# Which torch is being frozen decides the size: say it up front.
"$PY" - <<'PYEOF'
import torch
cuda = torch.version.cuda
print(f"freezing torch {torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only'} build)")
PYEOF

# CLEAN=0 keeps PyInstaller's cache from the last build (a rebuild is then faster).
clean=--clean
[ "${CLEAN:-1}" = 0 ] && clean=
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm $clean --log-level WARN \
    --workpath "$BUILD_DIR" --distpath "$DIST_DIR" \
    "$ROOT/packaging/sslstudio.spec"
end=$(date +%s)

BUNDLE="$DIST_DIR/sslstudio"
echo "built $BUNDLE in $((end - start)) s"
du -sh "$BUNDLE" | sed 's/^/bundle size: /'
# The cheapest honest check: the frozen CLI starts and knows its commands.
"$BUNDLE/sslstudio" --version
echo "try: xvfb-run -s '-screen 0 1400x900x24' $BUNDLE/sslstudio gui --sample --screenshot /tmp/bundle.png"
