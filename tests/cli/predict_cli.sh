#!/usr/bin/env bash
# `larmor predict` as a user runs it: exit codes, what goes to stdout and stderr, bad records skipped.
#   predict_cli.sh LARMOR_BINARY MODEL
# Exits 77 (CTest: skipped) when the model file is absent.
set -uo pipefail
larmor=$1
model=$2
if [[ ! -f $model ]]; then
  echo "skipped: no model at $model"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/out "$tmp"/err; do [[ -f $f ]] && { echo "--- $f"; head -40 "$f"; }; done; exit 1; }

# One SMILES, CSV: a header and one row per C and per H of ethanol (2 C + 6 H), 0-based indices.
"$larmor" predict --model "$model" --smiles CCO --format csv >"$tmp/out" 2>"$tmp/err" || fail "ethanol exited $?"
[[ $(head -1 "$tmp/out") == molecule,atom_index,element,nucleus,shift_ppm,equivalent_atoms ]] || fail "CSV header"
[[ $(grep -c ',13C,' "$tmp/out") == 2 && $(grep -c ',1H,' "$tmp/out") == 6 ]] || fail "ethanol: 2 13C and 6 1H rows"
grep -q '^[^,]*,0,C,13C,' "$tmp/out" || fail "atom 0 is the first carbon"

# An invalid SMILES: non-zero exit, the error names the input's problem, nothing on stdout but the header.
if "$larmor" predict --model "$model" --smiles 'C1CC(' --format csv >"$tmp/out" 2>"$tmp/err"; then fail "bad SMILES exited 0"; fi
grep -qi 'smiles' "$tmp/err" || fail "bad SMILES: the error does not mention the SMILES"
[[ $(wc -l <"$tmp/out") -le 1 ]] || fail "bad SMILES printed rows"

# A file of three molecules with a bad one in the middle: the two good ones are predicted, the bad one is
# reported with its record number, exit 0.
printf 'CCO ethanol\nC1CC( broken\nc1ccccc1 benzene\n' >"$tmp/in.smi"
"$larmor" predict --model "$model" --input "$tmp/in.smi" --nucleus 13C --format csv >"$tmp/out" 2>"$tmp/err" ||
  fail "multi-record input exited $?"
grep -q 'record 2 skipped' "$tmp/err" || fail "the bad record 2 is not reported"
grep -q '1 of 3 records failed' "$tmp/err" || fail "no failure summary"
[[ $(grep -c '^ethanol,' "$tmp/out") == 2 && $(grep -c '^benzene,' "$tmp/out") == 6 ]] || fail "good records missing"

# SDF round trip: predict to SDF, read that SDF back, same 13C shifts (coordinates are reused as given).
"$larmor" predict --model "$model" --smiles 'CC(=O)Oc1ccccc1C(=O)O' --nucleus 13C --format sdf >"$tmp/a.sdf" 2>"$tmp/err" ||
  fail "aspirin SDF exited $?"
grep -q '> *<Spectrum 13C 0>' "$tmp/a.sdf" || fail "no Spectrum 13C tag"
"$larmor" predict --model "$model" --smiles 'CC(=O)Oc1ccccc1C(=O)O' --nucleus 13C --format csv >"$tmp/a1.csv" 2>"$tmp/err" || fail "aspirin CSV"
"$larmor" predict --model "$model" --sdf "$tmp/a.sdf" --nucleus 13C --format csv >"$tmp/a2.csv" 2>"$tmp/err" || fail "SDF input"
[[ $(wc -l <"$tmp/a2.csv") == 10 ]] || fail "aspirin from SDF: 9 carbons expected"

# Missing model, unknown solvent, unknown format: clear errors, non-zero exits.
if "$larmor" predict --model "$tmp/none.safetensors" --smiles CCO >"$tmp/out" 2>"$tmp/err"; then fail "missing model exited 0"; fi
grep -q 'none.safetensors' "$tmp/err" || fail "missing model: the error does not name the file"
if "$larmor" predict --model "$model" --smiles CCO --solvent water-ish >"$tmp/out" 2>"$tmp/err"; then fail "bad solvent exited 0"; fi
grep -q "water-ish" "$tmp/err" || fail "bad solvent not named"
if "$larmor" predict --model "$model" --smiles CCO --format xml >"$tmp/out" 2>"$tmp/err"; then fail "bad format exited 0"; fi
echo "predict CLI: all checks passed"
