// Names of nuclei and solvents, and the mapping of free-text solvent names onto the small solvent vocabulary.
//
// Solvent text comes from NMRShiftDB2 ("Dimethylsulphoxide-D6 (DMSO-D6, C2D6SO))", "Acetone-D6 ((CD3)2CO)"),
// from literature ("d6-DMSO", "Chloroform-d", "[D6]DMSO") and from users. Rather than a table of exact
// spellings we look for keywords of each class in the lower-cased text: one class found -> that class,
// several (mixtures such as "CDCl3 + CD3OD (9:1)") -> Other, none -> Unknown for the "not reported" spellings
// and Other for any other named solvent (CCl4, pyridine-d5, THF-d8, ...). Non-deuterated names map onto the
// deuterated class (CHCl3 -> CDCl3, water -> D2O): the class stands for the solvent environment.
#include "chem/nmr.h"

#include <array>
#include <string>
#include <utility>

#include "chem/text_input.h"
#include "engine/error.h"

namespace larmor::chem {

const char* nucleus_name(Nucleus n) {
  switch (n) {
    case Nucleus::H1: return "1H";
    case Nucleus::C13: return "13C";
    case Nucleus::F19: return "19F";
    case Nucleus::P31: return "31P";
  }
  return "?";
}

std::optional<Nucleus> parse_nucleus(std::string_view s) {
  s = trim(s);
  if (s.size() < 2 || s.size() > 3) return std::nullopt;
  char letter = s.back();
  if (letter >= 'a' && letter <= 'z') letter = static_cast<char>(letter - 'a' + 'A');
  std::string_view mass = s.substr(0, s.size() - 1);
  if (mass == "1" && letter == 'H') return Nucleus::H1;
  if (mass == "13" && letter == 'C') return Nucleus::C13;
  if (mass == "19" && letter == 'F') return Nucleus::F19;
  if (mass == "31" && letter == 'P') return Nucleus::P31;
  return std::nullopt;
}

int nucleus_element(Nucleus n) {
  switch (n) {
    case Nucleus::H1: return 1;
    case Nucleus::C13: return 6;
    case Nucleus::F19: return 9;
    case Nucleus::P31: return 15;
  }
  return 0;
}

const char* solvent_name(Solvent s) {
  switch (s) {
    case Solvent::Unknown: return "unknown";
    case Solvent::CDCl3: return "CDCl3";
    case Solvent::DMSO: return "DMSO-d6";
    case Solvent::CD3OD: return "CD3OD";
    case Solvent::Acetone: return "acetone-d6";
    case Solvent::D2O: return "D2O";
    case Solvent::C6D6: return "C6D6";
    case Solvent::Other: return "other";
  }
  return "unknown";
}

namespace {

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// `key` occurs in `text` not glued to a preceding letter (so "benzene" does not match "chlorobenzene", "h2o"
// not "ch2o") and, when `whole_word`, not followed by a letter ("aceton" must not match "acetonitrile").
bool has_key(const std::string& text, std::string_view key, bool whole_word = false) {
  for (size_t pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + 1)) {
    if (pos > 0 && is_letter(text[pos - 1])) continue;
    size_t after = pos + key.size();
    if (whole_word && after < text.size() && is_letter(text[after])) continue;
    return true;
  }
  return false;
}

}  // namespace

std::optional<Solvent> parse_solvent_flag(std::string_view text) {
  std::string k;
  for (char c : text) k += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  for (int v = 0; v < kNumSolvents; ++v) {
    std::string name = solvent_name(static_cast<Solvent>(v));
    for (char& c : name)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (k == name) return static_cast<Solvent>(v);
  }
  static const std::pair<const char*, Solvent> kAliases[] = {
      {"", Solvent::Unknown},           {"none", Solvent::Unknown},         {"chloroform", Solvent::CDCl3},
      {"chloroform-d", Solvent::CDCl3}, {"dmso", Solvent::DMSO},            {"methanol-d4", Solvent::CD3OD},
      {"methanol", Solvent::CD3OD},     {"meod", Solvent::CD3OD},           {"acetone", Solvent::Acetone},
      {"water", Solvent::D2O},          {"benzene-d6", Solvent::C6D6},      {"benzene", Solvent::C6D6}};
  for (const auto& [alias, v] : kAliases)
    if (k == alias) return v;
  return std::nullopt;
}

Solvent solvent_flag_or_throw(std::string_view text, const std::string& who) {
  if (const std::optional<Solvent> v = parse_solvent_flag(text)) return *v;
  throw Error(who + ": unknown solvent '" + std::string(text) +
              "' (CDCl3, DMSO-d6, CD3OD, acetone-d6, D2O, C6D6, other or unknown)");
}

Solvent parse_solvent(std::string_view text) {
  std::string s(trim(text));
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  static const char* const kUnreported[] = {"",        "unreported",   "unknown",      "n/a",          "na",
                                            "none",    "not reported", "not given",    "not specified", "not mentioned",
                                            "-",       "?",            "not mentioned.", "nan"};
  for (const char* u : kUnreported)
    if (s == u) return Solvent::Unknown;

  std::array<bool, kNumSolvents> found{};
  auto mark = [&](Solvent c) { found[static_cast<size_t>(c)] = true; };
  if (has_key(s, "cdcl3") || s.find("chloroform") != std::string::npos || has_key(s, "chcl3") ||
      has_key(s, "cdci3"))  // "CDCI3": a common typo/OCR reading of CDCl3
    mark(Solvent::CDCl3);
  if (s.find("dmso") != std::string::npos || s.find("dimethylsulfoxide") != std::string::npos ||
      s.find("dimethyl sulfoxide") != std::string::npos || s.find("dimethylsulphoxide") != std::string::npos ||
      s.find("dimethyl sulphoxide") != std::string::npos || s.find("(cd3)2so") != std::string::npos ||
      has_key(s, "c2d6so"))
    mark(Solvent::DMSO);
  if (has_key(s, "cd3od") || has_key(s, "methanol") || has_key(s, "metanol") || has_key(s, "meod") || has_key(s, "meoh", true) ||
      has_key(s, "ch3od") || has_key(s, "cd3oh"))
    mark(Solvent::CD3OD);
  if (has_key(s, "aceton", true) || has_key(s, "acetone") || s.find("(cd3)2co") != std::string::npos ||
      has_key(s, "cd3cocd3"))
    mark(Solvent::Acetone);
  if (has_key(s, "d2o") || has_key(s, "h2o") || has_key(s, "water") || s.find("deuteriumoxid") != std::string::npos ||
      s.find("deuterium oxide") != std::string::npos)
    mark(Solvent::D2O);
  if (has_key(s, "c6d6") || has_key(s, "benzene") || has_key(s, "c6h6") || has_key(s, "benzol", true))
    mark(Solvent::C6D6);

  int classes = 0;
  Solvent only = Solvent::Other;
  for (int c = 0; c < kNumSolvents; ++c)
    if (found[static_cast<size_t>(c)]) {
      ++classes;
      only = static_cast<Solvent>(c);
    }
  return classes == 1 ? only : Solvent::Other;
}

}  // namespace larmor::chem
