// Prepared dataset -> shift-model batches (see shift_data.h for every target rule and why). Plain loops:
// targets are built once per molecule when the ShiftDataset is constructed; make_batch only copies rows
// into padded tensors, and the sampler only shuffles and sorts integers.
#include "chem/shift_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "chem/features.h"
#include "chem/splitmix.h"
#include "engine/error.h"

namespace larmor::chem {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& msg) { throw Error(what + ": " + msg); }

std::string entry_name(const Dataset& ds, size_t e) {
  const Molecule& m = ds.entries[e].mol;
  return "entry " + std::to_string(e) + (m.id.empty() ? std::string() : " ('" + m.id + "')");
}

int element_of(Nucleus n) { return nucleus_element(n); }

// Lowest-index atom of each symmetry class among `atoms` (ascending input), ascending. Atoms with no class
// (-1) count as their own class.
std::vector<int32_t> class_representatives(const Molecule& mol, const std::vector<int32_t>& atoms) {
  std::map<int32_t, int32_t> first;
  std::vector<int32_t> out;
  for (int32_t a : atoms) {
    const int32_t c = mol.atoms[a].symmetry_class;
    if (c < 0) {
      out.push_back(a);
      continue;
    }
    auto it = first.find(c);
    if (it == first.end()) first.emplace(c, a);
  }
  for (const auto& kv : first) out.push_back(kv.second);
  std::sort(out.begin(), out.end());
  return out;
}

void sorted_peaks(const PeakSet& set, std::vector<float>& out) {
  out = set.shifts;
  std::sort(out.begin(), out.end());
}

PeakSetMatch skipped(const std::string& why) {
  PeakSetMatch m;
  m.reason = why;
  return m;
}

// 13C/19F/31P: per atom, or per symmetry class; 13C optionally split by multiplicity.
PeakSetMatch match_heavy(const Molecule& mol, const PeakSet& set, bool split_mult) {
  const int z = element_of(set.nucleus);
  std::vector<int32_t> atoms;
  for (int32_t i = 0; i < mol.num_atoms(); ++i)
    if (mol.atoms[i].element == z) atoms.push_back(i);
  const size_t np = set.shifts.size();
  if (atoms.empty()) return skipped("molecule has no atom of the element");
  PeakSetMatch m;
  if (np == atoms.size()) {
    m.rule = PeakRule::PerAtom;
  } else {
    std::vector<int32_t> reps = class_representatives(mol, atoms);
    if (np == reps.size()) {
      m.rule = PeakRule::PerSymmetryClass;
      atoms = std::move(reps);
    } else if (np > atoms.size()) {
      return skipped("more peaks than atoms");
    } else if (np < reps.size()) {
      return skipped("fewer peaks than symmetry classes (incomplete list)");
    } else {
      return skipped("peaks between #symmetry classes and #atoms (partly collapsed)");
    }
  }
  std::vector<float> peaks;
  sorted_peaks(set, peaks);
  if (set.nucleus == Nucleus::C13 && split_mult) {
    bool known = set.mult.size() == np;
    for (size_t k = 0; known && k < np; ++k) known = set.mult[k] >= 0 && set.mult[k] <= 3;
    if (!known) {
      m.reason = "multiplicities unknown (one segment)";
    } else {
      std::array<std::vector<int32_t>, 4> by_class;
      std::array<std::vector<float>, 4> peaks_by_class;
      for (int32_t a : atoms) {
        const int h = mol.atoms[a].num_h;
        if (h <= 3) by_class[h].push_back(a);
      }
      for (size_t k = 0; k < np; ++k) peaks_by_class[set.mult[k]].push_back(set.shifts[k]);
      bool agree = true;
      size_t covered = 0;
      for (int c = 0; c < 4; ++c) {
        agree = agree && by_class[c].size() == peaks_by_class[c].size();
        covered += by_class[c].size();
      }
      if (agree && covered == atoms.size()) {
        for (int c = 0; c < 4; ++c) {
          if (by_class[c].empty()) continue;
          std::sort(peaks_by_class[c].begin(), peaks_by_class[c].end());
          m.atoms.push_back(by_class[c]);
          m.shifts.push_back(peaks_by_class[c]);
          m.mult.push_back(static_cast<int8_t>(c));
        }
        return m;
      }
      m.reason = "multiplicity classes disagree with H counts (one segment)";
    }
  }
  m.atoms.push_back(std::move(atoms));
  m.shifts.push_back(std::move(peaks));
  m.mult.push_back(kMultUnknown);
  return m;
}

// 1H: the first hydrogen set (see shift_data.h) whose size is the number of peaks.
PeakSetMatch match_h1(const Molecule& mol, const PeakSet& set) {
  std::vector<int32_t> all_h, c_h;
  std::map<int32_t, int32_t> first_h_of_heavy;  // heavy atom -> its lowest-index H
  for (int32_t i = 0; i < mol.num_atoms(); ++i) {
    const Atom& a = mol.atoms[i];
    if (a.element != 1) continue;
    all_h.push_back(i);
    if (a.heavy < 0 || a.heavy >= mol.num_atoms() || a.heavy == i) continue;
    if (mol.atoms[a.heavy].element == 6) c_h.push_back(i);
    first_h_of_heavy.emplace(a.heavy, i);  // ascending i: the first H of the heavy atom stays
  }
  if (all_h.empty()) return skipped("molecule has no hydrogen");
  std::vector<int32_t> per_heavy, per_c_heavy;
  for (const auto& kv : first_h_of_heavy) {
    per_heavy.push_back(kv.second);
    if (mol.atoms[kv.first].element == 6) per_c_heavy.push_back(kv.second);
  }
  std::sort(per_heavy.begin(), per_heavy.end());
  std::sort(per_c_heavy.begin(), per_c_heavy.end());
  const std::vector<int32_t> per_class = class_representatives(mol, all_h);
  const std::vector<int32_t> per_c_class = class_representatives(mol, c_h);
  const std::pair<PeakRule, const std::vector<int32_t>*> rules[] = {
      {PeakRule::PerH, &all_h},           {PeakRule::PerCH, &c_h},
      {PeakRule::PerHeavyAtom, &per_heavy}, {PeakRule::PerCHeavyAtom, &per_c_heavy},
      {PeakRule::PerHClass, &per_class},  {PeakRule::PerCHClass, &per_c_class}};
  const size_t np = set.shifts.size();
  PeakSetMatch m;
  auto per_h = [](PeakRule r) { return r == PeakRule::PerH || r == PeakRule::PerCH; };
  bool h_vs_group = false;
  for (const auto& [rule, atoms] : rules) {
    if (atoms->size() != np || np == 0) continue;
    if (m.rule == PeakRule::Skipped) {
      m.rule = rule;
      m.atoms.push_back(*atoms);
    } else if (*atoms != m.atoms[0]) {
      m.ambiguous = true;
      h_vs_group = h_vs_group || per_h(m.rule) != per_h(rule);
    }
  }
  if (h_vs_group) return skipped("ambiguous: per-H or per-group list");
  if (m.rule == PeakRule::Skipped) {
    if (np > all_h.size()) return skipped("more peaks than H");
    if (np < per_c_class.size()) return skipped("fewer peaks than C-H symmetry classes (incomplete list)");
    return skipped("peak count matches no counting rule");
  }
  std::vector<float> peaks;
  sorted_peaks(set, peaks);
  m.shifts.push_back(std::move(peaks));
  m.mult.push_back(kMultUnknown);
  return m;
}

void add_segment(ShiftSample& s, SegmentKind kind, Nucleus nucleus, int8_t mult, std::vector<int32_t> atoms,
                 std::vector<float> shifts) {
  ShiftSegment seg;
  seg.kind = kind;
  seg.nucleus = nucleus;
  seg.mult = mult;
  seg.begin = static_cast<int32_t>(s.atoms.size());
  std::sort(atoms.begin(), atoms.end());
  std::sort(shifts.begin(), shifts.end());
  s.atoms.insert(s.atoms.end(), atoms.begin(), atoms.end());
  s.shifts.insert(s.shifts.end(), shifts.begin(), shifts.end());
  seg.end = static_cast<int32_t>(s.atoms.size());
  s.segments.push_back(seg);
}

}  // namespace

const char* peak_rule_name(PeakRule r) {
  switch (r) {
    case PeakRule::Skipped: return "skipped";
    case PeakRule::PerAtom: return "per atom";
    case PeakRule::PerSymmetryClass: return "per symmetry class";
    case PeakRule::PerH: return "per H";
    case PeakRule::PerCH: return "per C-H hydrogen";
    case PeakRule::PerHeavyAtom: return "per H-bearing heavy atom";
    case PeakRule::PerCHeavyAtom: return "per C-H carbon";
    case PeakRule::PerHClass: return "per H symmetry class";
    case PeakRule::PerCHClass: return "per C-H symmetry class";
  }
  return "?";
}

PeakSetMatch match_peak_set(const Molecule& mol, const PeakSet& set, bool split_13c_multiplicity) {
  if (set.shifts.empty()) return skipped("empty peak set");
  if (set.nucleus == Nucleus::H1) return match_h1(mol, set);
  return match_heavy(mol, set, split_13c_multiplicity);
}

// ---- standardiser ----
ShiftStandardizer fit_standardizer(const Dataset& dataset, Split split) {
  std::array<std::vector<double>, kNumNuclei> assigned, peaks;
  for (const DatasetEntry& e : dataset.entries) {
    if (e.split != split) continue;
    for (const AssignedShift& a : e.assigned) assigned[static_cast<int>(a.nucleus)].push_back(a.shift);
    for (const PeakSet& p : e.peak_sets)
      for (float v : p.shifts) peaks[static_cast<int>(p.nucleus)].push_back(v);
  }
  ShiftStandardizer st;
  for (int n = 0; n < kNumNuclei; ++n) {
    const std::vector<double>& v = assigned[n].empty() ? peaks[n] : assigned[n];
    if (v.empty()) continue;
    double mean = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / static_cast<double>(v.size()));
    st.mean[n] = mean;
    st.std[n] = sd < 1e-6 ? 1.0 : sd;
  }
  return st;
}

// ---- stats ----
std::string ShiftDataStats::report() const {
  std::ostringstream o;
  o << "entries in split " << entries << ", used " << samples << " (labelled " << labelled << ", unlabelled only "
    << unlabelled << ")\n";
  for (int n = 0; n < kNumNuclei; ++n) {
    if (assigned_segments[n] + unassigned_segments[n] == 0) continue;
    o << nucleus_name(static_cast<Nucleus>(n)) << ": assigned " << assigned_targets[n] << " targets in "
      << assigned_segments[n] << " segments, unassigned " << unassigned_targets[n] << " targets in "
      << unassigned_segments[n] << " segments\n";
  }
  for (const auto& [k, v] : counts) o << "  " << k << ": " << v << "\n";
  return o.str();
}

// ---- dataset ----
ShiftDataset::ShiftDataset(const Dataset& dataset, Split split, const ShiftStandardizer& standardizer,
                           const ShiftDataOptions& options)
    : standardizer_(standardizer), options_(options) {
  for (int n = 0; n < kNumNuclei; ++n)
    if (!(standardizer.std[n] > 0) || !std::isfinite(standardizer.std[n]) || !std::isfinite(standardizer.mean[n]))
      fail("ShiftDataset", std::string("standardizer of ") + nucleus_name(static_cast<Nucleus>(n)) +
                               " has std " + std::to_string(standardizer.std[n]) + ", mean " +
                               std::to_string(standardizer.mean[n]));
  auto& counts = stats_.counts;
  for (size_t e = 0; e < dataset.entries.size(); ++e) {
    const DatasetEntry& entry = dataset.entries[e];
    if (entry.split != split) continue;
    ++stats_.entries;
    const Molecule& mol = entry.mol;
    if (!mol.has_3d()) {
      ++counts["entry skipped: no 3-D coordinates"];
      continue;
    }
    const int32_t n_atoms = mol.num_atoms();
    ShiftSample s;
    s.entry = static_cast<int64_t>(e);
    s.num_atoms = n_atoms;

    // assigned
    std::array<bool, kNumNuclei> has_assigned{};
    if (options_.use_assigned) {
      std::map<int32_t, std::vector<float>> h1;  // heavy atom -> its distinct shifts (stored order)
      for (const AssignedShift& a : entry.assigned) {
        if (a.atom < 0 || a.atom >= n_atoms)
          fail("ShiftDataset", entry_name(dataset, e) + ": assigned " + nucleus_name(a.nucleus) + " shift on atom " +
                                   std::to_string(a.atom) + " of " + std::to_string(n_atoms));
        if (!options_.nuclei[static_cast<int>(a.nucleus)]) continue;
        const std::string nuc = nucleus_name(a.nucleus);
        if (a.nucleus == Nucleus::H1) {
          h1[a.atom].push_back(a.shift);
          continue;
        }
        if (mol.atoms[a.atom].element != element_of(a.nucleus)) {
          ++counts[nuc + " assigned: skipped, atom of another element"];
          continue;
        }
        add_segment(s, SegmentKind::Assigned, a.nucleus, kMultUnknown, {a.atom}, {a.shift});
        has_assigned[static_cast<int>(a.nucleus)] = true;
      }
      for (auto& [heavy, shifts] : h1) {
        std::vector<int32_t> hs;
        for (int32_t i = 0; i < n_atoms; ++i)
          if (i != heavy && mol.atoms[i].element == 1 && mol.atoms[i].heavy == heavy) hs.push_back(i);
        const size_t k = shifts.size(), nh = hs.size();
        if (nh == 0) {
          ++counts["1H assigned: heavy atom skipped, it has no H"];
          continue;
        }
        if (k > nh) {
          ++counts["1H assigned: heavy atom skipped, more shifts than H"];
          continue;
        }
        if (nh % k != 0) {
          ++counts["1H assigned: heavy atom skipped, shift count does not divide H count"];
          continue;
        }
        std::vector<float> targets;
        for (float v : shifts)
          for (size_t r = 0; r < nh / k; ++r) targets.push_back(v);
        add_segment(s, SegmentKind::Assigned, Nucleus::H1, kMultUnknown, std::move(hs), std::move(targets));
        has_assigned[static_cast<int>(Nucleus::H1)] = true;
      }
    }
    const bool labelled = !s.segments.empty();

    // unassigned
    std::array<bool, kNumNuclei> has_unassigned{};
    int peak_solvent = -1;  // -2: used peak sets disagree or unknown
    if (options_.use_unassigned) {
      for (const PeakSet& set : entry.peak_sets) {
        const int n = static_cast<int>(set.nucleus);
        if (!options_.nuclei[n]) continue;
        const std::string what = std::string(nucleus_name(set.nucleus)) + " peak set";
        if (has_assigned[n]) {
          ++counts[what + ": skipped, superseded by assigned shifts"];
          continue;
        }
        if (has_unassigned[n] && !options_.all_peak_sets) {
          ++counts[what + ": skipped, another set of the nucleus already used"];
          continue;
        }
        PeakSetMatch m = match_peak_set(mol, set, options_.split_13c_multiplicity);
        if (m.rule == PeakRule::Skipped) {
          ++counts[what + ": skipped, " + m.reason];
          continue;
        }
        ++counts[what + ": used, " + peak_rule_name(m.rule)];
        if (!m.reason.empty()) ++counts[what + ": note, " + m.reason];
        if (m.ambiguous) ++counts[what + ": note, ambiguous, first rule taken"];
        for (size_t g = 0; g < m.atoms.size(); ++g)
          add_segment(s, SegmentKind::Unassigned, set.nucleus, m.mult[g], std::move(m.atoms[g]), std::move(m.shifts[g]));
        has_unassigned[n] = true;
        const int sv = static_cast<int>(set.solvent);
        if (set.solvent == Solvent::Unknown) peak_solvent = -2;
        else if (peak_solvent == -1) peak_solvent = sv;
        else if (peak_solvent != sv) peak_solvent = -2;
      }
    }
    if (s.segments.empty()) {
      ++counts["entry skipped: no usable targets"];
      continue;
    }
    s.labelled = labelled;
    int solvent = static_cast<int>(entry.solvent);
    if (entry.solvent == Solvent::Unknown && !labelled && peak_solvent >= 0) solvent = peak_solvent;
    s.solvent = options_.use_solvent ? solvent : 0;

    MoleculeFeatures f = featurize(mol, FeatureOptions{false});
    s.tokens = std::move(f.tokens);
    s.coords = std::move(f.coords);
    s.atom_features = std::move(f.token_features);
    s.pair_types = std::move(f.token_pairs);
    if (s.tokens.size() != static_cast<size_t>(n_atoms + 2) || s.coords.size() != s.tokens.size() * 3)
      fail("ShiftDataset", entry_name(dataset, e) + ": featurize gave " + std::to_string(s.tokens.size()) +
                               " tokens and " + std::to_string(s.coords.size()) + " coordinates for " +
                               std::to_string(n_atoms) + " atoms");

    for (const ShiftSegment& seg : s.segments) {
      const int n = static_cast<int>(seg.nucleus);
      const int64_t len = seg.end - seg.begin;
      if (seg.kind == SegmentKind::Assigned) {
        stats_.assigned_targets[n] += len;
        ++stats_.assigned_segments[n];
      } else {
        stats_.unassigned_targets[n] += len;
        ++stats_.unassigned_segments[n];
      }
    }
    ++stats_.samples;
    ++(labelled ? stats_.labelled : stats_.unlabelled);
    samples_.push_back(std::move(s));
  }
}

const ShiftSample& ShiftDataset::sample(int64_t i) const {
  if (i < 0 || i >= size())
    fail("ShiftDataset::sample", "index " + std::to_string(i) + " outside [0, " + std::to_string(size()) + ")");
  return samples_[static_cast<size_t>(i)];
}

ShiftBatch pad_shift_inputs(const std::vector<ShiftInputRow>& rows) {
  if (rows.empty()) fail("pad_shift_inputs", "no rows");
  const int64_t F = kShiftAtomFeatures;
  size_t longest = 0;
  bool chem = true;  // every row carries atom features and pair types
  for (size_t b = 0; b < rows.size(); ++b) {
    const ShiftInputRow& r = rows[b];
    if (!r.tokens || !r.coords || r.coords->size() != r.tokens->size() * 3)
      fail("pad_shift_inputs", "row " + std::to_string(b) + ": coords must hold 3 values per token");
    const size_t T = r.tokens->size();
    longest = std::max(longest, T);
    if (!r.atom_features || !r.pair_types) chem = false;
    else if (r.atom_features->size() != T * F || r.pair_types->size() != T * T)
      fail("pad_shift_inputs", "row " + std::to_string(b) + ": atom features / pair types are not sized to its " +
                                   std::to_string(T) + " tokens");
  }
  const int64_t B = static_cast<int64_t>(rows.size()), N = static_cast<int64_t>(longest);
  std::vector<int32_t> tokens(B * N, 0), key_mask(B * N, 0), solvent(B, 0);  // (B, N), (B, N), (B)
  std::vector<float> coords(B * N * 3, 0.0f);                                  // (B, N, 3)
  std::vector<int32_t> feats(chem ? B * N * F : 0, 0), pairs(chem ? B * N * N : 0, 0);  // (B, N, F), (B, N, N)
  ShiftBatch batch;
  batch.entries.reserve(rows.size());
  for (int64_t b = 0; b < B; ++b) {
    const ShiftInputRow& r = rows[static_cast<size_t>(b)];
    const int64_t T = static_cast<int64_t>(r.tokens->size());
    std::copy(r.tokens->begin(), r.tokens->end(), tokens.begin() + b * N);
    std::fill(key_mask.begin() + b * N, key_mask.begin() + b * N + T, 1);
    std::copy(r.coords->begin(), r.coords->end(), coords.begin() + b * N * 3);
    solvent[b] = r.solvent;
    batch.entries.push_back(r.entry);
    if (!chem) continue;
    std::copy(r.atom_features->begin(), r.atom_features->end(), feats.begin() + b * N * F);
    for (int64_t t = T; t < N; ++t)  // padding tokens: the "not an atom" row of every field
      for (int64_t k = 0; k < F; ++k) feats[(b * N + t) * F + k] = kShiftAtomFeatureOffsets[k];
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) pairs[(b * N + i) * N + j] = (*r.pair_types)[i * T + j];
  }
  batch.tokens = Tensor::from_vector(tokens, {B, N});
  batch.coords = Tensor::from_vector(coords, {B, N, 3});
  batch.key_mask = Tensor::from_vector(key_mask, {B, N});
  batch.solvent = Tensor::from_vector(solvent, {B});
  if (chem) {
    batch.atom_features = Tensor::from_vector(feats, {B, N, F});
    batch.pair_types = Tensor::from_vector(pairs, {B, N, N});
  }
  return batch;
}

ShiftBatch ShiftDataset::make_batch(const std::vector<int64_t>& rows) const {
  if (rows.empty()) fail("ShiftDataset::make_batch", "empty batch");
  std::vector<ShiftInputRow> inputs;
  inputs.reserve(rows.size());
  for (int64_t r : rows) {
    if (r < 0 || r >= size())
      fail("ShiftDataset::make_batch", "sample " + std::to_string(r) + " outside [0, " + std::to_string(size()) + ")");
    const ShiftSample& smp = samples_[r];
    inputs.push_back({&smp.tokens, &smp.coords, smp.solvent, smp.entry, &smp.atom_features, &smp.pair_types});
  }
  ShiftBatch batch = pad_shift_inputs(inputs);
  const int64_t B = static_cast<int64_t>(rows.size()), N = batch.tokens.size(1);  // N = longest + 2
  struct Flat {
    std::vector<int64_t> index;
    std::vector<float> target;
    std::vector<int32_t> offsets{0};
  };
  std::array<std::array<Flat, kNumNuclei>, 2> flat;  // [kind][nucleus]
  for (int64_t b = 0; b < B; ++b) {
    const ShiftSample& s = samples_[rows[b]];
    for (const ShiftSegment& seg : s.segments) {
      const int n = static_cast<int>(seg.nucleus);
      Flat& f = flat[static_cast<int>(seg.kind)][n];
      for (int32_t k = seg.begin; k < seg.end; ++k) {
        f.index.push_back(b * N + s.atoms[k] + 1);
        f.target.push_back(static_cast<float>(standardizer_.to_z(n, s.shifts[k])));
      }
      f.offsets.push_back(static_cast<int32_t>(f.index.size()));
    }
  }
  for (int kind = 0; kind < 2; ++kind)
    for (int n = 0; n < kNumNuclei; ++n) {
      Flat& f = flat[kind][n];
      if (f.index.empty()) continue;
      ShiftTargets& t = kind == 0 ? batch.assigned[n] : batch.unassigned[n];
      const int64_t T = static_cast<int64_t>(f.index.size()), S1 = static_cast<int64_t>(f.offsets.size());
      t.index = Tensor::from_vector(f.index, {T});
      t.target = Tensor::from_vector(f.target, {T});
      t.offsets = Tensor::from_vector(f.offsets, {S1});
    }
  return batch;
}

// ---- sampler ----
ShiftSampler::ShiftSampler(const ShiftDataset& dataset, const ShiftSamplerOptions& options) : options_(options) {
  if (options.labelled_batch < 1 || options.unlabelled_batch < 1 || options.bucket_batches < 0)
    fail("ShiftSampler", "batch sizes must be >= 1 and bucket_batches >= 0 (got " +
                             std::to_string(options.labelled_batch) + ", " + std::to_string(options.unlabelled_batch) +
                             ", " + std::to_string(options.bucket_batches) + ")");
  num_atoms_.reserve(static_cast<size_t>(dataset.size()));
  for (int64_t i = 0; i < dataset.size(); ++i) {
    const ShiftSample& s = dataset.sample(i);
    num_atoms_.push_back(s.num_atoms);
    const bool use = options.mode == SamplerMode::All || options.mode == SamplerMode::Mixed ||
                     (options.mode == SamplerMode::LabelledOnly) == s.labelled;
    if (!use) continue;
    // All: every sample in the "labelled" group (one group, labelled_batch per batch).
    if (options.mode == SamplerMode::All || s.labelled) labelled_.push_back(i);
    else unlabelled_.push_back(i);
  }
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One group's stream for an epoch: a shuffle of `group`, extended by fresh shuffles to `length` when
// longer, bucketed and cut into batches of `bs` (the last may be short).
std::vector<std::vector<int64_t>> group_batches(const std::vector<int64_t>& group, int64_t length, int64_t bs,
                                                int64_t bucket_batches, const std::vector<int32_t>& num_atoms,
                                                SplitMix64& rng) {
  std::vector<int64_t> stream;
  stream.reserve(static_cast<size_t>(length));
  while (static_cast<int64_t>(stream.size()) < length) {
    std::vector<int64_t> pass = group;
    rng.shuffle(pass);
    const int64_t take = std::min<int64_t>(length - static_cast<int64_t>(stream.size()), static_cast<int64_t>(pass.size()));
    stream.insert(stream.end(), pass.begin(), pass.begin() + take);
  }
  if (bucket_batches > 0) {
    const int64_t chunk = bucket_batches * bs;
    for (int64_t c = 0; c < length; c += chunk) {
      auto first = stream.begin() + c, last = stream.begin() + std::min(length, c + chunk);
      std::stable_sort(first, last, [&](int64_t a, int64_t b) { return num_atoms[a] < num_atoms[b]; });
    }
  }
  std::vector<std::vector<int64_t>> out;
  for (int64_t c = 0; c < length; c += bs)
    out.emplace_back(stream.begin() + c, stream.begin() + std::min(length, c + bs));
  return out;
}

}  // namespace

int64_t ShiftSampler::batches_per_epoch() const {
  const int64_t nl = ceil_div(static_cast<int64_t>(labelled_.size()), options_.labelled_batch);
  const int64_t nu = ceil_div(static_cast<int64_t>(unlabelled_.size()), options_.unlabelled_batch);
  return std::max(nl, nu);
}

std::vector<std::vector<int64_t>> ShiftSampler::epoch(int64_t epoch) const {
  SplitMix64 rng(options_.seed * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(epoch) + 0x632BE59BD9B4E019ull));
  rng.next();
  const int64_t nb = batches_per_epoch();
  const int64_t B1 = options_.labelled_batch, B2 = options_.unlabelled_batch;
  const int64_t nl = static_cast<int64_t>(labelled_.size()), nu = static_cast<int64_t>(unlabelled_.size());
  // The group that sets the epoch length uses each sample once; the other is cycled to fill nb full batches.
  auto length = [&](int64_t n, int64_t bs) { return n == 0 ? 0 : (ceil_div(n, bs) == nb ? n : nb * bs); };
  std::vector<std::vector<int64_t>> lb =
      group_batches(labelled_, length(nl, B1), B1, options_.bucket_batches, num_atoms_, rng);
  std::vector<std::vector<int64_t>> ub =
      group_batches(unlabelled_, length(nu, B2), B2, options_.bucket_batches, num_atoms_, rng);
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(nb));
  for (int64_t j = 0; j < nb; ++j) {
    if (j < static_cast<int64_t>(lb.size())) out[j] = std::move(lb[j]);
    if (j < static_cast<int64_t>(ub.size())) out[j].insert(out[j].end(), ub[j].begin(), ub[j].end());
  }
  rng.shuffle(out);
  return out;
}

std::vector<std::vector<int64_t>> sequential_batches(const ShiftDataset& dataset, int64_t batch_size,
                                                     bool sort_by_size) {
  if (batch_size < 1) fail("sequential_batches", "batch_size " + std::to_string(batch_size) + " < 1");
  std::vector<int64_t> order(static_cast<size_t>(dataset.size()));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (sort_by_size)
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return dataset.sample(a).num_atoms < dataset.sample(b).num_atoms; });
  std::vector<std::vector<int64_t>> out;
  for (size_t c = 0; c < order.size(); c += static_cast<size_t>(batch_size))
    out.emplace_back(order.begin() + c, order.begin() + std::min(order.size(), c + static_cast<size_t>(batch_size)));
  return out;
}

double padding_fraction(const ShiftDataset& dataset, const std::vector<std::vector<int64_t>>& batches) {
  int64_t grid = 0, used = 0;
  for (const auto& b : batches) {
    int64_t mx = 0;
    for (int64_t i : b) {
      const int64_t L = dataset.sample(i).num_atoms + 2;
      mx = std::max(mx, L);
      used += L;
    }
    grid += mx * static_cast<int64_t>(b.size());
  }
  return grid == 0 ? 0.0 : static_cast<double>(grid - used) / static_cast<double>(grid);
}

}  // namespace larmor::chem
