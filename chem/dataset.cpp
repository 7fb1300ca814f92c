// Prepared-dataset I/O: flat CSR arrays in a safetensors file (format in chem/dataset.h).
//
// Both directions validate completely. Saving checks every entry first, so a bug in `larmor prepare`
// is reported against the molecule that has it rather than surfacing later as a corrupt file; loading
// checks everything the trainers will index with (offsets, atom indices, enum values), so a damaged
// or foreign file fails here with its name and the problem, never as an out-of-range read in training.
#include "chem/dataset.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/error.h"
#include "layers/safetensors.h"

namespace larmor::chem {

namespace {

using json = nlohmann::json;

constexpr int kAtomFeatures = 10;             // columns of atom.features
constexpr int kBondColumns = 4;               // columns of bond
constexpr uint64_t kMaxHeader = 100ull << 20;  // safetensors header limit (layers/safetensors.cpp)
constexpr uint64_t kHeaderReserve = 1ull << 20;  // room for the tensor entries beside the metadata

// The string fields of Molecule / DatasetEntry stored as metadata arrays, with accessors.
struct StringField {
  const char* key;
  std::string DatasetEntry::*entry_field;  // or null
  std::string Molecule::*mol_field;        // or null
  std::string& get(DatasetEntry& e) const { return entry_field ? e.*entry_field : e.mol.*mol_field; }
  const std::string& get(const DatasetEntry& e) const { return entry_field ? e.*entry_field : e.mol.*mol_field; }
};
const StringField kStringFields[] = {
    {"mol.id", nullptr, &Molecule::id},
    {"mol.title", nullptr, &Molecule::title},
    {"mol.smiles", nullptr, &Molecule::smiles},
    {"mol.inchikey", nullptr, &Molecule::inchikey},
    {"mol.formula", nullptr, &Molecule::formula},
    {"mol.note", nullptr, &Molecule::note},
    {"mol.nmrshiftdb_id", &DatasetEntry::nmrshiftdb_id, nullptr},
};

[[noreturn]] void fail(const char* fn, const std::string& path, const std::string& msg) {
  throw Error(std::string(fn) + ": '" + path + "': " + msg);
}

std::string entry_name(size_t i, const DatasetEntry& e) {
  return "entry " + std::to_string(i) + (e.mol.id.empty() ? std::string() : " ('" + e.mol.id + "')");
}

// JSON text of a string array / object. Invalid UTF-8 bytes (Latin-1 SD titles) become U+FFFD rather
// than failing the whole save.
std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// ---- save ----------------------------------------------------------------------------------------

void check_entry(const std::string& path, size_t i, const DatasetEntry& e) {
  auto bad = [&](const std::string& msg) { fail("save_dataset", path, entry_name(i, e) + ": " + msg); };
  const Molecule& m = e.mol;
  const int32_t n = m.num_atoms();
  if (m.has_3d() && m.coords.size() != m.atoms.size())
    bad(std::to_string(m.coords.size()) + " coordinates for " + std::to_string(n) + " atoms");
  for (size_t a = 0; a < m.coords.size(); ++a)
    for (float c : m.coords[a])
      if (!std::isfinite(c)) bad("coordinate of atom " + std::to_string(a) + " is not finite");
  for (int32_t a = 0; a < n; ++a) {
    const Atom& at = m.atoms[a];
    if (at.heavy < -1 || at.heavy >= n) bad("atom " + std::to_string(a) + " heavy index " + std::to_string(at.heavy) + " outside the molecule");
    if (at.symmetry_class < -1 || at.symmetry_class >= n)
      bad("atom " + std::to_string(a) + " symmetry class " + std::to_string(at.symmetry_class) + " outside [-1, " + std::to_string(n) + ")");
  }
  for (size_t b = 0; b < m.bonds.size(); ++b) {
    const Bond& bd = m.bonds[b];
    if (bd.a < 0 || bd.a >= n || bd.b < 0 || bd.b >= n)
      bad("bond " + std::to_string(b) + " (" + std::to_string(bd.a) + ", " + std::to_string(bd.b) + ") outside the molecule's " + std::to_string(n) + " atoms");
  }
  if (m.num_input_atoms < 0 || m.num_input_atoms > n)
    bad("num_input_atoms " + std::to_string(m.num_input_atoms) + " outside [0, " + std::to_string(n) + "]");
  if (m.num_record_atoms < 0) bad("num_record_atoms " + std::to_string(m.num_record_atoms) + " is negative");
  if (!m.input_index.empty() && m.input_index.size() != m.atoms.size())
    bad(std::to_string(m.input_index.size()) + " input indices for " + std::to_string(n) + " atoms");
  for (size_t a = 0; a < m.input_index.size(); ++a)
    if (m.input_index[a] < -1) bad("input index of atom " + std::to_string(a) + " is " + std::to_string(m.input_index[a]));
  if ((e.sources & ~kAllSourceBits) != 0) bad("unknown source bits " + std::to_string(e.sources));
  for (size_t s = 0; s < e.assigned.size(); ++s) {
    const AssignedShift& a = e.assigned[s];
    if (a.atom < 0 || a.atom >= n) bad("assigned shift " + std::to_string(s) + " names atom " + std::to_string(a.atom) + " of " + std::to_string(n));
    if (!std::isfinite(a.shift)) bad("assigned shift " + std::to_string(s) + " is not finite");
    if (a.count < 1) bad("assigned shift " + std::to_string(s) + " has count " + std::to_string(a.count) + " (needs >= 1)");
  }
  for (size_t p = 0; p < e.peak_sets.size(); ++p) {
    const PeakSet& ps = e.peak_sets[p];
    if (ps.mult.size() != ps.shifts.size())
      bad("peak set " + std::to_string(p) + " has " + std::to_string(ps.mult.size()) + " multiplicities for " + std::to_string(ps.shifts.size()) + " shifts");
    for (float v : ps.shifts)
      if (!std::isfinite(v)) bad("peak set " + std::to_string(p) + " has a non-finite shift");
  }
}

template <typename T>
Tensor vec1(const std::vector<T>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

// ---- load ----------------------------------------------------------------------------------------

struct Loader {
  const std::string& path;
  SafetensorsFile file;

  [[noreturn]] void bad(const std::string& msg) const { fail("load_dataset", path, msg); }

  const Tensor& tensor(const std::string& name, DType dtype, const Shape& shape) const {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) bad("tensor '" + name + "' is missing");
    const Tensor& t = it->second;
    if (t.dtype() != dtype)
      bad("tensor '" + name + "' is " + dtype_name(t.dtype()) + ", expected " + dtype_name(dtype));
    if (t.shape() != shape) bad("tensor '" + name + "' has shape " + shape_str(t.shape()) + ", expected " + shape_str(shape));
    return t;
  }
  // 1-D tensor of any length (the length is checked against the offsets that index it).
  int64_t length(const std::string& name) const {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) bad("tensor '" + name + "' is missing");
    if (it->second.dim() < 1) bad("tensor '" + name + "' is a scalar, expected at least one axis");
    return it->second.size(0);
  }
  // CSR offsets: n+1 entries, starting at 0, never decreasing, ending at `rows`.
  const int64_t* offsets(const std::string& name, int64_t n, int64_t rows, const std::string& rows_of) const {
    const int64_t* o = tensor(name, DType::I64, {n + 1}).data<int64_t>();
    if (o[0] != 0) bad("'" + name + "' starts at " + std::to_string(o[0]) + ", not 0");
    for (int64_t i = 0; i < n; ++i)
      if (o[i + 1] < o[i])
        bad("'" + name + "' decreases at " + std::to_string(i + 1) + " (" + std::to_string(o[i]) + " -> " + std::to_string(o[i + 1]) + ")");
    if (o[n] != rows)
      bad("'" + name + "' ends at " + std::to_string(o[n]) + " but " + rows_of + " has " + std::to_string(rows) + " rows");
    return o;
  }
  const std::string& meta(const std::string& key) const {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) bad("metadata '" + key + "' is missing");
    return it->second;
  }
  json meta_json(const std::string& key, bool want_array, size_t size) const {
    json j;
    try {
      j = json::parse(meta(key));
    } catch (const json::exception& e) {
      bad("metadata '" + key + "' is not valid JSON: " + e.what());
    }
    if (want_array && (!j.is_array() || j.size() != size))
      bad("metadata '" + key + "' must be a JSON array of " + std::to_string(size) + " entries");
    if (!want_array && !j.is_object()) bad("metadata '" + key + "' must be a JSON object");
    return j;
  }
};

void check_format(const std::map<std::string, std::string>& metadata, const char* fn, const std::string& path) {
  auto f = metadata.find("format");
  if (f == metadata.end() || f->second != kDatasetFormat)
    fail(fn, path, "not a larmor dataset (metadata 'format' is " +
                       (f == metadata.end() ? std::string("missing") : "'" + f->second + "'") + ", expected '" + kDatasetFormat + "')");
  auto v = metadata.find("version");
  if (v == metadata.end() || v->second != kDatasetVersion)
    fail(fn, path, "dataset format version " + (v == metadata.end() ? std::string("missing") : "'" + v->second + "'") +
                       "; this build reads version '" + kDatasetVersion + "' (re-run `larmor prepare`)");
}

std::map<std::string, std::string> info_from_json(const json& j, const char* fn, const std::string& path) {
  std::map<std::string, std::string> info;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) fail(fn, path, "metadata 'info' value for '" + it.key() + "' is not a string");
    info[it.key()] = it.value().get<std::string>();
  }
  return info;
}

bool in_range(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

}  // namespace

const char* source_name(Source s) {
  switch (s) {
    case Source::NMR8K: return "NMR8K";
    case Source::PB: return "pb";
    case Source::F19: return "19F";
    case Source::P31: return "31P";
    case Source::Literature: return "literature";
  }
  return "?";
}

void save_dataset(const std::string& path, const Dataset& dataset) {
  const auto& entries = dataset.entries;
  const int64_t M = static_cast<int64_t>(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) check_entry(path, i, entries[i]);

  std::vector<int64_t> atom_off{0}, bond_off{0}, assigned_off{0}, peakset_off{0}, peak_off{0};
  std::vector<int32_t> split, sources, solvent, num_input, num_record, has_coords, has_input_index;
  std::vector<int32_t> features, input_index, bonds, as_atom, as_nucleus, as_count, ps_nucleus, ps_solvent, peak_mult;
  std::vector<float> coords, as_shift, peak_shift;
  for (const DatasetEntry& e : entries) {
    const Molecule& m = e.mol;
    for (int32_t a = 0; a < m.num_atoms(); ++a) {
      const Atom& at = m.atoms[a];
      features.insert(features.end(), {at.element, at.formal_charge, static_cast<int32_t>(at.hybridization),
                                       static_cast<int32_t>(at.chirality), at.aromatic ? 1 : 0, at.in_ring ? 1 : 0,
                                       at.degree, at.num_h, at.heavy, at.symmetry_class});
      if (m.has_3d()) coords.insert(coords.end(), m.coords[a].begin(), m.coords[a].end());
      else coords.insert(coords.end(), {0.0f, 0.0f, 0.0f});
      input_index.push_back(m.input_index.empty() ? -1 : m.input_index[static_cast<size_t>(a)]);
    }
    for (const Bond& b : m.bonds)
      bonds.insert(bonds.end(), {b.a, b.b, static_cast<int32_t>(b.type), static_cast<int32_t>(b.stereo)});
    for (const AssignedShift& s : e.assigned) {
      as_atom.push_back(s.atom);
      as_nucleus.push_back(static_cast<int32_t>(s.nucleus));
      as_shift.push_back(s.shift);
      as_count.push_back(s.count);
    }
    for (const PeakSet& ps : e.peak_sets) {
      ps_nucleus.push_back(static_cast<int32_t>(ps.nucleus));
      ps_solvent.push_back(static_cast<int32_t>(ps.solvent));
      peak_shift.insert(peak_shift.end(), ps.shifts.begin(), ps.shifts.end());
      for (int8_t x : ps.mult) peak_mult.push_back(x);
      peak_off.push_back(static_cast<int64_t>(peak_shift.size()));
    }
    atom_off.push_back(atom_off.back() + m.num_atoms());
    bond_off.push_back(bond_off.back() + static_cast<int64_t>(m.bonds.size()));
    assigned_off.push_back(static_cast<int64_t>(as_atom.size()));
    peakset_off.push_back(static_cast<int64_t>(ps_nucleus.size()));
    split.push_back(static_cast<int32_t>(e.split));
    sources.push_back(static_cast<int32_t>(e.sources));
    solvent.push_back(static_cast<int32_t>(e.solvent));
    num_input.push_back(m.num_input_atoms);
    num_record.push_back(m.num_record_atoms);
    has_coords.push_back(m.has_3d() ? 1 : 0);
    has_input_index.push_back(m.input_index.empty() ? 0 : 1);
  }
  const int64_t A = atom_off.back(), Bn = bond_off.back();

  std::map<std::string, Tensor> tensors;
  tensors["mol.atom_offsets"] = vec1(atom_off);
  tensors["mol.bond_offsets"] = vec1(bond_off);
  tensors["mol.assigned_offsets"] = vec1(assigned_off);
  tensors["mol.peakset_offsets"] = vec1(peakset_off);
  tensors["mol.split"] = vec1(split);
  tensors["mol.sources"] = vec1(sources);
  tensors["mol.solvent"] = vec1(solvent);
  tensors["mol.num_input_atoms"] = vec1(num_input);
  tensors["mol.num_record_atoms"] = vec1(num_record);
  tensors["mol.has_coords"] = vec1(has_coords);
  tensors["mol.has_input_index"] = vec1(has_input_index);
  tensors["atom.input_index"] = vec1(input_index);
  tensors["atom.features"] = Tensor::from_vector(features, {A, kAtomFeatures});
  tensors["atom.coords"] = Tensor::from_vector(coords, {A, 3});
  tensors["bond"] = Tensor::from_vector(bonds, {Bn, kBondColumns});
  tensors["assigned.atom"] = vec1(as_atom);
  tensors["assigned.nucleus"] = vec1(as_nucleus);
  tensors["assigned.shift"] = vec1(as_shift);
  tensors["assigned.count"] = vec1(as_count);
  tensors["peakset.nucleus"] = vec1(ps_nucleus);
  tensors["peakset.solvent"] = vec1(ps_solvent);
  tensors["peakset.peak_offsets"] = vec1(peak_off);
  tensors["peak.shift"] = vec1(peak_shift);
  tensors["peak.mult"] = vec1(peak_mult);

  std::map<std::string, std::string> metadata;
  metadata["format"] = kDatasetFormat;
  metadata["version"] = kDatasetVersion;
  metadata["molecules"] = std::to_string(M);
  metadata["info"] = dump_json(json(dataset.info));
  for (const StringField& f : kStringFields) {
    json arr = json::array();
    for (const DatasetEntry& e : entries) arr.push_back(f.get(e));
    metadata[f.key] = dump_json(arr);
  }
  json tags = json::array();
  for (const DatasetEntry& e : entries) tags.push_back(json(e.mol.tags));
  metadata["mol.tags"] = dump_json(tags);

  // The header holds the metadata JSON-escaped once more; refuse here what load would refuse later.
  uint64_t header_bytes = dump_json(json(metadata)).size();
  if (header_bytes + kHeaderReserve > kMaxHeader)
    fail("save_dataset", path, "string metadata (ids, SMILES, titles, SD tags) takes " + std::to_string(header_bytes >> 20) +
                                   " MB, over the 100 MB safetensors header limit: drop the SD tags (Molecule::tags) or split the dataset");
  save_safetensors(path, tensors, metadata);
}

Dataset load_dataset(const std::string& path) {
  Loader L{path, load_safetensors(path)};
  check_format(L.file.metadata, "load_dataset", path);

  const int64_t M = L.length("mol.split");
  const int64_t A = L.length("atom.features");
  const int64_t Bn = L.length("bond");
  const int64_t S = L.length("assigned.atom");
  const int64_t P = L.length("peakset.nucleus");
  const int64_t K = L.length("peak.shift");
  if (L.meta("molecules") != std::to_string(M))
    L.bad("metadata 'molecules' says " + L.meta("molecules") + " but 'mol.split' has " + std::to_string(M) + " entries");

  const int64_t* atom_off = L.offsets("mol.atom_offsets", M, A, "'atom.features'");
  const int64_t* bond_off = L.offsets("mol.bond_offsets", M, Bn, "'bond'");
  const int64_t* assigned_off = L.offsets("mol.assigned_offsets", M, S, "'assigned.atom'");
  const int64_t* peakset_off = L.offsets("mol.peakset_offsets", M, P, "'peakset.nucleus'");
  const int64_t* peak_off = L.offsets("peakset.peak_offsets", P, K, "'peak.shift'");
  const int32_t* split = L.tensor("mol.split", DType::I32, {M}).data<int32_t>();
  const int32_t* sources = L.tensor("mol.sources", DType::I32, {M}).data<int32_t>();
  const int32_t* solvent = L.tensor("mol.solvent", DType::I32, {M}).data<int32_t>();
  const int32_t* num_input = L.tensor("mol.num_input_atoms", DType::I32, {M}).data<int32_t>();
  const int32_t* num_record = L.tensor("mol.num_record_atoms", DType::I32, {M}).data<int32_t>();
  const int32_t* has_coords = L.tensor("mol.has_coords", DType::I32, {M}).data<int32_t>();
  const int32_t* has_input_index = L.tensor("mol.has_input_index", DType::I32, {M}).data<int32_t>();
  const int32_t* input_index = L.tensor("atom.input_index", DType::I32, {A}).data<int32_t>();
  const int32_t* features = L.tensor("atom.features", DType::I32, {A, kAtomFeatures}).data<int32_t>();
  const float* coords = L.tensor("atom.coords", DType::F32, {A, 3}).data<float>();
  const int32_t* bonds = L.tensor("bond", DType::I32, {Bn, kBondColumns}).data<int32_t>();
  const int32_t* as_atom = L.tensor("assigned.atom", DType::I32, {S}).data<int32_t>();
  const int32_t* as_nucleus = L.tensor("assigned.nucleus", DType::I32, {S}).data<int32_t>();
  const float* as_shift = L.tensor("assigned.shift", DType::F32, {S}).data<float>();
  const int32_t* as_count = L.tensor("assigned.count", DType::I32, {S}).data<int32_t>();
  const int32_t* ps_nucleus = L.tensor("peakset.nucleus", DType::I32, {P}).data<int32_t>();
  const int32_t* ps_solvent = L.tensor("peakset.solvent", DType::I32, {P}).data<int32_t>();
  const float* peak_shift = L.tensor("peak.shift", DType::F32, {K}).data<float>();
  const int32_t* peak_mult = L.tensor("peak.mult", DType::I32, {K}).data<int32_t>();

  std::vector<json> strings;
  for (const StringField& f : kStringFields) {
    strings.push_back(L.meta_json(f.key, true, static_cast<size_t>(M)));
    for (const json& s : strings.back())
      if (!s.is_string()) L.bad(std::string("metadata '") + f.key + "' holds a non-string entry");
  }
  json tags = L.meta_json("mol.tags", true, static_cast<size_t>(M));

  Dataset ds;
  ds.info = info_from_json(L.meta_json("info", false, 0), "load_dataset", path);
  ds.entries.resize(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) {
    DatasetEntry& e = ds.entries[static_cast<size_t>(i)];
    Molecule& m = e.mol;
    for (size_t f = 0; f < std::size(kStringFields); ++f) kStringFields[f].get(e) = strings[f][i].get<std::string>();
    auto bad = [&](const std::string& msg) { L.bad("molecule " + std::to_string(i) + " ('" + m.id + "'): " + msg); };

    const int64_t n64 = atom_off[i + 1] - atom_off[i];
    if (n64 > INT32_MAX) bad("too many atoms");
    const int32_t n = static_cast<int32_t>(n64);
    if (!in_range(split[i], 0, kNumSplits - 1)) bad("split " + std::to_string(split[i]) + " is not 0..2");
    if ((static_cast<uint32_t>(sources[i]) & ~kAllSourceBits) != 0) bad("unknown source bits " + std::to_string(sources[i]));
    if (!in_range(solvent[i], 0, kNumSolvents - 1)) bad("solvent " + std::to_string(solvent[i]) + " is not a Solvent");
    if (!in_range(num_input[i], 0, n)) bad("num_input_atoms " + std::to_string(num_input[i]) + " outside [0, " + std::to_string(n) + "]");
    if (num_record[i] < 0) bad("num_record_atoms " + std::to_string(num_record[i]) + " is negative");
    if (!in_range(has_coords[i], 0, 1)) bad("has_coords is " + std::to_string(has_coords[i]));
    if (!in_range(has_input_index[i], 0, 1)) bad("has_input_index is " + std::to_string(has_input_index[i]));
    e.split = static_cast<Split>(split[i]);
    e.sources = static_cast<uint32_t>(sources[i]);
    e.solvent = static_cast<Solvent>(solvent[i]);
    m.num_input_atoms = num_input[i];
    m.num_record_atoms = num_record[i];

    const json& tj = tags[i];
    if (!tj.is_object()) bad("'mol.tags' entry is not a JSON object");
    for (auto it = tj.begin(); it != tj.end(); ++it) {
      if (!it.value().is_string()) bad("tag '" + it.key() + "' is not a string");
      m.tags[it.key()] = it.value().get<std::string>();
    }

    m.atoms.resize(static_cast<size_t>(n));
    if (has_coords[i]) m.coords.resize(static_cast<size_t>(n));
    if (has_input_index[i]) m.input_index.resize(static_cast<size_t>(n));
    for (int32_t a = 0; a < n; ++a) {
      const int32_t* f = features + (atom_off[i] + a) * kAtomFeatures;
      auto bad_atom = [&](const char* what, int32_t v) {
        bad("atom " + std::to_string(a) + " " + what + " " + std::to_string(v) + " out of range");
      };
      if (!in_range(f[0], 0, 118)) bad_atom("element", f[0]);
      if (!in_range(f[1], INT8_MIN, INT8_MAX)) bad_atom("formal charge", f[1]);
      if (!in_range(f[2], 0, static_cast<int>(Hybridization::SP3D2))) bad_atom("hybridization", f[2]);
      if (!in_range(f[3], 0, static_cast<int>(Chirality::Unspecified))) bad_atom("chirality", f[3]);
      if (!in_range(f[4], 0, 1)) bad_atom("aromatic flag", f[4]);
      if (!in_range(f[5], 0, 1)) bad_atom("ring flag", f[5]);
      if (!in_range(f[6], 0, UINT8_MAX)) bad_atom("degree", f[6]);
      if (!in_range(f[7], 0, UINT8_MAX)) bad_atom("hydrogen count", f[7]);
      if (!in_range(f[8], -1, n - 1)) bad_atom("heavy index", f[8]);
      if (!in_range(f[9], -1, n - 1)) bad_atom("symmetry class", f[9]);
      Atom& at = m.atoms[static_cast<size_t>(a)];
      at.element = static_cast<uint8_t>(f[0]);
      at.formal_charge = static_cast<int8_t>(f[1]);
      at.hybridization = static_cast<Hybridization>(f[2]);
      at.chirality = static_cast<Chirality>(f[3]);
      at.aromatic = f[4] != 0;
      at.in_ring = f[5] != 0;
      at.degree = static_cast<uint8_t>(f[6]);
      at.num_h = static_cast<uint8_t>(f[7]);
      at.heavy = f[8];
      at.symmetry_class = f[9];
      if (has_input_index[i]) {
        int32_t k = input_index[atom_off[i] + a];
        if (k < -1) bad_atom("input index", k);
        m.input_index[static_cast<size_t>(a)] = k;
      }
      if (has_coords[i]) {
        const float* c = coords + (atom_off[i] + a) * 3;
        for (int k = 0; k < 3; ++k) {
          if (!std::isfinite(c[k])) bad("coordinate of atom " + std::to_string(a) + " is not finite");
          m.coords[static_cast<size_t>(a)][static_cast<size_t>(k)] = c[k];
        }
      }
    }
    for (int64_t b = bond_off[i]; b < bond_off[i + 1]; ++b) {
      const int32_t* r = bonds + b * kBondColumns;
      if (!in_range(r[0], 0, n - 1) || !in_range(r[1], 0, n - 1))
        bad("bond (" + std::to_string(r[0]) + ", " + std::to_string(r[1]) + ") outside the molecule's " + std::to_string(n) + " atoms");
      if (!in_range(r[2], 0, static_cast<int>(BondType::Aromatic))) bad("bond type " + std::to_string(r[2]) + " out of range");
      if (!in_range(r[3], 0, static_cast<int>(BondStereo::Down))) bad("bond stereo " + std::to_string(r[3]) + " out of range");
      m.bonds.push_back({r[0], r[1], static_cast<BondType>(r[2]), static_cast<BondStereo>(r[3])});
    }
    for (int64_t s = assigned_off[i]; s < assigned_off[i + 1]; ++s) {
      if (!in_range(as_atom[s], 0, n - 1)) bad("assigned shift names atom " + std::to_string(as_atom[s]) + " of " + std::to_string(n));
      if (!in_range(as_nucleus[s], 0, kNumNuclei - 1)) bad("assigned nucleus " + std::to_string(as_nucleus[s]) + " out of range");
      if (!std::isfinite(as_shift[s])) bad("assigned shift is not finite");
      if (as_count[s] < 1) bad("assigned shift count " + std::to_string(as_count[s]) + " (needs >= 1)");
      e.assigned.push_back({as_atom[s], static_cast<Nucleus>(as_nucleus[s]), as_shift[s], as_count[s]});
    }
    for (int64_t p = peakset_off[i]; p < peakset_off[i + 1]; ++p) {
      if (!in_range(ps_nucleus[p], 0, kNumNuclei - 1)) bad("peak set nucleus " + std::to_string(ps_nucleus[p]) + " out of range");
      if (!in_range(ps_solvent[p], 0, kNumSolvents - 1)) bad("peak set solvent " + std::to_string(ps_solvent[p]) + " out of range");
      PeakSet ps;
      ps.nucleus = static_cast<Nucleus>(ps_nucleus[p]);
      ps.solvent = static_cast<Solvent>(ps_solvent[p]);
      for (int64_t k = peak_off[p]; k < peak_off[p + 1]; ++k) {
        if (!std::isfinite(peak_shift[k])) bad("peak shift is not finite");
        if (!in_range(peak_mult[k], kMultUnknown, INT8_MAX)) bad("peak multiplicity " + std::to_string(peak_mult[k]) + " out of range");
        ps.shifts.push_back(peak_shift[k]);
        ps.mult.push_back(static_cast<int8_t>(peak_mult[k]));
      }
      e.peak_sets.push_back(std::move(ps));
    }
  }
  return ds;
}

std::map<std::string, std::string> read_dataset_info(const std::string& path) {
  const char* fn = "read_dataset_info";
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fn, path, std::string("cannot open: ") + std::strerror(errno));
  unsigned char len[8];
  if (!in.read(reinterpret_cast<char*>(len), 8)) fail(fn, path, "truncated: shorter than the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (hlen > kMaxHeader) fail(fn, path, "header length " + std::to_string(hlen) + " exceeds the 100 MB limit: not a safetensors file");
  std::string text(hlen, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(hlen))) fail(fn, path, "truncated header");
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    fail(fn, path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object() || !header.contains("__metadata__") || !header["__metadata__"].is_object())
    fail(fn, path, "not a larmor dataset (no metadata)");
  std::map<std::string, std::string> metadata;
  for (auto it = header["__metadata__"].begin(); it != header["__metadata__"].end(); ++it)
    if (it.value().is_string()) metadata[it.key()] = it.value().get<std::string>();
  check_format(metadata, fn, path);
  json info;
  try {
    info = json::parse(metadata.count("info") ? metadata["info"] : std::string("{}"));
  } catch (const json::exception& e) {
    fail(fn, path, std::string("metadata 'info' is not valid JSON: ") + e.what());
  }
  if (!info.is_object()) fail(fn, path, "metadata 'info' must be a JSON object");
  return info_from_json(info, fn, path);
}

std::string dataset_summary(const Dataset& dataset) {
  // counts[row][split]; the last column is the total.
  using Row = std::array<int64_t, kNumSplits + 1>;
  auto add = [](Row& r, Split s, int64_t v) {
    r[static_cast<size_t>(s)] += v;
    r[kNumSplits] += v;
  };
  Row all{};
  std::array<Row, kNumSources> by_source{};
  struct NucleusRows {
    Row molecules{}, shifts{}, atoms{}, peak_sets{}, peaks{};
  };
  std::array<NucleusRows, kNumNuclei> by_nucleus{};
  std::array<Row, kNumSolvents> by_solvent{};
  for (const DatasetEntry& e : dataset.entries) {
    add(all, e.split, 1);
    for (int s = 0; s < kNumSources; ++s)
      if (e.sources & source_bit(kAllSources[s])) add(by_source[static_cast<size_t>(s)], e.split, 1);
    add(by_solvent[static_cast<size_t>(e.solvent)], e.split, 1);
    for (int nu = 0; nu < kNumNuclei; ++nu) {
      NucleusRows& r = by_nucleus[static_cast<size_t>(nu)];
      std::vector<int32_t> atoms;
      for (const AssignedShift& a : e.assigned)
        if (static_cast<int>(a.nucleus) == nu) atoms.push_back(a.atom);
      std::sort(atoms.begin(), atoms.end());
      int64_t distinct = std::unique(atoms.begin(), atoms.end()) - atoms.begin();
      if (!atoms.empty()) add(r.molecules, e.split, 1);
      add(r.shifts, e.split, static_cast<int64_t>(atoms.size()));
      add(r.atoms, e.split, distinct);
      for (const PeakSet& ps : e.peak_sets)
        if (static_cast<int>(ps.nucleus) == nu) {
          add(r.peak_sets, e.split, 1);
          add(r.peaks, e.split, static_cast<int64_t>(ps.shifts.size()));
        }
    }
  }

  std::ostringstream out;
  auto header = [&](const std::string& title) {
    out << std::left << std::setw(36) << title << std::right;
    for (int s = 0; s < kNumSplits; ++s) out << std::setw(10) << split_name(static_cast<Split>(s));
    out << std::setw(10) << "total" << "\n";
  };
  auto row = [&](const std::string& name, const Row& r) {
    out << "  " << std::left << std::setw(34) << name << std::right;
    for (int64_t v : r) out << std::setw(10) << v;
    out << "\n";
  };
  auto nonzero = [](const Row& r) { return r[kNumSplits] != 0; };

  header("molecules per source");
  for (int s = 0; s < kNumSources; ++s) row(source_name(kAllSources[s]), by_source[static_cast<size_t>(s)]);
  row("all (a molecule may have several)", all);
  out << "\n";
  header("per nucleus");
  for (int nu = 0; nu < kNumNuclei; ++nu) {
    const NucleusRows& r = by_nucleus[static_cast<size_t>(nu)];
    const std::string name = nucleus_name(static_cast<Nucleus>(nu));
    if (!nonzero(r.molecules) && !nonzero(r.peak_sets)) continue;
    row(name + " molecules with assigned shifts", r.molecules);
    row(name + " assigned atoms", r.atoms);
    row(name + " assigned shifts", r.shifts);
    row(name + " peak sets (unassigned)", r.peak_sets);
    row(name + " peaks in peak sets", r.peaks);
  }
  out << "\n";
  header("molecules per solvent");
  for (int s = 0; s < kNumSolvents; ++s)
    if (nonzero(by_solvent[static_cast<size_t>(s)])) row(solvent_name(static_cast<Solvent>(s)), by_solvent[static_cast<size_t>(s)]);
  return out.str();
}

}  // namespace larmor::chem
