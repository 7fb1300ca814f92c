#!/usr/bin/env bash
# Installs what is missing, builds into build/, and runs the main job on the shipped defaults: 13C and 1H
# shifts of a few well-known molecules with the shipped model (models/larmor-shift-small.safetensors), as
# tables and as SVG stick spectra under out/demo/, after a short engine self-check (`larmor demo`); then the
# 13C peak assignment of ethyl benzoate by each method (shift predictor, alignment model: models/larmor-align, both).
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
if [[ -f models/larmor-align.safetensors ]]; then
  # ethyl benzoate, 13C in CDCl3 (literature values; S/D/T/Q = attached H)
  printf '%s\n' '166.6 S' '132.8 D' '130.5 S' '129.5 D' '128.3 D' '60.9 T' '14.3 Q' >out/demo/ethyl_benzoate_13c.txt
  for method in predict align both; do
    echo
    echo "== larmor assign --method $method --smiles 'CCOC(=O)c1ccccc1' --peaks out/demo/ethyl_benzoate_13c.txt --k 2"
    ./build/tools/larmor assign --method $method --smiles 'CCOC(=O)c1ccccc1' --peaks out/demo/ethyl_benzoate_13c.txt \
      --solvent CDCl3 --k 2
  done
fi
