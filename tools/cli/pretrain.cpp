// `larmor train pretrain`: denoising pretraining of the shift model's backbone on every molecule of a
// prepared dataset (masked atoms + coordinate noise, MODELS.md §3), to be fine-tuned with
// `larmor train shift --init <out>/best.safetensors`. A thin wrapper over chem/shift_pretrain.h (the loop,
// checkpoints and exact resume live there); this file only parses flags, draws the progress bar and prints.
#include <cstdio>
#include <fstream>
#include <memory>

#include "chem/shift_pretrain.h"
#include "chem/shift_training.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"

namespace larmor::cli {
namespace {

struct PretrainArgs {
  std::string data, out, config = "small", solvent = "on";
  chem::ShiftPretrainOptions o;
  int threads = 0;
};

void run_pretrain(PretrainArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  chem::ShiftPretrainOptions o = a.o;
  o.out_dir = a.out;
  o.config = a.config;
  if (a.solvent != "on" && a.solvent != "off") throw Error("train pretrain: --solvent must be on or off");
  o.solvent = a.solvent == "on";
  o.noise.validate();
  chem::resolve_shift_config(o.config);  // fail on a bad config before loading the data
  if (a.data.empty()) throw Error("train pretrain: --data is required");
  if (!std::ifstream(a.data)) throw Error("cannot open dataset '" + a.data + "'");
  const chem::Dataset ds = chem::load_dataset(a.data);

  TrainingProgress progress([](const chem::TrainLoopEvent& e) {
    // on_event is only given pretrain_shift's events, so this is one and carries the step's loss parts
    const ShiftPretrainLossParts& p = static_cast<const chem::ShiftPretrainEvent&>(e).parts;
    char extra[160];
    std::snprintf(extra, sizeof extra, "step %lld/%lld loss %.4f (tok %.3f acc %.2f xyz %.3f dist %.3f) lr %.2e",
                  static_cast<long long>(e.step), static_cast<long long>(e.total_steps), e.loss, p.token,
                  p.token_accuracy, p.coord, p.distance, e.lr);
    return std::string(extra);
  });
  const chem::ShiftPretrainResult r =
      chem::pretrain_shift(ds, o, [&](const chem::ShiftPretrainEvent& e) { progress.on_event(e); });
  progress.finish();
  std::printf("done: %lld steps in %s; loss %.4f -> %.4f; best %s, last %s, log %s\n", static_cast<long long>(r.steps),
              format_duration(r.seconds).c_str(), r.first_loss, r.last_loss, r.best_path.c_str(), r.last_path.c_str(),
              r.log_path.c_str());
}

}  // namespace

void add_pretrain_command(CLI::App& train) {
  auto a = std::make_shared<PretrainArgs>();
  auto* cmd = train.add_subcommand("pretrain", "Denoising pretraining of the shift model's backbone (masked atoms + coordinate noise)");
  cmd->add_option("--data", a->data, "prepared dataset (larmor prepare); all train-split molecules are used")->required();
  cmd->add_option("--out", a->out, "output folder: best/last.safetensors, log.csv")->required();
  cmd->add_option("--config", a->config, "small, large or a model-config JSON file")->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "epochs")->capture_default_str();
  cmd->add_option("--lr", a->o.lr, "peak learning rate (3% warmup, linear decay)")->capture_default_str();
  cmd->add_option("--weight-decay", a->o.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "molecules per batch")->capture_default_str();
  cmd->add_option("--mask-prob", a->o.noise.mask_prob, "fraction of atoms selected for denoising")->capture_default_str();
  cmd->add_option("--coord-noise", a->o.noise.coord_noise, "uniform coordinate noise of selected atoms, +-Å per axis")
      ->capture_default_str();
  cmd->add_option("--solvent", a->solvent, "solvent conditioning: on or off (match train shift)")->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "seed (initialisation, sampling, noise, dropout)")->capture_default_str();
  cmd->add_flag("--resume", a->o.resume, "continue the run in --out from last.safetensors");
  cmd->add_option("--max-steps", a->o.max_steps, "stop after this many steps (0: all epochs)")->capture_default_str();
  cmd->add_option("--checkpoint-every", a->o.checkpoint_every, "steps between last.safetensors writes")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: default)")->capture_default_str();
  cmd->callback([a] { run_pretrain(*a); });
}

}  // namespace larmor::cli
