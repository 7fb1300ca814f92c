#!/usr/bin/env bash
# The alignment-model ablation of docs/ABLATION.md: same split, same budget (EPOCHS epochs of 128 molecules
# per batch, warmup-linear schedule, seed 1), one switch changed at a time from K-M3AID's setup
# (CReSS CNN spectrum encoder trained from scratch, alpha 0.1, knowledge-guided soft targets n 5 / p 1, one
# graph encoder shared by both levels):
#   base            that setup
#   alpha0.2/0.5    the molecule-level weight
#   hard            identity atom-level targets instead of the soft ones
#   separate        two graph encoders (no "communication channel")
#   peakset         the permutation-invariant peak-set spectrum encoder instead of the CNN
#   hbasis          + attached-H node embedding + Gaussian ppm basis in the peak encoders (not in K-M3AID)
#   peakset-hbasis  both of the last two
# then `larmor eval align` on the test split (groups of 128; --library off) for each, JOBS runs at a time
# with THREADS threads each.
#   tools/align_ablation.sh [DATA] [OUT] [EPOCHS] [JOBS] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-data/nmrshiftdb2.safetensors}
OUT=${2:-runs/align_ablation}
EPOCHS=${3:-8}
JOBS=${4:-2}
THREADS=${5:-1}
LARMOR=${LARMOR:-build/tools/larmor}
CFG=tools/configs
common=(--data "$DATA" --epochs "$EPOCHS" --schedule warmup-linear --seed 1 --threads "$THREADS")
run() {
  local name=$1
  shift
  mkdir -p "$OUT/$name"
  if [[ ! -f $OUT/$name/done ]]; then
    "$LARMOR" train align "${common[@]}" --out "$OUT/$name" "$@" >"$OUT/$name/stdout.txt" 2>"$OUT/$name/stderr.txt"
    touch "$OUT/$name/done"
  fi
  if [[ ! -f $OUT/$name/test.txt ]]; then
    "$LARMOR" eval align --data "$DATA" --model "$OUT/$name/best.safetensors" --split test --library off \
      --threads "$THREADS" --out "$OUT/$name/test.json" >"$OUT/$name/test.txt.part"
    mv "$OUT/$name/test.txt.part" "$OUT/$name/test.txt"
  fi
}
spawn() {
  while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n; done
  run "$@" &
}
spawn base
spawn alpha0.2 --alpha 0.2
spawn alpha0.5 --alpha 0.5
spawn hard --soft-targets off
spawn separate --shared-encoder off
spawn peakset --spectrum-encoder peakset
spawn hbasis --config "$CFG/align_hbasis.json"
spawn peakset-hbasis --config "$CFG/align_hbasis.json" --spectrum-encoder peakset
wait
for d in "$OUT"/*/; do
  [[ -f $d/test.txt ]] || continue
  echo "== $(basename "$d")"
  cat "$d/test.txt"
done
