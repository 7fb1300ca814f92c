// Peak lists as the assignment, alignment-index and retrieval tests write them: one peak from a shift and an
// optional multiplicity, or a whole list from (shift, number of attached H) pairs, the form in which the
// fixtures compute their synthetic spectra. Header-only so the tests with and without Open Babel share it.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "chem/nmr.h"

namespace larmor::test {

inline chem::Peak peak(double ppm, int8_t mult = chem::kMultUnknown) {
  chem::Peak p;
  p.shift = ppm;
  p.mult = mult;
  return p;
}

// (shift ppm, multiplicity = attached H) pairs -> peaks, in the same order.
inline std::vector<chem::Peak> peaks_of(const std::vector<std::pair<double, int>>& shift_mult) {
  std::vector<chem::Peak> out;
  for (const auto& [ppm, mult] : shift_mult) out.push_back(peak(ppm, static_cast<int8_t>(mult)));
  return out;
}

}  // namespace larmor::test
