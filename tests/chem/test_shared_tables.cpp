// The OB-free parsers against the real shared data (../shared/data, see its README): the counts the data README
// and the issue state, and how much of the literature dev set's free text turns into peaks. Each case skips
// with a MESSAGE when the data (or liblzma for the .xz table) is absent, so the suite runs anywhere.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "chem/nmr.h"
#include "chem/nmrshiftdb.h"
#include "chem/peak_text.h"
#include "chem/text_input.h"
#include "engine/error.h"

namespace fs = std::filesystem;
using namespace larmor;
using namespace larmor::chem;

namespace {

const std::string kShared = LARMOR_SHARED_DATA;

bool have(const std::string& rel) {
  if (fs::exists(kShared + "/" + rel)) return true;
  MESSAGE("skipped: " << kShared << "/" << rel << " not found");
  return false;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t idx(Nucleus n) { return static_cast<size_t>(n); }

}  // namespace

TEST_CASE("shared data: pb spectra table gives 42,171 13C spectra, 7,819 of them predicted") {
  const std::string rel = "nmrshiftdb2_json_pb/nmrshiftdb2_pb_spectra.tsv.xz";
  if (!have(rel)) return;
  if (!xz_supported()) {
    MESSAGE("skipped: built without liblzma");
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  TextReader in = TextReader::open(kShared + "/" + rel);
  std::array<int64_t, kNumNuclei> delivered{}, peaks{}, mult_known{};
  std::vector<std::string> errors;
  PbReadStats stats = read_pb_spectra(
      in,
      [&](PbSpectrumRow&& row) {
        size_t n = idx(row.spectrum.nucleus);
        ++delivered[n];
        peaks[n] += static_cast<int64_t>(row.spectrum.peaks.size());
        for (const Peak& p : row.spectrum.peaks) mult_known[n] += p.mult != kMultUnknown;
        CHECK(row.sd_atom_index.size() == row.spectrum.peaks.size());
      },
      [&](int64_t line, const std::string& why) { errors.push_back("line " + std::to_string(line) + ": " + why); });
  const double secs = seconds_since(t0);

  const size_t c = idx(Nucleus::C13), h = idx(Nucleus::H1), f = idx(Nucleus::F19), p = idx(Nucleus::P31);
  MESSAGE("pb table: " << stats.rows << " rows in " << secs << " s; other nuclei/2D " << stats.other_nucleus
                       << "; bad rows " << stats.bad);
  MESSAGE("13C: " << stats.rows_by_nucleus[c] << " spectra, " << stats.predicted_by_nucleus[c] << " predicted, "
                  << stats.empty_by_nucleus[c] << " empty; delivered " << delivered[c] << " with " << peaks[c]
                  << " peaks, multiplicity known for " << mult_known[c]);
  MESSAGE("1H: " << stats.rows_by_nucleus[h] << " (" << stats.predicted_by_nucleus[h] << " predicted, "
                 << stats.empty_by_nucleus[h] << " empty); 19F: " << stats.rows_by_nucleus[f] << " ("
                 << stats.predicted_by_nucleus[f] << " predicted); 31P: " << stats.rows_by_nucleus[p] << " ("
                 << stats.predicted_by_nucleus[p] << " predicted)");
  for (const std::string& e : errors)
    if (e.find("empty") == std::string::npos) MESSAGE("bad row: " << e);

  CHECK(stats.rows == 75199);
  CHECK(stats.rows_by_nucleus[c] == 42171);
  CHECK(stats.predicted_by_nucleus[c] == 7819);
  // The file has 17,408 1H rows; one (line 49398, ID 10027746) has a garbled peak "4.6;0.04.60;26" (intensity
  // "0.04.60") and is reported as a bad row, so 17,407 parse.
  CHECK(stats.rows_by_nucleus[h] == 17407);
  CHECK(stats.predicted_by_nucleus[h] == 177);
  CHECK(stats.rows_by_nucleus[f] == 1064);
  CHECK(stats.predicted_by_nucleus[f] == 11);
  // Rejected rows: the empty spectra (19 13C, 3 1H) and that one malformed 1H row.
  CHECK(stats.bad == stats.empty_by_nucleus[c] + stats.empty_by_nucleus[h] + stats.empty_by_nucleus[f] +
                         stats.empty_by_nucleus[p] + 1);
  CHECK(std::count_if(errors.begin(), errors.end(), [](const std::string& e) {
          return e.find("line 49398: column peaks: peak 24") != std::string::npos;
        }) == 1);
  CHECK(delivered[c] == stats.rows_by_nucleus[c] - stats.empty_by_nucleus[c]);
  CHECK(mult_known[c] > peaks[c] * 99 / 100);  // S/D/T/Q on nearly every 13C peak
}

TEST_CASE("shared data: pb 31P single-P table") {
  const std::string rel = "nmrshiftdb2_json_pb/nmrshiftdb2_pb_31P_singleP.tsv";
  if (!have(rel)) return;
  TextReader in = TextReader::open(kShared + "/" + rel);
  int64_t n = 0;
  std::vector<std::string> errors;
  PbReadStats stats = read_pb_31p_single(
      in, [&](P31Row&& row) { n += row.spectrum.peaks.size() == 1; },
      [&](int64_t line, const std::string& why) { errors.push_back(std::to_string(line) + ": " + why); });
  MESSAGE("31P single-P: " << stats.delivered << " spectra, " << stats.bad << " bad rows");
  CHECK(stats.delivered == 13458);
  CHECK(n == 13458);
  CHECK(errors.empty());
}

TEST_CASE("shared data: NMR8K tags without Open Babel give 5,997 molecules with 13C and 3,014 with 1H") {
  const std::string rel = "cascade_nmrshiftdb8k/NMR8K.sdf.gz";
  if (!have(rel)) return;
  auto t0 = std::chrono::steady_clock::now();
  TextReader in = TextReader::open(kShared + "/" + rel);
  SdRecordReader reader(in);
  SdRecord record;
  int64_t records = 0, bad_records = 0, malformed = 0;
  std::array<int64_t, kNumNuclei> mols{}, mols_experimental{}, spectra{}, predicted{}, peaks{};
  std::map<std::string, int64_t> skipped_kinds;
  std::vector<std::string> errors;
  while (reader.next(record)) {
    ++records;
    if (!record.error.empty()) {
      ++malformed;
      errors.push_back("record " + std::to_string(record.index) + ": " + record.error);
    }
    std::vector<std::string> skipped;
    std::vector<Spectrum> found;
    try {
      found = spectra_from_sd_tags(record.tags, &skipped);
    } catch (const Error& e) {
      ++bad_records;
      errors.push_back("record " + std::to_string(record.index) + " (line " + std::to_string(record.first_line) +
                       "): " + e.what());
      continue;
    }
    for (const std::string& s : skipped) ++skipped_kinds[s.substr(s.find(':') + 2)];
    std::array<bool, kNumNuclei> any{}, any_experimental{};
    for (const Spectrum& s : found) {
      size_t n = idx(s.nucleus);
      ++spectra[n];
      predicted[n] += s.predicted;
      peaks[n] += static_cast<int64_t>(s.peaks.size());
      any[n] = true;
      any_experimental[n] = any_experimental[n] || !s.predicted;
    }
    for (size_t n = 0; n < kNumNuclei; ++n) {
      mols[n] += any[n];
      mols_experimental[n] += any_experimental[n];
    }
  }
  const double secs = seconds_since(t0);
  const size_t c = idx(Nucleus::C13), h = idx(Nucleus::H1);
  MESSAGE("NMR8K: " << records << " records in " << secs << " s; malformed " << malformed << ", rejected " << bad_records);
  MESSAGE("13C: " << mols[c] << " molecules, " << spectra[c] << " spectra (" << predicted[c] << " predicted), " << peaks[c]
                  << " peaks; " << mols_experimental[c] << " molecules with an experimental 13C spectrum");
  MESSAGE("1H: " << mols[h] << " molecules, " << spectra[h] << " spectra (" << predicted[h] << " predicted), " << peaks[h]
                 << " peaks; " << mols_experimental[h] << " molecules with an experimental 1H spectrum");
  for (const auto& [why, count] : skipped_kinds) MESSAGE("skipped spectra, " << why << ": " << count);
  for (size_t i = 0; i < std::min<size_t>(errors.size(), 5); ++i) MESSAGE(errors[i]);

  CHECK(records == 7998);
  CHECK(malformed == 0);
  CHECK(bad_records == 0);
  CHECK(mols[c] == 5997);  // the data README's numbers, predicted spectra included
  CHECK(spectra[c] == 6205);
  CHECK(peaks[c] == 71561);
  CHECK(mols[h] == 3014);
  CHECK(spectra[h] == 3025);
  CHECK(peaks[h] == 21912);
  CHECK(mols_experimental[c] <= mols[c]);
}

TEST_CASE("shared data: 19F SD file (Kuhn) tags") {
  const std::string rel = "nmrshiftdb2_19F_kuhn/nmrshiftdb2withsignals_fl.sd";
  if (!have(rel)) return;
  TextReader in = TextReader::open(kShared + "/" + rel);
  SdRecordReader reader(in);
  SdRecord record;
  int64_t records = 0, mols = 0, spectra = 0, predicted = 0, empty = 0, rejected = 0;
  while (reader.next(record)) {
    ++records;
    std::vector<std::string> skipped;
    try {
      auto found = spectra_from_sd_tags(record.tags, &skipped);
      bool any = false;
      for (const Spectrum& s : found) {
        if (s.nucleus != Nucleus::F19) continue;
        ++spectra;
        predicted += s.predicted;
        any = true;
      }
      mols += any;
      for (const std::string& s : skipped) empty += s.find("empty") != std::string::npos;
    } catch (const Error& e) {
      ++rejected;
      MESSAGE("record " << record.index << ": " << e.what());
    }
  }
  MESSAGE("19F file: " << records << " records, " << mols << " molecules with 19F, " << spectra << " 19F spectra ("
                       << predicted << " predicted), " << empty << " empty spectra skipped, " << rejected << " rejected");
  // 957 records hold 1,057 `Spectrum 19F n` items; the data README's 954 molecules / 1,053 spectra count only the
  // records RDKit parses. Of the 3 records with a Program tag, only one still holds the predicted spectrum.
  CHECK(records == 957);
  CHECK(rejected == 0);
  CHECK(spectra == 1057);
  CHECK(predicted == 1);
}

TEST_CASE("shared data: literature dev set peak text") {
  const std::string rel = "nmrbank_literature_dev/dev_1022.csv";
  if (!have(rel)) return;
  TextReader in = TextReader::open(kShared + "/" + rel);
  std::vector<std::string> fields;
  REQUIRE(next_csv_record(in, fields));
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < fields.size(); ++i) col[fields[i]] = i;
  struct Stats {
    int64_t records = 0, with_peaks = 0, ref_shifts = 0, recovered = 0, with_solvent = 0, solvent_agrees = 0;
    int64_t warnings = 0;
  };
  std::map<Nucleus, Stats> by;
  int64_t rows = 0;
  while (next_csv_record(in, fields)) {
    ++rows;
    REQUIRE(fields.size() == col.size());
    for (Nucleus n : {Nucleus::H1, Nucleus::C13}) {
      const std::string tag = n == Nucleus::H1 ? "1H NMR " : "13C NMR ";
      const std::string& text = fields[col.at(tag + "text")];
      const std::string& reference = fields[col.at(tag + "chemical shifts")];
      const std::string& conditions = fields[col.at(tag + "conditions")];
      if (reference == "N/A") continue;  // the curated column says there is no peak list in this record
      Stats& s = by[n];
      ++s.records;
      PeakText parsed = parse_peak_text(text, n);
      s.with_peaks += !parsed.peaks.empty();
      s.warnings += static_cast<int64_t>(parsed.warnings.size());
      // Recall against the curated shift column (a cleaner list of the same shifts).
      PeakText ref = parse_peak_text(reference, n);
      std::vector<double> got;
      for (const Peak& p : parsed.peaks) got.push_back(p.shift);
      for (const Peak& p : ref.peaks) {
        ++s.ref_shifts;
        auto it = std::find_if(got.begin(), got.end(), [&](double g) { return std::abs(g - p.shift) < 0.006; });
        if (it != got.end()) {
          ++s.recovered;
          got.erase(it);
        }
      }
      if (conditions != "N/A" && parse_solvent(conditions) != Solvent::Unknown && parse_solvent(conditions) != Solvent::Other) {
        ++s.with_solvent;
        s.solvent_agrees += parsed.solvent == parse_solvent(conditions);
      }
    }
  }
  CHECK(rows == 1022);
  for (const auto& [n, s] : by) {
    const double yield = static_cast<double>(s.with_peaks) / static_cast<double>(s.records);
    const double recall = static_cast<double>(s.recovered) / static_cast<double>(s.ref_shifts);
    const double solvent = static_cast<double>(s.solvent_agrees) / static_cast<double>(std::max<int64_t>(s.with_solvent, 1));
    MESSAGE(std::string(nucleus_name(n)) << ": " << s.records << " records with a curated peak list; " << s.with_peaks
                            << " (" << 100 * yield << "%) give >= 1 peak from the free text; " << s.recovered << " of "
                            << s.ref_shifts << " curated shifts (" << 100 * recall << "%) recovered; solvent class agrees with "
                            << "the conditions column in " << s.solvent_agrees << "/" << s.with_solvent << "; "
                            << s.warnings << " warnings");
    CHECK(yield >= 0.95);
    CHECK(recall >= 0.90);
    CHECK(solvent >= 0.95);
  }
}
