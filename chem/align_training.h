// Training and evaluation of the spectrum-structure alignment model (K-M3AID, docs/MODELS.md §2) as a
// library: `larmor train align` and `larmor eval align` are thin wrappers, tests and C++ users call these.
//
// Why it is built this way:
//   - The loop is chem/train_run.h's run_train_loop (the shift model's), so position, periodic/stop/best
//     checkpoints, log.csv and events behave the same, and resume is exact for the same reasons: the
//     batches are a pure function of (seed, epoch) (chem/align_data.h), the LR of the global step, dropout
//     of the model's dropout step, and weights and AdamW state are stored bit for bit.
//   - Optimiser as K-M3AID coded it: AdamW lr 1e-3, weight decay 1e-3, torch's betas (0.9, 0.999) and eps
//     1e-8, no gradient clipping, and a CONSTANT learning rate (their ReduceLROnPlateau is never stepped);
//     warmup + linear decay is an option. Batches of B = 128 with drop_last.
//   - Validation each epoch: the mean loss over fixed groups of B validation molecules (eval mode, so
//     BatchNorm uses running statistics and dropout is off), and the in-group spectrum -> structure top-1.
//     The best checkpoint is the lowest validation loss (as the authors keep the best mean validation loss).
//   - Evaluation (evaluate_align) embeds every graph once in eval mode, where embeddings do not depend on
//     the batch, so one library embedding serves all three retrieval settings:
//       in-group: the split's spectra in fixed random groups of 128 (seeded), each ranked against the
//                 group's 128 structures (the paper's protocol);
//       library:  against every prepared molecule with a carbon (all splits), the true entry included;
//       isomers:  against the library molecules with the same molecular formula (Molecule::formula).
//     A rank is 1 + the number of candidates scoring strictly higher than the true one (exact ties, e.g.
//     two entries with identical graphs, count in the query's favour).
//     Peak assignment on the molecules with atom-level pairs: the peaks are the assigned carbons' (ppm,
//     class), the candidates the same carbons; scores = logit_scale * E_peak E_carbon^T of the molecule's own
//     block. As coded by the authors (MODELS.md §2e) the block is softmax-normalised over PEAKS for each
//     carbon (torch dim 0) and each peak takes the carbon of its row maximum; the plain row argmax (softmax
//     over carbons, the same argmax as the raw scores) is reported next to it. A peak is right when the chosen
//     carbon's assigned shift equals the peak's, or the carbon is in the peak's carbon's symmetry class.
//     Two further rows use the optimal assignment of chem/assignment.h (the `larmor assign` solver) on the
//     same peaks, grouped over the molecule's paired carbons by symmetry class (a class of k carbons takes
//     k peaks; each peak's multiplicity is a hard constraint):
//       optimal (align scores): cost(peak, class) = -log_softmax over classes of the class's best scaled
//                 score (the max over its carbons; a per-peak shift of the costs does not move the optimum,
//                 the log-softmax only makes the numbers comparable between peaks);
//       shift predictor + optimal (only with AlignEvalOptions::shift_model): the shift model's per-atom 13C
//                 predictions for the molecule's prepared 3-D structure (no Open Babel: the dataset holds the
//                 coordinates), averaged over each class, and the L1 cost |predicted - peak|; this is
//                 `larmor assign --method predict` on the test molecules;
//       both (with a shift model and AlignEvalOptions::combine_weight > 0): the sum of the two costs,
//                 |predicted - peak| + w * the align cost, w in ppm per nat as in the combined retrieval score.
//     So the methods are scored on the same peaks by the same rule (correct_assignments).
//   - Retrieval by the shift predictor (only with AlignEvalOptions::shift_model): a second, independent way
//     to rank candidate structures for a spectrum, by how well the candidate's predicted 13C spectrum explains
//     the observed peak list (fit_predicted_spectrum). The query is the sample's molecule-level distinct peak
//     list (AlignSample input.peak_ppm / peak_multiplicity, class 4 = unknown); the candidate is every carbon
//     of the dataset entry grouped by Atom::symmetry_class, each class predicted at the mean of its atoms'
//     predictions. The peaks are assigned to the classes optimally (chem::assign_peaks: L1 on the predicted
//     shift, multiplicity a hard constraint with its own fallback) and
//       score = -(sum of the matched |predicted - observed| + u * number of classes that got no peak).
//     A distinct peak list merges accidentally coincident classes, so an empty class is possible, but each
//     costs u ppm (AlignEvalOptions::unmatched_penalty; how u was chosen is written there). More peaks than
//     carbons: the candidate is impossible (score -infinity). Ranks as rank_of (strictly greater scores ahead).
//     Three rows: the in-group task (the same groups and queries as the alignment model's), the isomer task
//     (the same formula groups and queries), and the alignment model's in-group top 10 re-ordered by this
//     score (the rest keep their alignment order behind them). Every molecule that appears as a candidate is
//     predicted once, from its prepared 3-D structure, with the solvent UNKNOWN: one prediction then serves
//     every query, and the candidate entry's own solvent would tell the true candidate apart (it is the
//     query's solvent only for the true one).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chem/align_data.h"
#include "chem/assignment.h"
#include "chem/dataset.h"
#include "chem/shift_training.h"
#include "chem/train_run.h"
#include "layers/align_model.h"

namespace larmor::chem {

// "default" (K-M3AID's sizes), "tiny" (tests, smoke runs) or a path to a JSON file
// (AlignModelConfig::from_json). Throws larmor::Error naming the unknown name / unreadable file.
AlignModelConfig resolve_align_config(const std::string& name_or_file);

struct AlignTrainOptions {
  std::string out_dir;                           // best.safetensors, last.safetensors, log.csv
  std::string config = "default";                // resolve_align_config; ignored when model_config is set
  std::optional<AlignModelConfig> model_config;  // the config itself (the CLI's overrides, tests)
  int64_t epochs = 200;                          // K-M3AID: 200
  int64_t steps = 0;                             // > 0: a step budget (schedule length; epochs follow from it)
  double lr = 1e-3;
  std::string schedule = "constant";             // "constant" (as coded) | "warmup-linear"
  double warmup_fraction = 0.03;                 // warmup-linear only
  double end_lr = 0.0;                           // warmup-linear only
  double weight_decay = 1e-3;
  double clip = 0.0;                             // > 0: clip the gradient norm; 0: no clipping (as coded)
  int64_t batch = 128;                           // B, drop_last
  uint64_t seed = 1;                             // initialisation, sampling, dropout, validation groups
  bool resume = false;
  int64_t max_steps = 0;                         // > 0: stop after this many global steps (checkpoint kept)
  int64_t checkpoint_every = 500;                // steps between periodic last.safetensors (0: epoch ends)
  AlignDataOptions data;
};

struct AlignTrainEvent : TrainLoopEvent {
  double molecule_loss = 0, atom_loss = 0;  // Step: the loss parts
  double val_loss = 0, val_top1 = 0;        // Validation: NaN when nothing was measured
};
using AlignTrainCallback = std::function<void(const AlignTrainEvent&)>;

struct AlignTrainResult {
  int64_t steps = 0, epochs_done = 0;
  double first_loss = 0, last_loss = 0;
  double best_val_loss = 0;  // NaN when never validated
  double last_val_loss = 0, last_val_top1 = 0;
  double seconds = 0;
  std::string best_path, last_path, log_path;
};

// Trains on the dataset's train split, validates on its valid split. Throws larmor::Error on bad options,
// too few training molecules for one batch, or (resume) a checkpoint that does not match the options.
AlignTrainResult train_align(const Dataset& dataset, const AlignTrainOptions& options,
                             const AlignTrainCallback& callback = {});

// Mean loss (and in-group spectrum -> structure top-1) over align_eval_groups(data.size(), group, seed),
// eval mode, no gradients. NaN for both when data is empty.
struct AlignValidation {
  double loss = 0, molecule = 0, atom = 0, top1 = 0;
  int64_t groups = 0;
};
AlignValidation validate_align(AlignModel& model, const AlignDataset& data, int64_t group, uint64_t seed);

// ---- evaluation ----
struct TopKStats {
  int64_t n = 0, top1 = 0, top5 = 0, top10 = 0;
  void add(int64_t rank);  // rank >= 1
  double rate(int k) const;  // k in {1, 5, 10}; NaN when n == 0
};

// 1 + the number of scores strictly above scores[truth].
int64_t rank_of(const std::vector<float>& scores, int64_t truth);

// Peak -> carbon choice of one molecule's block: scores (P x C) row-major. column_softmax: softmax over
// the peaks of each carbon column, then each peak's row argmax (K-M3AID's mr2mr); else the raw row argmax.
// Ties go to the lowest carbon index.
std::vector<int32_t> assign_peaks(const std::vector<double>& scores, int64_t peaks, int64_t carbons,
                                  bool column_softmax);

// How many of the choices are right: choice[i] (a carbon) is right for peak i when carbon_ppm[choice] ==
// peak_ppm[i] or carbon_class[choice] == peak_class[i] (equivalent carbons).
int64_t correct_assignments(const std::vector<int32_t>& choice, const std::vector<float>& peak_ppm,
                            const std::vector<int32_t>& peak_class, const std::vector<float>& carbon_ppm,
                            const std::vector<int32_t>& carbon_class);

// Peak -> carbon choice by the optimal assignment (chem/assignment.h) over the carbons' symmetry classes.
// Peaks i = 0..P-1 carry (peak_ppm, peak_multiplicity); carbons c = 0..C-1 carry (carbon_class,
// carbon_multiplicity); multiplicities are AlignBatch classes 0..3 (attached H) or 4 (unknown: no constraint
// on a peak). Carbons with the same non-negative class form one group of capacity = its size (a negative
// class: a group of its own); a group's attached-H count is its first carbon's. The chosen carbon of a peak is
// the first carbon of its group. P <= C. Throws larmor::Error on inconsistent lengths.
//   by scores: scores (P x C) row-major; cost(p, group) = -log_softmax over groups of max over the group's
//              carbons of scores[p, c].
//   by shifts: carbon_predicted_ppm (C); a group's prediction is the mean over its carbons; L1 cost.
//   combined:  the by-shifts L1 cost (ppm, with assign_peaks' small squared tie-break term) + weight * the
//              by-scores cost (nats): the assignment counterpart of the combined retrieval score.
std::vector<int32_t> assign_peaks_optimal_by_scores(const std::vector<double>& scores, const std::vector<float>& peak_ppm,
                                                    const std::vector<int32_t>& peak_multiplicity,
                                                    const std::vector<int32_t>& carbon_class,
                                                    const std::vector<int32_t>& carbon_multiplicity);
std::vector<int32_t> assign_peaks_optimal_by_shifts(const std::vector<double>& carbon_predicted_ppm,
                                                    const std::vector<float>& peak_ppm,
                                                    const std::vector<int32_t>& peak_multiplicity,
                                                    const std::vector<int32_t>& carbon_class,
                                                    const std::vector<int32_t>& carbon_multiplicity);
std::vector<int32_t> assign_peaks_optimal_combined(const std::vector<double>& carbon_predicted_ppm,
                                                   const std::vector<double>& scores, double weight,
                                                   const std::vector<float>& peak_ppm,
                                                   const std::vector<int32_t>& peak_multiplicity,
                                                   const std::vector<int32_t>& carbon_class,
                                                   const std::vector<int32_t>& carbon_multiplicity);

// The shift model's 13C prediction (ppm) for every atom of each listed dataset entry (indices into
// Dataset::entries), from the prepared 3-D structures: the featurize tokens/coordinates `larmor predict` feeds,
// padded batches of similar size, eval mode, no gradients. result[k] has one value per atom of entries[k] (the
// 13C head's output; only the carbons' values mean anything), or is empty when that molecule has no 3-D
// coordinates. solvent: fed to a solvent-conditioned model (ignored by one without); nullopt: each entry's
// own solvent. Throws larmor::Error for a model without a 13C head, an entry out of range, batch_size < 1.
std::vector<std::vector<double>> predict_13c_shifts(LoadedShiftModel& shift, const Dataset& dataset,
                                                    const std::vector<int64_t>& entries,
                                                    std::optional<Solvent> solvent, int64_t batch_size);

// How well a candidate's predicted carbon classes explain an observed distinct 13C peak list (see the top of
// this file): the optimal assignment of the peaks to the classes (chem::assign_peaks, L1 cost on
// predicted_ppm, multiplicity a hard constraint with its fallback), its summed |predicted - observed| and the
// number of classes left without a peak. possible = false (score -infinity) when there are more peaks than
// carbons, no class, or assign_peaks rejects the list.
struct PredictedSpectrumFit {
  bool possible = false;
  double error = 0;               // sum over the peaks of |class predicted_ppm - peak ppm|
  int32_t unmatched_classes = 0;  // classes that got no peak
  double score(double unmatched_penalty) const;  // -(error + penalty * unmatched_classes), or -infinity
};
PredictedSpectrumFit fit_predicted_spectrum(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes);

// The peaks of an AlignSample's molecule-level spectrum as chem::Peak: class 0..3 -> that many attached H,
// class 4 (or anything else) -> unknown multiplicity. Throws larmor::Error when the lengths differ.
std::vector<Peak> sample_peaks(const std::vector<float>& peak_ppm, const std::vector<int32_t>& peak_multiplicity);

// Rank of candidate `truth` after re-ranking the top k by a second score: candidates are ordered by `first`
// (higher first; among equal scores the truth first, then lower index), the first k of that order are
// re-ordered by `second` and the rest keep their place. If the truth is among the first k its rank is
// 1 + the number of those k with a strictly greater second score (rank_of semantics); else its rank in the
// first order (= rank_of(first, truth)). Throws larmor::Error on different lengths or truth out of range.
int64_t reranked_rank(const std::vector<float>& first, const std::vector<double>& second, int64_t truth, int64_t k);

struct AssignmentStats {
  int64_t molecules = 0, peaks = 0, correct_peaks = 0, fully_right = 0;
  double accuracy_sum = 0;  // sum over molecules of the molecule's accuracy
  void add(int64_t peaks, int64_t correct);
  double accuracy() const;        // mean per-molecule accuracy; NaN when no molecule
  double peak_accuracy() const;   // pooled over peaks
  double fully_right_rate() const;
};

struct AlignEvalOptions {
  int64_t group_size = 128;
  uint64_t seed = 1;        // the in-group permutation
  bool library = true;      // false: skip the library and isomer rankings (no library embedding)
  int64_t batch = 256;      // molecules per embedding batch
  // The "shift predictor + optimal" row: a loaded shift model (not owned; nullptr: the row is left out).
  // Solvent: the entry's solvent when the model is solvent-conditioned, else unknown.
  LoadedShiftModel* shift_model = nullptr;
  int64_t shift_batch = 32;  // molecules per shift-model forward
  // u of the shift-predictor retrieval score (ppm per carbon class that gets no peak; see the top of this
  // file). Chosen from {2, 5, 10, 20} on the VALID split of data/nmrshiftdb2.safetensors (3,328 queries in
  // 26 groups of 128, models/larmor-shift-small.safetensors, runs/align1 for the groups) by the in-group
  // top-1: 2 -> 89.3 %, 5 -> 92.4 % (3,076 right), 10 -> 92.4 % (3,075), 20 -> 90.4 %; 5 also had the best
  // top-5 (98.3 %) and top-10 (99.2 %).
  double unmatched_penalty = 5.0;
  // The combined retrieval score: shift-predictor score (ppm) + combine_weight * the alignment logit
  // (logit_scale * e_spectrum . e_graph, nats). 0 leaves the combined rows out. Chosen from {0.5, 1, 2, 4} on
  // the VALID split (3,328 queries in 26 groups of 128, runs/align2 = models/larmor-align.safetensors,
  // models/larmor-shift-small.safetensors) by the in-group top-1: 93.5 / 93.9 / 93.4 / 92.5 %.
  double combine_weight = 1.0;
};

struct AlignEvalReport {
  std::string split;
  int64_t molecules = 0;        // samples (spectra) of the split
  int64_t groups = 0, group_size = 0;
  TopKStats in_group;           // spectrum -> structure within groups
  TopKStats in_group_reverse;   // structure -> spectrum within groups
  int64_t library_size = 0;     // prepared molecules with a carbon, all splits
  TopKStats library;
  int64_t isomer_groups = 0;    // distinct formulas of queries whose library formula group has >= 2 members
  TopKStats isomer;             // those queries ranked within their formula group
  // peak assignment: K-M3AID's column softmax, and the plain row argmax
  AssignmentStats assignment, assignment_argmax;
  std::map<std::string, AssignmentStats> assignment_by_size;  // "<10", "10-20", ">20" carbons (column softmax)
  // the optimal assignment (chem/assignment.h) on the align scores, with the carbon-count buckets
  AssignmentStats assignment_optimal;
  std::map<std::string, AssignmentStats> assignment_optimal_by_size;
  // the shift predictor + the optimal assignment (only when predict_evaluated)
  bool predict_evaluated = false;
  int64_t predict_skipped = 0;  // molecules with pairs left out of that row: no 3-D coordinates
  ErrorStats predict_error;     // the shift model's per-carbon 13C error (ppm) on that row's carbons
  AssignmentStats assignment_predict;
  std::map<std::string, AssignmentStats> assignment_predict_by_size;
  // both (only when predict_evaluated and combine_weight > 0): the optimal assignment on
  // |predicted - ppm| + combine_weight * the align-score class cost
  AssignmentStats assignment_combined;
  std::map<std::string, AssignmentStats> assignment_combined_by_size;
  // retrieval by the shift predictor's score (only when predict_evaluated)
  double unmatched_penalty = 0;    // u used
  TopKStats in_group_predict;      // same groups and queries as in_group
  TopKStats in_group_rerank;       // the alignment model's in-group top 10 re-ordered by the shift-predictor score
  TopKStats isomer_predict;        // same formula groups and queries as isomer (library only)
  double combine_weight = 0;       // w used (0: no combined rows)
  TopKStats in_group_combined;     // shift-predictor score + w * alignment logit, same groups
  TopKStats isomer_combined;       // the same on the isomer groups
  int64_t predict_candidates = 0;  // distinct molecules predicted for these rows
  int64_t predict_unpredicted = 0; // of them without 3-D coordinates (impossible candidates)
  int64_t predict_unscorable = 0;  // query rankings (per row) whose peak list assign_peaks rejects: ranked last
  std::string table() const;
  std::string to_json() const;
};

AlignEvalReport evaluate_align(AlignModel& model, const AlignDataset& data, const Dataset& dataset,
                               const AlignEvalOptions& options = {});

// "<10", "10-20" or ">20" (carbons in the molecule).
const char* carbon_count_bucket(int32_t carbons);

struct LoadedAlignModel {
  std::unique_ptr<AlignModel> model;  // eval mode
  AlignDataOptions data_options;
  std::map<std::string, std::string> metadata;
};
LoadedAlignModel load_align_model(const std::string& path);

}  // namespace larmor::chem
