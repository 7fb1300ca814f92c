// NMRShiftDB2 SD records and pb tables without Open Babel (see nmrshiftdb.h).
//
// Built as small pure functions on one value/row (what the tests and the fuzz target call) plus thin
// streaming loops over TextReader, so a 75k-row table is read in one pass with constant memory and every
// rejected row is reported with its line number instead of stopping the run.
#include "chem/nmrshiftdb.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "engine/error.h"

namespace larmor::chem {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string quoted(std::string_view s, size_t max_len = 60) {
  std::string out = "'";
  if (s.size() > max_len) {
    out.append(s.substr(0, max_len));
    out += "...";
  } else {
    out.append(s);
  }
  out += "'";
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

}  // namespace

// ---- SD records ---------------------------------------------------------------------------------------------

bool SdRecordReader::next(SdRecord& record) {
  record = SdRecord{};
  std::string line;
  bool in_molblock = true;
  bool saw_content = false;
  std::string* value = nullptr;  // data item being read, if any
  bool value_started = false;
  size_t molblock_lines = 0;
  auto note = [&](const std::string& what) {
    if (record.error.empty()) record.error = "line " + std::to_string(in_.line_number()) + ": " + what;
  };
  while (in_.next_line(line)) {
    if (record.first_line == 0) record.first_line = in_.line_number();
    if (starts_with(line, "$$$$")) {
      if (!saw_content) note("empty record");  // a stray "$$$$" with nothing (or blank lines) before it
      if (in_molblock) note("record ends before 'M  END'");
      record.index = ++count_;
      return true;
    }
    if (!trim(line).empty()) saw_content = true;
    if (in_molblock) {
      // A data header where the molblock should still run: the molblock was cut short.
      if (!line.empty() && line[0] == '>' && line.find('<') != std::string::npos && molblock_lines >= 4) {
        note("data header before 'M  END'");
        in_molblock = false;
      } else {
        if (record.molblock.empty()) record.title = line;
        record.molblock += line;
        record.molblock += '\n';
        ++molblock_lines;
        if (starts_with(line, "M  END")) in_molblock = false;
        continue;
      }
    }
    if (!line.empty() && line[0] == '>') {
      size_t open = line.find('<');
      size_t close = open == std::string::npos ? std::string::npos : line.find('>', open + 1);
      if (close == std::string::npos) {
        note("data header without <name>: " + quoted(line));
        value = nullptr;
        continue;
      }
      std::string name = line.substr(open + 1, close - open - 1);
      value = &record.tags[name];
      value->clear();
      value_started = false;
    } else if (trim(line).empty()) {
      value = nullptr;  // a blank line ends the data item
    } else if (value != nullptr) {
      if (value_started) *value += '\n';
      *value += line;
      value_started = true;
    }
  }
  if (!saw_content) return false;  // only blank lines after the last "$$$$"
  if (in_molblock) note("record ends before 'M  END'");
  record.index = ++count_;
  return true;
}

// ---- SD spectrum tags ---------------------------------------------------------------------------------------

std::optional<SpectrumTagName> parse_spectrum_tag_name(std::string_view name) {
  name = trim(name);
  if (!starts_with(name, "Spectrum ")) return std::nullopt;
  std::string_view rest = trim(name.substr(9));
  size_t cut = rest.find_last_of(" \t");
  int64_t number = 0;
  if (cut == std::string_view::npos || !parse_int64(rest.substr(cut + 1), number) || number < 0 ||
      number > 1000000)
    throw Error("SD item " + quoted(name) + ": expected 'Spectrum <nucleus> <number>'");
  SpectrumTagName out;
  out.nucleus = std::string(trim(rest.substr(0, cut)));
  out.number = static_cast<int32_t>(number);
  if (out.nucleus.empty()) throw Error("SD item " + quoted(name) + ": no nucleus before the spectrum number");
  return out;
}

int8_t parse_carbon_multiplicity(std::string_view text) {
  text = trim(text);
  if (text.size() == 1) {
    switch (text[0]) {
      case 'S': case 's': return 0;
      case 'D': case 'd': return 1;
      case 'T': case 't': return 2;
      case 'Q': case 'q': return 3;
      default: return kMultUnknown;
    }
  }
  if (text == "C") return 0;
  if (text == "CH") return 1;
  if (text == "CH2") return 2;
  if (text == "CH3") return 3;
  return kMultUnknown;
}

std::vector<Peak> parse_spectrum_peaks(std::string_view value, Nucleus nucleus, std::string_view context) {
  // Values may wrap over several lines in some exports: line breaks carry no meaning here.
  std::string compact;
  compact.reserve(value.size());
  for (char c : value)
    if (c != '\n' && c != '\r') compact += c;
  std::vector<Peak> peaks;
  size_t entry_no = 0;
  for (std::string_view entry : split_fields(compact, '|')) {
    ++entry_no;
    entry = trim(entry);
    if (entry.empty()) continue;  // trailing '|' (or '||')
    auto where = [&]() { return std::string(context) + ": peak " + std::to_string(entry_no) + " " + quoted(entry); };
    std::vector<std::string_view> f = split_fields(entry, ';');
    if (f.size() != 3) throw Error(where() + ": expected 'shift;intensity[mult];atomIndex'");
    Peak p;
    if (!parse_double(f[0], p.shift)) throw Error(where() + ": non-numeric shift");
    // Intensity, then an optional multiplicity: "0.0Q", "1.0", "0.0dd", "0.0br s".
    std::string_view mid = trim(f[1]);
    size_t num_end = 0;
    while (num_end < mid.size() && (is_digit(mid[num_end]) || mid[num_end] == '.' || mid[num_end] == '-' ||
                                    (num_end == 0 && mid[num_end] == '+')))
      ++num_end;
    if (num_end > 0) {
      double intensity = 0;
      if (!parse_double(mid.substr(0, num_end), intensity)) throw Error(where() + ": non-numeric intensity");
      p.intensity = intensity;
    }
    std::string_view mult = trim(mid.substr(num_end));
    if (!mult.empty()) {
      if (nucleus == Nucleus::C13) {
        p.mult = parse_carbon_multiplicity(mult);
        if (p.mult == kMultUnknown) p.pattern = std::string(mult);
      } else {
        p.pattern = std::string(mult);
      }
    }
    int64_t atom = 0;
    if (!parse_int64(f[2], atom)) throw Error(where() + ": atom index is not an integer");
    if (atom < 0 || atom > 1000000) throw Error(where() + ": atom index out of range");
    p.atom = static_cast<int32_t>(atom);
    peaks.push_back(std::move(p));
  }
  return peaks;
}

std::map<int32_t, std::string> parse_indexed_tag(std::string_view value, std::string_view tag,
                                                 const std::set<int32_t>* valid_numbers) {
  std::map<int32_t, std::string> out;
  value = trim(value);
  if (value.empty()) return out;
  // Reads "<digits>:" at `pos`; returns the number or -1.
  auto key_at = [&](size_t pos, size_t& after) -> int64_t {
    size_t i = pos;
    while (i < value.size() && is_digit(value[i]) && i - pos < 9) ++i;
    if (i == pos || i >= value.size() || value[i] != ':') return -1;
    after = i + 1;
    return std::strtoll(std::string(value.substr(pos, i - pos)).c_str(), nullptr, 10);
  };
  size_t after = 0;
  int64_t key = key_at(0, after);
  if (key < 0)
    throw Error("SD item <" + std::string(tag) + ">: expected '<spectrum number>:<value>' entries, got " + quoted(value));
  size_t value_start = after;
  for (size_t i = after; i <= value.size(); ++i) {
    bool boundary = i == value.size();
    size_t next_after = 0;
    int64_t next_key = -1;
    if (!boundary && is_digit(value[i]) && is_space(value[i - 1])) {
      next_key = key_at(i, next_after);
      if (next_key >= 0) {
        bool known = valid_numbers == nullptr || valid_numbers->count(static_cast<int32_t>(next_key)) > 0;
        bool repeat = out.count(static_cast<int32_t>(next_key)) > 0 || next_key == key;
        boundary = known && !repeat;
      }
    }
    if (!boundary) continue;
    out[static_cast<int32_t>(key)] = std::string(trim(value.substr(value_start, i - value_start)));
    if (i == value.size()) break;
    key = next_key;
    value_start = next_after;
    i = next_after - 1;
  }
  return out;
}

double parse_meta_number(std::string_view text) {
  text = trim(text);
  size_t end = 0;
  while (end < text.size() && (is_digit(text[end]) || text[end] == '.' || (end == 0 && (text[0] == '-' || text[0] == '+'))))
    ++end;
  double v = 0;
  if (end == 0 || !parse_double(text.substr(0, end), v) || !(v > 0)) return NAN;
  return v;
}

std::vector<Spectrum> spectra_from_sd_tags(const std::map<std::string, std::string>& tags,
                                           std::vector<std::string>* skipped) {
  struct Found {
    const std::string* name;
    const std::string* value;
    SpectrumTagName tag;
  };
  std::vector<Found> found;
  std::set<int32_t> numbers;
  for (const auto& [name, value] : tags) {
    std::optional<SpectrumTagName> st = parse_spectrum_tag_name(name);
    if (!st) continue;
    numbers.insert(st->number);
    found.push_back({&name, &value, *st});
  }
  auto indexed = [&](const char* tag) {
    auto it = tags.find(tag);
    return it == tags.end() ? std::map<int32_t, std::string>{} : parse_indexed_tag(it->second, tag, &numbers);
  };
  const auto solvents = indexed("Solvent");
  const auto temperatures = indexed("Temperature [K]");
  const auto fields = indexed("Field Strength [MHz]");
  const auto programs = indexed("Program");
  const auto nmr_programs = indexed("NMRProgram");

  std::vector<Spectrum> out;
  for (const Found& f : found) {
    std::optional<Nucleus> nucleus = parse_nucleus(f.tag.nucleus);
    if (!nucleus) {
      if (skipped) skipped->push_back(*f.name + ": nucleus not supported");
      continue;
    }
    Spectrum s;
    s.nucleus = *nucleus;
    s.number = f.tag.number;
    s.peaks = parse_spectrum_peaks(*f.value, *nucleus, "SD item <" + *f.name + ">");
    if (s.peaks.empty()) {
      if (skipped) skipped->push_back(*f.name + ": empty spectrum");
      continue;
    }
    if (auto it = solvents.find(s.number); it != solvents.end()) {
      s.solvent_text = it->second;
      s.solvent = parse_solvent(it->second);
    }
    if (auto it = temperatures.find(s.number); it != temperatures.end()) s.temperature_K = parse_meta_number(it->second);
    if (auto it = fields.find(s.number); it != fields.end()) s.field_MHz = parse_meta_number(it->second);
    for (const auto* progs : {&programs, &nmr_programs})
      if (auto it = progs->find(s.number); it != progs->end()) {
        s.predicted = true;
        if (s.program.empty()) s.program = it->second;
      }
    out.push_back(std::move(s));
  }
  std::stable_sort(out.begin(), out.end(), [](const Spectrum& a, const Spectrum& b) { return a.number < b.number; });
  return out;
}

std::optional<int64_t> nmrshiftdb_id(const std::map<std::string, std::string>& tags) {
  auto it = tags.find("nmrshiftdb2 ID");
  if (it == tags.end()) return std::nullopt;
  int64_t id = 0;
  if (!parse_int64(it->second, id)) throw Error("SD item <nmrshiftdb2 ID>: not an integer: " + quoted(it->second));
  return id;
}

// ---- pb export tables ---------------------------------------------------------------------------------------

PbSpectraColumns parse_pb_spectra_header(std::string_view header) {
  PbSpectraColumns c;
  std::vector<std::string_view> names = split_fields(trim(header), '\t');
  c.count = names.size();
  for (size_t i = 0; i < names.size(); ++i) {
    std::string_view n = trim(names[i]);
    int col = static_cast<int>(i);
    if (n == "nmrshiftdb2_id") c.id = col;
    else if (n == "inchikey") c.inchikey = col;
    else if (n == "smiles") c.smiles = col;
    else if (n == "nucleus") c.nucleus = col;
    else if (n == "spectrum_no") c.spectrum_no = col;
    else if (n == "solvent") c.solvent = col;
    else if (n == "temperature_K") c.temperature = col;
    else if (n == "field_MHz") c.field = col;
    else if (n == "assignment_method") c.assignment = col;
    else if (n == "program_if_predicted") c.program = col;
    else if (n == "n_peaks") c.n_peaks = col;
    else if (starts_with(n, "peaks")) c.peaks = col;
  }
  const std::pair<int, const char*> required[] = {
      {c.id, "nmrshiftdb2_id"}, {c.inchikey, "inchikey"},       {c.smiles, "smiles"},
      {c.nucleus, "nucleus"},   {c.spectrum_no, "spectrum_no"}, {c.solvent, "solvent"},
      {c.temperature, "temperature_K"}, {c.field, "field_MHz"}, {c.program, "program_if_predicted"},
      {c.n_peaks, "n_peaks"},   {c.peaks, "peaks..."}};
  for (const auto& [col, name] : required)
    if (col < 0) throw Error(std::string("not a pb spectra table: header has no column '") + name + "'");
  return c;
}

PbRowKind parse_pb_spectra_row(std::string_view line, const PbSpectraColumns& c, PbSpectrumRow& row,
                               std::string* other_nucleus) {
  std::vector<std::string_view> f = split_fields(line, '\t');
  if (f.size() != c.count)
    throw Error("expected " + std::to_string(c.count) + " tab-separated columns, found " + std::to_string(f.size()));
  row.spectrum = Spectrum{};
  row.sd_atom_index.clear();
  if (!parse_int64(f[c.id], row.id) || row.id < 0) throw Error("column nmrshiftdb2_id: not an ID: " + quoted(f[c.id]));
  row.inchikey = std::string(trim(f[c.inchikey]));
  row.smiles = std::string(trim(f[c.smiles]));
  if (row.smiles.empty()) throw Error("column smiles: empty");
  int64_t number = 0;
  if (!parse_int64(f[c.spectrum_no], number) || number < 0 || number > 1000000)
    throw Error("column spectrum_no: not a spectrum number: " + quoted(f[c.spectrum_no]));
  row.spectrum.number = static_cast<int32_t>(number);
  std::optional<Nucleus> nucleus = parse_nucleus(f[c.nucleus]);
  if (!nucleus) {
    if (trim(f[c.nucleus]).empty()) throw Error("column nucleus: empty");
    if (other_nucleus) *other_nucleus = std::string(trim(f[c.nucleus]));
    return PbRowKind::OtherNucleus;
  }
  Spectrum& s = row.spectrum;
  s.nucleus = *nucleus;
  s.solvent_text = std::string(trim(f[c.solvent]));
  s.solvent = parse_solvent(s.solvent_text);
  s.temperature_K = parse_meta_number(f[c.temperature]);
  s.field_MHz = parse_meta_number(f[c.field]);
  s.program = std::string(trim(f[c.program]));
  s.predicted = !s.program.empty();
  if (c.assignment >= 0) row.assignment_method = std::string(trim(f[c.assignment]));
  int64_t n_peaks = 0;
  if (!parse_int64(f[c.n_peaks], n_peaks) || n_peaks < 0) throw Error("column n_peaks: not a count: " + quoted(f[c.n_peaks]));
  s.peaks = parse_spectrum_peaks(f[c.peaks], s.nucleus, "column peaks");
  if (static_cast<int64_t>(s.peaks.size()) != n_peaks)
    throw Error("column n_peaks says " + std::to_string(n_peaks) + " but the peak list has " +
                std::to_string(s.peaks.size()));
  row.sd_atom_index.reserve(s.peaks.size());
  for (Peak& p : s.peaks) {
    row.sd_atom_index.push_back(p.atom);
    p.atom = -1;  // SD atom order, not the SMILES order: unassigned here
  }
  return PbRowKind::Spectrum;
}

PbReadStats read_pb_spectra(TextReader& in, const PbRowCallback& on_row, const RowErrorCallback& on_error) {
  PbReadStats stats;
  std::string line;
  if (!in.next_line(line)) throw Error(in.name() + ": empty file, expected a pb spectra table");
  PbSpectraColumns columns;
  try {
    columns = parse_pb_spectra_header(line);
  } catch (const Error& e) {
    throw Error(in.where() + ": " + e.what());
  }
  PbSpectrumRow row;
  while (in.next_line(line)) {
    if (trim(line).empty()) continue;
    ++stats.rows;
    row.line = in.line_number();
    PbRowKind kind;
    try {
      kind = parse_pb_spectra_row(line, columns, row);
    } catch (const Error& e) {
      ++stats.bad;
      if (on_error) on_error(in.line_number(), e.what());
      continue;
    }
    if (kind == PbRowKind::OtherNucleus) {
      ++stats.other_nucleus;
      continue;
    }
    size_t nu = static_cast<size_t>(row.spectrum.nucleus);
    ++stats.rows_by_nucleus[nu];
    if (row.spectrum.predicted) ++stats.predicted_by_nucleus[nu];
    if (row.spectrum.peaks.empty()) {
      ++stats.empty_by_nucleus[nu];
      ++stats.bad;
      if (on_error)
        on_error(in.line_number(), "empty " + std::string(nucleus_name(row.spectrum.nucleus)) + " spectrum (nmrshiftdb2 ID " +
                                       std::to_string(row.id) + ", spectrum " + std::to_string(row.spectrum.number) + ")");
      continue;
    }
    ++stats.delivered;
    if (on_row) on_row(std::move(row));
    row = PbSpectrumRow{};
  }
  return stats;
}

void parse_pb_31p_row(std::string_view line, P31Row& row) {
  std::vector<std::string_view> f = split_fields(line, '\t');
  if (f.size() != 7) throw Error("expected 7 tab-separated columns, found " + std::to_string(f.size()));
  if (!parse_int64(f[0], row.id) || row.id < 0) throw Error("column nmrshiftdb2_id: not an ID: " + quoted(f[0]));
  row.smiles = std::string(trim(f[1]));
  if (row.smiles.empty()) throw Error("column smiles: empty");
  row.spectrum = Spectrum{};
  row.spectrum.nucleus = Nucleus::P31;
  int64_t number = 0;
  if (!parse_int64(f[2], number) || number < 0 || number > 1000000)
    throw Error("column spectrum_no: not a spectrum number: " + quoted(f[2]));
  row.spectrum.number = static_cast<int32_t>(number);
  Peak p;
  if (!parse_double(f[3], p.shift)) throw Error("column shift_ppm: non-numeric shift " + quoted(f[3]));
  row.spectrum.peaks.push_back(p);
  row.spectrum.solvent_text = std::string(trim(f[4]));
  row.spectrum.solvent = parse_solvent(row.spectrum.solvent_text);
  row.spectrum.temperature_K = parse_meta_number(f[5]);
  row.spectrum.field_MHz = parse_meta_number(f[6]);
}

PbReadStats read_pb_31p_single(TextReader& in, const P31RowCallback& on_row, const RowErrorCallback& on_error) {
  PbReadStats stats;
  std::string line;
  if (!in.next_line(line)) throw Error(in.name() + ": empty file, expected the 31P single-P table");
  if (trim(line) != "nmrshiftdb2_id\tsmiles\tspectrum_no\tshift_ppm\tsolvent\ttemperature_K\tfield_MHz")
    throw Error(in.where() + ": not the 31P single-P table: header " + quoted(line, 120));
  P31Row row;
  while (in.next_line(line)) {
    if (trim(line).empty()) continue;
    ++stats.rows;
    row.line = in.line_number();
    try {
      parse_pb_31p_row(line, row);
    } catch (const Error& e) {
      ++stats.bad;
      if (on_error) on_error(in.line_number(), e.what());
      continue;
    }
    ++stats.rows_by_nucleus[static_cast<size_t>(Nucleus::P31)];
    ++stats.delivered;
    if (on_row) on_row(std::move(row));
    row = P31Row{};
  }
  return stats;
}

}  // namespace larmor::chem
