// Training and evaluation of the shift model as a library (no Open Babel, no CLI): `larmor train shift`
// and `larmor eval shift` are thin wrappers, and tests and C++ users call these functions directly.
//
// Why it is built this way:
//   - Exact resume. Everything a step depends on is either a pure function of saved integers or saved
//     tensors: the sampler's batches are a pure function of (seed, epoch), so the position is (epoch, batch
//     within the epoch); the LR is a pure function of the global step; dropout is the stateless Philox op
//     keyed by the model's dropout step; weights and AdamW moments/steps are stored bit for bit in the
//     checkpoint. So a run stopped after k steps (--max-steps, a crash after a periodic checkpoint) and
//     resumed gives the same final weights as one that never stopped. The LR schedule's length is always
//     epochs * batches_per_epoch: --max-steps only stops early, it never changes the schedule.
//   - Validation uses the same segments as the loss (chem/shift_data.h): a 1H segment is the H atoms of
//     one heavy atom against its shifts, compared as sorted sets, which is the right metric for
//     equivalent and diastereotopic hydrogens; 13C segments of assigned shifts have size 1 (plain atom-level
//     error). Errors are in ppm (the standardiser's inverse).
//   - The best checkpoint is chosen by the mean over nuclei of (valid MAE / standardiser std), so 1H and
//     13C count alike.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "chem/dataset.h"
#include "chem/shift_data.h"
#include "chem/train_run.h"
#include "layers/shift_loss.h"
#include "layers/shift_model.h"

namespace larmor::chem {

// "small", "large", or a path to a JSON file (ShiftModelConfig::from_json). Throws larmor::Error naming
// the unknown name / unreadable file.
ShiftModelConfig resolve_shift_config(const std::string& name_or_file);

// "13C,1H" -> nuclei flags (indexed by Nucleus). Throws on an unknown or empty list.
std::array<bool, kNumNuclei> parse_nuclei(const std::string& list);
// "mixed" | "labelled" | "unlabelled" | "all".
SamplerMode parse_sampler_mode(const std::string& name);
const char* sampler_mode_name(SamplerMode m);

struct ShiftTrainOptions {
  std::string out_dir;                             // best.safetensors, last.safetensors, log.csv
  std::string config = "small";                    // resolve_shift_config; ignored when model_config is set
  std::optional<ShiftModelConfig> model_config;    // C++ API / tests: the config itself
  int64_t epochs = 10;
  int64_t steps = 0;                               // > 0: a step budget: the schedule is this long and the run
                                                   // ends there (epochs then ceil(steps / batches per epoch))
  double lr = 3e-4;                                // peak
  double end_lr = 0.0;
  double warmup_fraction = 0.03;                   // of the schedule's steps
  double weight_decay = 1e-4;
  double clip = 1.0;
  int64_t batch_labelled = 4;                      // B1
  int64_t batch_unlabelled = 16;                   // B2
  double lambda = 16.0;                            // weight of the sorted-set loss on unassigned sets
  SetLossKind loss = SetLossKind::L1;
  SamplerMode mode = SamplerMode::Mixed;
  std::array<bool, kNumNuclei> nuclei{true, true, false, false};  // 1H, 13C
  bool solvent = true;                             // solvent conditioning (model) and solvent input (data)
  uint64_t seed = 1;
  bool resume = false;                             // continue from out_dir/last.safetensors
  int64_t max_steps = 0;                           // > 0: stop after this many global steps (checkpoint kept)
  int64_t checkpoint_every = 500;                  // steps between periodic last.safetensors (0: epoch ends only)
  int64_t eval_batch = 32;
  int64_t bucket_batches = 100;
  std::string init_from;                           // a pretrained checkpoint (train pretrain): its backbone
                                                   // weights are copied before the first step (not on resume)
};

// What the training loop reports to its caller (the CLI draws a progress bar from it): the common fields
// of chem/train_run.h and the validation errors.
struct ShiftTrainEvent : TrainLoopEvent {
  std::array<double, kNumNuclei> val_mae{};        // Validation: ppm, NaN for nuclei without targets
};
using ShiftTrainCallback = std::function<void(const ShiftTrainEvent&)>;

struct ShiftTrainResult {
  int64_t steps = 0;                               // global steps done (including before a resume)
  int64_t epochs_done = 0;
  double first_loss = 0, last_loss = 0;            // first/last training-step loss of this invocation
  double best_score = 0;                           // mean over nuclei of valid MAE / std (lower is better)
  std::array<double, kNumNuclei> last_val_mae{};   // NaN when not measured
  double seconds = 0;
  std::string best_path, last_path, log_path;
};

// Trains on dataset's train split, validates on its valid split. Throws larmor::Error on bad options,
// an empty training set, or (resume) a checkpoint that does not match the options.
ShiftTrainResult train_shift(const Dataset& dataset, const ShiftTrainOptions& options,
                             const ShiftTrainCallback& callback = {});

// ---- evaluation ----
struct ErrorStats {
  int64_t n = 0;
  double abs_sum = 0, sq_sum = 0;
  void add(double err) { ++n; abs_sum += std::abs(err); sq_sum += err * err; }
  double mae() const;   // NaN when n == 0
  double rmse() const;  // NaN when n == 0
};

struct ShiftEvalReport {
  std::string split;
  int64_t molecules = 0;
  std::array<ErrorStats, kNumNuclei> assigned{};    // atom level (1H: per H segment, sorted)
  std::array<ErrorStats, kNumNuclei> unassigned{};  // sorted-set MAE over unassigned sets
  std::map<std::string, std::array<ErrorStats, kNumNuclei>> assigned_by_solvent;  // solvent name ->
  std::map<std::string, ErrorStats> carbon_by_type;  // assigned 13C: "CH3", "CH2", "CH", "C", "aromatic"
  // Every assigned comparison (reference ppm, predicted ppm), in the order they were added (for parity
  // plots and error histograms); 1H pairs are the sorted pairs of each H segment.
  std::array<std::vector<std::pair<double, double>>, kNumNuclei> assigned_pairs;
  std::string table() const;                        // readable text
  std::string to_json() const;
};

// Per-nucleus error of the model on the dataset (eval mode, no gradients). `dataset` must be the one
// `data` was built from (for solvents and carbon types).
ShiftEvalReport evaluate_shift(ShiftModel& model, const ShiftDataset& data, const Dataset& dataset,
                               int64_t batch_size = 32);

// A trained checkpoint with what is needed to feed it: the model (eval mode), the standardiser and the
// data options it was trained with, and the file's metadata.
struct LoadedShiftModel {
  std::unique_ptr<ShiftModel> model;
  ShiftStandardizer standardizer;
  ShiftDataOptions data_options;
  std::map<std::string, std::string> metadata;
};
LoadedShiftModel load_shift_model(const std::string& path);

}  // namespace larmor::chem
