// The retrieval index and search (see align_index.h for the format and why it is built this way).
#include "chem/align_index.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "chem/align_data.h"
#include "chem/align_training.h"
#include "engine/error.h"

namespace larmor::chem {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kMaxIndexHeader = 96ull << 20;  // below the 100 MB safetensors header limit, room for the rest

// Monoisotopic masses (u) of the most abundant isotope, by atomic number (NIST/AME values).
const std::map<int, double>& mass_table() {
  static const std::map<int, double> t = {
      {1, 1.00782503207},   {2, 4.00260325415},   {3, 7.01600455},      {4, 9.0121822},      {5, 11.0093054},
      {6, 12.0},            {7, 14.0030740048},   {8, 15.99491461956},  {9, 18.99840322},    {10, 19.9924401754},
      {11, 22.9897692809},  {12, 23.985041700},   {13, 26.98153863},    {14, 27.9769265325}, {15, 30.97376163},
      {16, 31.97207100},    {17, 34.96885268},    {18, 39.9623831225},  {19, 38.96370668},   {20, 39.96259098},
      {21, 44.9559119},     {22, 47.9479463},     {23, 50.9439595},     {24, 51.9405075},    {25, 54.9380451},
      {26, 55.9349375},     {27, 58.9331950},     {28, 57.9353429},     {29, 62.9295975},    {30, 63.9291422},
      {31, 68.9255736},     {32, 73.9211778},     {33, 74.9215965},     {34, 79.9165213},    {35, 78.9183371},
      {36, 83.911507},      {37, 84.911789738},   {38, 87.9056121},     {40, 89.9047044},    {42, 97.9054082},
      {44, 101.9043493},    {45, 102.905504},     {46, 105.903486},     {47, 106.905097},    {48, 113.9033585},
      {49, 114.903878},     {50, 119.9021947},    {51, 120.9038157},    {52, 129.9062244},   {53, 126.904473},
      {54, 131.9041535},    {55, 132.905451933},  {56, 137.9052472},    {74, 183.9509312},   {76, 191.9614807},
      {77, 192.9629264},    {78, 194.9647911},    {79, 196.9665687},    {80, 201.970643},    {81, 204.9744275},
      {82, 207.9766521},    {83, 208.9803987}};
  return t;
}

int atomic_number_of(const std::string& symbol) {
  for (int z = 1; z <= 118; ++z)
    if (symbol == element_symbol(z)) return z;
  return 0;
}

[[noreturn]] void index_fail(const std::string& path, const std::string& what) {
  throw Error("align index '" + path + "': " + what);
}

const std::string& meta(const SafetensorsFile& f, const std::string& path, const char* key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) index_fail(path, std::string("no '") + key + "' metadata (not a larmor align index)");
  return it->second;
}

std::vector<std::string> string_array(const SafetensorsFile& f, const std::string& path, const char* key, int64_t n) {
  std::vector<std::string> out;
  try {
    const json j = json::parse(meta(f, path, key));
    if (!j.is_array()) index_fail(path, std::string("'") + key + "' is not a JSON array");
    for (const json& v : j) out.push_back(v.get<std::string>());
  } catch (const json::exception& e) {
    index_fail(path, std::string("bad '") + key + "' metadata: " + e.what());
  }
  if (static_cast<int64_t>(out.size()) != n)
    index_fail(path, std::string("'") + key + "' lists " + std::to_string(out.size()) + " strings for " +
                         std::to_string(n) + " molecules");
  return out;
}

// FNV-1a, 64 bit, over 8-byte little-endian words (the tail zero-padded; the length is mixed in first), so
// a 50 MB model hashes in a few ms rather than byte by byte.
struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void word(uint64_t w) {
    h ^= w;
    h *= 0x100000001b3ull;
  }
  void bytes(const void* p, size_t n) {
    word(static_cast<uint64_t>(n));
    const auto* b = static_cast<const unsigned char*>(p);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, b + i, 8);
      word(w);
    }
    if (i < n) {
      uint64_t w = 0;
      std::memcpy(&w, b + i, n - i);
      word(w);
    }
  }
  void text(const std::string& s) { bytes(s.data(), s.size()); }
};

// dot product of two float rows with 16 independent lanes (vectorisable without reassociation)
float dot_lanes(const float* a, const float* b, int64_t n) {
  constexpr int64_t kLanes = 16;
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) acc[j] += a[k + j] * b[k + j];
  float tail = 0;
  for (; k < n; ++k) tail += a[k] * b[k];
  float s = 0;
  for (int64_t j = 0; j < kLanes; ++j) s += acc[j];
  return s + tail;
}

// JSON text of strings that may not be valid UTF-8 (Latin-1 SD titles): bad bytes become U+FFFD.
std::string dump_utf8(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

// ---- index ----
void AlignIndex::validate(const std::string& what) const {
  if (dim < 1) throw Error(what + ": embedding width " + std::to_string(dim) + " must be >= 1");
  if (static_cast<int64_t>(embeddings.size()) != size() * dim)
    throw Error(what + ": " + std::to_string(embeddings.size()) + " embedding values for " + std::to_string(size()) +
                " molecules x " + std::to_string(dim));
  for (size_t i = 0; i < embeddings.size(); ++i)
    if (!std::isfinite(embeddings[i]))
      throw Error(what + ": embedding of molecule " + std::to_string(static_cast<int64_t>(i) / dim) + " is not finite");
}

std::string align_model_fingerprint(const AlignModel& model) {
  Fnv1a h;
  h.text(model.config().to_json());
  for (const auto& [name, tensor] : model.state_dict()) {
    h.text(name);
    for (int64_t d : tensor.shape()) h.bytes(&d, sizeof d);
    const Tensor t = tensor.to(Device::cpu());
    if (is_floating(t.dtype())) {
      const std::vector<float> v = t.to(DType::F32).to_vector<float>();
      h.bytes(v.data(), v.size() * sizeof(float));
    } else {
      const std::vector<int64_t> v = t.to(DType::I64).to_vector<int64_t>();
      h.bytes(v.data(), v.size() * sizeof(int64_t));
    }
  }
  char out[32];
  std::snprintf(out, sizeof out, "fnv1a64:%016llx", static_cast<unsigned long long>(h.h));
  return out;
}

void save_align_index(const std::string& path, const AlignIndex& index, StoredFloat embeddings_as) {
  index.validate("align index '" + path + "'");
  const int64_t M = index.size();
  json ids = json::array(), names = json::array(), smiles = json::array(), formulas = json::array();
  std::vector<double> mass(static_cast<size_t>(M));
  for (int64_t i = 0; i < M; ++i) {
    const AlignIndexMolecule& m = index.molecules[static_cast<size_t>(i)];
    ids.push_back(m.id);
    names.push_back(m.name);
    smiles.push_back(m.smiles);
    formulas.push_back(m.formula);
    mass[static_cast<size_t>(i)] = m.mass;
  }
  std::map<std::string, std::string> md = {{"format", kAlignIndexFormat},
                                           {"version", kAlignIndexVersion},
                                           {"molecules", std::to_string(M)},
                                           {"dim", std::to_string(index.dim)},
                                           {"model_fingerprint", index.model_fingerprint},
                                           {"model_path", index.model_path},
                                           {"model_config", index.model_config},
                                           {"source", index.source},
                                           {"ids", dump_utf8(ids)},
                                           {"names", dump_utf8(names)},
                                           {"smiles", dump_utf8(smiles)},
                                           {"formulas", dump_utf8(formulas)},
                                           {"mass", "monoisotopic"}};
  size_t header = 0;
  for (const auto& [k, v] : md) header += k.size() + v.size() + 8;
  if (header > kMaxIndexHeader)
    index_fail(path, std::to_string(M) + " molecules need a " + std::to_string(header >> 20) +
                         " MB header, beyond the safetensors 100 MB limit: split the library into several indexes");
  std::map<std::string, Tensor> tensors = {{"embeddings", Tensor::from_vector<float>(index.embeddings, {M, index.dim})},
                                           {"mass", Tensor::from_vector<double>(mass, {M})}};
  save_safetensors(path, tensors, md, embeddings_as);
}

AlignIndex load_align_index(const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  if (meta(f, path, "format") != kAlignIndexFormat)
    index_fail(path, "format is '" + meta(f, path, "format") + "', not " + kAlignIndexFormat);
  if (meta(f, path, "version") != kAlignIndexVersion)
    index_fail(path, "version " + meta(f, path, "version") + " (this larmor reads version " + kAlignIndexVersion + ")");
  auto emb = f.tensors.find("embeddings");
  auto mass = f.tensors.find("mass");
  if (emb == f.tensors.end() || mass == f.tensors.end()) index_fail(path, "missing tensor 'embeddings' or 'mass'");
  const Tensor& e = emb->second;
  if (e.dim() != 2 || e.dtype() != DType::F32)
    index_fail(path, "'embeddings' must be F32 (M, D), got " + e.str());
  const int64_t M = e.size(0);
  if (mass->second.dtype() != DType::F64 || mass->second.shape() != Shape{M})
    index_fail(path, "'mass' must be F64 (" + std::to_string(M) + "), got " + mass->second.str());
  if (meta(f, path, "molecules") != std::to_string(M))
    index_fail(path, "metadata says " + meta(f, path, "molecules") + " molecules, 'embeddings' holds " + std::to_string(M));
  AlignIndex index;
  index.dim = e.size(1);
  index.embeddings = e.to_vector<float>();
  index.model_fingerprint = meta(f, path, "model_fingerprint");
  index.model_path = meta(f, path, "model_path");
  index.model_config = meta(f, path, "model_config");
  index.source = meta(f, path, "source");
  const std::vector<std::string> ids = string_array(f, path, "ids", M), names = string_array(f, path, "names", M),
                                  smiles = string_array(f, path, "smiles", M),
                                  formulas = string_array(f, path, "formulas", M);
  const std::vector<double> m = mass->second.to_vector<double>();
  index.molecules.resize(static_cast<size_t>(M));
  for (size_t i = 0; i < index.molecules.size(); ++i)
    index.molecules[i] = {ids[i], names[i], smiles[i], formulas[i], m[i]};
  index.validate("align index '" + path + "'");
  return index;
}

void check_align_index_model(const AlignIndex& index, const std::string& index_name, const AlignModel& model,
                             const std::string& fingerprint, const std::string& model_name) {
  if (index.dim != model.config().projection_dim)
    throw Error("align index '" + index_name + "' holds " + std::to_string(index.dim) + "-wide embeddings, model '" +
                model_name + "' embeds into " + std::to_string(model.config().projection_dim) +
                ": rebuild the index with larmor index --model " + model_name);
  if (index.model_fingerprint != fingerprint)
    throw Error("align index '" + index_name + "' was built with a different model (" +
                (index.model_path.empty() ? std::string("fingerprint ") : "'" + index.model_path + "', ") +
                index.model_fingerprint + ") than '" + model_name + "' (" + fingerprint +
                "); its embeddings do not match this model's spectrum encoder: rebuild it with larmor index --model " +
                model_name);
}

// ---- chemistry helpers ----
double monoisotopic_mass(int z) {
  const auto& t = mass_table();
  auto it = t.find(z);
  return it == t.end() ? kNaN : it->second;
}

double monoisotopic_mass(const Molecule& mol) {
  double m = 0;
  for (const Atom& a : mol.atoms) m += monoisotopic_mass(a.element);  // NaN propagates
  return m;
}

std::map<std::string, int64_t> parse_formula(const std::string& formula) {
  auto bad = [&](const std::string& why) -> Error {
    return Error("formula '" + formula + "': " + why + " (expected element symbols with counts, e.g. C9H10O2)");
  };
  std::map<std::string, int64_t> counts;
  size_t i = 0;
  while (i < formula.size()) {
    if (!std::isupper(static_cast<unsigned char>(formula[i]))) throw bad("unexpected '" + formula.substr(i, 1) + "'");
    std::string sym(1, formula[i++]);
    while (i < formula.size() && std::islower(static_cast<unsigned char>(formula[i]))) sym += formula[i++];
    if (atomic_number_of(sym) == 0) throw bad("unknown element '" + sym + "'");
    int64_t n = 0;
    bool digits = false;
    while (i < formula.size() && std::isdigit(static_cast<unsigned char>(formula[i]))) {
      n = n * 10 + (formula[i++] - '0');
      digits = true;
      if (n > 1000000) throw bad("count too large");
    }
    if (digits && n == 0) throw bad("count 0 for '" + sym + "'");
    counts[sym] += digits ? n : 1;
  }
  if (counts.empty()) throw bad("empty");
  return counts;
}

std::string hill_formula_of_counts(const std::map<std::string, int64_t>& counts) {
  std::string out;
  auto put = [&](const std::string& sym, int64_t n) {
    out += sym;
    if (n > 1) out += std::to_string(n);
  };
  const bool carbon = counts.count("C") > 0;
  if (carbon) {
    put("C", counts.at("C"));
    if (counts.count("H")) put("H", counts.at("H"));
  }
  for (const auto& [sym, n] : counts)
    if (!carbon || (sym != "C" && sym != "H")) put(sym, n);
  return out;
}

// ---- building ----
AlignIndexBuilder::AlignIndexBuilder(AlignModel& model, int64_t batch)
    : model_(model), batch_(batch), was_training_(model.is_training()) {
  if (batch < 1) throw Error("align index: batch size must be >= 1, got " + std::to_string(batch));
  index_.dim = model.config().projection_dim;
  index_.model_fingerprint = align_model_fingerprint(model);
  index_.model_config = model.config().to_json();
}

AlignIndexBuilder::~AlignIndexBuilder() { model_.train(was_training_); }

void AlignIndexBuilder::add(AlignMoleculeInput graph, AlignIndexMolecule info) {
  graph.carbon_nodes.clear();
  graph.carbon_ppm.clear();
  graph.carbon_multiplicity.clear();
  graph.peak_ppm.clear();
  graph.peak_multiplicity.clear();
  pending_.push_back(std::move(graph));
  index_.molecules.push_back(std::move(info));
  if (static_cast<int64_t>(pending_.size()) == batch_) flush();
}

int64_t AlignIndexBuilder::size() const { return index_.size(); }

void AlignIndexBuilder::flush() {
  if (pending_.empty()) return;
  model_.eval();
  NoGradGuard ng;
  const AlignBatch b = make_align_batch(pending_);
  const std::vector<float> e = model_.encode_graph(b).molecule.to(Device::cpu()).to(DType::F32).to_vector<float>();  // (B, D)
  index_.embeddings.insert(index_.embeddings.end(), e.begin(), e.end());
  pending_.clear();
}

AlignIndex AlignIndexBuilder::finish() {
  flush();
  model_.train(was_training_);
  AlignIndex out = std::move(index_);
  index_ = AlignIndex{};
  index_.dim = out.dim;
  index_.model_fingerprint = out.model_fingerprint;
  index_.model_config = out.model_config;
  return out;
}

AlignIndexMolecule align_index_molecule(const Molecule& mol) {
  AlignIndexMolecule m;
  m.id = mol.id;
  m.name = mol.title;
  m.smiles = mol.smiles;
  m.formula = mol.formula;
  m.mass = monoisotopic_mass(mol);
  return m;
}

AlignIndex build_align_index(AlignModel& model, const Dataset& dataset, int64_t batch, int64_t* skipped) {
  AlignIndexBuilder builder(model, batch);
  int64_t skip = 0;
  for (const DatasetEntry& e : dataset.entries) {
    const Molecule& mol = e.mol;
    if (std::none_of(mol.atoms.begin(), mol.atoms.end(), [](const Atom& a) { return a.element == 6; })) {
      ++skip;
      continue;
    }
    AlignIndexMolecule info = align_index_molecule(mol);
    if (info.name.empty()) info.name = e.nmrshiftdb_id;
    builder.add(align_graph_input(mol), std::move(info));
  }
  if (skipped) *skipped = skip;
  return builder.finish();
}

// ---- query ----
std::vector<float> embed_peak_list(AlignModel& model, const std::vector<Peak>& peaks, const std::string& name) {
  if (peaks.empty()) throw Error(name + ": the peak list is empty");
  const double lo = kAlignSpectrumMinPpm, hi = kAlignSpectrumMinPpm + kAlignSpectrumBins / kAlignSpectrumBinsPerPpm;
  std::vector<std::pair<float, int32_t>> pairs;
  for (size_t i = 0; i < peaks.size(); ++i) {
    const double ppm = peaks[i].shift;
    if (!std::isfinite(ppm)) throw Error(name + ": peak " + std::to_string(i + 1) + " has no finite shift");
    if (ppm < lo || ppm > hi)
      throw Error(name + ": peak " + std::to_string(i + 1) + " at " + fmt("%g", ppm) + " ppm is outside the 13C range " +
                  fmt("%g", lo) + " to " + fmt("%g", hi) + " ppm that the model reads");
    pairs.emplace_back(static_cast<float>(ppm), align_multiplicity_class(peaks[i].mult));
  }
  AlignMoleculeInput query;  // no graph: only the spectrum tower reads this batch
  set_distinct_peaks(query, std::move(pairs));
  const bool was_training = model.is_training();
  model.eval();
  std::vector<float> out;
  {
    NoGradGuard ng;
    out = model.encode_spectrum(make_align_batch({query})).to(Device::cpu()).to(DType::F32).to_vector<float>();  // (1, D)
  }
  model.train(was_training);
  return out;
}

// ---- search ----
RetrievalResult search_align_index(const AlignIndex& index, const std::vector<float>& query, double logit_scale,
                                   int64_t top, const RetrievalFilter& filter) {
  if (static_cast<int64_t>(query.size()) != index.dim)
    throw Error("retrieve: the query embedding has " + std::to_string(query.size()) + " values, the index " +
                std::to_string(index.dim));
  if (top < 1) throw Error("retrieve: --top must be >= 1, got " + std::to_string(top));
  if (!(logit_scale > 0) || !std::isfinite(logit_scale))
    throw Error("retrieve: the model's logit scale " + fmt("%g", logit_scale) + " must be positive");
  const bool by_mass = !std::isnan(filter.mass);
  if (by_mass && (!std::isfinite(filter.mass) || !(filter.mass_tolerance >= 0)))
    throw Error("retrieve: --mass must be finite and --mass-tol >= 0");
  std::map<std::string, int64_t> want;
  if (!filter.formula.empty()) want = parse_formula(filter.formula);

  RetrievalResult r;
  r.library = index.size();
  std::vector<int64_t> cand;
  cand.reserve(static_cast<size_t>(index.size()));
  std::map<std::string, bool> formula_match;  // library formula text -> matches (formulas repeat a lot)
  for (int64_t i = 0; i < index.size(); ++i) {
    const AlignIndexMolecule& m = index.molecules[static_cast<size_t>(i)];
    if (by_mass && !(std::fabs(m.mass - filter.mass) <= filter.mass_tolerance)) continue;  // NaN mass fails
    if (!want.empty()) {
      auto it = formula_match.find(m.formula);
      if (it == formula_match.end()) {
        bool same = false;
        try {
          same = !m.formula.empty() && parse_formula(m.formula) == want;
        } catch (const Error&) {
          same = false;
        }
        it = formula_match.emplace(m.formula, same).first;
      }
      if (!it->second) continue;
    }
    cand.push_back(i);
  }
  r.candidates = static_cast<int64_t>(cand.size());
  if (cand.empty()) return r;

  std::vector<float> dot(cand.size());  // (candidates) raw dot products
  for (size_t k = 0; k < cand.size(); ++k) dot[k] = dot_lanes(index.row(cand[k]), query.data(), index.dim);
  double max_logit = -std::numeric_limits<double>::infinity();
  for (float d : dot) max_logit = std::max(max_logit, logit_scale * static_cast<double>(d));
  double z = 0;
  for (float d : dot) z += std::exp(logit_scale * static_cast<double>(d) - max_logit);
  const double log_z = max_logit + std::log(z);

  std::vector<int64_t> order(cand.size());  // positions into cand
  for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int64_t>(k);
  const size_t k_top = static_cast<size_t>(std::min<int64_t>(top, r.candidates));
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k_top), order.end(),
                    [&](int64_t a, int64_t b) { return dot[a] > dot[b] || (dot[a] == dot[b] && a < b); });
  for (size_t k = 0; k < k_top; ++k) {
    RetrievalHit h;
    h.molecule = cand[static_cast<size_t>(order[k])];
    h.rank = static_cast<int64_t>(k) + 1;
    h.score = logit_scale * static_cast<double>(dot[static_cast<size_t>(order[k])]);
    h.probability = std::exp(h.score - log_z);
    r.hits.push_back(h);
  }
  return r;
}

// ---- re-ranking ----
void rerank_retrieval(RetrievalResult& r, const AlignIndex& index, const std::vector<Peak>& peaks,
                      const CandidateClassesFn& classes_of, int64_t rerank_top, int64_t top, double unmatched_penalty,
                      double combine_weight, const std::function<void(const std::string&)>& warn) {
  if (rerank_top < 1) throw Error("retrieve: --rerank-top must be >= 1, got " + std::to_string(rerank_top));
  if (top < 1) throw Error("retrieve: --top must be >= 1, got " + std::to_string(top));
  if (!(unmatched_penalty >= 0) || !(combine_weight >= 0))
    throw Error("retrieve: re-ranking needs unmatched_penalty >= 0 and combine_weight >= 0");
  // distinct (ppm, multiplicity) pairs, ascending: the list the fit was evaluated on (kept in double: the
  // fit's error is in the peaks' own precision)
  std::vector<Peak> distinct = peaks;
  std::sort(distinct.begin(), distinct.end(),
            [](const Peak& a, const Peak& b) { return a.shift < b.shift || (a.shift == b.shift && a.mult < b.mult); });
  distinct.erase(std::unique(distinct.begin(), distinct.end(),
                             [](const Peak& a, const Peak& b) { return a.shift == b.shift && a.mult == b.mult; }),
                 distinct.end());
  const size_t n = std::min(r.hits.size(), static_cast<size_t>(rerank_top));
  for (size_t k = 0; k < n; ++k) {
    RetrievalHit& h = r.hits[k];
    const AlignIndexMolecule& m = index.molecules.at(static_cast<size_t>(h.molecule));
    h.reranked = true;
    h.combined_score = -std::numeric_limits<double>::infinity();
    std::vector<CarbonClass> classes;
    try {
      classes = classes_of(m);
    } catch (const std::exception& e) {
      if (warn) warn(m.id + " (" + m.smiles + "): " + e.what() + "; ranked last");
      continue;
    }
    const PredictedSpectrumFit fit = fit_predicted_spectrum(distinct, classes);
    if (!fit.possible) continue;
    h.fit_error_ppm = fit.error;
    h.unmatched_classes = fit.unmatched_classes;
    h.combined_score = fit.score(unmatched_penalty) + combine_weight * h.score;
  }
  std::stable_sort(r.hits.begin(), r.hits.begin() + static_cast<std::ptrdiff_t>(n),
                   [](const RetrievalHit& a, const RetrievalHit& b) { return a.combined_score > b.combined_score; });
  if (r.hits.size() > static_cast<size_t>(top)) r.hits.resize(static_cast<size_t>(top));
  for (size_t k = 0; k < r.hits.size(); ++k) r.hits[k].rank = static_cast<int64_t>(k) + 1;
  r.reranked = static_cast<int64_t>(n);
}

// ---- output ----
std::string format_retrieval_table(const RetrievalResult& r, const AlignIndex& index, const std::string& query_name) {
  std::ostringstream s;
  s << "query " << query_name << ": " << r.candidates << " of " << r.library << " library molecules pass the filters";
  if (r.candidates > static_cast<int64_t>(r.hits.size())) s << ", top " << r.hits.size() << " shown";
  s << "\n";
  if (r.hits.empty()) return s.str();
  char line[512];
  const bool reranked = r.reranked > 0;
  std::snprintf(line, sizeof line, "%5s %9s %9s ", "rank", "score", "prob");
  s << line;
  if (reranked) {
    std::snprintf(line, sizeof line, "%9s %8s %4s ", "combined", "fit_ppm", "unm");
    s << line;
  }
  std::snprintf(line, sizeof line, "%10s  %-14s %-24s %s\n", "mass", "formula", "name", "smiles");
  s << line;
  for (const RetrievalHit& h : r.hits) {
    const AlignIndexMolecule& m = index.molecules[static_cast<size_t>(h.molecule)];
    std::string name = m.name.empty() ? m.id : m.name;
    if (name.size() > 24) name = name.substr(0, 23) + "~";  // full names are in the csv/json output
    std::snprintf(line, sizeof line, "%5lld %9.4f %9.3g ", static_cast<long long>(h.rank), h.score, h.probability);
    s << line;
    if (reranked) {
      std::snprintf(line, sizeof line, "%9s %8s %4s ", h.reranked ? fmt("%.3f", h.combined_score).c_str() : "-",
                    std::isnan(h.fit_error_ppm) ? "-" : fmt("%.2f", h.fit_error_ppm).c_str(),
                    h.unmatched_classes < 0 ? "-" : std::to_string(h.unmatched_classes).c_str());
      s << line;
    }
    std::snprintf(line, sizeof line, "%10s  %-14s %-24s ", std::isnan(m.mass) ? "-" : fmt("%.4f", m.mass).c_str(),
                  m.formula.c_str(), name.c_str());
    s << line << m.smiles << "\n";
  }
  return s.str();
}

std::string format_retrieval_csv(const RetrievalResult& r, const AlignIndex& index) {
  const bool reranked = r.reranked > 0;
  std::string s = "rank,score,probability,id,name,smiles,formula,mass";
  s += reranked ? ",combined_score,fit_error_ppm,unmatched_classes\n" : "\n";
  for (const RetrievalHit& h : r.hits) {
    const AlignIndexMolecule& m = index.molecules[static_cast<size_t>(h.molecule)];
    s += std::to_string(h.rank) + "," + fmt("%.6f", h.score) + "," + fmt("%.6g", h.probability) + "," + csv_field(m.id) +
         "," + csv_field(m.name) + "," + csv_field(m.smiles) + "," + csv_field(m.formula) + "," +
         (std::isnan(m.mass) ? std::string() : fmt("%.5f", m.mass));
    if (reranked) {  // a candidate that could not be scored: combined "-inf", the fit fields empty
      s += ',';
      if (h.reranked) s += fmt("%.6f", h.combined_score);
      s += ',';
      if (!std::isnan(h.fit_error_ppm)) s += fmt("%.4f", h.fit_error_ppm);
      s += ',';
      if (h.unmatched_classes >= 0) s += std::to_string(h.unmatched_classes);
    }
    s += "\n";
  }
  return s;
}

std::string format_retrieval_json(const RetrievalResult& r, const AlignIndex& index, const std::string& query_name) {
  using ojson = nlohmann::ordered_json;  // keys in the order written
  ojson hits = ojson::array();
  for (const RetrievalHit& h : r.hits) {
    const AlignIndexMolecule& m = index.molecules[static_cast<size_t>(h.molecule)];
    hits.push_back({{"rank", h.rank},
                    {"score", h.score},
                    {"probability", h.probability},
                    {"index", h.molecule},
                    {"id", m.id},
                    {"name", m.name},
                    {"smiles", m.smiles},
                    {"formula", m.formula},
                    {"mass", std::isnan(m.mass) ? ojson(nullptr) : ojson(m.mass)}});
    if (r.reranked > 0) {  // JSON has no infinity: an unscored candidate's combined score is null
      ojson& o = hits.back();
      o["combined_score"] = std::isfinite(h.combined_score) ? ojson(h.combined_score) : ojson(nullptr);
      o["fit_error_ppm"] = std::isnan(h.fit_error_ppm) ? ojson(nullptr) : ojson(h.fit_error_ppm);
      o["unmatched_classes"] = h.unmatched_classes < 0 ? ojson(nullptr) : ojson(h.unmatched_classes);
    }
  }
  ojson out{{"query", query_name}, {"library", r.library}, {"candidates", r.candidates}};
  if (r.reranked > 0) out["reranked"] = r.reranked;
  out["hits"] = hits;
  return out.dump(2, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace larmor::chem
