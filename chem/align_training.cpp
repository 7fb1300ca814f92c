// Training/evaluation of the alignment model (see align_training.h for why it is built this way).
#include "chem/align_training.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "chem/assignment.h"
#include "chem/features.h"
#include "engine/error.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/safetensors.h"

namespace larmor::chem {
namespace {

using json = nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

[[noreturn]] void train_fail(const std::string& what) { throw Error("train align: " + what); }

std::vector<float> host_f32(const Tensor& t) { return t.to(Device::cpu()).to(DType::F32).to_vector<float>(); }

// The options that determine the trajectory of a run: a resumed run must agree on all of them.
json run_options_json(const AlignTrainOptions& o) {
  json j = {{"epochs", o.epochs},
            {"lr", o.lr},
            {"schedule", o.schedule},
            {"weight_decay", o.weight_decay},
            {"clip", o.clip},
            {"batch", o.batch},
            {"seed", o.seed}};
  if (o.schedule != "constant") {
    j["warmup_fraction"] = o.warmup_fraction;
    j["end_lr"] = o.end_lr;
  }
  if (o.steps > 0) j["steps"] = o.steps;
  return j;
}

std::string data_options_json(const AlignDataOptions& d) {
  return json{{"use_assigned", d.use_assigned}, {"use_peak_sets", d.use_peak_sets}}.dump();
}

AlignDataOptions data_options_from(const std::string& text) {
  const json j = json::parse(text);
  AlignDataOptions d;
  d.use_assigned = j.at("use_assigned").get<bool>();
  d.use_peak_sets = j.at("use_peak_sets").get<bool>();
  return d;
}

// dot products of rows: a (n x D) row i with b (m x D) row j
double dot_rows(const std::vector<float>& a, int64_t i, const std::vector<float>& b, int64_t j, int64_t D) {
  double s = 0;
  const float* x = a.data() + i * D;
  const float* y = b.data() + j * D;
  for (int64_t k = 0; k < D; ++k) s += static_cast<double>(x[k]) * static_cast<double>(y[k]);
  return s;
}

// Embeddings of a set of samples, eval mode (the caller holds a NoGradGuard and set eval()).
struct SampleEmbeddings {
  int64_t D = 0;
  std::vector<float> spectrum, graph;   // (n, D) in sample order
  std::vector<float> peak, carbon;      // (pairs, D) in sample order
  std::vector<int64_t> pair_offset;     // (n + 1) CSR into peak/carbon rows
};

SampleEmbeddings embed_samples(AlignModel& model, const AlignDataset& data, int64_t batch_size) {
  SampleEmbeddings out;
  out.D = model.config().projection_dim;
  out.pair_offset.push_back(0);
  for (int64_t b0 = 0; b0 < data.size(); b0 += batch_size) {
    std::vector<int64_t> rows;
    for (int64_t r = b0; r < std::min(data.size(), b0 + batch_size); ++r) rows.push_back(r);
    const AlignBatch batch = data.make_batch(rows);
    const AlignGraphEmbeddings g = model.encode_graph(batch);
    const std::vector<float> s = host_f32(model.encode_spectrum(batch)), gm = host_f32(g.molecule);
    out.spectrum.insert(out.spectrum.end(), s.begin(), s.end());
    out.graph.insert(out.graph.end(), gm.begin(), gm.end());
    if (batch.num_carbons() > 0) {
      const std::vector<float> p = host_f32(model.encode_peaks(batch)), c = host_f32(g.carbon);
      out.peak.insert(out.peak.end(), p.begin(), p.end());
      out.carbon.insert(out.carbon.end(), c.begin(), c.end());
    }
    for (int64_t r : rows)
      out.pair_offset.push_back(out.pair_offset.back() + static_cast<int64_t>(data.sample(r).carbon_atoms.size()));
  }
  return out;
}

json topk_json(const TopKStats& t) {
  auto r = [&](int k) { return t.n ? json(t.rate(k)) : json(nullptr); };
  return {{"n", t.n}, {"top1", r(1)}, {"top5", r(5)}, {"top10", r(10)}};
}

json assignment_json(const AssignmentStats& a) {
  auto v = [&](double x) { return std::isnan(x) ? json(nullptr) : json(x); };
  return {{"molecules", a.molecules},
          {"peaks", a.peaks},
          {"accuracy_per_molecule", v(a.accuracy())},
          {"accuracy_per_peak", v(a.peak_accuracy())},
          {"fully_right", v(a.fully_right_rate())}};
}

std::string pct(double x) {
  if (std::isnan(x)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100.0 * x);
  return b;
}

// The carbons of one block grouped by symmetry class for chem::assign_peaks: members[g] are the carbon
// indices (0..C-1, ascending) of group g, classes[g] its CarbonClass (atoms = those carbon indices).
struct CarbonGroups {
  std::vector<std::vector<int32_t>> members;
  std::vector<CarbonClass> classes;
};

CarbonGroups group_carbons(const std::vector<int32_t>& carbon_class, const std::vector<int32_t>& carbon_multiplicity) {
  CarbonGroups g;
  std::map<int32_t, size_t> group_of_class;  // non-negative class -> group
  for (size_t c = 0; c < carbon_class.size(); ++c) {
    const int32_t cls = carbon_class[c];
    size_t k = g.members.size();
    if (cls >= 0) k = group_of_class.emplace(cls, k).first->second;  // the existing group, or a new one
    if (k == g.members.size()) {
      g.members.emplace_back();
      g.classes.emplace_back();
      g.classes[k].num_h = carbon_multiplicity[c];  // 0..3 attached H; 4 (unknown) fits no constrained peak
    }
    g.members[k].push_back(static_cast<int32_t>(c));
    g.classes[k].atoms.push_back(static_cast<int32_t>(c));
  }
  return g;
}

void check_block(const std::vector<float>& peak_ppm, const std::vector<int32_t>& peak_multiplicity,
                 const std::vector<int32_t>& carbon_class, const std::vector<int32_t>& carbon_multiplicity,
                 const std::string& name) {
  if (peak_multiplicity.size() != peak_ppm.size())
    throw Error(name + ": " + std::to_string(peak_ppm.size()) + " peak shifts but " +
                std::to_string(peak_multiplicity.size()) + " peak multiplicities");
  if (carbon_multiplicity.size() != carbon_class.size())
    throw Error(name + ": " + std::to_string(carbon_class.size()) + " carbon classes but " +
                std::to_string(carbon_multiplicity.size()) + " carbon multiplicities");
  if (carbon_class.empty()) throw Error(name + ": no carbons");
}

// The optimal peak -> carbon choice for a peaks x groups cost matrix (empty: the L1 cost on the groups'
// predicted_ppm). Only the best map is needed, not its confidences.
std::vector<int32_t> optimal_choice(const std::vector<Peak>& peaks, const CarbonGroups& groups,
                                    const std::vector<double>& cost, const std::string& name) {
  AssignOptions options;  // multiplicity as a hard constraint, default extra-peak penalty
  options.confidences = false;
  const PeakAssignmentResult r = assign_peaks(peaks, groups.classes, cost, options, name);
  std::vector<int32_t> choice(peaks.size(), 0);
  for (const PeakMatch& m : r.assignments.at(0).matches)
    choice[static_cast<size_t>(m.peak)] = groups.members[static_cast<size_t>(m.cls)].front();
  return choice;
}

std::vector<int32_t> optimal_by_scores(const std::vector<double>& scores, const std::vector<float>& peak_ppm,
                                       const std::vector<int32_t>& peak_multiplicity,
                                       const std::vector<int32_t>& carbon_class,
                                       const std::vector<int32_t>& carbon_multiplicity, const std::string& name) {
  const size_t P = peak_ppm.size(), C = carbon_class.size();
  check_block(peak_ppm, peak_multiplicity, carbon_class, carbon_multiplicity, name);
  if (scores.size() != P * C)
    throw Error(name + ": " + std::to_string(scores.size()) + " scores for " + std::to_string(P) + " peaks x " +
                std::to_string(C) + " carbons");
  const CarbonGroups groups = group_carbons(carbon_class, carbon_multiplicity);
  const std::vector<double> cost = class_costs_from_scores(scores, static_cast<int64_t>(P), static_cast<int64_t>(C),
                                                          groups.members);  // (P, G)
  return optimal_choice(sample_peaks(peak_ppm, peak_multiplicity), groups, cost, name);
}

// The carbons' groups, each predicted at the mean of its carbons' predictions.
CarbonGroups predicted_groups(const std::vector<double>& carbon_predicted_ppm, const std::vector<int32_t>& carbon_class,
                              const std::vector<int32_t>& carbon_multiplicity) {
  CarbonGroups groups = group_carbons(carbon_class, carbon_multiplicity);
  for (size_t g = 0; g < groups.members.size(); ++g) {
    double sum = 0;
    for (int32_t c : groups.members[g]) sum += carbon_predicted_ppm[static_cast<size_t>(c)];
    groups.classes[g].predicted_ppm = sum / static_cast<double>(groups.members[g].size());
  }
  return groups;
}

std::vector<int32_t> optimal_by_shifts(const std::vector<double>& carbon_predicted_ppm, const std::vector<float>& peak_ppm,
                                       const std::vector<int32_t>& peak_multiplicity,
                                       const std::vector<int32_t>& carbon_class,
                                       const std::vector<int32_t>& carbon_multiplicity, const std::string& name) {
  check_block(peak_ppm, peak_multiplicity, carbon_class, carbon_multiplicity, name);
  if (carbon_predicted_ppm.size() != carbon_class.size())
    throw Error(name + ": " + std::to_string(carbon_predicted_ppm.size()) + " predicted shifts for " +
                std::to_string(carbon_class.size()) + " carbons");
  const CarbonGroups groups = predicted_groups(carbon_predicted_ppm, carbon_class, carbon_multiplicity);
  return optimal_choice(sample_peaks(peak_ppm, peak_multiplicity), groups, {}, name);
}

// Both: cost(p, group) = |group's mean prediction - ppm_p| (+ the L1 tie-break term) + weight * the
// align-score class cost (nats, class_costs_from_scores).
std::vector<int32_t> optimal_combined(const std::vector<double>& carbon_predicted_ppm, const std::vector<double>& scores,
                                      double weight, const std::vector<float>& peak_ppm,
                                      const std::vector<int32_t>& peak_multiplicity,
                                      const std::vector<int32_t>& carbon_class,
                                      const std::vector<int32_t>& carbon_multiplicity, const std::string& name) {
  const size_t P = peak_ppm.size(), C = carbon_class.size();
  check_block(peak_ppm, peak_multiplicity, carbon_class, carbon_multiplicity, name);
  if (carbon_predicted_ppm.size() != C)
    throw Error(name + ": " + std::to_string(carbon_predicted_ppm.size()) + " predicted shifts for " +
                std::to_string(C) + " carbons");
  if (scores.size() != P * C)
    throw Error(name + ": " + std::to_string(scores.size()) + " scores for " + std::to_string(P) + " peaks x " +
                std::to_string(C) + " carbons");
  if (!(weight >= 0) || std::isinf(weight)) throw Error(name + ": the combine weight must be finite and >= 0");
  const CarbonGroups groups = predicted_groups(carbon_predicted_ppm, carbon_class, carbon_multiplicity);
  const std::vector<Peak> peaks = sample_peaks(peak_ppm, peak_multiplicity);
  std::vector<double> cost = predicted_shift_costs(peaks, groups.classes, AssignOptions{}.l2_tie_break, name);  // (P, G) ppm
  const std::vector<double> align = class_costs_from_scores(scores, static_cast<int64_t>(P), static_cast<int64_t>(C),
                                                            groups.members);  // (P, G) nats
  for (size_t i = 0; i < cost.size(); ++i) cost[i] += weight * align[i];
  return optimal_choice(peaks, groups, cost, name);
}

// The shift model's 13C prediction (ppm) for every paired carbon (AlignSample::carbon_atoms order) of the
// listed samples, with each entry's own solvent (the spectrum's); a sample whose molecule has no 3-D
// coordinates gets an empty vector.
std::vector<std::vector<double>> predict_paired_carbons(LoadedShiftModel& shift, const AlignDataset& data,
                                                        const Dataset& dataset, const std::vector<int64_t>& samples,
                                                        int64_t batch_size) {
  std::vector<int64_t> entries;
  for (int64_t i : samples) entries.push_back(data.sample(i).entry);
  const std::vector<std::vector<double>> atoms = predict_13c_shifts(shift, dataset, entries, std::nullopt, batch_size);
  std::vector<std::vector<double>> out(samples.size());
  for (size_t k = 0; k < samples.size(); ++k) {
    if (atoms[k].empty()) continue;
    for (int32_t atom : data.sample(samples[k]).carbon_atoms) out[k].push_back(atoms[k].at(static_cast<size_t>(atom)));
  }
  return out;
}

// 1 + the number of scores strictly above scores[truth] (rank_of for double scores).
int64_t rank_by(const std::vector<double>& scores, int64_t truth) {
  const double t = scores.at(static_cast<size_t>(truth));
  int64_t above = 0;
  for (double s : scores) above += s > t;
  return above + 1;
}

}  // namespace

// ---- parsing ----
AlignModelConfig resolve_align_config(const std::string& name) {
  if (name == "default") return AlignModelConfig{};
  if (name == "tiny") return AlignModelConfig::tiny();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
    std::ifstream in(name);
    if (!in) throw Error("align config: cannot read '" + name + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      return AlignModelConfig::from_json(ss.str());
    } catch (const std::exception& e) {
      throw Error("align config '" + name + "': " + e.what());
    }
  }
  throw Error("align config: unknown config '" + name + "' (expected default, tiny or a .json file)");
}

// ---- metrics ----
void TopKStats::add(int64_t rank) {
  ++n;
  top1 += rank <= 1;
  top5 += rank <= 5;
  top10 += rank <= 10;
}

double TopKStats::rate(int k) const {
  if (n == 0) return kNaN;
  const int64_t hits = k <= 1 ? top1 : (k <= 5 ? top5 : top10);
  return static_cast<double>(hits) / static_cast<double>(n);
}

int64_t rank_of(const std::vector<float>& scores, int64_t truth) {
  const float t = scores.at(static_cast<size_t>(truth));
  int64_t above = 0;
  for (float s : scores) above += s > t;
  return above + 1;
}

std::vector<int32_t> assign_peaks(const std::vector<double>& scores, int64_t P, int64_t C, bool column_softmax) {
  if (P < 0 || C < 1 || static_cast<int64_t>(scores.size()) != P * C)
    throw Error("assign_peaks: " + std::to_string(scores.size()) + " scores for " + std::to_string(P) + " peaks x " +
                std::to_string(C) + " carbons");
  std::vector<double> v = scores;
  if (column_softmax)
    for (int64_t c = 0; c < C; ++c) {  // log-softmax over the peaks of column c (the argmax is the same)
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t p = 0; p < P; ++p) mx = std::max(mx, v[p * C + c]);
      double z = 0;
      for (int64_t p = 0; p < P; ++p) z += std::exp(v[p * C + c] - mx);
      const double lse = mx + std::log(z);
      for (int64_t p = 0; p < P; ++p) v[p * C + c] -= lse;
    }
  std::vector<int32_t> choice(static_cast<size_t>(P), 0);
  for (int64_t p = 0; p < P; ++p) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (v[p * C + c] > v[p * C + best]) best = c;
    choice[static_cast<size_t>(p)] = static_cast<int32_t>(best);
  }
  return choice;
}

std::vector<int32_t> assign_peaks_optimal_by_scores(const std::vector<double>& scores, const std::vector<float>& peak_ppm,
                                                    const std::vector<int32_t>& peak_multiplicity,
                                                    const std::vector<int32_t>& carbon_class,
                                                    const std::vector<int32_t>& carbon_multiplicity) {
  return optimal_by_scores(scores, peak_ppm, peak_multiplicity, carbon_class, carbon_multiplicity,
                           "assign_peaks_optimal_by_scores");
}

std::vector<int32_t> assign_peaks_optimal_by_shifts(const std::vector<double>& carbon_predicted_ppm,
                                                    const std::vector<float>& peak_ppm,
                                                    const std::vector<int32_t>& peak_multiplicity,
                                                    const std::vector<int32_t>& carbon_class,
                                                    const std::vector<int32_t>& carbon_multiplicity) {
  return optimal_by_shifts(carbon_predicted_ppm, peak_ppm, peak_multiplicity, carbon_class, carbon_multiplicity,
                           "assign_peaks_optimal_by_shifts");
}

std::vector<int32_t> assign_peaks_optimal_combined(const std::vector<double>& carbon_predicted_ppm,
                                                   const std::vector<double>& scores, double weight,
                                                   const std::vector<float>& peak_ppm,
                                                   const std::vector<int32_t>& peak_multiplicity,
                                                   const std::vector<int32_t>& carbon_class,
                                                   const std::vector<int32_t>& carbon_multiplicity) {
  return optimal_combined(carbon_predicted_ppm, scores, weight, peak_ppm, peak_multiplicity, carbon_class,
                          carbon_multiplicity, "assign_peaks_optimal_combined");
}

std::vector<Peak> sample_peaks(const std::vector<float>& peak_ppm, const std::vector<int32_t>& peak_multiplicity) {
  if (peak_ppm.size() != peak_multiplicity.size())
    throw Error("sample_peaks: " + std::to_string(peak_ppm.size()) + " peak shifts but " +
                std::to_string(peak_multiplicity.size()) + " multiplicities");
  std::vector<Peak> peaks(peak_ppm.size());
  for (size_t i = 0; i < peak_ppm.size(); ++i) {
    peaks[i].shift = peak_ppm[i];
    const int32_t m = peak_multiplicity[i];
    peaks[i].mult = m >= 0 && m <= 3 ? static_cast<int8_t>(m) : kMultUnknown;
  }
  return peaks;
}

// ---- retrieval by the shift predictor ----
std::vector<std::vector<double>> predict_13c_shifts(LoadedShiftModel& shift, const Dataset& dataset,
                                                    const std::vector<int64_t>& entries,
                                                    std::optional<Solvent> solvent, int64_t batch_size) {
  if (!shift.model) throw Error("predict 13C: the shift model is not loaded");
  if (batch_size < 1) throw Error("predict 13C: shift-model batch size must be >= 1");
  ShiftModel& model = *shift.model;
  const int c13 = static_cast<int>(Nucleus::C13);
  if (!model.config().nuclei[c13]) throw Error("predict 13C: the shift model has no 13C head");
  const bool use_solvent = model.config().solvent_conditioning && shift.data_options.use_solvent;
  struct Input {
    size_t slot = 0;  // index into entries / the result
    int32_t num_atoms = 0, solvent = 0;
    std::vector<int32_t> tokens;  // (num_atoms + 2)
    std::vector<float> coords;    // (num_atoms + 2, 3)
    std::vector<int32_t> atom_features;  // (num_atoms + 2, kShiftAtomFeatures)
    std::vector<uint8_t> pair_types;     // (num_atoms + 2, num_atoms + 2)
  };
  std::vector<Input> inputs;
  for (size_t k = 0; k < entries.size(); ++k) {
    if (entries[k] < 0 || entries[k] >= static_cast<int64_t>(dataset.entries.size()))
      throw Error("predict 13C: entry " + std::to_string(entries[k]) + " outside the dataset's " +
                  std::to_string(dataset.entries.size()) + " entries");
    const DatasetEntry& e = dataset.entries[static_cast<size_t>(entries[k])];
    if (!e.mol.has_3d()) continue;
    MoleculeFeatures f = featurize(e.mol);
    Input in;
    in.slot = k;
    in.num_atoms = e.mol.num_atoms();
    in.solvent = use_solvent ? static_cast<int32_t>(solvent ? *solvent : e.solvent) : 0;
    in.tokens = std::move(f.tokens);
    in.coords = std::move(f.coords);
    in.atom_features = std::move(f.token_features);
    in.pair_types = std::move(f.token_pairs);
    if (in.tokens.size() != static_cast<size_t>(in.num_atoms + 2) || in.coords.size() != in.tokens.size() * 3)
      throw Error("predict 13C: entry " + std::to_string(entries[k]) + " ('" + e.mol.id + "'): featurize gave " +
                  std::to_string(in.tokens.size()) + " tokens for " + std::to_string(in.num_atoms) + " atoms");
    inputs.push_back(std::move(in));
  }
  std::stable_sort(inputs.begin(), inputs.end(), [](const Input& a, const Input& b) { return a.num_atoms < b.num_atoms; });
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<std::vector<double>> out(entries.size());
  for (size_t b0 = 0; b0 < inputs.size(); b0 += static_cast<size_t>(batch_size)) {
    const size_t b1 = std::min(inputs.size(), b0 + static_cast<size_t>(batch_size));
    std::vector<ShiftInputRow> rows;
    for (size_t k = b0; k < b1; ++k)
      rows.push_back({&inputs[k].tokens, &inputs[k].coords, inputs[k].solvent, entries[inputs[k].slot],
                      &inputs[k].atom_features, &inputs[k].pair_types});
    const ShiftBatch batch = pad_shift_inputs(rows);
    const int64_t B = batch.tokens.size(0), N = batch.tokens.size(1);  // (B, N): sorted, so little padding
    const std::vector<float> z = host_f32(model.forward(batch, /*with_delta_pair=*/false).shifts);  // (B, N, 4) standardised
    for (int64_t b = 0; b < B; ++b) {
      const Input& in = inputs[b0 + static_cast<size_t>(b)];
      std::vector<double>& pred = out[in.slot];
      pred.resize(static_cast<size_t>(in.num_atoms));
      for (int32_t atom = 0; atom < in.num_atoms; ++atom)
        pred[static_cast<size_t>(atom)] =
            shift.standardizer.to_ppm(c13, z[static_cast<size_t>((b * N + atom + 1) * kShiftNuclei + c13)]);
    }
  }
  model.train(was_training);
  return out;
}

double PredictedSpectrumFit::score(double unmatched_penalty) const {
  if (!possible) return -std::numeric_limits<double>::infinity();
  return -(error + unmatched_penalty * static_cast<double>(unmatched_classes));
}

PredictedSpectrumFit fit_predicted_spectrum(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes) {
  PredictedSpectrumFit fit;
  size_t carbons = 0;
  for (const CarbonClass& c : classes) carbons += c.atoms.size();
  if (classes.empty() || peaks.size() > carbons) return fit;  // impossible without asking the solver
  AssignOptions options;  // only the best map is needed
  options.confidences = false;
  options.k_best = 1;
  PeakAssignmentResult r;
  try {
    r = assign_peaks(peaks, classes, {}, options, "shift-predictor retrieval");
  } catch (const Error&) {
    return fit;  // a list assign_peaks rejects (bad shift, no prediction): this candidate cannot explain it
  }
  std::vector<char> used(classes.size(), 0);
  for (const PeakMatch& m : r.assignments.at(0).matches) {
    const size_t c = static_cast<size_t>(m.cls);
    fit.error += std::fabs(classes[c].predicted_ppm - peaks[static_cast<size_t>(m.peak)].shift);
    used[c] = 1;
  }
  fit.unmatched_classes = static_cast<int32_t>(std::count(used.begin(), used.end(), 0));
  fit.possible = true;
  return fit;
}

int64_t reranked_rank(const std::vector<float>& first, const std::vector<double>& second, int64_t truth, int64_t k) {
  if (first.size() != second.size())
    throw Error("reranked_rank: " + std::to_string(first.size()) + " first scores but " +
                std::to_string(second.size()) + " second scores");
  if (truth < 0 || truth >= static_cast<int64_t>(first.size()))
    throw Error("reranked_rank: truth " + std::to_string(truth) + " outside " + std::to_string(first.size()) +
                " candidates");
  const int64_t rank_first = rank_of(first, truth);  // the truth's place in the first order
  if (rank_first > k) return rank_first;
  // The first order puts the truth ahead of its ties, so the k best are: every candidate scoring strictly
  // above it, the truth, and the next k - rank_first candidates of the first order after it.
  const float t = first[static_cast<size_t>(truth)];
  const double truth_second = second[static_cast<size_t>(truth)];
  std::vector<int64_t> behind;  // candidates not strictly above the truth, in the first order
  int64_t ahead = 0;
  for (int64_t j = 0; j < static_cast<int64_t>(first.size()); ++j) {
    if (j == truth) continue;
    if (first[static_cast<size_t>(j)] > t) ahead += second[static_cast<size_t>(j)] > truth_second;
    else behind.push_back(j);
  }
  std::stable_sort(behind.begin(), behind.end(), [&](int64_t a, int64_t b) {
    return first[static_cast<size_t>(a)] > first[static_cast<size_t>(b)];
  });
  const size_t slots = static_cast<size_t>(std::min<int64_t>(k - rank_first, static_cast<int64_t>(behind.size())));
  for (size_t m = 0; m < slots; ++m) ahead += second[static_cast<size_t>(behind[m])] > truth_second;
  return ahead + 1;
}

int64_t correct_assignments(const std::vector<int32_t>& choice, const std::vector<float>& peak_ppm,
                            const std::vector<int32_t>& peak_class, const std::vector<float>& carbon_ppm,
                            const std::vector<int32_t>& carbon_class) {
  if (peak_ppm.size() != choice.size() || peak_class.size() != choice.size() || carbon_class.size() != carbon_ppm.size())
    throw Error("correct_assignments: inconsistent lengths");
  int64_t right = 0;
  for (size_t i = 0; i < choice.size(); ++i) {
    const size_t c = static_cast<size_t>(choice[i]);
    if (c >= carbon_ppm.size()) throw Error("correct_assignments: choice " + std::to_string(c) + " out of range");
    right += carbon_ppm[c] == peak_ppm[i] || (carbon_class[c] >= 0 && carbon_class[c] == peak_class[i]);
  }
  return right;
}

void AssignmentStats::add(int64_t p, int64_t correct) {
  if (p <= 0) return;
  ++molecules;
  peaks += p;
  correct_peaks += correct;
  fully_right += correct == p;
  accuracy_sum += static_cast<double>(correct) / static_cast<double>(p);
}
double AssignmentStats::accuracy() const { return molecules ? accuracy_sum / static_cast<double>(molecules) : kNaN; }
double AssignmentStats::peak_accuracy() const {
  return peaks ? static_cast<double>(correct_peaks) / static_cast<double>(peaks) : kNaN;
}
double AssignmentStats::fully_right_rate() const {
  return molecules ? static_cast<double>(fully_right) / static_cast<double>(molecules) : kNaN;
}

const char* carbon_count_bucket(int32_t carbons) { return carbons < 10 ? "<10" : (carbons <= 20 ? "10-20" : ">20"); }

// ---- validation ----
AlignValidation validate_align(AlignModel& model, const AlignDataset& data, int64_t group, uint64_t seed) {
  AlignValidation v;
  const auto groups = align_eval_groups(data.size(), group, seed);
  if (groups.empty()) {
    v.loss = v.molecule = v.atom = v.top1 = kNaN;
    return v;
  }
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  const AlignLossOptions lo = AlignLossOptions::from(model.config());
  int64_t hits = 0, queries = 0;
  for (const auto& rows : groups) {
    const AlignBatch batch = data.make_batch(rows);
    const AlignGraphEmbeddings g = model.encode_graph(batch);
    const Tensor s = model.encode_spectrum(batch);
    const Tensor p = model.encode_peaks(batch);
    const std::vector<float> ppm = batch.carbon_ppm.to(Device::cpu()).to_vector<float>();
    AlignLossParts parts;
    align_contrastive_loss(s, g.molecule, p, g.carbon, std::vector<double>(ppm.begin(), ppm.end()), lo, &parts);
    v.loss += parts.total;
    v.molecule += parts.molecule;
    v.atom += parts.atom;
    const std::vector<float> hs = host_f32(s), hg = host_f32(g.molecule);
    const int64_t B = static_cast<int64_t>(rows.size()), D = s.size(1);
    for (int64_t i = 0; i < B; ++i) {
      std::vector<float> row(static_cast<size_t>(B));
      for (int64_t j = 0; j < B; ++j) row[j] = static_cast<float>(dot_rows(hs, i, hg, j, D));
      hits += rank_of(row, i) == 1;
      ++queries;
    }
    ++v.groups;
  }
  const double n = static_cast<double>(v.groups);
  v.loss /= n;
  v.molecule /= n;
  v.atom /= n;
  v.top1 = static_cast<double>(hits) / static_cast<double>(queries);
  model.train(was_training);
  return v;
}

// ---- evaluation ----
AlignEvalReport evaluate_align(AlignModel& model, const AlignDataset& data, const Dataset& dataset,
                               const AlignEvalOptions& o) {
  if (o.group_size < 1) throw Error("eval align: group size must be >= 1");
  if (o.batch < 1) throw Error("eval align: batch size must be >= 1");
  AlignEvalReport rep;
  rep.molecules = data.size();
  rep.group_size = o.group_size;
  if (data.size() == 0) return rep;
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  const SampleEmbeddings emb = embed_samples(model, data, o.batch);
  const int64_t D = emb.D;

  if (o.shift_model) {  // fail on bad options before any work
    if (!o.shift_model->model) throw Error("eval align: the shift model is not loaded");
    if (o.shift_batch < 1) throw Error("eval align: shift-model batch size must be >= 1");
    if (!(o.unmatched_penalty >= 0) || std::isinf(o.unmatched_penalty))
      throw Error("eval align: the unmatched-class penalty must be a finite number >= 0 (ppm)");
    rep.predict_evaluated = true;
    rep.unmatched_penalty = o.unmatched_penalty;
    if (!(o.combine_weight >= 0) || std::isinf(o.combine_weight))
      throw Error("eval align: the combine weight must be finite and >= 0, got " + std::to_string(o.combine_weight));
    rep.combine_weight = o.combine_weight;
  }
  const auto groups = align_eval_groups(data.size(), o.group_size, o.seed);

  // The library (every prepared molecule with a carbon, all splits) and its formula groups; the isomer
  // queries are the samples whose formula group has >= 2 members.
  std::vector<int64_t> lib_entries;
  std::unordered_map<int64_t, int64_t> lib_index;
  std::unordered_map<std::string, std::vector<int64_t>> by_formula;  // formula -> library indices
  auto isomer_group = [&](const AlignSample& s) -> const std::vector<int64_t>* {
    const std::string& f = dataset.entries[static_cast<size_t>(s.entry)].mol.formula;
    auto it = f.empty() ? by_formula.end() : by_formula.find(f);
    return it == by_formula.end() || it->second.size() < 2 ? nullptr : &it->second;
  };
  if (o.library) {
    for (size_t ei = 0; ei < dataset.entries.size(); ++ei) {
      const Molecule& mol = dataset.entries[ei].mol;
      if (std::none_of(mol.atoms.begin(), mol.atoms.end(), [](const Atom& a) { return a.element == 6; })) continue;
      lib_entries.push_back(static_cast<int64_t>(ei));
    }
    for (int64_t k = 0; k < static_cast<int64_t>(lib_entries.size()); ++k) {
      lib_index[lib_entries[k]] = k;
      const std::string& f = dataset.entries[static_cast<size_t>(lib_entries[k])].mol.formula;
      if (!f.empty()) by_formula[f].push_back(k);
    }
  }

  // The shift predictor's candidates: every molecule of an in-group group or of a query's formula group,
  // predicted once (solvent unknown: see the top of align_training.h) and grouped into carbon classes.
  std::unordered_map<int64_t, std::vector<CarbonClass>> candidate_classes;  // entry -> classes (empty: impossible)
  if (rep.predict_evaluated) {
    std::set<int64_t> needed;
    for (const auto& group : groups)
      for (int64_t i : group) needed.insert(data.sample(i).entry);
    if (o.library)
      for (int64_t i = 0; i < data.size(); ++i)
        if (const std::vector<int64_t>* iso = isomer_group(data.sample(i)))
          for (int64_t k : *iso) needed.insert(lib_entries[static_cast<size_t>(k)]);
    const std::vector<int64_t> entries(needed.begin(), needed.end());
    const std::vector<std::vector<double>> atom_ppm =
        predict_13c_shifts(*o.shift_model, dataset, entries, Solvent::Unknown, o.shift_batch);
    rep.predict_candidates = static_cast<int64_t>(entries.size());
    for (size_t k = 0; k < entries.size(); ++k) {
      std::vector<CarbonClass>& classes = candidate_classes[entries[k]];
      if (atom_ppm[k].empty()) {
        ++rep.predict_unpredicted;
        continue;
      }
      classes = predicted_carbon_classes(dataset.entries[static_cast<size_t>(entries[k])].mol, atom_ppm[k]);
    }
  }
  // The shift-predictor scores of one query's peak list against candidate entries; false when the list itself
  // is one assign_peaks rejects whatever the candidate (then the query is ranked last).
  auto predict_scores = [&](const AlignSample& query, const std::vector<int64_t>& entries, std::vector<double>& scores) {
    const std::vector<Peak> peaks = sample_peaks(query.input.peak_ppm, query.input.peak_multiplicity);
    try {
      validate_peak_list(peaks, std::numeric_limits<int32_t>::max(), "query");
    } catch (const Error&) {
      ++rep.predict_unscorable;
      return false;
    }
    scores.resize(entries.size());
    for (size_t j = 0; j < entries.size(); ++j)
      scores[j] = fit_predicted_spectrum(peaks, candidate_classes.at(entries[j])).score(o.unmatched_penalty);
    return true;
  };

  // (1) in-group retrieval, both directions; the shift predictor's rows on the same groups
  constexpr int64_t kRerankTop = 10;
  for (const auto& group : groups) {
    const int64_t G = static_cast<int64_t>(group.size());
    std::vector<float> S(static_cast<size_t>(G * G));  // (G spectra, G structures)
    for (int64_t i = 0; i < G; ++i)
      for (int64_t j = 0; j < G; ++j) S[i * G + j] = static_cast<float>(dot_rows(emb.spectrum, group[i], emb.graph, group[j], D));
    std::vector<int64_t> group_entries(static_cast<size_t>(G));
    for (int64_t j = 0; j < G; ++j) group_entries[static_cast<size_t>(j)] = data.sample(group[j]).entry;
    std::vector<double> predict_row;  // (G) shift-predictor scores of query i against the group's structures
    for (int64_t i = 0; i < G; ++i) {
      const std::vector<float> row(S.begin() + i * G, S.begin() + (i + 1) * G);
      rep.in_group.add(rank_of(row, i));
      std::vector<float> col(static_cast<size_t>(G));
      for (int64_t k = 0; k < G; ++k) col[k] = S[k * G + i];
      rep.in_group_reverse.add(rank_of(col, i));
      if (!rep.predict_evaluated) continue;
      if (predict_scores(data.sample(group[i]), group_entries, predict_row)) {
        rep.in_group_predict.add(rank_by(predict_row, i));
        rep.in_group_rerank.add(reranked_rank(row, predict_row, i, kRerankTop));
        if (o.combine_weight > 0) {
          std::vector<double> comb(predict_row);
          for (int64_t j = 0; j < G; ++j) comb[j] += o.combine_weight * model.config().logit_scale * row[j];
          rep.in_group_combined.add(rank_by(comb, i));
        }
      } else {
        if (o.combine_weight > 0) rep.in_group_combined.add(G);
        rep.in_group_predict.add(G);
        rep.in_group_rerank.add(rank_of(row, i));  // nothing to re-rank with: the alignment order
      }
    }
    ++rep.groups;
  }

  // (1) library retrieval and (2) isomer recognition
  if (o.library) {
    std::vector<float> lib;  // (L, D)
    std::vector<AlignMoleculeInput> pending;
    auto flush = [&] {
      if (pending.empty()) return;
      const AlignBatch b = make_align_batch(pending, 1);
      const std::vector<float> g = host_f32(model.encode_graph(b).molecule);
      lib.insert(lib.end(), g.begin(), g.end());
      pending.clear();
    };
    for (int64_t ei : lib_entries) {
      pending.push_back(align_graph_input(dataset.entries[static_cast<size_t>(ei)].mol));
      if (static_cast<int64_t>(pending.size()) == o.batch) flush();
    }
    flush();
    const int64_t L = static_cast<int64_t>(lib_entries.size());
    rep.library_size = L;
    const Tensor lib_t = Tensor::from_vector<float>(lib, {L, D});
    std::set<std::string> isomer_formulas;
    std::vector<int64_t> iso_entries;
    std::vector<double> iso_predict;
    const int64_t chunk = 256;
    for (int64_t q0 = 0; q0 < data.size(); q0 += chunk) {
      const int64_t nq = std::min(chunk, data.size() - q0);
      const Tensor q = Tensor::from_vector<float>(
          std::vector<float>(emb.spectrum.begin() + q0 * D, emb.spectrum.begin() + (q0 + nq) * D), {nq, D});
      const std::vector<float> scores = matmul(q, lib_t, false, true).to_vector<float>();  // (nq, L)
      for (int64_t i = 0; i < nq; ++i) {
        const AlignSample& s = data.sample(q0 + i);
        const int64_t truth = lib_index.at(s.entry);
        const std::vector<float> row(scores.begin() + i * L, scores.begin() + (i + 1) * L);
        rep.library.add(rank_of(row, truth));
        const std::vector<int64_t>* group = isomer_group(s);
        if (!group) continue;
        std::vector<float> iso;
        int64_t pos = -1;
        iso_entries.clear();
        for (int64_t k : *group) {
          if (k == truth) pos = static_cast<int64_t>(iso.size());
          iso.push_back(row[k]);
          iso_entries.push_back(lib_entries[static_cast<size_t>(k)]);
        }
        rep.isomer.add(rank_of(iso, pos));
        isomer_formulas.insert(dataset.entries[static_cast<size_t>(s.entry)].mol.formula);
        if (rep.predict_evaluated) {
          const bool ok = predict_scores(s, iso_entries, iso_predict);
          rep.isomer_predict.add(ok ? rank_by(iso_predict, pos) : static_cast<int64_t>(iso.size()));
          if (o.combine_weight > 0) {
            if (ok)
              for (size_t k = 0; k < iso.size(); ++k) iso_predict[k] += o.combine_weight * model.config().logit_scale * iso[k];
            rep.isomer_combined.add(ok ? rank_by(iso_predict, pos) : static_cast<int64_t>(iso.size()));
          }
        }
      }
    }
    rep.isomer_groups = static_cast<int64_t>(isomer_formulas.size());
  }

  // (3) peak assignment on each molecule's own block: the peaks are its paired carbons' (ppm, multiplicity)
  std::vector<int64_t> with_pairs;
  for (int64_t i = 0; i < data.size(); ++i)
    if (data.sample(i).has_pairs()) with_pairs.push_back(i);
  std::vector<std::vector<double>> predicted;  // (with_pairs) 13C predictions of the paired carbons
  if (rep.predict_evaluated) predicted = predict_paired_carbons(*o.shift_model, data, dataset, with_pairs, o.shift_batch);
  const double scale = model.config().logit_scale;
  for (size_t k = 0; k < with_pairs.size(); ++k) {
    const int64_t i = with_pairs[k];
    const AlignSample& s = data.sample(i);
    const int64_t n = static_cast<int64_t>(s.carbon_atoms.size()), r0 = emb.pair_offset[i];
    std::vector<double> block(static_cast<size_t>(n * n));  // (peaks, carbons)
    for (int64_t p = 0; p < n; ++p)
      for (int64_t c = 0; c < n; ++c) block[p * n + c] = scale * dot_rows(emb.peak, r0 + p, emb.carbon, r0 + c, D);
    const std::vector<float>& ppm = s.input.carbon_ppm;
    const std::vector<int32_t>& mult = s.input.carbon_multiplicity;
    const std::string name = "eval align: entry " + std::to_string(s.entry) + " ('" +
                             dataset.entries.at(static_cast<size_t>(s.entry)).mol.id + "')";
    auto score = [&](const std::vector<int32_t>& choice) {
      return correct_assignments(choice, ppm, s.carbon_class, ppm, s.carbon_class);
    };
    const char* bucket = carbon_count_bucket(s.num_carbons);
    const int64_t right = score(assign_peaks(block, n, n, true));
    rep.assignment.add(n, right);
    rep.assignment_argmax.add(n, score(assign_peaks(block, n, n, false)));
    rep.assignment_by_size[bucket].add(n, right);
    const int64_t right_optimal = score(optimal_by_scores(block, ppm, mult, s.carbon_class, mult, name));
    rep.assignment_optimal.add(n, right_optimal);
    rep.assignment_optimal_by_size[bucket].add(n, right_optimal);
    if (rep.predict_evaluated) {
      if (predicted[k].empty()) {  // no 3-D structure to predict from
        ++rep.predict_skipped;
        continue;
      }
      for (int64_t c = 0; c < n; ++c) rep.predict_error.add(predicted[k][static_cast<size_t>(c)] - ppm[static_cast<size_t>(c)]);
      const int64_t right_predict = score(optimal_by_shifts(predicted[k], ppm, mult, s.carbon_class, mult, name));
      rep.assignment_predict.add(n, right_predict);
      rep.assignment_predict_by_size[bucket].add(n, right_predict);
      if (o.combine_weight > 0) {
        const int64_t right_both =
            score(optimal_combined(predicted[k], block, o.combine_weight, ppm, mult, s.carbon_class, mult, name));
        rep.assignment_combined.add(n, right_both);
        rep.assignment_combined_by_size[bucket].add(n, right_both);
      }
    }
  }
  model.train(was_training);
  return rep;
}

std::string AlignEvalReport::table() const {
  std::ostringstream s;
  char line[256];
  s << "split " << split << ": " << molecules << " spectra\n";
  std::snprintf(line, sizeof line, "%-44s %8s %8s %8s %8s\n", "retrieval (spectrum -> structure)", "n", "top-1", "top-5",
                "top-10");
  s << line;
  auto row = [&](const std::string& name, const TopKStats& t) {
    std::snprintf(line, sizeof line, "%-44s %8lld %8s %8s %8s\n", name.c_str(), static_cast<long long>(t.n),
                  pct(t.rate(1)).c_str(), pct(t.rate(5)).c_str(), pct(t.rate(10)).c_str());
    s << line;
  };
  row("in groups of " + std::to_string(group_size) + " (" + std::to_string(groups) + " groups)", in_group);
  row("  structure -> spectrum, same groups", in_group_reverse);
  if (predict_evaluated) {
    row("shift predictor, groups of " + std::to_string(group_size), in_group_predict);
    row("align top-10 re-ranked by shift predictor", in_group_rerank);
    if (combine_weight > 0) row("alignment + shift predictor, groups", in_group_combined);
  }
  if (library_size > 0) {
    row("library of " + std::to_string(library_size) + " molecules", library);
    row("isomers (same formula; " + std::to_string(isomer_groups) + " formulas with >= 2)", isomer);
    if (predict_evaluated) row("shift predictor, isomers", isomer_predict);
    if (predict_evaluated && combine_weight > 0) row("alignment + shift predictor, isomers", isomer_combined);
  }
  if (predict_evaluated) {
    std::snprintf(line, sizeof line,
                  "  (shift predictor: %lld molecules predicted, solvent unknown; %.3g ppm per class without a peak",
                  static_cast<long long>(predict_candidates), unmatched_penalty);
    s << line;
    if (predict_unpredicted > 0) s << "; " << predict_unpredicted << " without 3-D coordinates ranked last";
    if (predict_unscorable > 0) s << "; " << predict_unscorable << " unusable peak lists ranked last";
    s << ")\n";
  }
  std::snprintf(line, sizeof line, "%-44s %8s %8s %10s %10s\n", "peak assignment", "mols", "peaks", "acc/mol",
                "fully right");
  s << line;
  auto arow = [&](const std::string& name, const AssignmentStats& a) {
    std::snprintf(line, sizeof line, "%-44s %8lld %8lld %10s %10s\n", name.c_str(), static_cast<long long>(a.molecules),
                  static_cast<long long>(a.peaks), pct(a.accuracy()).c_str(), pct(a.fully_right_rate()).c_str());
    s << line;
  };
  auto buckets = [&](const std::map<std::string, AssignmentStats>& by_size) {
    for (const char* b : {"<10", "10-20", ">20"}) {
      auto it = by_size.find(b);
      if (it != by_size.end()) arow(std::string("  ") + b + " carbons", it->second);
    }
  };
  arow("column softmax (as K-M3AID)", assignment);
  buckets(assignment_by_size);
  arow("row argmax", assignment_argmax);
  arow("optimal (align scores, multiplicity)", assignment_optimal);
  buckets(assignment_optimal_by_size);
  if (predict_evaluated) {
    arow("shift predictor + optimal", assignment_predict);
    buckets(assignment_predict_by_size);
    if (combine_weight > 0) {
      arow("shift predictor + alignment + optimal", assignment_combined);
      buckets(assignment_combined_by_size);
    }
    std::snprintf(line, sizeof line, "  (shift predictor 13C MAE on these carbons %.3f ppm", predict_error.mae());
    s << line;
    if (predict_skipped > 0) s << "; " << predict_skipped << " molecules without 3-D coordinates left out";
    s << ")\n";
  }
  return s.str();
}

std::string AlignEvalReport::to_json() const {
  json j = {{"split", split}, {"molecules", molecules}, {"group_size", group_size}, {"groups", groups}};
  j["in_group"] = topk_json(in_group);
  j["in_group_structure_to_spectrum"] = topk_json(in_group_reverse);
  j["library_size"] = library_size;
  j["library"] = topk_json(library);
  j["isomer_groups"] = isomer_groups;
  j["isomer"] = topk_json(isomer);
  j["assignment"] = assignment_json(assignment);
  j["assignment_row_argmax"] = assignment_json(assignment_argmax);
  auto by_size_json = [](const std::map<std::string, AssignmentStats>& by_size) {
    json b = json::object();
    for (const auto& [k, a] : by_size) b[k] = assignment_json(a);
    return b;
  };
  j["assignment_by_carbons"] = by_size_json(assignment_by_size);
  j["assignment_optimal_align"] = assignment_json(assignment_optimal);
  j["assignment_optimal_align_by_carbons"] = by_size_json(assignment_optimal_by_size);
  if (predict_evaluated) {
    j["assignment_predict_optimal"] = assignment_json(assignment_predict);
    j["assignment_predict_optimal_by_carbons"] = by_size_json(assignment_predict_by_size);
    if (combine_weight > 0) {
      j["assignment_combined_optimal"] = assignment_json(assignment_combined);
      j["assignment_combined_optimal_by_carbons"] = by_size_json(assignment_combined_by_size);
    }
    j["assignment_predict_skipped"] = predict_skipped;
    j["assignment_predict_13c_mae"] = predict_error.n ? json(predict_error.mae()) : json(nullptr);
    j["in_group_predict"] = topk_json(in_group_predict);
    j["in_group_align_top10_reranked_by_predict"] = topk_json(in_group_rerank);
    if (combine_weight > 0) {
      j["combine_weight_ppm_per_nat"] = combine_weight;
      j["in_group_combined"] = topk_json(in_group_combined);
      if (library_size > 0) j["isomer_combined"] = topk_json(isomer_combined);
    }
    if (library_size > 0) j["isomer_predict"] = topk_json(isomer_predict);
    j["predict_unmatched_penalty_ppm"] = unmatched_penalty;
    j["predict_candidates"] = predict_candidates;
    j["predict_candidates_without_3d"] = predict_unpredicted;
    j["predict_unscorable_queries"] = predict_unscorable;
  }
  return j.dump(2);
}

// ---- loading ----
LoadedAlignModel load_align_model(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error("load align model: no such file '" + path + "'");
  const SafetensorsFile f = load_safetensors(path);
  auto get = [&](const char* key) -> const std::string& {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw Error("load align model: '" + path + "' has no '" + key + "' metadata (not an alignment checkpoint)");
    return it->second;
  };
  if (get("task") != "align")
    throw Error("load align model: '" + path + "' is a '" + get("task") + "' checkpoint, not an alignment model");
  LoadedAlignModel m;
  const AlignModelConfig cfg = AlignModelConfig::from_json(get("model_config"));
  try {
    m.data_options = data_options_from(get("data_options"));
  } catch (const json::exception& e) {
    throw Error("load align model: '" + path + "': bad metadata: " + e.what());
  }
  m.model = std::make_unique<AlignModel>(cfg, 0);
  m.metadata = load_checkpoint(path, *m.model);
  m.model->eval();
  return m;
}

// ---- training ----
AlignTrainResult train_align(const Dataset& dataset, const AlignTrainOptions& o, const AlignTrainCallback& cb) {
  auto message = [&](const std::string& m) {
    if (cb) cb(message_event<AlignTrainEvent>(m));
  };
  check_train_run_options("train align", o.out_dir, o.epochs, o.lr, o.warmup_fraction, o.max_steps, o.checkpoint_every);
  if (o.steps < 0) train_fail("--steps must be >= 0");
  if (o.batch < 2) train_fail("--batch must be >= 2 (the contrastive loss needs negatives)");
  if (o.schedule != "constant" && o.schedule != "warmup-linear")
    train_fail("schedule must be constant or warmup-linear, got '" + o.schedule + "'");
  if (!(o.weight_decay >= 0) || !(o.clip >= 0)) train_fail("weight decay and clip must be >= 0");
  AlignModelConfig cfg = o.model_config ? *o.model_config : resolve_align_config(o.config);
  cfg.validate();

  AlignTrainResult res;
  res.best_val_loss = res.last_val_loss = res.last_val_top1 = kNaN;
  const TrainRunPaths paths = prepare_train_run_dir(o.out_dir);
  const std::string run_options = run_options_json(o).dump();
  const std::string data_options = data_options_json(o.data);
  std::map<std::string, std::string> meta;
  if (o.resume) {
    meta = read_resume_metadata(
        "train align", paths.last, [&](const std::string& text) { return AlignModelConfig::from_json(text) == cfg; },
        run_options, {"data_options"});
    if (meta["data_options"] != data_options) train_fail("--resume: the checkpoint's data options differ");
  }

  const AlignDataset train(dataset, Split::Train, o.data);
  const AlignDataset valid(dataset, Split::Valid, o.data);
  const int64_t bpe = train.size() / o.batch;
  if (bpe == 0)
    train_fail(std::to_string(train.size()) + " training molecules with a 13C spectrum: fewer than one batch of " +
               std::to_string(o.batch));

  AlignModel model(cfg, o.seed);
  AdamWOptions ao;  // torch's AdamW defaults, as K-M3AID
  ao.lr = o.lr;
  ao.weight_decay = o.weight_decay;
  AdamW opt(model.named_parameters(), ao, align_model_decay);
  TrainLoop<AlignTrainEvent, AlignModel> loop;
  loop.epochs = o.steps > 0 ? (o.steps + bpe - 1) / bpe : o.epochs;
  loop.total_steps = o.steps > 0 ? o.steps : bpe * o.epochs;
  if (o.schedule == "constant") {
    loop.schedule.kind = LrSchedule::Kind::Constant;
    loop.schedule.peak_lr = o.lr;
    loop.schedule.warmup_steps = 0;
    loop.schedule.total_steps = loop.total_steps;
    validate(loop.schedule);
  } else {
    loop.schedule = warmup_linear_schedule(o.lr, o.end_lr, o.warmup_fraction, loop.total_steps);
  }
  if (o.resume) {
    loop.start = restore_train_run(paths.last, meta, "best_val_loss", model, opt);
    message(resume_message(paths.last, loop.start));
  }
  message("training " + std::to_string(train.size()) + " spectra (" + std::to_string(train.stats().with_pairs) +
          " with atom-level pairs), validating on " + std::to_string(valid.size()) + "; " + std::to_string(bpe) +
          " batches/epoch of " + std::to_string(o.batch) + ", " + std::to_string(loop.total_steps) + " steps, " +
          std::to_string(model.num_parameters()) + " parameters, spectrum encoder " + cfg.spectrum_encoder);
  {
    std::string counts;
    for (const auto& [what, n] : train.stats().counts) counts += (counts.empty() ? "" : "; ") + what + " " + std::to_string(n);
    message("training data: " + counts + "; " + std::to_string(train.stats().pairs) + " atom-level pairs, " +
            std::to_string(train.stats().peaks) + " molecule-level peaks");
  }

  TrainCsvLog log("train align", paths.log,
                  "step,epoch,lr,loss,grad_norm,molecule_loss,atom_loss,carbons,val_loss,val_molecule_loss,"
                  "val_atom_loss,val_top1",
                  o.resume, loop.start.step);
  loop.bind(model, opt, log, paths, o.max_steps, o.checkpoint_every);
  loop.metadata = {{"task", "align"},
                   {"model_config", cfg.to_json()},
                   {"data_options", data_options},
                   {"run_options", run_options}};
  loop.epoch_batches = [&](int64_t epoch) { return align_epoch_batches(train.size(), o.batch, o.seed, epoch); };
  const double clip = o.clip > 0 ? o.clip : std::numeric_limits<double>::max();
  loop.train_step = [&](const std::vector<int64_t>& rows, int64_t step, int64_t epoch, double lr, AlignTrainEvent& e) {
    const AlignBatch batch = train.make_batch(rows);
    opt.zero_grad();
    AlignLossParts parts;
    Tensor loss = model.loss(batch, &parts);
    const double norm = apply_gradients(loss, model, opt, clip, lr);
    e.loss = loss.item();
    e.grad_norm = norm;
    e.molecule_loss = parts.molecule;
    e.atom_loss = parts.atom;
    log.step_row(step + 1, epoch + 1, lr, e.loss, norm) << "," << format_fixed(parts.molecule, 6) << ","
                                                        << format_fixed(parts.atom, 6) << "," << parts.carbons
                                                        << ",,,,\n";
  };
  loop.validate = [&](AlignTrainEvent& v) {
    const AlignValidation val = validate_align(model, valid, o.batch, o.seed);
    v.val_loss = val.loss;
    v.val_top1 = val.top1;
    res.last_val_loss = val.loss;
    res.last_val_top1 = val.top1;
    log.validation_row(v.step, v.epoch + 1) << ",,,," << format_fixed(val.loss, 6) << "," << format_fixed(val.molecule, 6)
                                            << "," << format_fixed(val.atom, 6) << "," << format_fixed(val.top1, 4)
                                            << "\n";
    TrainValidation tv;
    tv.score = val.loss;
    tv.summary = ", valid loss " + format_fixed(val.loss, 4) + ", in-group top-1 " + pct(val.top1) + " (" +
                 std::to_string(val.groups) + " groups)";
    return tv;
  };
  loop.run_metadata = [&](std::map<std::string, std::string>& md, double best) {
    md["best_val_loss"] = std::isnan(best) ? "" : format_fixed(best, 10);
    if (!std::isnan(res.last_val_loss)) md["val_loss"] = format_fixed(res.last_val_loss, 6);
    if (!std::isnan(res.last_val_top1)) md["val_top1"] = format_fixed(res.last_val_top1, 6);
  };
  loop.emit = cb;

  const TrainLoopResult r = run_train_loop(loop);
  fill_train_result(res, paths, r);
  res.best_val_loss = r.best;
  return res;
}

}  // namespace larmor::chem
