#!/usr/bin/env bash
# Installs what is missing, configures and builds into build/ (Release; CUDA code is compiled when nvcc
# is found, and its tests skip without a GPU), then runs every test with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$JOBS"
ctest --test-dir build --output-on-failure -j"$JOBS"
