#!/usr/bin/env bash
# The shift-model ablation of docs/ABLATION.md: same split, same budget (STEPS steps of 24 molecules each,
# same seed, same learning-rate schedule), a small model config (tools/configs/shift_ablation.json):
#   labelled      assigned NMR8K spectra only (atom-level L1)
#   mixed         16 labelled + 8 unlabelled per batch (sorted-set L1 on NMRShiftDB2 peak sets, lambda 1)
#   unlabelled    unassigned peak sets only (sorted-set L1)
#   mixed-nosolv  mixed without solvent conditioning
#   mixed-chem    mixed with the chemistry inputs (atom features + bond-graph pair types;
#                 tools/configs/shift_ablation_chem.json: the same sizes with atom_features/graph_pairs on)
# then `larmor eval shift` on the test split for each (JSON reports next to the runs).
#   tools/ablation.sh [DATA] [OUT] [STEPS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/nmrshiftdb2.safetensors}
OUT=${2:-runs/ablation}
STEPS=${3:-800}
THREADS=${4:-0}
LARMOR=${LARMOR:-build/tools/larmor}
common=(--data "$DATA" --steps "$STEPS" --lr 5e-4 --lambda 1 --seed 1
        --nuclei 13C,1H --threads "$THREADS")
run() {
  local name=$1 config=tools/configs/shift_ablation.json
  shift
  if [[ $name == *-chem ]]; then config=tools/configs/shift_ablation_chem.json; fi
  mkdir -p "$OUT/$name"
  if [[ ! -f $OUT/$name/done ]]; then
    "$LARMOR" train shift "${common[@]}" --config "$config" --out "$OUT/$name" "$@" >"$OUT/$name/stdout.txt" 2>"$OUT/$name/stderr.txt"
    touch "$OUT/$name/done"
  fi
  "$LARMOR" eval shift --data "$DATA" --model "$OUT/$name/last.safetensors" --split test --threads "$THREADS" \
    --out "$OUT/$name/test.json" >"$OUT/$name/test.txt"
  echo "== $name"
  cat "$OUT/$name/test.txt"
}
run labelled --mode labelled --batch-labelled 24
run mixed --mode mixed --batch-labelled 16 --batch-unlabelled 8
run unlabelled --mode unlabelled --batch-unlabelled 24
run mixed-nosolv --mode mixed --batch-labelled 16 --batch-unlabelled 8 --solvent off
run mixed-chem --mode mixed --batch-labelled 16 --batch-unlabelled 8
