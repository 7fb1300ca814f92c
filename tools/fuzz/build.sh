#!/usr/bin/env bash
# Builds the libFuzzer target for larmor's Open-Babel-free parsers and seeds its corpus (see README.md).
#   tools/fuzz/build.sh                 build into build-fuzz/ (or $FUZZ_BUILD_DIR)
#   tools/fuzz/build.sh --run 60        build, then fuzz for 60 s with all seeds
# Needs clang++ with libFuzzer (Debian: apt-get install -y clang libclang-rt-14-dev), zlib, optionally liblzma.
# Deliberately not part of the CMake build: it needs clang and sanitizer runtimes the normal build does not.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
CXX="${FUZZ_CXX:-clang++}"
if ! command -v "$CXX" >/dev/null; then
  echo "build.sh: $CXX not found; on Debian: apt-get install -y clang libclang-rt-14-dev" >&2
  exit 1
fi
mkdir -p "$OUT/corpus"

LZMA_FLAGS=()
LZMA_LIBS=()
if echo '#include <lzma.h>' | "$CXX" -x c++ -fsyntax-only - 2>/dev/null; then
  LZMA_FLAGS=(-DLARMOR_WITH_LZMA)
  LZMA_LIBS=(-llzma)
fi

SOURCES=(chem/text_input.cpp chem/nmr.cpp chem/nmrshiftdb.cpp chem/peak_text.cpp chem/peak_list.cpp tools/fuzz/fuzz_parsers.cpp)
cd "$ROOT"
"$CXX" -std=c++20 -O1 -g -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$ROOT" "${LZMA_FLAGS[@]}" "${SOURCES[@]}" -lz "${LZMA_LIBS[@]}" -o "$OUT/fuzz_parsers"
echo "built $OUT/fuzz_parsers"

# Seeds: the hand-written fixtures and a few literature-style strings, each behind the selector byte of the
# parser it feeds (input[0] % 6: 0 tag values, 1 SD records, 2 pb rows, 3 peak text, 4 peak list, 5 input layer).
seed() {  # seed NAME SELECTOR FILE
  { printf "\\x$(printf '%02x' "$2")"; cat "$3"; } > "$OUT/corpus/$1"
}
seed_text() {  # seed_text NAME SELECTOR TEXT
  { printf "\\x$(printf '%02x' "$2")"; printf '%s' "$3"; } > "$OUT/corpus/$1"
}
FIX="$ROOT/tests/chem/fixtures"
seed sd_sample 1 "$FIX/nmrshiftdb_sample.sdf"
seed pb_sample 2 "$FIX/pb_spectra_sample.tsv"
seed p31_sample 2 "$FIX/pb_31p_sample.tsv"
seed peak_list 4 "$FIX/peak_list_ethyl_acetate.txt"
seed input_sdf 5 "$FIX/nmrshiftdb_sample.sdf"
gzip -c "$FIX/pb_spectra_sample.tsv" > "$OUT/pb.gz" && seed input_gz 5 "$OUT/pb.gz" && rm -f "$OUT/pb.gz"
if command -v xz >/dev/null; then
  xz -c "$FIX/pb_spectra_sample.tsv" > "$OUT/pb.xz" && seed input_xz 5 "$OUT/pb.xz" && rm -f "$OUT/pb.xz"
fi
seed_text tag_c13 0 '8.1;0.0Q;3|9.0;0.0Q;19|13.5;0.0;9|108.4;0.0D;0|'
seed_text tag_h1 0 '7.26;0.0dd;4|1.25;0.0br s;7|'
seed_text tag_solvent 0 '0:Chloroform-D1 (CDCl3) 1:Unreported 2:Methanol-D4 (CD3OD)'
seed_text tag_field 0 '0:100 Mhz 1:Unreported'
seed_text text_c13 3 '13C NMR (101 MHz, CDCl3) δ 170.1, 133.5 (q, J = 32.4 Hz), 72.6 (2C), 55.3 (CH3), 22.2 × 2.'
seed_text text_h1 3 '1H NMR (400 MHz, DMSO-d6) δ 7.52–7.48 (m, 2H), 7.83 (dd, J = 8.0, 1.6 Hz, 1H), 5.38 (br. s, 1H), −0.05 (s, 9H)'
seed_text text_prose 3 'The 1H and 13C NMR data showed (δH 4.27, 4.44; δC 43.3, 57.7) and H2 (1H, m) 2.5; 8.16, 1H, s, HC2. HRMS m/z 92.06'
seed_text csv 5 $'id,text\n1,"a, ""b""\nc"\n'
echo "seeded $(ls "$OUT/corpus" | wc -l) corpus files in $OUT/corpus"

if [[ "${1:-}" == "--run" ]]; then
  SECONDS_TO_RUN="${2:-60}"
  mkdir -p "$OUT/artifacts"
  "$OUT/fuzz_parsers" -max_total_time="$SECONDS_TO_RUN" -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" \
    "$OUT/corpus"
fi
