// `larmor train shift` and `larmor eval shift`: thin wrappers over chem/shift_training.h (the loop, the
// checkpoints, the exact resume and the metrics live there, so tests and C++ users get the same thing).
// This file only parses flags, draws the progress bar (loss, molecules/s, ETA per epoch) and prints.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "chem/shift_training.h"
#include "chem/svg_plots.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"

namespace larmor::cli {
namespace {

struct TrainArgs {
  std::string data, out, config = "small", mode = "mixed", nuclei = "13C,1H", solvent = "on";
  chem::ShiftTrainOptions o;
  int threads = 0;
};

chem::Dataset load_data(const std::string& path) {
  if (path.empty()) throw Error("--data is required");
  std::ifstream probe(path);
  if (!probe) throw Error("cannot open dataset '" + path + "'");
  return chem::load_dataset(path);
}

void run_train(TrainArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (a.out.empty()) throw Error("train shift: --out is required");
  chem::ShiftTrainOptions o = a.o;
  o.out_dir = a.out;
  o.config = a.config;
  o.mode = chem::parse_sampler_mode(a.mode);
  o.nuclei = chem::parse_nuclei(a.nuclei);
  if (a.solvent != "on" && a.solvent != "off") throw Error("train shift: --solvent must be on or off");
  o.solvent = a.solvent == "on";
  chem::resolve_shift_config(o.config);  // fail on a bad config before loading the data
  const chem::Dataset ds = load_data(a.data);
  TrainingProgress progress([](const chem::TrainLoopEvent& e) {
    char extra[128];
    std::snprintf(extra, sizeof extra, "step %lld/%lld loss %.4f lr %.2e", static_cast<long long>(e.step),
                  static_cast<long long>(e.total_steps), e.loss, e.lr);
    return std::string(extra);
  });
  const chem::ShiftTrainResult r =
      chem::train_shift(ds, o, [&](const chem::ShiftTrainEvent& e) { progress.on_event(e); });
  progress.finish();
  std::printf("done: %lld steps in %s; best %s, last %s, log %s\n", static_cast<long long>(r.steps),
              format_duration(r.seconds).c_str(), r.best_path.c_str(), r.last_path.c_str(), r.log_path.c_str());
}

struct EvalArgs {
  std::string data, model, split = "test", out, svg_dir;
  int64_t batch = 32;
  int threads = 0;
};

// The --svg folder, created before the evaluation so a bad path fails at once.
void make_svg_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw Error("eval shift: cannot create the --svg folder '" + dir + "'" + (ec ? ": " + ec.message() : ""));
}

// DIR/parity_<nucleus>.svg and DIR/errors_<nucleus>.svg for every nucleus with assigned comparisons.
void write_eval_svgs(const chem::ShiftEvalReport& rep, const std::string& model, const std::string& dir) {
  const std::string model_name = std::filesystem::path(model).parent_path().filename().string();
  auto write = [](const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    if (!f) throw Error("eval shift: cannot write '" + path + "'");
    f << text;
    f.close();
    if (!f) throw Error("eval shift: error writing '" + path + "'");
    std::printf("figure written to %s\n", path.c_str());
  };
  int written = 0;
  for (int n = 0; n < chem::kNumNuclei; ++n) {
    const auto& pairs = rep.assigned_pairs[n];
    if (pairs.empty()) continue;
    const std::string nuc = chem::nucleus_name(static_cast<chem::Nucleus>(n));
    const std::string what = nuc + " shifts, " + rep.split + " split" + (model_name.empty() ? "" : " (" + model_name + ")");
    std::vector<double> errors;
    errors.reserve(pairs.size());
    for (const auto& [ref, pred] : pairs) errors.push_back(pred - ref);
    const std::filesystem::path d(dir);
    write((d / ("parity_" + nuc + ".svg")).string(), chem::parity_plot_svg(pairs, "Predicted vs reference " + what, nuc));
    write((d / ("errors_" + nuc + ".svg")).string(), chem::error_histogram_svg(errors, "Errors of " + what, "ppm"));
    ++written;
  }
  if (written == 0) std::printf("no assigned comparisons: no figures written to %s\n", dir.c_str());
}

void run_eval(const EvalArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  chem::Split split;
  if (a.split == "train") split = chem::Split::Train;
  else if (a.split == "valid") split = chem::Split::Valid;
  else if (a.split == "test") split = chem::Split::Test;
  else throw Error("eval shift: --split must be train, valid or test, got '" + a.split + "'");
  if (a.model.empty()) throw Error("eval shift: --model is required");
  if (!a.svg_dir.empty()) make_svg_dir(a.svg_dir);
  chem::LoadedShiftModel m = chem::load_shift_model(a.model);
  const chem::Dataset ds = load_data(a.data);
  chem::ShiftDataOptions dopts = m.data_options;
  dopts.use_unassigned = true;  // every model is scored on the same test targets, however it was trained
  const chem::ShiftDataset data(ds, split, m.standardizer, dopts);
  chem::ShiftEvalReport rep = chem::evaluate_shift(*m.model, data, ds, a.batch);
  rep.split = a.split;
  std::printf("%s", rep.table().c_str());
  if (!a.out.empty()) {
    std::ofstream f(a.out);
    if (!f) throw Error("eval shift: cannot write '" + a.out + "'");
    f << rep.to_json() << "\n";
    std::printf("report written to %s\n", a.out.c_str());
  }
  if (!a.svg_dir.empty()) write_eval_svgs(rep, a.model, a.svg_dir);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train a model");
  train->require_subcommand(1);
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = train->add_subcommand("shift", "Train the shift model on a prepared dataset");
  cmd->add_option("--data", a->data, "prepared dataset (larmor prepare)")->required();
  cmd->add_option("--out", a->out, "output folder: best/last.safetensors, log.csv")->required();
  cmd->add_option("--config", a->config, "small, large or a model-config JSON file")->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "epochs")->capture_default_str();
  cmd->add_option("--steps", a->o.steps, "a step budget instead of --epochs (schedule length; 0: use --epochs)")
      ->capture_default_str();
  cmd->add_option("--lr", a->o.lr, "peak learning rate (3% warmup, linear decay)")->capture_default_str();
  cmd->add_option("--weight-decay", a->o.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--batch-labelled", a->o.batch_labelled, "labelled molecules per batch (B1)")->capture_default_str();
  cmd->add_option("--batch-unlabelled", a->o.batch_unlabelled, "unlabelled molecules per batch (B2)")->capture_default_str();
  cmd->add_option("--lambda", a->o.lambda, "weight of the sorted-set loss on unassigned sets")->capture_default_str();
  cmd->add_option("--mode", a->mode, "mixed, labelled, unlabelled or all")->capture_default_str();
  cmd->add_option("--nuclei", a->nuclei, "comma-separated: 13C, 1H, 19F, 31P")->capture_default_str();
  cmd->add_option("--solvent", a->solvent, "solvent conditioning: on or off")->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "seed (initialisation, sampling, dropout)")->capture_default_str();
  cmd->add_flag("--resume", a->o.resume, "continue the run in --out from last.safetensors");
  cmd->add_option("--max-steps", a->o.max_steps, "stop after this many steps (0: all epochs)")->capture_default_str();
  cmd->add_option("--checkpoint-every", a->o.checkpoint_every, "steps between last.safetensors writes")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: default)")->capture_default_str();
  cmd->add_option("--init", a->o.init_from, "start from a pretrained checkpoint (train pretrain; backbone weights)");
  cmd->callback([a] { run_train(*a); });
  add_pretrain_command(*train);
  add_align_command(*train);

  auto* eval = app.add_subcommand("eval", "Evaluate a model");
  eval->require_subcommand(1);
  auto e = std::make_shared<EvalArgs>();
  auto* ecmd = eval->add_subcommand("shift", "MAE/RMSE of a shift model per nucleus, solvent and carbon type");
  ecmd->add_option("--data", e->data, "prepared dataset")->required();
  ecmd->add_option("--model", e->model, "checkpoint (best.safetensors)")->required();
  ecmd->add_option("--split", e->split, "train, valid or test")->capture_default_str();
  ecmd->add_option("--out", e->out, "JSON report path");
  ecmd->add_option("--svg", e->svg_dir, "folder for parity_<nucleus>.svg and errors_<nucleus>.svg (created if missing)");
  ecmd->add_option("--batch", e->batch, "molecules per batch")->capture_default_str();
  ecmd->add_option("--threads", e->threads, "CPU threads (0: default)")->capture_default_str();
  ecmd->callback([e] { run_eval(*e); });
  add_align_command(*eval);
}

}  // namespace larmor::cli
