// `larmor train pretrain` as a library: denoising pretraining of the shift model's backbone on every
// molecule of a prepared dataset's train split (spectra and labels ignored), and the helper that copies a
// pretrained backbone into a fresh model before `larmor train shift --init` fine-tunes it.
//
// Why it is built this way:
//   - It runs on the same loop as train_shift (chem/train_run.h), so the two behave alike: AdamW (0.9,
//     0.99, eps 1e-6), linear warmup then linear decay over epochs * batches_per_epoch steps, gradient
//     clipping, log.csv, best/last checkpoints written atomically, exact resume. The run position
//     is pure integers: batches are a pure function of (seed, epoch), the noise of a step a pure function
//     of (seed, global step) (layers/shift_pretrain.h), dropout of the model's dropout step.
//   - Pretraining needs no targets, so it does not go through ShiftDataset (which keeps only molecules
//     with usable shifts): every train-split molecule with 3-D coordinates is featurised directly.
//   - The pretraining model has no shift heads (config nuclei all off): fine-tuning starts them fresh.
//     Its checkpoint carries the same metadata keys as a train_shift checkpoint (model_config,
//     standardizer, data_options, ...), so load_shift_model and train_shift's init both read it.
//   - Validation is the pretraining loss on the valid split with fixed noise (its own seed, keyed by batch
//     number), so the numbers of different epochs are comparable; best.safetensors has the lowest.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "chem/dataset.h"
#include "chem/train_run.h"
#include "layers/shift_model.h"
#include "layers/shift_pretrain.h"

namespace larmor::chem {

struct ShiftPretrainOptions {
  std::string out_dir;                           // best.safetensors, last.safetensors, log.csv
  std::string config = "small";                  // resolve_shift_config; ignored when model_config is set
  std::optional<ShiftModelConfig> model_config;  // C++ API / tests: the config itself
  int64_t epochs = 10;
  double lr = 1e-4;                              // peak (Uni-Mol)
  double end_lr = 0.0;
  double warmup_fraction = 0.03;                 // of the schedule's steps
  double weight_decay = 1e-4;                    // Uni-Mol pretraining
  double clip = 1.0;
  int64_t batch = 16;                            // molecules per step (Uni-Mol: 16 per GPU)
  ShiftNoiseOptions noise;                       // its seed is ignored: derived from `seed`
  ShiftPretrainLossOptions loss;
  bool solvent = true;                           // solvent conditioning (model) and the entry's solvent (data)
  uint64_t seed = 1;
  bool resume = false;                           // continue from out_dir/last.safetensors
  int64_t max_steps = 0;                         // > 0: stop after this many global steps (checkpoint kept)
  int64_t checkpoint_every = 500;                // steps between periodic last.safetensors (0: epoch ends only)
  int64_t eval_batch = 32;
  int64_t bucket_batches = 100;                  // sort by size within chunks of this many batches
};

// What the loop reports to its caller (the CLI draws a progress bar from it): the common fields of
// chem/train_run.h and the pretraining loss parts.
struct ShiftPretrainEvent : TrainLoopEvent {
  ShiftPretrainLossParts parts;  // Step: this batch's; Validation: the valid split's (weighted means)
  double val_loss = 0;           // Validation: NaN without a valid split
};
using ShiftPretrainCallback = std::function<void(const ShiftPretrainEvent&)>;

struct ShiftPretrainResult {
  int64_t steps = 0;  // global steps done (including before a resume)
  int64_t epochs_done = 0;
  double first_loss = 0, last_loss = 0;  // first/last training-step loss of this invocation
  double best_val_loss = 0;              // NaN when never validated
  double last_val_loss = 0;              // NaN when not measured
  double seconds = 0;
  std::string best_path, last_path, log_path;
};

// Pretrains on dataset's train split, validates on its valid split. Throws larmor::Error on bad options,
// no usable training molecule, or (resume) a checkpoint that does not match the options.
ShiftPretrainResult pretrain_shift(const Dataset& dataset, const ShiftPretrainOptions& options,
                                   const ShiftPretrainCallback& callback = {});

// Copies every tensor of `model` whose name is in the checkpoint at `path` (a pretraining or shift
// checkpoint); tensors absent from the file (the shift heads) keep their values. Throws larmor::Error
// naming the file when its model config differs in layers, dim, heads, ffn, kernels or vocab_size, or when
// a tensor of the same name has another shape. Returns the names left untouched.
std::vector<std::string> init_from_pretrained(ShiftModel& model, const std::string& path);

}  // namespace larmor::chem
