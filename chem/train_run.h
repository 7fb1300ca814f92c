// The machinery shared by the training loops, train_shift (chem/shift_training.cpp), pretrain_shift
// (chem/shift_pretrain.cpp) and train_align (chem/align_training.cpp): option checks, the resume check,
// checkpoint metadata, the optimizer and LR schedule, log.csv, and the epoch/step/validation loop with its
// events. The loop and the resume helpers take the model as a template parameter (ShiftModel by default;
// AlignModel for the alignment model): all they need is a Module with dropout_step / set_dropout_step.
//
// Why it is built this way:
//   - Exact resume depends on the order of things in the loop (stop before a step, the LR of step k + 1,
//     where a periodic or a stopping checkpoint puts the position, validation and the best/last writes at
//     an epoch end), so that order lives in one place, run_train_loop. The two tasks plug in only what
//     differs: how an epoch's batches are drawn, what one step computes, how validation is scored, and
//     the metadata their checkpoints carry on top of the common keys.
//   - The standardiser and data options are written and read by the same functions in both tasks, so
//     load_shift_model and `train shift --init` read a pretraining checkpoint like a shift checkpoint.
//   - The events of both loops share a base (TrainLoopEvent), so one CLI progress bar serves both.
//   - This header is installed and stays free of the JSON library (private to larmor_chemio): JSON goes
//     in and out as text.
#pragma once
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "chem/shift_data.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/schedule.h"
#include "layers/shift_model.h"

namespace larmor::chem {

// ---- checkpoint metadata ----
std::string nuclei_list(const std::array<bool, kNumNuclei>& nuclei);  // "1H,13C" (Nucleus order)
std::string format_fixed(double value, int precision);                // fixed notation; "" for NaN
std::string standardizer_to_json(const ShiftStandardizer& s);
ShiftStandardizer standardizer_from_json(const std::string& text);    // throws the JSON library's errors
std::string data_options_to_json(const ShiftDataOptions& o);
ShiftDataOptions data_options_from_json(const std::string& text);     // ditto; an unknown nucleus: Error

// ---- setting up a run ----
// Throws Error("<what>: ...") for the checks both loops make on their common options.
void check_train_run_options(const std::string& what, const std::string& out_dir, int64_t epochs, double lr,
                             double warmup_fraction, int64_t max_steps, int64_t checkpoint_every);

// The files of a run in out_dir (created): best.safetensors, last.safetensors, log.csv.
struct TrainRunPaths {
  std::string best, last, log;
};
TrainRunPaths prepare_train_run_dir(const std::string& out_dir);

// The metadata of the checkpoint a run resumes from, after checking that it exists, has the position keys
// (model_config, run_options, epoch, batch, step, dropout_step) and `extra_keys`, the same model config
// and the same run options (a JSON object as text; each differing key is named). Throws Error("<what>: ...").
std::map<std::string, std::string> read_resume_metadata(const std::string& what, const std::string& last_path,
                                                        const ShiftModelConfig& config, const std::string& run_options,
                                                        const std::vector<std::string>& extra_keys = {});
// The same for any model: same_model_config(checkpoint's "model_config" JSON) says whether it is the
// requested config.
std::map<std::string, std::string> read_resume_metadata(
    const std::string& what, const std::string& last_path,
    const std::function<bool(const std::string& model_config_json)>& same_model_config, const std::string& run_options,
    const std::vector<std::string>& extra_keys = {});

// Where a run stands: global steps done, epoch and batch within it to continue from, best selection score
// so far (lower is better; NaN: none yet).
struct TrainRunPosition {
  int64_t step = 0, epoch = 0, batch = 0;
  double best = std::numeric_limits<double>::quiet_NaN();
};
// The position stored in resume metadata; the best score is metadata[best_key] (empty or missing: NaN).
TrainRunPosition train_run_position(const std::map<std::string, std::string>& metadata, const std::string& best_key);
// Loads weights and optimizer state of a resumed checkpoint (metadata from read_resume_metadata), restores
// the model's dropout step and returns the position (train_run_position).
template <typename Model>
TrainRunPosition restore_train_run(const std::string& last_path, const std::map<std::string, std::string>& metadata,
                                   const std::string& best_key, Model& model, AdamW& optimizer) {
  load_checkpoint(last_path, model, &optimizer);
  model.set_dropout_step(std::stoull(metadata.at("dropout_step")));
  return train_run_position(metadata, best_key);
}
std::string resume_message(const std::string& last_path, const TrainRunPosition& position);

// The metadata every checkpoint of a run carries besides its position: the task ("shift",
// "shift_pretrain"), the model config, the standardiser, the data options and the run options (JSON text).
std::map<std::string, std::string> train_run_metadata(const std::string& task, const ShiftModelConfig& config,
                                                      const ShiftStandardizer& standardizer,
                                                      const ShiftDataOptions& data_options,
                                                      const std::string& run_options);

// AdamW as both loops use it: betas (0.9, 0.99), eps 1e-6, decoupled weight decay.
AdamWOptions shift_adamw_options(double lr, double weight_decay);
// Linear warmup over warmup_fraction of total_steps, then linear decay to end_lr at total_steps (validated).
LrSchedule warmup_linear_schedule(double peak_lr, double end_lr, double warmup_fraction, int64_t total_steps);
// The update of one step once the loss is computed: backward, gradients clipped to total norm `clip`, an
// AdamW step at `lr` unless the norm is not finite (the step is skipped), gradients zeroed. Returns the norm.
double apply_gradients(Tensor& loss, Module& model, AdamW& optimizer, double clip, double lr);

// ---- log.csv: one row per step, validation columns filled on the epoch-end rows ----
class TrainCsvLog {
 public:
  // A resumed run keeps the header and the rows up to resume_step (later rows are written again); otherwise
  // the file starts with `header` (no newline). Throws Error("<what>: cannot write ...").
  TrainCsvLog(const std::string& what, const std::string& path, const std::string& header, bool resume,
              int64_t resume_step);
  // "step,epoch,lr,loss,grad_norm": the caller appends its own columns, each with a leading comma, and "\n".
  std::ostream& step_row(int64_t step, int64_t epoch, double lr, double loss, double grad_norm);
  // "step,epoch,,,": lr, loss and grad_norm empty; the caller goes on from the grad_norm column.
  std::ostream& validation_row(int64_t step, int64_t epoch);
  void flush() { out_.flush(); }

 private:
  std::ofstream out_;
};

// ---- the loop ----
// The fields every event of a training loop has (ShiftTrainEvent and ShiftPretrainEvent add their own).
struct TrainLoopEvent {
  enum class Kind { EpochStart, Step, Validation, Message } kind = Kind::Step;
  int64_t epoch = 0, step = 0, total_steps = 0;
  int64_t batch = 0, batches = 0;              // position within the epoch (Step: batches done)
  int64_t molecules = 0, epoch_molecules = 0;  // molecules done in this epoch / in the whole epoch
  double lr = 0, loss = 0, grad_norm = 0;
  bool best = false;                           // Validation: a new best checkpoint was written
  std::string message;
};

template <typename Event>
Event message_event(const std::string& message) {
  Event e;
  e.kind = TrainLoopEvent::Kind::Message;
  e.message = message;
  return e;
}

// What end-of-epoch validation found: the selection score (lower is better, NaN: nothing measured) and
// the words that follow "epoch k/n done in t s" in the message.
struct TrainValidation {
  double score = std::numeric_limits<double>::quiet_NaN();
  std::string summary;
};

template <typename Event, typename Model = ShiftModel>
struct TrainLoop {
  Model* model = nullptr;
  AdamW* optimizer = nullptr;
  TrainCsvLog* log = nullptr;
  TrainRunPaths paths;
  int64_t epochs = 0, total_steps = 0;  // total_steps: the schedule's length; the run ends there
  int64_t max_steps = 0;                // > 0: stop (with a last.safetensors) after this many global steps
  int64_t checkpoint_every = 0;         // > 0: last.safetensors every this many steps
  LrSchedule schedule;
  TrainRunPosition start;               // restore_train_run's, or a fresh run's zeros
  std::map<std::string, std::string> metadata;  // written into every checkpoint (task, model_config, ...)
  // The batches of an epoch (rows of the task's training set), a pure function of the epoch.
  std::function<std::vector<std::vector<int64_t>>(int64_t epoch)> epoch_batches;
  // One optimisation step on `rows` at `lr`, global step `step` + 1 (`step` done before it): sets
  // event.loss and event.grad_norm (and the task's own fields) and writes the step's log row.
  std::function<void(const std::vector<int64_t>& rows, int64_t step, int64_t epoch, double lr, Event& event)> train_step;
  // Validation after an epoch (event.epoch and event.step set): fills the task's fields and log row.
  std::function<TrainValidation(Event& event)> validate;
  // Adds the metadata that changes during the run (the best score, the last validation) before a save.
  std::function<void(std::map<std::string, std::string>& metadata, double best)> run_metadata;
  std::function<void(const Event&)> emit;

  // The run's model, optimizer, log and files, and where a run stops or writes periodic checkpoints.
  void bind(Model& m, AdamW& opt, TrainCsvLog& csv, const TrainRunPaths& files, int64_t stop_after,
            int64_t every) {
    model = &m;
    optimizer = &opt;
    log = &csv;
    paths = files;
    max_steps = stop_after;
    checkpoint_every = every;
  }
};

struct TrainLoopResult {
  int64_t steps = 0, epochs_done = 0;
  double first_loss = 0, last_loss = 0;  // first/last training-step loss of this invocation
  double best = std::numeric_limits<double>::quiet_NaN();
  double seconds = 0;
};

// Copies what both result types have (ShiftTrainResult, ShiftPretrainResult): the files and the loop's
// counts, losses and time (the best score is named differently in each and left to the caller).
template <typename Result>
void fill_train_result(Result& res, const TrainRunPaths& paths, const TrainLoopResult& r) {
  res.best_path = paths.best;
  res.last_path = paths.last;
  res.log_path = paths.log;
  res.steps = r.steps;
  res.epochs_done = r.epochs_done;
  res.first_loss = r.first_loss;
  res.last_loss = r.last_loss;
  res.seconds = r.seconds;
}

// Runs epochs from loop.start to loop.epochs: each step's event, a periodic last.safetensors, a stop at
// max_steps (last.safetensors at the position reached), and at every epoch end validation, best.safetensors
// when the score improved (or was not measured) and last.safetensors at the next epoch's start.
template <typename Event, typename Model>
TrainLoopResult run_train_loop(const TrainLoop<Event, Model>& loop) {
  using Kind = TrainLoopEvent::Kind;
  auto emit = [&](const Event& e) {
    if (loop.emit) loop.emit(e);
  };
  TrainLoopResult res;
  int64_t step = loop.start.step;
  double best = loop.start.best;
  auto save = [&](const std::string& path, int64_t epoch, int64_t batch) {
    std::map<std::string, std::string> md = loop.metadata;
    md["epoch"] = std::to_string(epoch);
    md["batch"] = std::to_string(batch);
    md["step"] = std::to_string(step);
    md["dropout_step"] = std::to_string(loop.model->dropout_step());
    if (loop.run_metadata) loop.run_metadata(md, best);
    save_checkpoint(path, *loop.model, md, loop.optimizer);
  };

  loop.model->train();
  const auto t0 = std::chrono::steady_clock::now();
  bool first = true, stopped = false;
  for (int64_t epoch = loop.start.epoch; epoch < loop.epochs && !stopped; ++epoch) {
    const std::vector<std::vector<int64_t>> batches = loop.epoch_batches(epoch);
    const int64_t num_batches = static_cast<int64_t>(batches.size());
    int64_t epoch_mols = 0, done_mols = 0;
    for (const auto& b : batches) epoch_mols += static_cast<int64_t>(b.size());
    int64_t bi = epoch == loop.start.epoch ? loop.start.batch : 0;
    for (int64_t k = 0; k < bi; ++k) done_mols += static_cast<int64_t>(batches[k].size());
    {
      Event e;
      e.kind = Kind::EpochStart;
      e.epoch = epoch;
      e.step = step;
      e.total_steps = loop.total_steps;
      e.batch = bi;
      e.batches = num_batches;
      e.molecules = done_mols;
      e.epoch_molecules = epoch_mols;
      emit(e);
    }
    const auto te = std::chrono::steady_clock::now();
    for (; bi < num_batches; ++bi) {
      if (step >= loop.total_steps) break;  // a step budget ends inside this (last) epoch: validate and finish
      if (loop.max_steps > 0 && step >= loop.max_steps) {
        stopped = true;
        break;
      }
      const double lr = lr_at(loop.schedule, step + 1);
      Event e;
      loop.train_step(batches[bi], step, epoch, lr, e);
      ++step;
      if (first) res.first_loss = e.loss;
      first = false;
      res.last_loss = e.loss;
      done_mols += static_cast<int64_t>(batches[bi].size());
      e.kind = Kind::Step;
      e.epoch = epoch;
      e.step = step;
      e.total_steps = loop.total_steps;
      e.batch = bi + 1;
      e.batches = num_batches;
      e.molecules = done_mols;
      e.epoch_molecules = epoch_mols;
      e.lr = lr;
      emit(e);
      if (loop.checkpoint_every > 0 && step % loop.checkpoint_every == 0) {
        loop.log->flush();
        save(loop.paths.last, epoch, bi + 1);
      }
    }
    if (stopped) {
      loop.log->flush();
      save(loop.paths.last, epoch, bi);
      break;
    }
    // validation at the end of every epoch
    const double epoch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - te).count();
    Event v;
    v.kind = Kind::Validation;
    v.epoch = epoch;
    v.step = step;
    v.total_steps = loop.total_steps;
    const TrainValidation val = loop.validate(v);
    loop.log->flush();
    if (std::isnan(val.score) || std::isnan(best) || val.score < best) {
      if (!std::isnan(val.score)) best = val.score;
      v.best = true;
    }
    std::ostringstream m;
    m << "epoch " << epoch + 1 << "/" << loop.epochs << " done in " << format_fixed(epoch_s, 1) << " s" << val.summary
      << (v.best ? " (best)" : "");
    v.message = m.str();
    if (v.best) save(loop.paths.best, epoch + 1, 0);
    save(loop.paths.last, epoch + 1, 0);
    res.epochs_done = epoch + 1;
    emit(v);
  }
  res.steps = step;
  res.best = best;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace larmor::chem
