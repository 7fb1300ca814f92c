// User peak lists (format in peak_list.h). Strict on purpose: a peak list typed by hand is short, and a silently
// dropped or misread line would change a prediction or a search result without anyone noticing.
#include "chem/peak_list.h"

#include <cmath>

#include "chem/nmrshiftdb.h"
#include "engine/error.h"

namespace larmor::chem {

namespace {

std::vector<std::string_view> peak_fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  auto sep = [](char c) { return c == ' ' || c == '\t' || c == ',' || c == ';' || c == '\r'; };
  while (i < line.size()) {
    while (i < line.size() && sep(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !sep(line[i])) ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::vector<Peak> parse_peak_list(TextReader& in) {
  std::vector<Peak> peaks;
  std::string line;
  while (in.next_line(line)) {
    std::string_view text = line;
    if (size_t hash = text.find('#'); hash != std::string_view::npos) text = text.substr(0, hash);
    std::vector<std::string_view> f = peak_fields(text);
    if (f.empty()) continue;
    auto fail = [&](const std::string& what) { throw Error(in.where() + ": " + what); };
    if (f.size() > 3)
      fail("expected 'shift [multiplicity] [intensity]', found " + std::to_string(f.size()) + " fields");
    Peak p;
    if (!parse_double(f[0], p.shift)) fail("non-numeric shift '" + std::string(f[0]) + "'");
    size_t next = 1;
    if (f.size() >= 2) {
      int8_t mult = parse_carbon_multiplicity(f[1]);
      int64_t count = -1;
      double number = 0;
      if (mult != kMultUnknown) {
        p.mult = mult;
        next = 2;
      } else if (parse_int64(f[1], count) && f[1].find('.') == std::string_view::npos) {
        if (count < 0 || count > 3) {
          if (f.size() == 3) fail("multiplicity " + std::string(f[1]) + " out of range (attached H 0..3)");
          // "128.5 100": an integer intensity without multiplicity.
          p.intensity = static_cast<double>(count);
        } else {
          p.mult = static_cast<int8_t>(count);
        }
        next = 2;
      } else if (parse_double(f[1], number) && f.size() == 2) {
        p.intensity = number;
        next = 2;
      } else {
        fail("unknown multiplicity '" + std::string(f[1]) + "' (use S/D/T/Q, C/CH/CH2/CH3 or 0..3)");
      }
    }
    if (next < f.size()) {
      double intensity = 0;
      if (!parse_double(f[next], intensity)) fail("non-numeric intensity '" + std::string(f[next]) + "'");
      p.intensity = intensity;
    }
    peaks.push_back(p);
  }
  if (peaks.empty()) throw Error(in.name() + ": empty peak list (no shifts found)");
  return peaks;
}

std::vector<Peak> parse_peak_list_text(std::string_view text, std::string name) {
  TextReader in = TextReader::from_string(std::move(name), std::string(text));
  return parse_peak_list(in);
}

std::vector<Peak> read_peak_list_file(const std::string& path) {
  TextReader in = TextReader::open(path);
  return parse_peak_list(in);
}

}  // namespace larmor::chem
