#!/usr/bin/env bash
# Creates .venv (or $WM_FAST_VENV) and installs wm_fast with its compiled engine and test deps.
# Idempotent: skips the work when the venv already matches the files that declare the build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WM_FAST_VENV:-.venv}"
PY="${PYTHON:-python3}"
key=$(cat pyproject.toml CMakeLists.txt csrc/* scripts/install.sh | sha256sum | cut -c1-16)
stamp="$VENV/.wm_fast_install_$key"
if [ -f "$stamp" ] && "$VENV/bin/python" -c "import wm_fast._C" 2>/dev/null; then
  echo "[install] $VENV is up to date"
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# The CPU build of torch; the extension is compiled against the torch that is installed,
# so build without isolation (see TOOLCHAIN notes in the README).
"$VENV/bin/python" -m pip install -q "torch==2.13.0" "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.25" ninja
"$VENV/bin/python" -m pip install -q --no-build-isolation -e ".[test]"
rm -f "$VENV"/.wm_fast_install_*
touch "$stamp"
echo "[install] done: $VENV"
