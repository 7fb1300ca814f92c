// A user's peak list for the CLI (`larmor predict --peaks file`, spectrum-to-structure search): one shift per
// line, optionally followed by a multiplicity and an intensity, e.g.
//
//   # 13C of ethyl acetate, CDCl3
//   171.1  S
//   60.4   T   1.0
//   21.0   q
//   14.2   3          # multiplicity as attached-H count 0..3
//
// Fields are separated by whitespace, commas or semicolons; '#' starts a comment; blank lines are ignored.
// The multiplicity is S/D/T/Q (any case), C/CH/CH2/CH3, or 0..3 = attached H. A second field that is a number
// other than the integers 0..3 is taken as the intensity. Kept deliberately small and strict: every problem is
// a larmor::Error "<name>:<line>: ..." (non-numeric shift, unknown multiplicity, too many fields, empty list).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "chem/nmr.h"
#include "chem/text_input.h"

namespace larmor::chem {

std::vector<Peak> parse_peak_list(TextReader& in);
std::vector<Peak> parse_peak_list_text(std::string_view text, std::string name = "peaks");
std::vector<Peak> read_peak_list_file(const std::string& path);  // "-" = stdin; .gz/.xz accepted

}  // namespace larmor::chem
