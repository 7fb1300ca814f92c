// libFuzzer target for the parsers that read untrusted text (chem/ without Open Babel): NMRShiftDB2 SD records
// and tags, pb table rows, literature peak text, user peak lists, and the gzip/xz/CSV input layer.
//
// The first input byte picks the parser, the rest is its input, so one corpus covers all of them and libFuzzer
// can cross over between formats. larmor::Error is the documented way to reject bad input and is caught;
// anything else (another exception, a sanitizer report, a broken invariant -> __builtin_trap) is a finding.
// Built by tools/fuzz/build.sh, not by CMake (see tools/fuzz/README.md).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "chem/nmr.h"
#include "chem/nmrshiftdb.h"
#include "chem/peak_list.h"
#include "chem/peak_text.h"
#include "chem/text_input.h"
#include "engine/error.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void check_peaks(const std::vector<Peak>& peaks) {
  for (const Peak& p : peaks) {
    require(std::isfinite(p.shift));
    require(std::isnan(p.shift_hi) || p.shift_hi >= p.shift);
    require(p.mult >= kMultUnknown && p.mult <= 3);
  }
}

const Nucleus kNuclei[] = {Nucleus::H1, Nucleus::C13, Nucleus::F19, Nucleus::P31};

void fuzz_tag_values(const std::string& s) {
  for (Nucleus n : kNuclei) {
    try {
      check_peaks(parse_spectrum_peaks(s, n, "fuzz"));
    } catch (const Error&) {
    }
  }
  try {
    parse_spectrum_tag_name(s);
  } catch (const Error&) {
  }
  try {
    auto m = parse_indexed_tag(s, "Solvent");
    for (const auto& [k, v] : m) require(k >= 0);
  } catch (const Error&) {
  }
  std::set<int32_t> numbers{0, 1, 2};
  try {
    parse_indexed_tag(s, "Temperature [K]", &numbers);
  } catch (const Error&) {
  }
  double v = parse_meta_number(s);
  require(std::isnan(v) || v > 0);
  parse_solvent(s);
  parse_nucleus(s);
  parse_carbon_multiplicity(s);
}

void fuzz_sd_records(const std::string& s) {
  try {
    TextReader in = TextReader::from_string("fuzz.sdf", s);
    SdRecordReader reader(in);
    SdRecord record;
    int64_t last = 0;
    while (reader.next(record)) {
      require(record.index == last + 1);
      last = record.index;
      try {
        auto spectra = spectra_from_sd_tags(record.tags);
        for (const Spectrum& sp : spectra) {
          require(!sp.peaks.empty());
          check_peaks(sp.peaks);
        }
        nmrshiftdb_id(record.tags);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {  // input layer (e.g. bytes that look compressed)
  }
}

void fuzz_pb_rows(const std::string& s) {
  static const PbSpectraColumns columns = parse_pb_spectra_header(
      "nmrshiftdb2_id\tinchikey\tsmiles\tnucleus\tspectrum_no\tsolvent\ttemperature_K\tfield_MHz\tassignment_method\t"
      "program_if_predicted\tn_peaks\tpeaks_shift;mult;sdf_atom_idx");
  PbSpectrumRow row;
  try {
    if (parse_pb_spectra_row(s, columns, row) == PbRowKind::Spectrum) {
      check_peaks(row.spectrum.peaks);
      require(row.sd_atom_index.size() == row.spectrum.peaks.size());
    }
  } catch (const Error&) {
  }
  P31Row p31;
  try {
    parse_pb_31p_row(s, p31);
    require(p31.spectrum.peaks.size() == 1);
  } catch (const Error&) {
  }
  // As a whole file: the header may be fuzzed too.
  try {
    TextReader in = TextReader::from_string("fuzz.tsv", s);
    read_pb_spectra(in, [](PbSpectrumRow&& r) { check_peaks(r.spectrum.peaks); }, [](int64_t, const std::string&) {});
  } catch (const Error&) {
  }
}

void fuzz_peak_text(const std::string& s) {
  for (std::optional<Nucleus> expected : {std::optional<Nucleus>(), std::optional<Nucleus>(Nucleus::H1),
                                          std::optional<Nucleus>(Nucleus::C13)}) {
    PeakText pt = parse_peak_text(s, expected);  // must not throw at all
    check_peaks(pt.peaks);
    require(pt.warnings.size() <= 65);
    require(std::isnan(pt.field_MHz) || (pt.field_MHz >= 10 && pt.field_MHz <= 2000));
    if (expected) require(pt.nucleus == expected);
  }
}

void fuzz_peak_list(const std::string& s) {
  try {
    auto peaks = parse_peak_list_text(s, "fuzz");
    require(!peaks.empty());
    check_peaks(peaks);
  } catch (const Error&) {
  }
}

void fuzz_input_layer(const std::string& s) {
  try {
    TextReader in = TextReader::from_string("fuzz.bin", s);
    std::string line;
    int64_t n = 0;
    while (in.next_line(line)) require(in.line_number() == ++n);
  } catch (const Error&) {
  }
  try {
    TextReader in = TextReader::from_string("fuzz.csv", s);
    std::vector<std::string> fields;
    while (next_csv_record(in, fields)) require(!fields.empty());
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: fuzz_tag_values(input); break;
    case 1: fuzz_sd_records(input); break;
    case 2: fuzz_pb_rows(input); break;
    case 3: fuzz_peak_text(input); break;
    case 4: fuzz_peak_list(input); break;
    case 5: fuzz_input_layer(input); break;
  }
  return 0;
}
