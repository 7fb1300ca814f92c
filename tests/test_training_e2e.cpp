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
#include "layers/schedule.h"

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

// ---- (b) pair-attention encoder ----------------------------------------------------------------------
struct Clouds {
  Tensor types;   // (B, N) i32
  Tensor dist;    // (B, N, N) f32
  Tensor mask;    // (B, N) i32, 1 = real atom
  Tensor maskf;   // (B, N) f32
  Tensor target;  // (B, N) f32, 0 on padding
  int64_t real = 0;
};

// Random point clouds of 4..N atoms in a 3 A box. Per-atom target: a distance-weighted average of a
// per-type value over the other atoms, sum_j exp(-d_ij) c[t_j] / sum_j exp(-d_ij) (j != i, real). It
// depends on geometry and types together and is exactly what one pair-biased attention head can express
// (bias = -d, value = c[type]), so a working encoder must also generalise to unseen clouds.
Clouds make_clouds(int64_t B, int64_t N, int64_t num_types, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> xyz = rng.uniform({B, N, 3}, 0, 3).to_vector<float>();
  std::vector<int32_t> counts = rng.integers({B}, 4, N + 1).to_vector<int32_t>();
  std::vector<int32_t> types = rng.integers({B, N}, 0, num_types).to_vector<int32_t>();
  const double type_value[] = {-1.0, 0.5, 1.5, 3.0, 0.0, 2.0, -0.5, 1.0};
  if (num_types > 8) throw Error("make_clouds: at most 8 types");
  std::vector<float> dist(B * N * N), target(B * N, 0.f), maskf(B * N, 0.f);
  std::vector<int32_t> mask(B * N, 0);
  Clouds c;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N; ++i) {
      bool ri = i < counts[b];
      double num = 0, den = 0;
      mask[b * N + i] = ri;
      maskf[b * N + i] = ri ? 1.f : 0.f;
      c.real += ri;
      if (!ri) types[b * N + i] = 0;
      for (int64_t j = 0; j < N; ++j) {
        double d2 = 0;
        for (int k = 0; k < 3; ++k) {
          double t = xyz[(b * N + i) * 3 + k] - xyz[(b * N + j) * 3 + k];
          d2 += t * t;
        }
        double d = std::sqrt(d2);
        dist[(b * N + i) * N + j] = static_cast<float>(d);
        if (ri && j != i && j < counts[b]) {
          num += std::exp(-d) * type_value[types[b * N + j]];
          den += std::exp(-d);
        }
      }
      if (ri) target[b * N + i] = static_cast<float>(num / den);
    }
  }
  c.types = Tensor::from_vector<int32_t>(types, {B, N});
  c.dist = Tensor::from_vector<float>(dist, {B, N, N});
  c.mask = Tensor::from_vector<int32_t>(mask, {B, N});
  c.maskf = Tensor::from_vector<float>(maskf, {B, N});
  c.target = Tensor::from_vector<float>(target, {B, N});
  return c;
}

struct EncoderConfig {
  int64_t num_types = 4, dim = 32, heads = 4, kernels = 16, layers = 2, ffn = 64;
};

struct EncoderLayer : Module {
  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<Linear> q, k, v, o, fc1, fc2;
  int64_t heads;
  EncoderLayer(const EncoderConfig& c, uint64_t seed) : heads(c.heads) {
    ln1 = register_module("ln1", std::make_shared<LayerNorm>(c.dim));
    q = register_module("q", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 0)));
    k = register_module("k", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 1)));
    v = register_module("v", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 2)));
    o = register_module("o", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 3)));
    ln2 = register_module("ln2", std::make_shared<LayerNorm>(c.dim));
    fc1 = register_module("fc1", std::make_shared<Linear>(c.dim, c.ffn, derive_seed(seed, 4)));
    fc2 = register_module("fc2", std::make_shared<Linear>(c.ffn, c.dim, derive_seed(seed, 5)));
  }
  // h (B, N, D), bias (B, H, N, N) -> h (B, N, D); *bias becomes this layer's logits.
  Tensor forward(const Tensor& h, Tensor* bias, const Tensor& mask) const {
    int64_t B = h.size(0), N = h.size(1), D = h.size(2), dh = D / heads;
    Tensor x = ln1->forward(h);
    auto split = [&](const Tensor& t) { return permute(reshape(t, {B, N, heads, dh}), {0, 2, 1, 3}); };  // (B, H, N, dh)
    PairAttentionOut att = pair_bias_attention(split(q->forward(x)), split(k->forward(x)), split(v->forward(x)), *bias,
                                               mask, 1.0 / std::sqrt(static_cast<double>(dh)));
    *bias = att.logits;
    Tensor merged = reshape(permute(att.out, {0, 2, 1, 3}), {B, N, D});  // (B, N, D)
    Tensor h1 = add(h, o->forward(merged));
    return add(h1, fc2->forward(gelu(fc1->forward(ln2->forward(h1)))));
  }
};

struct PairEncoder : Module {
  EncoderConfig cfg;
  std::shared_ptr<Embedding> tok;
  Tensor gbf_mean, gbf_std;  // (K)
  std::shared_ptr<Linear> gbf_proj, head;
  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> final_ln;
  PairEncoder(const EncoderConfig& c, uint64_t seed) : cfg(c) {
    tok = register_module("tok", std::make_shared<Embedding>(c.num_types, c.dim, derive_seed(seed, 0)));
    std::vector<float> means(c.kernels);
    for (int64_t i = 0; i < c.kernels; ++i) means[i] = 5.5f * static_cast<float>(i) / static_cast<float>(c.kernels - 1);
    gbf_mean = register_parameter("gbf_mean", Tensor::from_vector<float>(means, {c.kernels}));
    gbf_std = register_parameter("gbf_std", Tensor::full({c.kernels}, 0.5));
    gbf_proj = register_module("gbf_proj", std::make_shared<Linear>(c.kernels, c.heads, derive_seed(seed, 1)));
    layers = register_module("layers", std::make_shared<ModuleList>());
    for (int64_t l = 0; l < c.layers; ++l) layers->push_back(std::make_shared<EncoderLayer>(c, derive_seed(seed, 10 + l)));
    final_ln = register_module("final_ln", std::make_shared<LayerNorm>(c.dim));
    head = register_module("head", std::make_shared<Linear>(c.dim, 1, derive_seed(seed, 2)));
  }
  Tensor forward(const Clouds& d) const {
    int64_t B = d.types.size(0), N = d.types.size(1);
    Tensor h = tok->forward(d.types);                                          // (B, N, D)
    Tensor g = gaussian_basis(d.dist, gbf_mean, gbf_std);                      // (B, N, N, K)
    Tensor bias = permute(gbf_proj->forward(g), {0, 3, 1, 2});                 // (B, H, N, N)
    for (size_t l = 0; l < layers->size(); ++l) h = layers->at<EncoderLayer>(l)->forward(h, &bias, d.mask);
    return reshape(head->forward(final_ln->forward(h)), {B, N});              // (B, N)
  }
};

Tensor masked_mse(const Tensor& pred, const Clouds& d) {
  return mul_scalar(sum(mul(square(sub(pred, d.target)), d.maskf)), 1.0 / static_cast<double>(d.real));
}

double loss_of(PairEncoder& m, const Clouds& d) {
  NoGradGuard ng;
  return masked_mse(m.forward(d), d).item();
}

// One optimisation step on the encoder; returns the loss before the step.
double train_step(PairEncoder& m, AdamW& opt, const Clouds& d, double lr) {
  opt.zero_grad();
  Tensor loss = masked_mse(m.forward(d), d);
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
  EncoderConfig cfg;
  Clouds data = make_clouds(128, 8, cfg.num_types, 11);
  PairEncoder model(cfg, 3);
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
  std::vector<float> t = data.target.to_vector<float>(), mk = data.maskf.to_vector<float>();
  double mu = 0, var = 0;
  for (size_t i = 0; i < t.size(); ++i) mu += mk[i] * t[i] / static_cast<double>(data.real);
  for (size_t i = 0; i < t.size(); ++i) var += mk[i] * (t[i] - mu) * (t[i] - mu) / static_cast<double>(data.real);
  Clouds held_out = make_clouds(64, 8, cfg.num_types, 12);
  double test_loss = loss_of(model, held_out);
  MESSAGE("encoder loss " << first << " -> " << last << " (target variance " << var << ", held out " << test_loss << ")");
  CHECK(std::isfinite(last));
  CHECK(last * 10 <= first);
  CHECK(last <= 0.05 * var);
  CHECK(test_loss <= 0.1 * var);
  // The pair path carries gradient into the distance basis and the first-layer bias projection.
  opt.zero_grad();
  masked_mse(model.forward(data), data).backward();
  CHECK(model.gbf_mean.grad().defined());
  CHECK(model.gbf_proj->weight().grad().defined());
}

TEST_CASE("e2e: a checkpoint reproduces outputs and the resumed optimizer step bit for bit") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("larmor_e2e_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "encoder.safetensors").string();

  EncoderConfig cfg;
  Clouds data = make_clouds(8, 8, cfg.num_types, 21);
  PairEncoder model(cfg, 5);
  AdamW opt(model.named_parameters());
  for (int64_t step = 1; step <= 10; ++step) train_step(model, opt, data, 1e-3);
  save_checkpoint(path, model, {{"config", R"({"dim": 32, "heads": 4, "layers": 2})"}, {"step", "10"}}, &opt);

  PairEncoder fresh(cfg, 12345);
  AdamW fresh_opt(fresh.named_parameters());
  {
    NoGradGuard ng;
    CHECK_FALSE(same_bytes(fresh.forward(data), model.forward(data)));
  }
  auto meta = load_checkpoint(path, fresh, &fresh_opt);
  CHECK(meta.at("step") == "10");
  model.eval();
  fresh.eval();
  {
    NoGradGuard ng;
    CHECK(same_bytes(fresh.forward(data), model.forward(data)));
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
