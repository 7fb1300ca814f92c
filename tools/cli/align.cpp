// `larmor train align` and `larmor eval align`: thin wrappers over chem/align_training.h (the loop, the
// checkpoints, the exact resume and the metrics live there, so tests and C++ users get the same thing).
// This file parses flags, applies the model-config overrides (--alpha, --spectrum-encoder, ...) on top of
// --config, draws the progress bar and prints. One registration function for both, called under `train`
// and under `eval` (it looks at the parent's name), so the train/eval command files each gain one line.
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "chem/align_training.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"

namespace larmor::cli {
namespace {

chem::Dataset load_align_data(const std::string& path) {
  if (path.empty()) throw Error("--data is required");
  if (!std::ifstream(path)) throw Error("cannot open dataset '" + path + "'");
  return chem::load_dataset(path);
}

bool on_off(const std::string& flag, const std::string& v) {
  if (v == "on") return true;
  if (v == "off") return false;
  throw Error("train align: " + flag + " must be on or off, got '" + v + "'");
}

struct AlignTrainArgs {
  std::string data, out, config = "default";
  chem::AlignTrainOptions o;
  // overrides of the model config (unset: the config's value)
  std::optional<double> alpha, soft_n, soft_p, logit_scale;
  std::optional<std::string> spectrum_encoder, shared_encoder, soft_targets, molecule_gradient;
  int threads = 0;
};

void run_train_align(AlignTrainArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  chem::AlignTrainOptions o = a.o;
  o.out_dir = a.out;
  AlignModelConfig cfg = chem::resolve_align_config(a.config);
  if (a.alpha) cfg.alpha = *a.alpha;
  if (a.soft_n) cfg.soft_n = *a.soft_n;
  if (a.soft_p) cfg.soft_p = *a.soft_p;
  if (a.logit_scale) cfg.logit_scale = *a.logit_scale;
  if (a.spectrum_encoder) cfg.spectrum_encoder = *a.spectrum_encoder;
  if (a.shared_encoder) cfg.shared_graph_encoder = on_off("--shared-encoder", *a.shared_encoder);
  if (a.soft_targets) cfg.soft_targets = on_off("--soft-targets", *a.soft_targets);
  if (a.molecule_gradient) cfg.molecule_gradient = *a.molecule_gradient;
  cfg.validate();  // a bad override fails before the data is loaded
  o.model_config = cfg;
  const chem::Dataset ds = load_align_data(a.data);
  TrainingProgress progress([](const chem::TrainLoopEvent& e) {
    // on_event is only given train_align's events
    const auto& ae = static_cast<const chem::AlignTrainEvent&>(e);
    char extra[160];
    std::snprintf(extra, sizeof extra, "step %lld/%lld loss %.4f (mol %.3f atom %.3f) lr %.2e",
                  static_cast<long long>(e.step), static_cast<long long>(e.total_steps), e.loss, ae.molecule_loss,
                  ae.atom_loss, e.lr);
    return std::string(extra);
  });
  const chem::AlignTrainResult r =
      chem::train_align(ds, o, [&](const chem::AlignTrainEvent& e) { progress.on_event(e); });
  progress.finish();
  std::printf("done: %lld steps in %s (%.3f s/step); loss %.4f -> %.4f; best %s, last %s, log %s\n",
              static_cast<long long>(r.steps), format_duration(r.seconds).c_str(),
              r.steps > 0 ? r.seconds / static_cast<double>(r.steps) : 0.0, r.first_loss, r.last_loss,
              r.best_path.c_str(), r.last_path.c_str(), r.log_path.c_str());
}

struct AlignEvalArgs {
  std::string data, model, split = "test", out, shift_model;
  chem::AlignEvalOptions o;
  std::string library = "on";
  int threads = 0;
};

void run_eval_align(const AlignEvalArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  chem::Split split;
  if (a.split == "train") split = chem::Split::Train;
  else if (a.split == "valid") split = chem::Split::Valid;
  else if (a.split == "test") split = chem::Split::Test;
  else throw Error("eval align: --split must be train, valid or test, got '" + a.split + "'");
  chem::AlignEvalOptions o = a.o;
  if (a.library != "on" && a.library != "off") throw Error("eval align: --library must be on or off");
  o.library = a.library == "on";
  chem::LoadedAlignModel m = chem::load_align_model(a.model);
  std::optional<chem::LoadedShiftModel> shift;  // loaded before the (large) dataset, so a bad file fails fast
  if (!a.shift_model.empty()) {
    shift = chem::load_shift_model(a.shift_model);
    o.shift_model = &*shift;
  }
  const chem::Dataset ds = load_align_data(a.data);
  const chem::AlignDataset data(ds, split, m.data_options);
  chem::AlignEvalReport rep = chem::evaluate_align(*m.model, data, ds, o);
  rep.split = a.split;
  std::printf("%s", rep.table().c_str());
  if (!a.out.empty()) {
    std::ofstream f(a.out);
    if (!f) throw Error("eval align: cannot write '" + a.out + "'");
    f << rep.to_json() << "\n";
    std::printf("report written to %s\n", a.out.c_str());
  }
}

void add_train_align(CLI::App& train) {
  auto a = std::make_shared<AlignTrainArgs>();
  auto* cmd = train.add_subcommand("align", "Train the spectrum-structure alignment model (K-M3AID)");
  cmd->add_option("--data", a->data, "prepared dataset (larmor prepare)")->required();
  cmd->add_option("--out", a->out, "output folder: best/last.safetensors, log.csv")->required();
  cmd->add_option("--config", a->config, "default, tiny or a model-config JSON file")->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "epochs")->capture_default_str();
  cmd->add_option("--steps", a->o.steps, "a step budget instead of --epochs (0: use --epochs)")->capture_default_str();
  cmd->add_option("--lr", a->o.lr, "learning rate")->capture_default_str();
  cmd->add_option("--schedule", a->o.schedule, "constant (as K-M3AID) or warmup-linear")->capture_default_str();
  cmd->add_option("--weight-decay", a->o.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "molecules per batch (drop_last)")->capture_default_str();
  cmd->add_option("--alpha", a->alpha, "weight of the molecule-level loss (config: 0.1)");
  cmd->add_option("--spectrum-encoder", a->spectrum_encoder, "cnn or peakset (config: cnn)");
  cmd->add_option("--shared-encoder", a->shared_encoder, "one graph encoder for both levels: on or off (config: on)");
  cmd->add_option("--soft-targets", a->soft_targets, "knowledge-guided atom targets: on or off (config: on)");
  cmd->add_option("--soft-n", a->soft_n, "soft targets 10^p / (|dδ| + 10^-n): n (config: 5)");
  cmd->add_option("--soft-p", a->soft_p, "p (config: 1)");
  cmd->add_option("--molecule-gradient", a->molecule_gradient, "both, graph or spectrum (config: both)");
  cmd->add_option("--logit-scale", a->logit_scale, "multiplier of both logit matrices (config: 1/sqrt(512); K-M3AID: 1)");
  cmd->add_option("--seed", a->o.seed, "seed (initialisation, sampling, dropout)")->capture_default_str();
  cmd->add_flag("--resume", a->o.resume, "continue the run in --out from last.safetensors");
  cmd->add_option("--max-steps", a->o.max_steps, "stop after this many steps (0: all epochs)")->capture_default_str();
  cmd->add_option("--checkpoint-every", a->o.checkpoint_every, "steps between last.safetensors writes")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: default)")->capture_default_str();
  cmd->callback([a] { run_train_align(*a); });
}

void add_eval_align(CLI::App& eval) {
  auto e = std::make_shared<AlignEvalArgs>();
  auto* cmd = eval.add_subcommand("align", "Retrieval, isomer recognition and peak assignment of an alignment model");
  cmd->add_option("--data", e->data, "prepared dataset")->required();
  cmd->add_option("--model", e->model, "checkpoint (best.safetensors)")->required();
  cmd->add_option("--split", e->split, "train, valid or test")->capture_default_str();
  cmd->add_option("--out", e->out, "JSON report path");
  cmd->add_option("--group-size", e->o.group_size, "molecules per retrieval group")->capture_default_str();
  cmd->add_option("--seed", e->o.seed, "seed of the retrieval groups")->capture_default_str();
  cmd->add_option("--library", e->library, "rank against all prepared molecules too: on or off")->capture_default_str();
  cmd->add_option("--shift-model", e->shift_model,
                  "shift-model checkpoint: adds the peak-assignment row 'shift predictor + optimal' (the shift "
                  "model's 13C predictions + the optimal assignment, as `larmor assign --method predict`) and "
                  "retrieval by the predicted spectrum (in groups, align top-10 re-ranked, isomers); "
                  "default: none, those rows are left out");
  cmd->add_option("--unmatched-penalty", e->o.unmatched_penalty,
                  "shift-predictor retrieval: ppm added to a candidate's error per carbon class that gets no peak")
      ->capture_default_str();
  cmd->add_option("--combine-weight", e->o.combine_weight,
                  "with --shift-model: also rank by shift-predictor score + this (ppm per nat) x the alignment logit "
                  "(0: off; 1 was chosen on the valid split)")
      ->capture_default_str();
  cmd->add_option("--threads", e->threads, "CPU threads (0: default)")->capture_default_str();
  cmd->callback([e] { run_eval_align(*e); });
}

}  // namespace

void add_align_command(CLI::App& parent) {
  if (parent.get_name() == "train") add_train_align(parent);
  else if (parent.get_name() == "eval") add_eval_align(parent);
  else throw Error("add_align_command: expected the train or eval command, got '" + parent.get_name() + "'");
}

}  // namespace larmor::cli
