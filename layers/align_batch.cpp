// AlignBatch validation and assembly (see align_batch.h for the contract). Plain host loops: a batch has
// a few thousand nodes at most, and every check names the field and the entry so a data-side bug is found
// from the message alone.
#include "layers/align_batch.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace larmor {

namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("AlignBatch: " + what); }

std::string describe(const Tensor& t) { return t.defined() ? t.str() : "undefined"; }

void expect(const Tensor& t, const char* name, DType dt, const Shape& shape) {
  if (!t.defined()) fail(std::string(name) + " is undefined (expected " + dtype_name(dt) + shape_str(shape) + ")");
  if (t.dtype() != dt || t.shape() != shape)
    fail(std::string(name) + " must be " + dtype_name(dt) + shape_str(shape) + ", got " + t.str());
}

template <typename T>
std::vector<T> host(const Tensor& t) {
  return t.to(Device::cpu()).to_vector<T>();
}

// CSR offsets over `total` items: offsets[0] = 0, non-decreasing, offsets[B] = total.
void check_offsets(const std::vector<int32_t>& off, int64_t total, const char* name, const char* items) {
  if (off.front() != 0) fail(std::string(name) + "[0] must be 0, got " + std::to_string(off.front()));
  for (size_t b = 0; b + 1 < off.size(); ++b)
    if (off[b + 1] < off[b])
      fail(std::string(name) + " must be non-decreasing: entry " + std::to_string(b + 1) + " = " +
           std::to_string(off[b + 1]) + " < " + std::to_string(off[b]));
  if (off.back() != total)
    fail(std::string(name) + " must end at the number of " + items + " " + std::to_string(total) + ", got " +
         std::to_string(off.back()));
}

// molecule of every node from the node CSR
std::vector<int32_t> node_molecule(const std::vector<int32_t>& node_off) {
  std::vector<int32_t> mol(static_cast<size_t>(node_off.back()));
  for (size_t b = 0; b + 1 < node_off.size(); ++b)
    for (int32_t v = node_off[b]; v < node_off[b + 1]; ++v) mol[v] = static_cast<int32_t>(b);
  return mol;
}

void check_classes(const std::vector<int32_t>& v, const char* name) {
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < 0 || v[i] >= kAlignNumMultiplicities)
      fail(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) +
           " is not a multiplicity class 0..4 (s, d, t, q, unknown)");
}

void check_finite(const std::vector<float>& v, const char* name) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) fail(std::string(name) + "[" + std::to_string(i) + "] is not finite");
}

}  // namespace

void AlignBatch::validate() const {
  // nodes and molecules
  if (!node_offsets.defined() || node_offsets.dtype() != DType::I32 || node_offsets.dim() != 1 || node_offsets.numel() < 2)
    fail("node_offsets must be i32 (B+1) with B >= 1, got " + describe(node_offsets));
  const int64_t B = batch_size();
  if (!node_features.defined() || node_features.dim() != 2)
    fail("node_features must be i32 (V, 3), got " + describe(node_features));
  const int64_t V = node_features.size(0);
  expect(node_features, "node_features", DType::I32, {V, kAlignNodeFeatureColumns});
  const std::vector<int32_t> node_off = host<int32_t>(node_offsets);
  check_offsets(node_off, V, "node_offsets", "nodes");
  const std::vector<int32_t> feat = host<int32_t>(node_features);
  for (int64_t i = 0; i < V * kAlignNodeFeatureColumns; ++i)
    if (feat[i] < 0)
      fail("node_features[" + std::to_string(i / kAlignNodeFeatureColumns) + ", " +
           std::to_string(i % kAlignNodeFeatureColumns) + "] = " + std::to_string(feat[i]) + " is negative");
  if (node_hydrogens.defined()) {
    expect(node_hydrogens, "node_hydrogens", DType::I32, {V});
    const std::vector<int32_t> hyd = host<int32_t>(node_hydrogens);
    for (int64_t v = 0; v < V; ++v)
      if (hyd[v] < 0 || hyd[v] > kAlignMaxHydrogens)
        fail("node_hydrogens[" + std::to_string(v) + "] = " + std::to_string(hyd[v]) + " is not a class 0.." +
             std::to_string(kAlignMaxHydrogens));
  }
  const std::vector<int32_t> mol = node_molecule(node_off);

  // edges
  if (!edge_index.defined() || edge_index.dim() != 2)
    fail("edge_index must be i32 (2, E), got " + describe(edge_index));
  const int64_t E = edge_index.size(1);
  expect(edge_index, "edge_index", DType::I32, {2, E});
  expect(edge_features, "edge_features", DType::I32, {E, kAlignEdgeFeatureColumns});
  const std::vector<int32_t> ei = host<int32_t>(edge_index), ef = host<int32_t>(edge_features);
  for (int64_t e = 0; e < E; ++e) {
    const int32_t s = ei[e], t = ei[E + e];
    const std::string at = "edge " + std::to_string(e) + " (" + std::to_string(s) + " -> " + std::to_string(t) + ")";
    if (s < 0 || s >= V || t < 0 || t >= V) fail("edge_index: " + at + " has a node outside [0, " + std::to_string(V) + ")");
    if (s == t) fail("edge_index: " + at + " is a self loop (the model adds self loops itself)");
    if (mol[s] != mol[t])
      fail("edge_index: " + at + " joins molecules " + std::to_string(mol[s]) + " and " + std::to_string(mol[t]));
    if (ef[e * 2] < 0 || ef[e * 2] > 3)
      fail("edge_features[" + std::to_string(e) + ", 0] = " + std::to_string(ef[e * 2]) + " is not a bond type 0..3");
    if (ef[e * 2 + 1] < 0 || ef[e * 2 + 1] > 2)
      fail("edge_features[" + std::to_string(e) + ", 1] = " + std::to_string(ef[e * 2 + 1]) + " is not a bond direction 0..2");
  }

  // atom-level carbons
  if (!carbon_nodes.defined() || carbon_nodes.dim() != 1)
    fail("carbon_nodes must be i32 (Nc), got " + describe(carbon_nodes));
  const int64_t Nc = carbon_nodes.numel();
  expect(carbon_nodes, "carbon_nodes", DType::I32, {Nc});
  expect(carbon_offsets, "carbon_offsets", DType::I32, {B + 1});
  const std::vector<int32_t> cn = host<int32_t>(carbon_nodes), coff = host<int32_t>(carbon_offsets);
  check_offsets(coff, Nc, "carbon_offsets", "carbons");
  for (int64_t b = 0; b < B; ++b)
    for (int32_t k = coff[b]; k < coff[b + 1]; ++k) {
      const int32_t v = cn[k];
      const std::string at = "carbon_nodes[" + std::to_string(k) + "] = " + std::to_string(v);
      if (v < node_off[b] || v >= node_off[b + 1])
        fail(at + " is not a node of molecule " + std::to_string(b) + " [" + std::to_string(node_off[b]) + ", " +
             std::to_string(node_off[b + 1]) + ")");
      if (k > 0 && v <= cn[k - 1]) fail(at + " is not after carbon_nodes[" + std::to_string(k - 1) + "] (must be strictly increasing)");
      if (feat[v * kAlignNodeFeatureColumns] != kAlignCarbonType)
        fail(at + " is not a carbon (node_features[" + std::to_string(v) + ", 0] = " +
             std::to_string(feat[v * kAlignNodeFeatureColumns]) + ", carbon is 5)");
    }
  if (carbon_ppm.defined() != carbon_multiplicity.defined())
    fail("carbon_ppm and carbon_multiplicity must be both defined or both undefined");
  if (carbon_ppm.defined()) {
    expect(carbon_ppm, "carbon_ppm", DType::F32, {Nc});
    expect(carbon_multiplicity, "carbon_multiplicity", DType::I32, {Nc});
    check_finite(host<float>(carbon_ppm), "carbon_ppm");
    check_classes(host<int32_t>(carbon_multiplicity), "carbon_multiplicity");
  }

  // molecule-level spectrum
  if (spectrum.defined()) {
    expect(spectrum, "spectrum", DType::F32, {B, kAlignSpectrumBins});
    check_finite(host<float>(spectrum), "spectrum");
  }
  const bool any_peaks = peak_ppm.defined() || peak_multiplicity.defined() || peak_mask.defined();
  if (any_peaks) {
    if (!peak_ppm.defined() || peak_ppm.dim() != 2 || peak_ppm.size(0) != B)
      fail("peak_ppm must be f32 (B, P) with B = " + std::to_string(B) + ", got " + describe(peak_ppm));
    const int64_t P = peak_ppm.size(1);
    expect(peak_ppm, "peak_ppm", DType::F32, {B, P});
    expect(peak_multiplicity, "peak_multiplicity", DType::I32, {B, P});
    expect(peak_mask, "peak_mask", DType::I32, {B, P});
    check_finite(host<float>(peak_ppm), "peak_ppm");
    check_classes(host<int32_t>(peak_multiplicity), "peak_multiplicity");
    const std::vector<int32_t> m = host<int32_t>(peak_mask);
    for (size_t i = 0; i < m.size(); ++i)
      if (m[i] != 0 && m[i] != 1) fail("peak_mask[" + std::to_string(i) + "] = " + std::to_string(m[i]) + " is not 0 or 1");
  }
  if (!entries.empty() && static_cast<int64_t>(entries.size()) != B)
    fail("entries has " + std::to_string(entries.size()) + " values for " + std::to_string(B) + " molecules");
}

int64_t spectrum_bin(double ppm) {
  if (!std::isfinite(ppm)) throw Error("bin_spectrum: peak ppm " + std::to_string(ppm) + " is not finite");
  // round half to even, as Python's round() in K-M3AID's binning
  const double idx = std::nearbyint((ppm - kAlignSpectrumMinPpm) * kAlignSpectrumBinsPerPpm);
  if (idx < 0) return 0;
  if (idx >= static_cast<double>(kAlignSpectrumBins)) return kAlignSpectrumBins - 1;
  return static_cast<int64_t>(idx);
}

std::vector<float> bin_spectrum(const std::vector<float>& ppm) {
  std::vector<float> out(static_cast<size_t>(kAlignSpectrumBins), 0.0f);
  for (float p : ppm) out[static_cast<size_t>(spectrum_bin(p))] = 1.0f;
  return out;
}

AlignBatch make_align_batch(const std::vector<AlignMoleculeInput>& molecules, int64_t min_peaks) {
  if (molecules.empty()) fail("make_align_batch: no molecules");
  const int64_t B = static_cast<int64_t>(molecules.size());
  int64_t P = std::max<int64_t>(min_peaks, 0);
  for (const auto& m : molecules) P = std::max<int64_t>(P, static_cast<int64_t>(m.peak_ppm.size()));

  bool hydrogens = true;
  for (const auto& m : molecules) hydrogens = hydrogens && !m.node_hydrogens.empty();
  std::vector<int32_t> hyd;
  std::vector<int32_t> feat, node_off{0}, src, dst, ef, cn, coff{0}, cmult, pmult(B * P, 0), pmask(B * P, 0);
  std::vector<float> cppm, pppm(B * P, 0.0f), spec;
  spec.reserve(static_cast<size_t>(B * kAlignSpectrumBins));
  AlignBatch batch;
  for (int64_t b = 0; b < B; ++b) {
    const AlignMoleculeInput& m = molecules[b];
    const std::string who = "make_align_batch: molecule " + std::to_string(b) + ": ";
    if (m.node_features.size() % kAlignNodeFeatureColumns != 0)
      fail(who + "node_features has " + std::to_string(m.node_features.size()) + " values, not a multiple of 3");
    const int32_t v0 = node_off.back();
    const int32_t nv = static_cast<int32_t>(m.node_features.size() / kAlignNodeFeatureColumns);
    if (m.edge_index.size() % 2 != 0) fail(who + "edge_index must hold 2 * E values");
    const size_t ne = m.edge_index.size() / 2;
    if (m.edge_features.size() != ne * kAlignEdgeFeatureColumns)
      fail(who + "edge_features has " + std::to_string(m.edge_features.size()) + " values for " + std::to_string(ne) + " edges");
    if (m.carbon_ppm.size() != m.carbon_nodes.size() || m.carbon_multiplicity.size() != m.carbon_nodes.size())
      fail(who + "carbon_nodes, carbon_ppm and carbon_multiplicity must have the same length");
    if (m.peak_multiplicity.size() != m.peak_ppm.size())
      fail(who + "peak_ppm and peak_multiplicity must have the same length");
    if (!m.node_hydrogens.empty() && m.node_hydrogens.size() != static_cast<size_t>(nv))
      fail(who + "node_hydrogens has " + std::to_string(m.node_hydrogens.size()) + " values for " + std::to_string(nv) + " nodes");
    feat.insert(feat.end(), m.node_features.begin(), m.node_features.end());
    if (hydrogens) hyd.insert(hyd.end(), m.node_hydrogens.begin(), m.node_hydrogens.end());
    node_off.push_back(v0 + nv);
    for (size_t e = 0; e < ne; ++e) {
      const int32_t s = m.edge_index[e], t = m.edge_index[ne + e];
      if (s < 0 || s >= nv || t < 0 || t >= nv)
        fail(who + "edge " + std::to_string(e) + " has a node outside [0, " + std::to_string(nv) + ")");
      src.push_back(v0 + s);
      dst.push_back(v0 + t);
    }
    ef.insert(ef.end(), m.edge_features.begin(), m.edge_features.end());
    for (size_t k = 0; k < m.carbon_nodes.size(); ++k) {
      if (m.carbon_nodes[k] < 0 || m.carbon_nodes[k] >= nv)
        fail(who + "carbon node " + std::to_string(m.carbon_nodes[k]) + " is outside [0, " + std::to_string(nv) + ")");
      cn.push_back(v0 + m.carbon_nodes[k]);
    }
    cppm.insert(cppm.end(), m.carbon_ppm.begin(), m.carbon_ppm.end());
    cmult.insert(cmult.end(), m.carbon_multiplicity.begin(), m.carbon_multiplicity.end());
    coff.push_back(static_cast<int32_t>(cn.size()));
    for (size_t k = 0; k < m.peak_ppm.size(); ++k) {
      pppm[b * P + k] = m.peak_ppm[k];
      pmult[b * P + k] = m.peak_multiplicity[k];
      pmask[b * P + k] = 1;
    }
    std::vector<float> s = bin_spectrum(m.peak_ppm);
    spec.insert(spec.end(), s.begin(), s.end());
    batch.entries.push_back(m.entry);
  }
  const int64_t V = node_off.back(), E = static_cast<int64_t>(src.size()), Nc = static_cast<int64_t>(cn.size());
  std::vector<int32_t> ei(src);
  ei.insert(ei.end(), dst.begin(), dst.end());
  batch.node_features = Tensor::from_vector<int32_t>(feat, {V, kAlignNodeFeatureColumns});
  if (hydrogens) batch.node_hydrogens = Tensor::from_vector<int32_t>(hyd, {V});
  batch.node_offsets = Tensor::from_vector<int32_t>(node_off, {B + 1});
  batch.edge_index = Tensor::from_vector<int32_t>(ei, {2, E});
  batch.edge_features = Tensor::from_vector<int32_t>(ef, {E, kAlignEdgeFeatureColumns});
  batch.carbon_nodes = Tensor::from_vector<int32_t>(cn, {Nc});
  batch.carbon_offsets = Tensor::from_vector<int32_t>(coff, {B + 1});
  batch.carbon_ppm = Tensor::from_vector<float>(cppm, {Nc});
  batch.carbon_multiplicity = Tensor::from_vector<int32_t>(cmult, {Nc});
  batch.spectrum = Tensor::from_vector<float>(spec, {B, kAlignSpectrumBins});
  batch.peak_ppm = Tensor::from_vector<float>(pppm, {B, P});
  batch.peak_multiplicity = Tensor::from_vector<int32_t>(pmult, {B, P});
  batch.peak_mask = Tensor::from_vector<int32_t>(pmask, {B, P});
  batch.validate();
  return batch;
}

}  // namespace larmor
