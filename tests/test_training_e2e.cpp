// End-to-end training: the layers, the optimizer, the schedule, clipping and checkpoints working together.
//   (a) an MLP fits a smooth function of its inputs;
//   (b) a two-layer pair-attention encoder (Uni-Mol style: Gaussian distance basis -> per-head pair bias,
//       each layer's attention logits feeding the next layer's bias) learns a per-atom function of the
//       geometry of padded random point clouds;
//   (c) a checkpoint loaded into a freshly built model reproduces its outputs, and a resumed optimizer its
//       next update, bit for bit.
// Sizes are small so each case runs in seconds on one core.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/basic.h"
#include "layers/checkpoint.h"
#include "layers/optim.h"
#include "layers/pair_encoder.h"
#include "layers/schedule.h"
#include "layers/synthetic.h"

using namespace larmor;

namespace {

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

// ---- (a) MLP regression ----------------------------------------------------------------------------
struct Regression {
  Tensor x, y;  // (S, 4), (S, 1)
};
Regression make_regression(int64_t samples, uint64_t seed) {
  Regression r;
  r.x = rand_uniform({samples, 4}, -2, 2, seed, 0);
  std::vector<float> xv = r.x.to_vector<float>(), yv(samples);
  for (int64_t s = 0; s < samples; ++s) yv[s] = std::sin(xv[s * 4]) + xv[s * 4 + 1] * xv[s * 4 + 2];
  r.y = Tensor::from_vector<float>(yv, {samples, 1});
  return r;
}

Tensor mse(const Tensor& pred, const Tensor& target) { return mean(square(sub(pred, target))); }

// ---- (b) pair-attention encoder: layers/pair_encoder.h on the task of layers/synthetic.h -------------
using Clouds = SyntheticClouds;

double loss_of(AtomRegressor& m, const Clouds& d) {
  NoGradGuard ng;
  return masked_mse(m.forward(d.types, d.dist, d.mask), d).item();
}

// One optimisation step on the encoder; returns the loss before the step.
double train_step(AtomRegressor& m, AdamW& opt, const Clouds& d, double lr) {
  opt.zero_grad();
  Tensor loss = masked_mse(m.forward(d.types, d.dist, d.mask), d);
  loss.backward();
  clip_grad_norm(m.parameters(), 5.0);
  opt.step(lr);
  return loss.item();
}

}  // namespace

TEST_CASE("e2e: an MLP fits sin(x0) + x1*x2 with AdamW (loss falls >= 10x)") {
  Regression train = make_regression(256, 1);
  MLP mlp({4, 32, 32, 1}, Activation::Gelu, 7);
  AdamWOptions o;
  o.weight_decay = 1e-4;
  AdamW opt(mlp.named_parameters(), o);
  LrSchedule sched{LrSchedule::Kind::Cosine, 1e-2, 30, 800, 1e-4, 1.0};
  double first = 0, last = 0;
  for (int64_t step = 1; step <= 800; ++step) {
    opt.zero_grad();
    Tensor loss = mse(mlp.forward(train.x), train.y);
    loss.backward();
    clip_grad_norm(mlp.parameters(), 10.0);
    opt.step(lr_at(sched, step));
    if (step == 1) first = loss.item();
    last = loss.item();
  }
  // Generalises to fresh points from the same distribution, too.
  Regression test = make_regression(256, 2);
  double test_loss;
  {
    NoGradGuard ng;
    test_loss = mse(mlp.forward(test.x), test.y).item();
  }
  MESSAGE("MLP loss " << first << " -> " << last << " (held out " << test_loss << ")");
  CHECK(std::isfinite(last));
  CHECK(last * 10 <= first);
  CHECK(test_loss * 5 <= first);
}

TEST_CASE("e2e: a two-layer pair-attention encoder learns a per-atom geometric target (loss falls >= 10x)") {
  PairEncoderConfig cfg;
  Clouds data = make_synthetic_clouds(128, 8, cfg.num_types, 11);
  AtomRegressor model(cfg, 3);
  AdamWOptions o;
  o.weight_decay = 1e-4;
  AdamW opt(model.named_parameters(), o);
  const int64_t steps = 400;
  LrSchedule sched{LrSchedule::Kind::Polynomial, 3e-3, 20, steps, 1e-5, 1.0};
  double first = loss_of(model, data), last = first;
  for (int64_t step = 1; step <= steps; ++step) last = train_step(model, opt, data, lr_at(sched, step));
  last = loss_of(model, data);
  // The variance of the target: what predicting the mean would achieve. The model must beat it clearly,
  // i.e. actually use the geometry, not only the target's mean.
  double var = target_variance(data);
  Clouds held_out = make_synthetic_clouds(64, 8, cfg.num_types, 12);
  double test_loss = loss_of(model, held_out);
  MESSAGE("encoder loss " << first << " -> " << last << " (target variance " << var << ", held out " << test_loss << ")");
  CHECK(std::isfinite(last));
  CHECK(last * 10 <= first);
  CHECK(last <= 0.05 * var);
  CHECK(test_loss <= 0.1 * var);
  // The pair path carries gradient into the distance basis and the first-layer bias projection.
  opt.zero_grad();
  masked_mse(model.forward(data.types, data.dist, data.mask), data).backward();
  CHECK(model.encoder().gbf_mean().grad().defined());
  CHECK(model.encoder().gbf_proj().weight().grad().defined());
}

TEST_CASE("e2e: a checkpoint reproduces outputs and the resumed optimizer step bit for bit") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("larmor_e2e_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "encoder.safetensors").string();

  PairEncoderConfig cfg;
  Clouds data = make_synthetic_clouds(8, 8, cfg.num_types, 21);
  AtomRegressor model(cfg, 5);
  AdamW opt(model.named_parameters());
  for (int64_t step = 1; step <= 10; ++step) train_step(model, opt, data, 1e-3);
  save_checkpoint(path, model, {{"config", R"({"dim": 32, "heads": 4, "layers": 2})"}, {"step", "10"}}, &opt);

  AtomRegressor fresh(cfg, 12345);
  AdamW fresh_opt(fresh.named_parameters());
  {
    NoGradGuard ng;
    CHECK_FALSE(same_bytes(fresh.forward(data.types, data.dist, data.mask), model.forward(data.types, data.dist, data.mask)));
  }
  auto meta = load_checkpoint(path, fresh, &fresh_opt);
  CHECK(meta.at("step") == "10");
  model.eval();
  fresh.eval();
  {
    NoGradGuard ng;
    CHECK(same_bytes(fresh.forward(data.types, data.dist, data.mask), model.forward(data.types, data.dist, data.mask)));
  }
  // Resuming: one more step on each gives identical parameters and moments.
  model.train();
  fresh.train();
  double l1 = train_step(model, opt, data, 1e-3), l2 = train_step(fresh, fresh_opt, data, 1e-3);
  CHECK(l1 == l2);
  auto a = model.named_parameters(), b = fresh.named_parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].first);
    CHECK(a[i].first == b[i].first);
    CHECK(same_bytes(a[i].second, b[i].second));
    CHECK(same_bytes(opt.slots()[i].m, fresh_opt.slots()[i].m));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}
