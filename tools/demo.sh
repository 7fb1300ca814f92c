#!/usr/bin/env bash
# Installs what is missing, builds into build/, and runs the main job on the shipped defaults: 13C and 1H
# shifts of a few well-known molecules with the shipped model (models/larmor-shift-small.safetensors), as
# tables and as SVG stick spectra under out/demo/, after a short engine self-check (`larmor demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$JOBS" --target larmor
./build/tools/larmor info
./build/tools/larmor demo
MODEL=models/larmor-shift-small.safetensors
mkdir -p out/demo
printf '%s\n' 'CC(=O)Oc1ccccc1C(=O)O aspirin' 'Cn1cnc2c1c(=O)n(C)c(=O)n2C caffeine' \
  'CC(C)Cc1ccc(cc1)C(C)C(=O)O ibuprofen' 'CCOC(C)=O ethyl acetate' 'O=Cc1ccc(O)c(OC)c1 vanillin' >out/demo/molecules.smi
echo
echo "== larmor predict --input out/demo/molecules.smi --solvent CDCl3 (model $MODEL)"
./build/tools/larmor predict --model "$MODEL" --input out/demo/molecules.smi --solvent CDCl3 --nucleus both \
  --svg out/demo/spectrum.svg
echo "stick spectra: out/demo/spectrum_<record>_<nucleus>.svg"
