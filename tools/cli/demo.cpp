// `larmor demo`: the job tools/demo.sh runs. Until the shift model ships, it trains the Uni-Mol-style
// pair-attention regressor (layers/pair_encoder.h) on the synthetic geometric task of
// layers/synthetic.h with AdamW + warmup/decay + clipping, reports train and held-out error against
// the target variance, writes a safetensors checkpoint and checks that reloading it reproduces the
// predictions bit for bit.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "engine/thread_pool.h"
#include "kernels/ops.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/pair_encoder.h"
#include "layers/schedule.h"
#include "layers/synthetic.h"
#include "tools/cli/commands.h"

namespace larmor::cli {
namespace {

struct DemoOptions {
  int64_t steps = 400;
  int64_t clouds = 256;
  int64_t atoms = 12;
  uint64_t seed = 1;
  std::string out = "build/demo/pair_encoder.safetensors";
};

double eval_loss(const AtomRegressor& m, const SyntheticClouds& d) {
  NoGradGuard ng;
  return masked_mse(m.forward(d.types, d.dist, d.mask), d).item();
}

void run_demo(const DemoOptions& o) {
  if (o.steps < 1 || o.clouds < 1 || o.atoms < 4) throw Error("demo: --steps and --clouds must be >= 1 and --atoms >= 4");
  PairEncoderConfig cfg;
  SyntheticClouds train = make_synthetic_clouds(o.clouds, o.atoms, cfg.num_types, o.seed);
  SyntheticClouds held = make_synthetic_clouds(std::max<int64_t>(o.clouds / 4, 1), o.atoms, cfg.num_types, o.seed + 1000);
  AtomRegressor model(cfg, o.seed);
  AdamWOptions ao;
  ao.weight_decay = 1e-4;
  AdamW opt(model.named_parameters(), ao);
  LrSchedule sched{LrSchedule::Kind::Polynomial, 3e-3, std::max<int64_t>(o.steps / 20, 1), o.steps, 1e-5, 1.0};

  std::printf("demo: pair-attention regressor (%lld parameters, %lld layers, %lld heads) on %lld synthetic clouds of "
              "<= %lld atoms, %d CPU threads\n",
              static_cast<long long>(model.num_parameters()), static_cast<long long>(cfg.layers),
              static_cast<long long>(cfg.heads), static_cast<long long>(o.clouds), static_cast<long long>(o.atoms),
              num_threads());
  const double var = target_variance(train), first = eval_loss(model, train);
  std::printf("target variance %.4f, initial loss %.4f\n", var, first);
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= o.steps; ++step) {
    double lr = lr_at(sched, step);
    opt.zero_grad();
    Tensor loss = masked_mse(model.forward(train.types, train.dist, train.mask), train);
    loss.backward();
    double norm = clip_grad_norm(model.parameters(), 5.0);
    opt.step(lr);
    if (step % 50 == 0 || step == o.steps) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("step %5lld  loss %.5f  grad-norm %.3f  lr %.2e  %.0f clouds/s\n", static_cast<long long>(step),
                  loss.item(), norm, lr, static_cast<double>(o.clouds * step) / secs);
      std::fflush(stdout);
    }
  }
  const double last = eval_loss(model, train), held_loss = eval_loss(model, held);
  std::printf("train loss %.5f (%.0fx lower than at start), held-out loss %.5f (%.1f%% of the target variance)\n", last,
              first / last, held_loss, 100.0 * held_loss / var);

  std::filesystem::path out(o.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  save_checkpoint(o.out, model, {{"task", "synthetic-clouds"}, {"steps", std::to_string(o.steps)}}, &opt);
  AtomRegressor reloaded(cfg, o.seed + 1);
  load_checkpoint(o.out, reloaded);
  NoGradGuard ng;
  Tensor a = model.forward(held.types, held.dist, held.mask), b = reloaded.forward(held.types, held.dist, held.mask);
  bool same = std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
  std::printf("checkpoint %s: reloaded predictions %s\n", o.out.c_str(), same ? "identical (bit for bit)" : "DIFFER");
  if (!same) throw Error("demo: reloaded checkpoint does not reproduce the predictions");
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto opts = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand("demo", "Train the pair-attention regressor on a synthetic geometric task");
  cmd->add_option("--steps", opts->steps, "optimisation steps")->capture_default_str();
  cmd->add_option("--clouds", opts->clouds, "training point clouds")->capture_default_str();
  cmd->add_option("--atoms", opts->atoms, "maximum atoms per cloud")->capture_default_str();
  cmd->add_option("--seed", opts->seed, "seed for data and initialisation")->capture_default_str();
  cmd->add_option("--out", opts->out, "checkpoint path")->capture_default_str();
  cmd->callback([opts] { run_demo(*opts); });
}

}  // namespace larmor::cli
