// `larmor prepare` end to end on hand-written fixtures laid out like the shared data folder, and (when
// present) on a slice of the real NMR8K file: assigned indices land on the right atoms, predicted spectra
// are excluded, sources merge per molecule, and one molecule never straddles two splits.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "chem/dataset.h"
#include "chem/ob_prepare.h"
#include "chem/text_input.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;
namespace fs = std::filesystem;

namespace {


// The fixture's last record ends without "$$$$" (allowed); terminate it before appending more records.
std::string terminated(std::string sd) {
  if (sd.size() >= 5 && sd.compare(sd.size() - 5, 5, "$$$$\n") == 0) return sd;
  if (!sd.empty() && sd.back() != '\n') sd.push_back('\n');
  sd.append("$$$$\n");
  return sd;
}

// A data folder with the fixture SD file as NMR8K.sdf.gz and the fixture pb table.
fs::path fixture_data_dir() {
  fs::path fixtures = fs::path(LARMOR_SOURCE_DIR) / "tests" / "chem" / "fixtures";
  fs::path dir = fs::temp_directory_path() / ("larmor_prepare_" + std::to_string(::getpid()));
  fs::create_directories(dir / "cascade_nmrshiftdb8k");
  fs::create_directories(dir / "nmrshiftdb2_json_pb");
  // Two more records whose spectra point at a missing atom and at a carbon without H (1H): dropped and reported.
  const std::string bad_records =
      "propanone\n  hand-written\n\n  4  3  0  0  0  0  0  0  0  0999 V2000\n"
      "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    1.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    2.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    1.0000    1.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "  1  2  1  0\n  2  3  1  0\n  2  4  2  0\nM  END\n"
      ">  <nmrshiftdb2 ID>\n900101\n\n>  <Spectrum 13C 0>\n30.8;0.0Q;0|206.6;0.0S;1|30.8;0.0Q;7|\n\n$$$$\n"
      "propanone\n  hand-written\n\n  4  3  0  0  0  0  0  0  0  0999 V2000\n"
      "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    1.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    2.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "    1.0000    1.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
      "  1  2  1  0\n  2  3  1  0\n  2  4  2  0\nM  END\n"
      ">  <nmrshiftdb2 ID>\n900102\n\n>  <Spectrum 1H 0>\n2.17;0.0;1|\n\n$$$$\n";
  std::ofstream(dir / "cascade_nmrshiftdb8k" / "NMR8K.sdf.gz", std::ios::binary)
      << compress_bytes(terminated(test::read_bytes((fixtures / "nmrshiftdb_sample.sdf").string())) + bad_records, Compression::Gzip);
  // The reader detects compression from the bytes, so a plain table under the .xz name reads as plain text.
  fs::copy_file(fixtures / "pb_spectra_sample.tsv", dir / "nmrshiftdb2_json_pb" / "nmrshiftdb2_pb_spectra.tsv.xz",
                fs::copy_options::overwrite_existing);
  return dir;
}

// Every assigned 13C sits on a carbon; every 1H on a heavy atom that carries hydrogens.
void check_assigned_sites(const DatasetEntry& e) {
  for (const AssignedShift& a : e.assigned) {
    REQUIRE(a.atom >= 0);
    REQUIRE(a.atom < e.mol.num_atoms());
    const Atom& at = e.mol.atoms[a.atom];
    if (a.nucleus == Nucleus::C13) CHECK(at.element == 6);
    if (a.nucleus == Nucleus::H1) {
      CHECK(at.element != 1);
      CHECK(at.num_h > 0);
    }
    if (a.nucleus == Nucleus::F19) CHECK(at.element == 9);
  }
}

}  // namespace

TEST_CASE("prepare: fixtures -> dataset with assigned sites on the right atoms and predicted spectra excluded") {
  fs::path dir = fixture_data_dir();
  PrepareOptions o;
  o.data_dir = dir.string();
  o.workers = 2;
  PrepareReport report;
  Dataset ds = prepare_dataset(o, report);
  REQUIRE(!ds.entries.empty());

  std::map<std::string, const DatasetEntry*> by_id;
  for (const DatasetEntry& e : ds.entries) {
    INFO(e.mol.id);
    by_id[e.mol.id] = &e;
    check_assigned_sites(e);
    CHECK(e.mol.has_3d());
    CHECK(e.mol.coords.size() == e.mol.atoms.size());
  }
  // Ethyl acetate: in both sources, one entry; 13C on its four carbons (atomIdx 0, 1, 3, 5 of the record).
  REQUIRE(by_id.count("nmrshiftdb2:900001") == 1);
  const DatasetEntry& ea = *by_id.at("nmrshiftdb2:900001");
  CHECK(ea.sources == (source_bit(Source::NMR8K) | source_bit(Source::PB)));
  std::map<int, float> c13;
  for (const AssignedShift& a : ea.assigned)
    if (a.nucleus == Nucleus::C13) c13[a.atom] = a.shift;
  CHECK(c13.size() == 4);
  CHECK(c13.at(0) == doctest::Approx(14.2));
  CHECK(c13.at(3) == doctest::Approx(171.1));
  CHECK(!ea.peak_sets.empty());
  // Toluene: spectrum 1 is flagged predicted (Program 1:HOSE...), so only spectrum 0 counts: CH3 = 21.5, not 21.3.
  REQUIRE(by_id.count("nmrshiftdb2:900002") == 1);
  bool methyl = false;
  for (const AssignedShift& a : by_id.at("nmrshiftdb2:900002")->assigned)
    if (a.nucleus == Nucleus::C13 && a.atom == 0) {
      methyl = true;
      CHECK(a.shift == doctest::Approx(21.5));
      CHECK(a.count == 1);
    }
  CHECK(methyl);
  // The predicted pb spectrum and the malformed record are reported, not kept.
  int64_t predicted = 0, malformed = 0;
  for (const auto& [reason, n] : report.exclusions) {
    if (reason.find("predicted") != std::string::npos) predicted += n;
    if (reason.find("malformed") != std::string::npos || reason.find("rejected") != std::string::npos) malformed += n;
  }
  CHECK(predicted >= 1);
  CHECK(malformed >= 1);
  CHECK(report.exclusions["NMR8K: 13C spectrum dropped: peak points at a missing atom"] == 1);
  CHECK(report.exclusions["NMR8K: 1H spectrum dropped: peak points at an atom of the wrong element"] == 1);
  CHECK(by_id.count("nmrshiftdb2:900101") == 0);  // its only spectrum was dropped
  CHECK(by_id.count("nmrshiftdb2:900102") == 0);
  CHECK(report.problems.size() >= 2);

  // The prepared dataset survives its own round trip.
  fs::path out = dir / "prepared.safetensors";
  save_dataset(out.string(), ds);
  Dataset back = load_dataset(out.string());
  CHECK(back.entries.size() == ds.entries.size());
  CHECK(back.info.at("inputs") == prepare_inputs_signature(o));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_CASE("prepare: on real NMR8K records, indices map onto the right atoms and no molecule straddles two splits") {
  fs::path data(LARMOR_SHARED_DATA);
  if (!fs::exists(data / "cascade_nmrshiftdb8k" / "NMR8K.sdf.gz")) {
    MESSAGE("shared data not found at " << data << ": skipped");
    return;
  }
  PrepareOptions o;
  o.data_dir = data.string();
  o.sources = {"nmr8k"};
  o.limit = 150;
  o.conformer_steps = 50;
  PrepareReport report;
  Dataset ds = prepare_dataset(o, report);
  CHECK(ds.entries.size() >= 140);
  std::map<std::string, Split> split_of_group;
  for (const DatasetEntry& e : ds.entries) {
    INFO(e.mol.id);
    check_assigned_sites(e);
    auto [it, inserted] = split_of_group.emplace(split_group_key(e.mol), e.split);
    CHECK(it->second == e.split);
  }
}

TEST_CASE("prepare: literature records become unassigned 1H/13C peak sets (1H counted per H)") {
  fs::path data(LARMOR_SHARED_DATA);
  if (!fs::exists(data / "nmrbank_literature_dev" / "train_1000.csv")) {
    MESSAGE("shared data not found at " << data << ": skipped");
    return;
  }
  PrepareOptions o;
  o.data_dir = data.string();
  o.sources = {"literature"};
  o.limit = 20;
  o.conformer_steps = 50;
  PrepareReport report;
  Dataset ds = prepare_dataset(o, report);
  CHECK(ds.entries.size() >= 12);
  int64_t sets = 0;
  for (const DatasetEntry& e : ds.entries) {
    CHECK(e.sources == source_bit(Source::Literature));
    CHECK(e.assigned.empty());
    int hydrogens = 0, carbons = 0;
    for (const Atom& a : e.mol.atoms) {
      hydrogens += a.element == 1;
      carbons += a.element == 6;
    }
    for (const PeakSet& ps : e.peak_sets) {
      ++sets;
      CHECK(std::is_sorted(ps.shifts.begin(), ps.shifts.end()));
      if (ps.nucleus == Nucleus::H1) CHECK(static_cast<int>(ps.shifts.size()) <= hydrogens);  // expanded by integral
      if (ps.nucleus == Nucleus::C13) CHECK(static_cast<int>(ps.shifts.size()) <= carbons);
    }
  }
  CHECK(sets >= 20);
}
