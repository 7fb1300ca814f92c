// Prepared datasets and the split, with molecules built by hand (no Open Babel): the file round-trips
// every field exactly, is plain safetensors with the documented names and shapes, and every kind of
// damage (offsets, indices, format, version) is rejected with the file's name. The split is a pure,
// pinned function of (group key, seed), 80/10/10, and groups stereoisomers.
#include <doctest/doctest.h>

#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <set>
#include <string>

#include "chem/dataset.h"
#include "chem/split.h"
#include "engine/error.h"
#include "layers/safetensors.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;
namespace fs = std::filesystem;

namespace {

using test::TempDir;
using test::read_bytes;

Atom atom(uint8_t z, int32_t self, int32_t heavy, int32_t sym, uint8_t degree, uint8_t num_h,
          Hybridization hyb = Hybridization::SP3) {
  Atom a;
  a.element = z;
  a.heavy = heavy < 0 ? self : heavy;
  a.symmetry_class = sym;
  a.degree = degree;
  a.num_h = num_h;
  a.hybridization = hyb;
  return a;
}

// Ethanol with explicit H, 3-D coordinates, 13C assigned, 1H assigned with two shifts on the CH2
// (as if diastereotopic), a 13C and a 1H peak set, SD tags and a non-ASCII title.
DatasetEntry ethanol() {
  DatasetEntry e;
  Molecule& m = e.mol;
  m.id = "nmrshiftdb2:1001";
  m.title = "éthanol (α test)";
  m.smiles = "CCO";
  m.inchikey = "LFQSCWFLJHTTHZ-UHFFFAOYSA-N";
  m.formula = "C2H6O";
  m.num_input_atoms = 3;
  m.num_record_atoms = 5;  // as if a counter-ion of two atoms had been dropped
  m.note = "kept largest of 2 fragments";
  m.input_index = {0, 1, 3, -1, -1, -1, -1, -1, -1};
  m.atoms = {atom(6, 0, -1, 0, 4, 3), atom(6, 1, -1, 1, 4, 2), atom(8, 2, -1, 2, 2, 1)};
  m.atoms[2].formal_charge = 0;
  for (int h = 0; h < 3; ++h) m.atoms.push_back(atom(1, 3 + h, 0, 3, 1, 0, Hybridization::S));
  for (int h = 0; h < 2; ++h) m.atoms.push_back(atom(1, 6 + h, 1, 4, 1, 0, Hybridization::S));
  m.atoms.push_back(atom(1, 8, 2, 5, 1, 0, Hybridization::S));
  m.bonds = {{0, 1, BondType::Single, BondStereo::None}, {1, 2, BondType::Single, BondStereo::None}};
  for (int h = 0; h < 3; ++h) m.bonds.push_back({0, 3 + h, BondType::Single, BondStereo::None});
  for (int h = 0; h < 2; ++h) m.bonds.push_back({1, 6 + h, BondType::Single, BondStereo::None});
  m.bonds.push_back({2, 8, BondType::Single, BondStereo::None});
  for (int a = 0; a < m.num_atoms(); ++a)
    m.coords.push_back({0.1f * static_cast<float>(a), -1.25f + static_cast<float>(a), 3.0f / (1.0f + static_cast<float>(a))});
  m.tags = {{"nmrshiftdb2 ID", "1001"}, {"Solvent", "0:Chloroform-D1 (CDCl3)"}, {"Spectrum 13C 0", "18.1;0.0Q;0|58.3;0.0T;1|"}};
  e.nmrshiftdb_id = "1001";
  e.sources = source_bit(Source::NMR8K) | source_bit(Source::PB);
  e.split = Split::Valid;
  e.solvent = Solvent::CDCl3;
  e.assigned = {{0, Nucleus::C13, 18.1f, 2}, {1, Nucleus::C13, 58.3f, 1}, {0, Nucleus::H1, 1.22f, 1},
                {1, Nucleus::H1, 3.69f, 3}, {1, Nucleus::H1, 3.71f, 3}, {2, Nucleus::H1, 2.61f, 1}};
  e.peak_sets = {{Nucleus::C13, Solvent::CDCl3, {58.3f, 18.1f}, {2, 3}},
                 {Nucleus::H1, Solvent::Unknown, {3.70f, 3.70f, 2.61f, 1.22f, 1.22f, 1.22f}, {-1, -1, -1, -1, -1, -1}}};
  return e;
}

// A lone ion: no bonds, no peak sets, no assigned shifts.
DatasetEntry sodium() {
  DatasetEntry e;
  e.mol.id = "literature:7";
  e.mol.smiles = "[Na+]";
  e.mol.formula = "Na";
  e.mol.num_input_atoms = 1;
  Atom na = atom(11, 0, -1, 0, 0, 0, Hybridization::Other);
  na.formal_charge = 1;
  e.mol.atoms = {na};
  e.mol.coords = {{0.0f, 0.0f, 0.0f}};
  e.sources = source_bit(Source::Literature);
  e.split = Split::Test;
  e.solvent = Solvent::D2O;
  return e;
}

// Trifluoromethylbenzene-like fragment without 3-D coordinates: 19F assigned, no peak sets, aromatic
// and chiral flags, stereo bonds, a negative charge.
DatasetEntry fluoro() {
  DatasetEntry e;
  Molecule& m = e.mol;
  m.id = "nmrshiftdb2:20000123";
  m.smiles = "F/C=C/[C@H](F)[O-]";
  m.inchikey = "ZZZZZZZZZZZZZZ-UHFFFAOYSA-M";
  m.num_input_atoms = 6;
  m.atoms = {atom(9, 0, -1, 0, 1, 0), atom(6, 1, -1, 1, 3, 1, Hybridization::SP2), atom(6, 2, -1, 2, 3, 1, Hybridization::SP2),
             atom(6, 3, -1, 3, 4, 1), atom(9, 4, -1, 4, 1, 0), atom(8, 5, -1, 5, 1, 0)};
  m.atoms[1].aromatic = true;
  m.atoms[2].in_ring = true;
  m.atoms[3].chirality = Chirality::CounterClockwise;
  m.atoms[5].formal_charge = -1;
  m.bonds = {{0, 1, BondType::Single, BondStereo::Up}, {1, 2, BondType::Double, BondStereo::None},
             {2, 3, BondType::Single, BondStereo::Down}, {3, 4, BondType::Single, BondStereo::None},
             {3, 5, BondType::Aromatic, BondStereo::None}, {1, 3, BondType::Triple, BondStereo::None}};
  e.nmrshiftdb_id = "20000123";
  e.sources = source_bit(Source::F19);
  e.split = Split::Train;
  e.solvent = Solvent::Unknown;
  e.assigned = {{0, Nucleus::F19, -120.5f, 1}, {4, Nucleus::F19, -201.25f, 4}};
  return e;
}

// 31P peak set only (no assigned shifts).
DatasetEntry phosphine() {
  DatasetEntry e;
  e.mol.id = "pb:77";
  e.mol.smiles = "P";
  e.mol.inchikey = "XYFCBTPGUUZFHI-UHFFFAOYSA-N";
  e.mol.num_input_atoms = 1;
  e.mol.atoms = {atom(15, 0, -1, 0, 3, 3)};
  for (int h = 0; h < 3; ++h) e.mol.atoms.push_back(atom(1, 1 + h, 0, 1, 1, 0, Hybridization::S));
  for (int h = 0; h < 3; ++h) e.mol.bonds.push_back({0, 1 + h, BondType::Single, BondStereo::None});
  e.mol.coords = {{0, 0, 0}, {1.42f, 0, 0}, {0, 1.42f, 0}, {0, 0, 1.42f}};
  e.sources = source_bit(Source::P31) | source_bit(Source::PB);
  e.split = Split::Test;
  e.solvent = Solvent::C6D6;
  e.peak_sets = {{Nucleus::P31, Solvent::C6D6, {-240.0f}, {-1}}, {Nucleus::C13, Solvent::Other, {}, {}}};
  return e;
}

Dataset sample() {
  Dataset ds;
  ds.entries = {ethanol(), sodium(), fluoro(), phosphine()};
  ds.info = {{"seed", "42"}, {"sources", "NMR8K,pb"}, {"input.NMR8K.sdf.gz", "size=123 mtime=456"}};
  return ds;
}

void check_same_atom(const Atom& a, const Atom& b) {
  CHECK(a.element == b.element);
  CHECK(a.formal_charge == b.formal_charge);
  CHECK(a.hybridization == b.hybridization);
  CHECK(a.chirality == b.chirality);
  CHECK(a.aromatic == b.aromatic);
  CHECK(a.in_ring == b.in_ring);
  CHECK(a.degree == b.degree);
  CHECK(a.num_h == b.num_h);
  CHECK(a.heavy == b.heavy);
  CHECK(a.symmetry_class == b.symmetry_class);
}

void check_same_entry(const DatasetEntry& x, const DatasetEntry& y) {
  INFO("entry ", x.mol.id);
  const Molecule &a = x.mol, &b = y.mol;
  CHECK(a.id == b.id);
  CHECK(a.title == b.title);
  CHECK(a.smiles == b.smiles);
  CHECK(a.inchikey == b.inchikey);
  CHECK(a.formula == b.formula);
  CHECK(a.num_input_atoms == b.num_input_atoms);
  CHECK(a.num_record_atoms == b.num_record_atoms);
  CHECK(a.note == b.note);
  CHECK(a.input_index == b.input_index);
  CHECK(a.tags == b.tags);
  REQUIRE(a.atoms.size() == b.atoms.size());
  for (size_t i = 0; i < a.atoms.size(); ++i) check_same_atom(a.atoms[i], b.atoms[i]);
  REQUIRE(a.bonds.size() == b.bonds.size());
  for (size_t i = 0; i < a.bonds.size(); ++i) {
    CHECK(a.bonds[i].a == b.bonds[i].a);
    CHECK(a.bonds[i].b == b.bonds[i].b);
    CHECK(a.bonds[i].type == b.bonds[i].type);
    CHECK(a.bonds[i].stereo == b.bonds[i].stereo);
  }
  CHECK(a.coords == b.coords);  // exact: floats stored bit for bit
  CHECK(x.nmrshiftdb_id == y.nmrshiftdb_id);
  CHECK(x.sources == y.sources);
  CHECK(x.split == y.split);
  CHECK(x.solvent == y.solvent);
  CHECK(x.assigned == y.assigned);
  CHECK(x.peak_sets == y.peak_sets);
}

void check_same(const Dataset& x, const Dataset& y) {
  CHECK(x.info == y.info);
  REQUIRE(x.entries.size() == y.entries.size());
  for (size_t i = 0; i < x.entries.size(); ++i) check_same_entry(x.entries[i], y.entries[i]);
}

// Loads the file as plain safetensors, lets `edit` damage it, writes it back.
template <typename Edit>
std::string damaged(const TempDir& tmp, const std::string& good, const std::string& name, Edit edit) {
  SafetensorsFile f = load_safetensors(good);
  edit(f);
  std::string path = tmp.file(name);
  save_safetensors(path, f.tensors, f.metadata);
  return path;
}

// load_dataset must throw a larmor::Error whose message names the file and contains `what`.
void check_rejected(const std::string& path, const std::string& what) {
  INFO("file ", path, ", expecting '", what, "'");
  bool threw = false;
  try {
    load_dataset(path);
  } catch (const Error& e) {
    threw = true;
    std::string msg = e.what();
    INFO("message: ", msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find(what) != std::string::npos);
  }
  CHECK(threw);
}

}  // namespace

TEST_CASE("dataset: save/load round trip is exact in every field") {
  TempDir tmp("dataset_test");
  Dataset ds = sample();
  std::string path = tmp.file("ds.safetensors");
  save_dataset(path, ds);
  check_same(ds, load_dataset(path));
  CHECK(read_dataset_info(path) == ds.info);

  // Saving what was loaded gives the same bytes (nothing drifts through a round trip).
  std::string path2 = tmp.file("ds2.safetensors");
  save_dataset(path2, load_dataset(path));
  CHECK(read_bytes(path) == read_bytes(path2));
  check_same(ds, load_dataset(path2));

  // An empty dataset round-trips too.
  Dataset empty;
  std::string epath = tmp.file("empty.safetensors");
  save_dataset(epath, empty);
  Dataset back = load_dataset(epath);
  CHECK(back.entries.empty());
  CHECK(back.info.empty());
}

TEST_CASE("dataset: the file is plain safetensors with the documented names and shapes") {
  TempDir tmp("dataset_test");
  Dataset ds = sample();
  std::string path = tmp.file("ds.safetensors");
  save_dataset(path, ds);
  SafetensorsFile f = load_safetensors(path);
  // 4 molecules; atoms 9 + 1 + 6 + 4 = 20; bonds 8 + 0 + 6 + 3 = 17; assigned 6 + 0 + 2 + 0 = 8;
  // peak sets 2 + 0 + 0 + 2 = 4; peaks 2 + 6 + 1 + 0 = 9.
  const std::map<std::string, std::pair<DType, Shape>> expected = {
      {"mol.atom_offsets", {DType::I64, {5}}},     {"mol.bond_offsets", {DType::I64, {5}}},
      {"mol.assigned_offsets", {DType::I64, {5}}}, {"mol.peakset_offsets", {DType::I64, {5}}},
      {"mol.split", {DType::I32, {4}}},            {"mol.sources", {DType::I32, {4}}},
      {"mol.solvent", {DType::I32, {4}}},          {"mol.num_input_atoms", {DType::I32, {4}}},
      {"mol.has_coords", {DType::I32, {4}}},       {"atom.features", {DType::I32, {20, 10}}},
      {"mol.num_record_atoms", {DType::I32, {4}}}, {"mol.has_input_index", {DType::I32, {4}}},
      {"atom.input_index", {DType::I32, {20}}},
      {"atom.coords", {DType::F32, {20, 3}}},      {"bond", {DType::I32, {17, 4}}},
      {"assigned.atom", {DType::I32, {8}}},        {"assigned.nucleus", {DType::I32, {8}}},
      {"assigned.shift", {DType::F32, {8}}},       {"assigned.count", {DType::I32, {8}}},
      {"peakset.nucleus", {DType::I32, {4}}},      {"peakset.solvent", {DType::I32, {4}}},
      {"peakset.peak_offsets", {DType::I64, {5}}}, {"peak.shift", {DType::F32, {9}}},
      {"peak.mult", {DType::I32, {9}}}};
  CHECK(f.tensors.size() == expected.size());
  for (const auto& [name, ds_shape] : expected) {
    INFO("tensor ", name);
    REQUIRE(f.tensors.count(name) == 1);
    CHECK(f.tensors.at(name).dtype() == ds_shape.first);
    CHECK(f.tensors.at(name).shape() == ds_shape.second);
  }
  CHECK(f.tensors.at("mol.atom_offsets").to_vector<int64_t>() == std::vector<int64_t>{0, 9, 10, 16, 20});
  CHECK(f.tensors.at("mol.peakset_offsets").to_vector<int64_t>() == std::vector<int64_t>{0, 2, 2, 2, 4});
  CHECK(f.tensors.at("peakset.peak_offsets").to_vector<int64_t>() == std::vector<int64_t>{0, 2, 8, 9, 9});
  CHECK(f.tensors.at("mol.split").to_vector<int32_t>() == std::vector<int32_t>{1, 2, 0, 2});
  CHECK(f.tensors.at("mol.has_coords").to_vector<int32_t>() == std::vector<int32_t>{1, 1, 0, 1});
  CHECK(f.tensors.at("mol.has_input_index").to_vector<int32_t>() == std::vector<int32_t>{1, 0, 0, 0});
  // The 1H entries name heavy atoms: CH2 (atom 1) carries two distinct shifts.
  std::vector<int32_t> atoms = f.tensors.at("assigned.atom").to_vector<int32_t>();
  std::vector<int32_t> nuclei = f.tensors.at("assigned.nucleus").to_vector<int32_t>();
  CHECK(atoms == std::vector<int32_t>{0, 1, 0, 1, 1, 2, 0, 4});
  CHECK(nuclei[3] == static_cast<int32_t>(Nucleus::H1));
  CHECK(nuclei[4] == static_cast<int32_t>(Nucleus::H1));
  // Row 3 of atom.features is ethanol's first H: element 1, heavy atom 0 (molecule-local).
  std::vector<int32_t> feat = f.tensors.at("atom.features").to_vector<int32_t>();
  CHECK(feat[3 * 10 + 0] == 1);
  CHECK(feat[3 * 10 + 8] == 0);
  // Row 9 is the sodium ion: heavy index 0 relative to its own molecule, charge +1.
  CHECK(feat[9 * 10 + 1] == 1);
  CHECK(feat[9 * 10 + 8] == 0);

  CHECK(f.metadata.at("format") == "larmor-dataset");
  CHECK(f.metadata.at("version") == "1");
  CHECK(f.metadata.at("molecules") == "4");
  for (const char* key : {"info", "mol.id", "mol.title", "mol.smiles", "mol.inchikey", "mol.formula", "mol.note", "mol.nmrshiftdb_id", "mol.tags"})
    CHECK_MESSAGE(f.metadata.count(key) == 1, key);
  CHECK(f.metadata.at("mol.smiles").find("\"[Na+]\"") != std::string::npos);
}

TEST_CASE("dataset: damaged or foreign files are rejected with the file's name") {
  TempDir tmp("dataset_test");
  std::string good = tmp.file("good.safetensors");
  save_dataset(good, sample());

  auto set_i64 = [](SafetensorsFile& f, const std::string& name, size_t i, int64_t v) {
    f.tensors.at(name).data<int64_t>()[i] = v;
  };
  auto set_i32 = [](SafetensorsFile& f, const std::string& name, size_t i, int32_t v) {
    f.tensors.at(name).data<int32_t>()[i] = v;
  };

  check_rejected(damaged(tmp, good, "dec.safetensors", [&](SafetensorsFile& f) { set_i64(f, "mol.atom_offsets", 2, 8); }),
                 "'mol.atom_offsets' decreases");
  check_rejected(damaged(tmp, good, "end.safetensors", [&](SafetensorsFile& f) { set_i64(f, "mol.bond_offsets", 4, 16); }),
                 "'mol.bond_offsets' ends at 16");
  check_rejected(damaged(tmp, good, "start.safetensors", [&](SafetensorsFile& f) { set_i64(f, "mol.assigned_offsets", 0, 1); }),
                 "'mol.assigned_offsets' starts at 1");
  check_rejected(damaged(tmp, good, "peaks.safetensors", [&](SafetensorsFile& f) { set_i64(f, "peakset.peak_offsets", 4, 10); }),
                 "'peakset.peak_offsets' ends at 10");
  check_rejected(damaged(tmp, good, "short.safetensors",
                         [&](SafetensorsFile& f) { f.tensors["mol.peakset_offsets"] = Tensor::from_vector(std::vector<int64_t>{0, 2, 4}, {3}); }),
                 "'mol.peakset_offsets' has shape (3,)");
  check_rejected(damaged(tmp, good, "missing.safetensors", [&](SafetensorsFile& f) { f.tensors.erase("peak.mult"); }),
                 "'peak.mult' is missing");
  check_rejected(damaged(tmp, good, "dtype.safetensors",
                         [&](SafetensorsFile& f) { f.tensors["mol.split"] = f.tensors["mol.split"].to(DType::I64); }),
                 "'mol.split' is i64");
  check_rejected(damaged(tmp, good, "bond.safetensors", [&](SafetensorsFile& f) { set_i32(f, "bond", 0 * 4 + 1, 9); }),
                 "bond (0, 9) outside");
  check_rejected(damaged(tmp, good, "assigned.safetensors", [&](SafetensorsFile& f) { set_i32(f, "assigned.atom", 7, 6); }),
                 "assigned shift names atom 6");
  check_rejected(damaged(tmp, good, "heavy.safetensors", [&](SafetensorsFile& f) { set_i32(f, "atom.features", 9 * 10 + 8, 1); }),
                 "heavy index 1 out of range");
  check_rejected(damaged(tmp, good, "split.safetensors", [&](SafetensorsFile& f) { set_i32(f, "mol.split", 1, 3); }),
                 "split 3");
  check_rejected(damaged(tmp, good, "nan.safetensors",
                         [&](SafetensorsFile& f) { f.tensors.at("peak.shift").data<float>()[0] = std::nanf(""); }),
                 "not finite");
  check_rejected(damaged(tmp, good, "format.safetensors", [&](SafetensorsFile& f) { f.metadata["format"] = "checkpoint"; }),
                 "not a larmor dataset");
  check_rejected(damaged(tmp, good, "noformat.safetensors", [&](SafetensorsFile& f) { f.metadata.erase("format"); }),
                 "not a larmor dataset");
  check_rejected(damaged(tmp, good, "version.safetensors", [&](SafetensorsFile& f) { f.metadata["version"] = "2"; }),
                 "version '2'");
  check_rejected(damaged(tmp, good, "ids.safetensors", [&](SafetensorsFile& f) { f.metadata["mol.id"] = "[\"a\"]"; }),
                 "'mol.id' must be a JSON array of 4");
  check_rejected(damaged(tmp, good, "json.safetensors", [&](SafetensorsFile& f) { f.metadata["mol.tags"] = "[{"; }),
                 "'mol.tags' is not valid JSON");

  // Header-only reads check format and version too.
  std::string v2 = damaged(tmp, good, "v2.safetensors", [&](SafetensorsFile& f) { f.metadata["version"] = "2"; });
  CHECK_THROWS_AS(read_dataset_info(v2), Error);
  CHECK_THROWS_AS(load_dataset(tmp.file("does-not-exist.safetensors")), Error);
}

TEST_CASE("dataset: save refuses inconsistent entries, naming the entry") {
  TempDir tmp("dataset_test");
  std::string path = tmp.file("bad.safetensors");
  auto rejects = [&](Dataset ds, const std::string& what) {
    INFO("expecting '", what, "'");
    try {
      save_dataset(path, ds);
      FAIL("save_dataset accepted an inconsistent dataset");
    } catch (const Error& e) {
      std::string msg = e.what();
      INFO("message: ", msg);
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find(what) != std::string::npos);
    }
    CHECK(!fs::exists(path));
  };
  Dataset ds = sample();
  ds.entries[0].mol.coords.pop_back();
  rejects(ds, "entry 0 ('nmrshiftdb2:1001'): 8 coordinates for 9 atoms");
  ds = sample();
  ds.entries[2].assigned[0].atom = 6;
  rejects(ds, "entry 2 ('nmrshiftdb2:20000123'): assigned shift 0 names atom 6");
  ds = sample();
  ds.entries[0].peak_sets[0].mult.pop_back();
  rejects(ds, "peak set 0 has 1 multiplicities for 2 shifts");
  ds = sample();
  ds.entries[3].mol.bonds[0].b = 4;
  rejects(ds, "bond 0 (0, 4) outside");
  ds = sample();
  ds.entries[0].mol.input_index.pop_back();
  rejects(ds, "8 input indices for 9 atoms");
  ds = sample();
  ds.entries[1].assigned.push_back({0, Nucleus::C13, std::nanf(""), 1});
  rejects(ds, "not finite");
}

TEST_CASE("dataset: summary counts per source, nucleus, split and solvent") {
  std::string s = dataset_summary(sample());
  CHECK(s.find("NMR8K") != std::string::npos);
  CHECK(s.find("literature") != std::string::npos);
  CHECK(s.find("1H assigned shifts") != std::string::npos);
  CHECK(s.find("1H assigned atoms") != std::string::npos);
  CHECK(s.find("31P peak sets") != std::string::npos);
  CHECK(s.find("CDCl3") != std::string::npos);
  // 1H: 4 shifts on 3 heavy atoms, all in the valid part (ethanol).
  auto line_of = [&](const std::string& label) {
    size_t at = s.find(label);
    REQUIRE(at != std::string::npos);
    return s.substr(at, s.find('\n', at) - at);
  };
  auto numbers = [](const std::string& line) {
    std::vector<long> v;
    std::istringstream in(line.substr(line.find_first_of("0123456789", line.find("  "))));
    for (long x; in >> x;) v.push_back(x);
    return v;
  };
  CHECK(numbers(line_of("1H assigned shifts")) == std::vector<long>{0, 4, 0, 4});
  CHECK(numbers(line_of("1H assigned atoms")) == std::vector<long>{0, 3, 0, 3});
  CHECK(numbers(line_of("13C peak sets")) == std::vector<long>{0, 1, 1, 2});
  CHECK(numbers(line_of("all (")) == std::vector<long>{1, 1, 2, 4});
}

TEST_CASE("split: group keys merge stereoisomers and repeats") {
  Molecule r, s;
  r.inchikey = "BBBBBBBBBBBBBB-QMMMGPOBSA-N";
  s.inchikey = "BBBBBBBBBBBBBB-QWWZWVQMSA-N";
  CHECK(split_group_key(r) == split_group_key(s));
  Molecule other;
  other.inchikey = "BBBBBBBBBBBBBC-QMMMGPOBSA-N";
  CHECK(split_group_key(other) != split_group_key(r));

  Molecule a, b, c, d;  // no InChIKey: SMILES with stereo marks removed
  a.smiles = "C[C@H](O)CC";
  b.smiles = "C[C@@H](O)CC";
  c.smiles = "F/C=C/F";
  d.smiles = "F/C=C\\F";
  CHECK(split_group_key(a) == split_group_key(b));
  CHECK(split_group_key(c) == split_group_key(d));
  CHECK(split_group_key(a) != split_group_key(c));
  CHECK(split_group_key(c) == "smiles:FC=CF");

  Molecule nothing;
  nothing.id = "stdin:3";
  CHECK_THROWS_WITH_AS(split_group_key(nothing), doctest::Contains("stdin:3"), Error);
}

TEST_CASE("split: deterministic, pinned, 80/10/10, stereoisomers together, seed-dependent") {
  // Pinned values: the split must never change between builds, machines or releases.
  // The value was computed independently (FNV-1a 64 of the key, xor SplitMix64(seed), SplitMix64).
  CHECK(split_hash("inchikey:LFQSCWFLJHTTHZ", 0) == 0x01d0399e2b16e2caull);
  CHECK(split_hash("inchikey:LFQSCWFLJHTTHZ", 0) != split_hash("inchikey:LFQSCWFLJHTTHZ", 1));

  std::mt19937_64 rng(12345);
  const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const int n = 20000;
  std::vector<std::string> keys;
  std::set<std::string> seen;
  while (static_cast<int>(keys.size()) < n) {
    std::string block;
    for (int i = 0; i < 14; ++i) block.push_back(alphabet[rng() % 26]);
    if (seen.insert(block).second) keys.push_back(block);
  }
  auto proportions = [&](uint64_t seed) {
    std::array<int, kNumSplits> count{};
    for (const std::string& block : keys) {
      Molecule m1, m2;
      m1.inchikey = block + "-UHFFFAOYSA-N";
      m2.inchikey = block + "-QMMMGPOBSA-N";  // a stereoisomer
      Split s1 = split_of(m1, seed);
      CHECK(s1 == split_of(m2, seed));
      CHECK(s1 == split_of(split_group_key(m1), seed));  // pure function of (key, seed)
      ++count[static_cast<size_t>(s1)];
    }
    return count;
  };
  for (uint64_t seed : {0ull, 1ull, 20240611ull}) {
    INFO("seed ", seed);
    std::array<int, kNumSplits> count = proportions(seed);
    CHECK(std::abs(count[0] / double(n) - 0.8) < 0.02);
    CHECK(std::abs(count[1] / double(n) - 0.1) < 0.02);
    CHECK(std::abs(count[2] / double(n) - 0.1) < 0.02);
  }
  // Another seed reassigns a good fraction of the keys (independent splits agree on ~66%).
  int changed = 0;
  for (const std::string& k : keys) changed += split_of(k, 0) != split_of(k, 1);
  CHECK(changed > n / 5);
  CHECK(changed < n / 2);
}
