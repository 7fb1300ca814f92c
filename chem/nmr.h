// NMR observations as plain data: nuclei, solvents, peaks and spectra, independent of where they were
// read from (NMRShiftDB2 SD tags, the pb spectra table, literature text, a user's peak list).
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace larmor::chem {

enum class Nucleus : uint8_t { H1 = 0, C13 = 1, F19 = 2, P31 = 3 };
inline constexpr int kNumNuclei = 4;
const char* nucleus_name(Nucleus n);                       // "1H", "13C", "19F", "31P"
std::optional<Nucleus> parse_nucleus(std::string_view s);  // "13C", "1H", "19F", "31P" (else nullopt)
int nucleus_element(Nucleus n);                            // 1, 6, 9, 15

// The solvent vocabulary of MODELS/data README: free-text names map onto these classes.
enum class Solvent : uint8_t { Unknown = 0, CDCl3, DMSO, CD3OD, Acetone, D2O, C6D6, Other };
inline constexpr int kNumSolvents = 8;
const char* solvent_name(Solvent s);       // "unknown", "CDCl3", "DMSO-d6", "CD3OD", "acetone-d6", "D2O", "C6D6", "other"
Solvent parse_solvent(std::string_view text);  // "Chloroform-D1 (CDCl3)", "DMSO", "[D6]DMSO", "Unreported", ...
// A solvent given by a user on the command line: strict, so that a typo never silently selects another
// solvent. The canonical names of solvent_name() and a few common spellings ("chloroform", "dmso",
// "methanol-d4", "meod", "acetone", "water", "benzene-d6", "none"), case-insensitive; nullopt otherwise.
std::optional<Solvent> parse_solvent_flag(std::string_view text);
// parse_solvent_flag for a command: throws larmor::Error "<who>: unknown solvent '<text>' (<the choices>)".
Solvent solvent_flag_or_throw(std::string_view text, const std::string& who);

// 13C multiplicity from an off-resonance/DEPT spectrum = number of attached H: S=0, D=1, T=2, Q=3.
inline constexpr int8_t kMultUnknown = -1;

struct Peak {
  double shift = NAN;       // ppm
  int8_t mult = kMultUnknown;  // 13C: attached H count (0..3); 1H: see pattern
  double intensity = NAN;   // as given (NMRShiftDB2 intensity, 1H integral), NaN if absent
  int32_t atom = -1;        // 0-based atom index in the source record's atom order; -1 when unassigned
  std::string pattern;      // 1H multiplicity text as given ("s", "dd", "m", "br s"); empty if none
  double shift_hi = NAN;    // upper end when the peak is a range ("7.26-7.31"); NaN otherwise
};

struct Spectrum {
  Nucleus nucleus = Nucleus::C13;
  int32_t number = 0;              // spectrum number within the record ("Spectrum 13C 1" -> 1)
  Solvent solvent = Solvent::Unknown;
  std::string solvent_text;        // as given
  double temperature_K = NAN;
  double field_MHz = NAN;
  bool predicted = false;          // a program predicted/calculated it: never experimental truth
  std::string program;             // the predicting program, when known
  std::vector<Peak> peaks;
};

}  // namespace larmor::chem
