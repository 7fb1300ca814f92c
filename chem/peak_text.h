// Literature NMR peak text -> nucleus, field, solvent and peak list, e.g.
//   "13C NMR (101 MHz, CDCl3) δ 170.1, 133.5 (q, J = 32.4 Hz), 72.6 (2C), ..."
//   "1H NMR (400 MHz, DMSO-d6) δ 7.26–7.31 (m, 2H), 3.78 (dq, J = 9.7, 6.1 Hz, 1H), 1.25 (d, 3H)"
//   "1H NMR (CD3OD, ppm): H2 (1H, m) 2.5; H7 (3H, s) 1.7"      "13C-NMR: 31.72 (s), 45.50 (s)"
//
// Literature text is written by hand in countless styles (unicode dashes and minus signs, δ or its
// mis-encoding ð, thin spaces, integrals "3H"/"3 H", multiplicities "br. s"/"dd", couplings "J = 8.0, 1.6
// Hz"/"2JCF = 32.8 Hz", DEPT labels "(CH3)", carbon counts "(2C)", assignments "(C-1′)", prose). So the
// parser is heuristic but conservative: the text is normalised to ASCII, split into top-level fragments at
// commas/semicolons/"and"/sentence ends (parenthesised groups stay with their fragment), and a fragment
// yields a peak only for a number that stands alone (not "H2", "13C", "400 MHz", "J = 8", "0.5 mL", "9:1").
// Whatever it cannot interpret is returned as a warning, never thrown: any input is safe to pass.
//
// Peaks: shift (range: shift = low end, shift_hi = high end); 1H: pattern = multiplicity ("dd", "br s"),
// intensity = integral; 13C: mult = attached H from DEPT labels (C/CH/CH2/CH3), pattern = coupling
// multiplicity (C-F "q"), intensity = carbon count "(2C)". Atom indices stay -1 (unassigned).
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chem/nmr.h"

namespace larmor::chem {

struct PeakText {
  std::optional<Nucleus> nucleus;  // the caller's `expected`, else from the text ("13C NMR", "1H-NMR", "δC")
  double field_MHz = NAN;
  Solvent solvent = Solvent::Unknown;
  std::string solvent_text;        // the fragment the solvent was read from
  std::vector<Peak> peaks;
  std::vector<std::string> warnings;  // unparsed fragments and suspicious values, for reports
};

// `expected`: the nucleus the caller wants (e.g. from a CSV column); PeakText::nucleus is then `expected`, and
// shifts the text attributes to another nucleus (by its header, or "δH"/"δC" markers in prose describing both)
// are skipped; a header naming another nucleus also gives a warning. Without it, the text's header decides.
PeakText parse_peak_text(std::string_view text, std::optional<Nucleus> expected = std::nullopt);

// Text normalisation used by the parser, exposed for tests: UTF-8 dashes/minus -> '-', unicode spaces -> ' ',
// primes -> '\'', '×' -> 'x', δ/ð -> kDeltaMark, Δ -> kBigDeltaMark, '°' -> kDegreeMark, other non-ASCII
// characters and invalid bytes -> kOpaqueMark.
inline constexpr char kDeltaMark = '\x01';
inline constexpr char kBigDeltaMark = '\x02';
inline constexpr char kDegreeMark = '\x03';
inline constexpr char kOpaqueMark = '\x04';
std::string normalise_peak_text(std::string_view utf8);

}  // namespace larmor::chem
