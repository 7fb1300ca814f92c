#!/usr/bin/env bash
# `larmor assign` as a user runs it, by each method (predict, align, both): the CSV contract, exit codes, bad peak lists named.
#   assign_cli.sh LARMOR_BINARY SHIFT_MODEL ALIGN_MODEL
# Exits 77 (CTest: skipped) when either model file is absent.
set -uo pipefail
larmor=$1
shift_model=$2
align_model=$3
for m in "$shift_model" "$align_model"; do
  if [[ ! -f $m ]]; then
    echo "skipped: no model at $m"
    exit 77
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/out "$tmp"/err; do [[ -f $f ]] && { echo "--- $f"; head -40 "$f"; }; done; exit 1; }

# Ethyl benzoate, 7 distinct 13C peaks with multiplicities (the ortho and meta pairs are one peak each).
printf '170.1 S\n132.8 D\n130.6 S\n129.6 D\n128.3 D\n60.9 T\n14.3 Q\n' >"$tmp/eb.txt"
for method in predict align both; do
  model=$shift_model
  [[ $method == align ]] && model=$align_model
  extra=()
  [[ $method == both ]] && extra=(--align-model "$align_model")
  "$larmor" assign --method $method --model "$model" "${extra[@]}" --smiles 'CCOC(=O)c1ccccc1' --peaks "$tmp/eb.txt" --format csv \
    >"$tmp/out" 2>"$tmp/err" || fail "$method: exited $?"
  [[ $(head -1 "$tmp/out") == peak_ppm,multiplicity,atom_index,equivalent_atoms,predicted_ppm,error_ppm,confidence ]] ||
    fail "$method: CSV header"
  [[ $(wc -l <"$tmp/out") == 8 ]] || fail "$method: one row per peak"
  # the multiplicities pin the CH3 (atom 0), the CH2 (atom 1) and the C=O (atom 3, the only S above 150 ppm
  # is forced onto one of the two quaternary carbons; both methods must put it on the carbonyl)
  grep -q '^14.30,Q,0,' "$tmp/out" || fail "$method: CH3 peak not on atom 0"
  grep -q '^60.90,T,1,' "$tmp/out" || fail "$method: CH2 peak not on atom 1"
  grep -q '^170.10,S,3,' "$tmp/out" || fail "$method: C=O peak not on atom 3"
  # k best: two ranked assignments
  "$larmor" assign --method $method --model "$model" "${extra[@]}" --smiles 'CCOC(=O)c1ccccc1' --peaks "$tmp/eb.txt" --format json --k 2 \
    >"$tmp/out" 2>"$tmp/err" || fail "$method --k 2: exited $?"
  grep -q '"rank":2' "$tmp/out" || fail "$method: no second assignment"
done

# Bad peak lists: empty, non-numeric, more peaks than carbons. Non-zero exit, the file named.
: >"$tmp/empty.txt"
printf '170.1\nabc\n' >"$tmp/text.txt"
printf '10\n20\n30\n40\n' >"$tmp/many.txt"
for bad in empty text many; do
  if "$larmor" assign --method align --model "$align_model" --smiles CCO --peaks "$tmp/$bad.txt" >"$tmp/out" 2>"$tmp/err"; then
    fail "$bad peak list exited 0"
  fi
  grep -q "$bad.txt" "$tmp/err" || fail "$bad peak list: the error does not name the file"
done
# A missing alignment model is named.
if "$larmor" assign --method align --model "$tmp/none.safetensors" --smiles CCO --peaks "$tmp/many.txt" >"$tmp/out" 2>"$tmp/err"; then
  fail "missing model exited 0"
fi
printf '60\n18\n' >"$tmp/ok.txt"
if "$larmor" assign --method align --model "$tmp/none.safetensors" --smiles CCO --peaks "$tmp/ok.txt" >"$tmp/out" 2>"$tmp/err"; then
  fail "missing model exited 0"
fi
grep -q 'none.safetensors' "$tmp/err" || fail "missing model: the error does not name the file"
if "$larmor" assign --method both --model "$shift_model" --align-model "$tmp/none.safetensors" --smiles CCO \
  --peaks "$tmp/ok.txt" >"$tmp/out" 2>"$tmp/err"; then
  fail "both: missing alignment model exited 0"
fi
grep -q 'none.safetensors' "$tmp/err" || fail "both: missing alignment model not named"
if "$larmor" assign --method both --combine-weight -1 --smiles CCO --peaks "$tmp/ok.txt" >"$tmp/out" 2>"$tmp/err"; then
  fail "negative --combine-weight exited 0"
fi
echo "assign CLI: all checks passed"
