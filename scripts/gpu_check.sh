#!/usr/bin/env bash
# Build the extension with the CUDA backend on a GPU machine and check it there: the engine
# tests (CUDA parity included) and report.py on the GPU. Usage, from the repository root:
#   WM_FAST_COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu_check.sh OUT_DIR [pytest args...]
# Uses the machine's python3 and its torch (no venv, no network): the extension is built with
# CMake + Ninja into build-gpu/ and copied beside the package sources (PYTHONPATH=python).
set -euo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR [pytest args...]}
shift
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader
"$py" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
# The GPU image's default CXX (/opt/gcc/bin/g++) has no shared libstdc++, which CMakeLists.txt
# refuses (a static copy in the module crashes beside torch); its system g++ has one.
if [[ -x /usr/bin/g++ ]]; then export CXX=/usr/bin/g++ CUDAHOSTCXX=/usr/bin/g++; fi
start=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v "$py")" \
  -DWM_FAST_CUDA=ON >"$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" >"$out/build.log" 2>&1 || { tail -60 "$out/build.log"; exit 1; }
echo "build: $(( $(date +%s) - start )) s"
cp build-gpu/_C*.so python/wm_fast/
export PYTHONPATH=$PWD/python:$PWD/benchmarks
"$py" -c "from wm_fast.dream import engine_backends; print('backends', engine_backends())"
"$py" -m pytest -q -p no:cacheprovider tests/test_engine.py -rs "$@" 2>&1 | tee "$out/pytest.log" | tail -25
