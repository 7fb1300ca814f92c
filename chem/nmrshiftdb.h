// NMRShiftDB2 inputs that need no Open Babel:
//  * an SD record splitter (molblock text + data items per record), so tags can be read, counted and
//    checked without a chemistry toolkit and each molblock handed to Open Babel later;
//  * the SD data items that carry spectra: `Spectrum <nucleus> <n>` = "shift;intensity<mult>;atomIdx|..."
//    and the per-spectrum indexed items `Solvent`, `Temperature [K]`, `Field Strength [MHz]`,
//    `Program`/`NMRProgram` ("0:Chloroform-D1 (CDCl3) 1:Unreported"; spectrum numbers are shared by all
//    nuclei of one record);
//  * the pb export tables: nmrshiftdb2_pb_spectra.tsv(.xz) (one unassigned spectrum per row) and
//    nmrshiftdb2_pb_31P_singleP.tsv.
// Record-level problems are errors the caller can report and skip: the functions on one record/row throw
// larmor::Error naming the tag or column; the file readers hand bad rows to an error callback with the line.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "chem/nmr.h"
#include "chem/text_input.h"

namespace larmor::chem {

// ---- SD records ---------------------------------------------------------------------------------------------

struct SdRecord {
  int64_t index = 0;       // 1-based record number in the file
  int64_t first_line = 0;  // line number of the record's title line
  std::string molblock;    // title line through "M  END" inclusive, '\n'-terminated lines, as in the file
  std::string title;       // first line of the molblock
  std::map<std::string, std::string> tags;  // data items: name -> value lines joined by '\n'
  std::string error;       // non-empty when the record is malformed (e.g. "line 812: data header without <name>")
};

// Splits an SD file into records without interpreting the molblock. The last record may lack "$$$$".
class SdRecordReader {
 public:
  explicit SdRecordReader(TextReader& in) : in_(in) {}
  bool next(SdRecord& record);  // false at end of input; I/O and decompression errors throw
  const std::string& source_name() const { return in_.name(); }

 private:
  TextReader& in_;
  int64_t count_ = 0;
};

// ---- SD spectrum tags ---------------------------------------------------------------------------------------

// "Spectrum 13C 0" -> {"13C", 0}; "Spectrum H,H-COSY 3" -> {"H,H-COSY", 3}. nullopt when `name` is not a
// spectrum item at all; throws larmor::Error when it starts with "Spectrum " but has no spectrum number.
struct SpectrumTagName {
  std::string nucleus;  // as written ("13C", "15N", "H,C-HMBC")
  int32_t number = 0;
};
std::optional<SpectrumTagName> parse_spectrum_tag_name(std::string_view name);

// Peaks of a `Spectrum <nucleus> <n>` value: "8.1;0.0Q;3|9.0;0.0Q;19|" (trailing '|' and whitespace allowed).
// The middle field is an intensity optionally followed by a multiplicity: for 13C S/D/T/Q (any case; also
// C/CH/CH2/CH3) -> mult 0..3; other text is kept in Peak::pattern (1H "dd", "br s"). The last field is the
// 0-based atom index. Throws larmor::Error "<context>: ..." on a non-numeric shift/intensity/index or a
// missing field.
std::vector<Peak> parse_spectrum_peaks(std::string_view value, Nucleus nucleus, std::string_view context);

// Multiplicity text (after the intensity) -> attached-H count for 13C, kMultUnknown if not one of the forms.
int8_t parse_carbon_multiplicity(std::string_view text);

// Per-spectrum item "0:Chloroform-D1 (CDCl3) 1:Unreported" -> {0: "Chloroform-D1 (CDCl3)", 1: "Unreported"}.
// Entries start at "<digits>:" at the start or after whitespace; values may hold spaces and colons. When
// `valid_numbers` is given (the spectrum numbers of the record), a "<digits>:" whose number is not in it, or
// repeats an earlier one, stays part of the previous value (so "CDCl3/CD3OD 1:1" is not split). Throws
// larmor::Error naming `tag` when a non-empty value does not start with "<digits>:".
std::map<int32_t, std::string> parse_indexed_tag(std::string_view value, std::string_view tag,
                                                 const std::set<int32_t>* valid_numbers = nullptr);

// "298", "100.6", "100 Mhz" -> the leading number; "Unreported", "Unknown", "", other text, or a value <= 0
// -> NaN (free text here is too common upstream to reject the record for it).
double parse_meta_number(std::string_view text);

// All 1H/13C/19F/31P spectra of one SD record, with solvent, temperature, field and predicted/program filled
// from the indexed items. Spectra of other nuclei and 2D spectra are skipped (listed in `skipped` when given,
// e.g. "Spectrum 15N 3: nucleus not supported"). Throws larmor::Error naming the tag for malformed values.
std::vector<Spectrum> spectra_from_sd_tags(const std::map<std::string, std::string>& tags,
                                           std::vector<std::string>* skipped = nullptr);

// The `nmrshiftdb2 ID` item as a number; nullopt when absent, throws larmor::Error when not an integer.
std::optional<int64_t> nmrshiftdb_id(const std::map<std::string, std::string>& tags);

// ---- pb export tables ---------------------------------------------------------------------------------------

// One row of nmrshiftdb2_pb_spectra.tsv: an unassigned spectrum of a SMILES. The peak atom indices refer to
// the SD-file atom order, which the SMILES do not keep: they are kept apart in sd_atom_index (parallel to
// spectrum.peaks) and every Peak::atom is -1.
struct PbSpectrumRow {
  int64_t line = 0;  // line number in the file
  int64_t id = 0;    // nmrshiftdb2 ID
  std::string inchikey;
  std::string smiles;
  std::string assignment_method;
  Spectrum spectrum;  // predicted = program_if_predicted non-empty
  std::vector<int32_t> sd_atom_index;
};

// Column positions of a pb spectra table, from its header line (order-independent).
struct PbSpectraColumns {
  int id = -1, inchikey = -1, smiles = -1, nucleus = -1, spectrum_no = -1, solvent = -1, temperature = -1,
      field = -1, assignment = -1, program = -1, n_peaks = -1, peaks = -1;
  size_t count = 0;  // number of columns in the header
};
// Throws larmor::Error naming the missing column when `header` is not a pb spectra header.
PbSpectraColumns parse_pb_spectra_header(std::string_view header);

enum class PbRowKind : uint8_t { Spectrum, OtherNucleus };
// Parses one data line. OtherNucleus (11B, 15N, 2D lists, ...): only id/inchikey/smiles and spectrum.number
// are filled. Throws larmor::Error with the reason (column and value) for a malformed row, including n_peaks
// disagreeing with the peak list. An empty peak list parses (read_pb_spectra reports it as a bad row).
PbRowKind parse_pb_spectra_row(std::string_view line, const PbSpectraColumns& columns, PbSpectrumRow& row,
                               std::string* other_nucleus = nullptr);

struct PbReadStats {
  int64_t rows = 0;           // data lines read
  int64_t delivered = 0;      // rows handed to on_row
  int64_t bad = 0;            // rows handed to on_error
  int64_t other_nucleus = 0;  // rows of nuclei larmor does not model (skipped silently)
  // Rows per nucleus whose columns parsed (delivered or rejected only for an empty spectrum), and of those
  // the ones flagged predicted; empty_by_nucleus counts the empty spectra among them.
  std::array<int64_t, kNumNuclei> rows_by_nucleus{}, predicted_by_nucleus{}, empty_by_nucleus{};
};

using PbRowCallback = std::function<void(PbSpectrumRow&&)>;
using RowErrorCallback = std::function<void(int64_t line, const std::string& reason)>;

// Streams the table: every good 1H/13C/19F/31P row goes to on_row; bad rows go to on_error (line + reason)
// and are skipped. A missing/wrong header throws larmor::Error naming the input.
PbReadStats read_pb_spectra(TextReader& in, const PbRowCallback& on_row, const RowErrorCallback& on_error);

// nmrshiftdb2_pb_31P_singleP.tsv: experimental 31P spectra of molecules with exactly one P, one peak each
// (the peak belongs to the single P atom; Peak::atom stays -1 because the SMILES order is not the SD order).
struct P31Row {
  int64_t line = 0;
  int64_t id = 0;
  std::string smiles;
  Spectrum spectrum;
};
using P31RowCallback = std::function<void(P31Row&&)>;
PbReadStats read_pb_31p_single(TextReader& in, const P31RowCallback& on_row, const RowErrorCallback& on_error);
// One data line of that table, columns as in its header (nmrshiftdb2_id smiles spectrum_no shift_ppm solvent
// temperature_K field_MHz). Throws larmor::Error with the reason.
void parse_pb_31p_row(std::string_view line, P31Row& row);

}  // namespace larmor::chem
