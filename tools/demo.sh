#!/usr/bin/env bash
# Installs what is missing, builds into build/, and runs the main job on the shipped defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS" --target larmor
./build/tools/larmor info
./build/tools/larmor demo
