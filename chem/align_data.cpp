// Prepared dataset -> alignment samples and batches (see align_data.h for the choices and why). Plain host
// loops: the work is per molecule, once, when the AlignDataset is built.
#include "chem/align_data.h"

#include <algorithm>
#include <numeric>
#include <sstream>
#include <utility>

#include "chem/features.h"
#include "engine/error.h"
#include "layers/module.h"

namespace larmor::chem {

const char* align_spectrum_source_name(AlignSpectrumSource s) {
  switch (s) {
    case AlignSpectrumSource::Assigned: return "assigned";
    case AlignSpectrumSource::PeakSet: return "peak set";
    case AlignSpectrumSource::PartialAssigned: return "partial assigned";
  }
  return "?";
}

void set_distinct_peaks(AlignMoleculeInput& in, std::vector<std::pair<float, int32_t>> peaks) {
  std::sort(peaks.begin(), peaks.end());
  peaks.erase(std::unique(peaks.begin(), peaks.end()), peaks.end());
  in.peak_ppm.clear();
  in.peak_multiplicity.clear();
  for (const auto& [ppm, cls] : peaks) {
    in.peak_ppm.push_back(ppm);
    in.peak_multiplicity.push_back(cls);
  }
}

int32_t align_multiplicity_class(int num_h) {
  return (num_h >= 0 && num_h <= 3) ? num_h : kAlignMultiplicityUnknown;
}

AlignMoleculeInput align_graph_input(const Molecule& mol, std::vector<int32_t>* atom_node) {
  FeatureOptions fo;
  fo.graph_hydrogens = false;
  MoleculeFeatures f = featurize(mol, fo);
  AlignMoleculeInput in;
  in.node_features = std::move(f.node_features);
  in.node_hydrogens.resize(static_cast<size_t>(f.num_nodes));
  for (int32_t v = 0; v < f.num_nodes; ++v)  // node_extra column 3: attached H (all H, also those left out)
    in.node_hydrogens[v] = std::clamp<int32_t>(f.node_extra[static_cast<size_t>(v) * 5 + 3], 0, kAlignMaxHydrogens);
  in.edge_index = std::move(f.edge_index);
  in.edge_features = std::move(f.edge_features);
  if (atom_node) *atom_node = std::move(f.atom_node);
  return in;
}

std::string AlignDataStats::report() const {
  std::ostringstream s;
  s << "entries in split: " << entries << "\n"
    << "samples (13C spectrum): " << samples << "\n"
    << "samples with atom-level pairs: " << with_pairs << " (" << pairs << " carbons)\n"
    << "molecule-level peaks: " << peaks << "\n";
  for (const auto& [k, v] : counts) s << k << ": " << v << "\n";
  return s.str();
}

AlignDataset::AlignDataset(const Dataset& dataset, Split split, const AlignDataOptions& options) : options_(options) {
  auto count = [&](const std::string& what) { ++stats_.counts[what]; };
  for (size_t ei = 0; ei < dataset.entries.size(); ++ei) {
    const DatasetEntry& e = dataset.entries[ei];
    if (e.split != split) continue;
    ++stats_.entries;
    const Molecule& mol = e.mol;
    const std::string where = "align data: entry " + std::to_string(ei) + " (" + mol.id + ")";

    // assigned 13C: one shift per carbon atom
    std::vector<std::pair<int32_t, float>> assigned;  // (atom, ppm)
    if (options_.use_assigned)
      for (const AssignedShift& a : e.assigned) {
        if (a.nucleus != Nucleus::C13) continue;
        if (a.atom < 0 || a.atom >= mol.num_atoms())
          throw Error(where + ": assigned 13C atom " + std::to_string(a.atom) + " is outside the molecule (" +
                      std::to_string(mol.num_atoms()) + " atoms)");
        if (mol.atoms[a.atom].element != 6) {
          count("skipped pair: assigned 13C on a non-carbon atom");
          continue;
        }
        assigned.emplace_back(a.atom, a.shift);
      }
    std::sort(assigned.begin(), assigned.end());
    assigned.erase(std::unique(assigned.begin(), assigned.end(),
                               [](const auto& x, const auto& y) { return x.first == y.first; }),
                   assigned.end());
    const PeakSet* peak_set = nullptr;
    if (options_.use_peak_sets)
      for (const PeakSet& ps : e.peak_sets)
        if (ps.nucleus == Nucleus::C13 && !ps.shifts.empty()) {
          peak_set = &ps;
          break;
        }
    if (assigned.empty() && !peak_set) {
      count("skipped: no 13C spectrum");
      continue;
    }
    int32_t num_carbons = 0;
    for (const Atom& a : mol.atoms) num_carbons += a.element == 6;
    if (num_carbons == 0) {
      count("skipped: no carbon in the molecule");
      continue;
    }

    AlignSample s;
    s.entry = static_cast<int64_t>(ei);
    s.num_carbons = num_carbons;
    std::vector<int32_t> atom_node;
    try {
      s.input = align_graph_input(mol, &atom_node);
    } catch (const Error& err) {
      throw Error(where + ": " + err.what());
    }
    s.input.entry = s.entry;
    // atom-level pairs in ascending node order (heavy atoms keep their order in the graph, so atom order)
    std::vector<std::pair<float, int32_t>> carbon_peaks;
    for (const auto& [atom, ppm] : assigned) {
      const int32_t node = atom_node.at(static_cast<size_t>(atom));
      if (node < 0) throw Error(where + ": assigned carbon " + std::to_string(atom) + " is not a graph node");
      const int32_t cls = align_multiplicity_class(mol.atoms[atom].num_h);
      s.input.carbon_nodes.push_back(node);
      s.input.carbon_ppm.push_back(ppm);
      s.input.carbon_multiplicity.push_back(cls);
      s.carbon_atoms.push_back(atom);
      s.carbon_class.push_back(mol.atoms[atom].symmetry_class);
      carbon_peaks.emplace_back(ppm, cls);
    }
    // molecule-level spectrum
    const bool complete = !assigned.empty() && static_cast<int32_t>(assigned.size()) == num_carbons;
    if (complete) {
      s.spectrum_source = AlignSpectrumSource::Assigned;
      set_distinct_peaks(s.input, carbon_peaks);
    } else if (peak_set) {
      s.spectrum_source = AlignSpectrumSource::PeakSet;
      std::vector<std::pair<float, int32_t>> peaks;
      for (size_t k = 0; k < peak_set->shifts.size(); ++k)
        peaks.emplace_back(peak_set->shifts[k],
                           align_multiplicity_class(k < peak_set->mult.size() ? peak_set->mult[k] : kMultUnknown));
      set_distinct_peaks(s.input, std::move(peaks));
    } else {
      s.spectrum_source = AlignSpectrumSource::PartialAssigned;
      set_distinct_peaks(s.input, carbon_peaks);
    }
    count(std::string("spectrum from ") + align_spectrum_source_name(s.spectrum_source));
    ++stats_.samples;
    if (s.has_pairs()) {
      ++stats_.with_pairs;
      stats_.pairs += static_cast<int64_t>(s.carbon_atoms.size());
    }
    stats_.peaks += static_cast<int64_t>(s.input.peak_ppm.size());
    samples_.push_back(std::move(s));
  }
}

const AlignSample& AlignDataset::sample(int64_t i) const {
  if (i < 0 || i >= size())
    throw Error("align data: sample " + std::to_string(i) + " out of range (" + std::to_string(size()) + " samples)");
  return samples_[static_cast<size_t>(i)];
}

AlignBatch AlignDataset::make_batch(const std::vector<int64_t>& rows) const {
  if (rows.empty()) throw Error("align data: make_batch of an empty list");
  std::vector<AlignMoleculeInput> inputs;
  inputs.reserve(rows.size());
  for (int64_t r : rows) inputs.push_back(sample(r).input);
  return make_align_batch(inputs);
}

std::vector<int64_t> align_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  std::vector<int64_t> p(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(p.begin(), p.end(), int64_t{0});
  const uint64_t key = derive_seed(seed, stream);
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t r = derive_seed(key, static_cast<uint64_t>(i));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(r % static_cast<uint64_t>(i + 1))]);
  }
  return p;
}

std::vector<std::vector<int64_t>> align_epoch_batches(int64_t n, int64_t batch, uint64_t seed, int64_t epoch) {
  if (batch < 1) throw Error("align data: batch size must be >= 1, got " + std::to_string(batch));
  if (epoch < 0) throw Error("align data: epoch must be >= 0");
  const std::vector<int64_t> p = align_permutation(n, seed, static_cast<uint64_t>(epoch));
  std::vector<std::vector<int64_t>> out;
  for (int64_t b = 0; b + batch <= n; b += batch) out.emplace_back(p.begin() + b, p.begin() + b + batch);
  return out;
}

std::vector<std::vector<int64_t>> align_eval_groups(int64_t n, int64_t size, uint64_t seed) {
  if (size < 1) throw Error("align data: group size must be >= 1, got " + std::to_string(size));
  if (n <= 0) return {};
  // a stream far from the training epochs' (0, 1, 2, ...)
  const std::vector<int64_t> p = align_permutation(n, seed, 0x65766C7567726F75ull);
  if (n < size) return {p};
  std::vector<std::vector<int64_t>> out;
  for (int64_t b = 0; b + size <= n; b += size) out.emplace_back(p.begin() + b, p.begin() + b + size);
  return out;
}

}  // namespace larmor::chem
