#!/usr/bin/env bash
# CI: compile (without running) the CUDA backend of the dream engine (issue #3).
#
# CI machines have nvcc but no GPU, and the project's venv holds the CPU build of torch, so this
# makes a second venv ($WM_FAST_CUDA_VENV, default .venv-cuda) with a CUDA build of torch
# (2.11.0+cu130, the version on the GPU machine where the backend was run), builds the extension
# there with -DWM_FAST_CUDA=ON (CMake stops if the CUDA backend cannot be built), checks that the
# module exposes dream_cuda, and runs the engine and extension tests with it on the CPU (the CUDA
# ones skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${WM_FAST_CUDA_VENV:-.venv-cuda}"
PY="${PYTHON:-python3}"
TORCH_CUDA="${WM_FAST_CUDA_TORCH:-torch==2.11.0}"
BUILD=build/ci-cuda
mkdir -p build
nvcc_path=$(command -v nvcc || true)
[ -n "$nvcc_path" ] || [ -x /usr/local/cuda/bin/nvcc ] || { echo "[cuda] no nvcc found: cannot compile the CUDA backend" >&2; exit 1; }
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "$TORCH_CUDA" "pybind11>=2.12" "cmake>=3.25" ninja numpy pytest hypothesis scipy tqdm
"$VENV/bin/python" -c "import torch; assert torch.version.cuda, 'not a CUDA build of torch: ' + torch.__version__; print('[cuda] torch', torch.__version__)"
export PATH="$PWD/$VENV/bin:$PATH"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PWD/$VENV/bin/python" \
  -DWM_FAST_CUDA=ON -DTORCH_CUDA_ARCH_LIST="8.0;9.0" >"$BUILD.cmake.log" 2>&1 || { tail -30 "$BUILD.cmake.log"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)"
pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
cp -r python/wm_fast "$pkg/"
cp "$BUILD"/_C*.so "$pkg/wm_fast/"
PYTHONPATH="$pkg" "$VENV/bin/python" -c "from wm_fast import _C; assert hasattr(_C, 'dream_cuda'), 'built without dream_cuda'; print('[cuda] wm_fast._C has dream_cuda')"
PYTHONPATH="$pkg" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_extension.py
echo "[cuda] CUDA backend compiled and CPU tests passed in $(( $(date +%s) - start )) s"
