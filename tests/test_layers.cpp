// layers/: module naming and modes, the basic layers against naive references, AdamW bookkeeping,
// gradient clipping and learning-rate schedules.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/basic.h"
#include "layers/optim.h"
#include "layers/schedule.h"

using namespace larmor;

namespace {

struct Block : Module {
  std::shared_ptr<Linear> fc1, fc2;
  std::shared_ptr<LayerNorm> norm;
  Block(int64_t d, uint64_t seed) {
    fc1 = register_module("fc1", std::make_shared<Linear>(d, 2 * d, derive_seed(seed, 0)));
    fc2 = register_module("fc2", std::make_shared<Linear>(2 * d, d, derive_seed(seed, 1), false));
    norm = register_module("norm", std::make_shared<LayerNorm>(d));
  }
};

struct Encoder : Module {
  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<Dropout> drop;
  Tensor scale;
  Encoder(int64_t d, int n, uint64_t seed) {
    scale = register_parameter("scale", Tensor::ones({d}));
    register_buffer("step_count", Tensor::zeros({}, DType::I64));
    layers = register_module("layers", std::make_shared<ModuleList>());
    for (int i = 0; i < n; ++i) layers->push_back(std::make_shared<Block>(d, derive_seed(seed, i)));
    drop = register_module("drop", std::make_shared<Dropout>(0.1, seed));
  }
};

struct Model : Module {
  std::shared_ptr<Encoder> encoder;
  std::shared_ptr<BatchNorm1d> bn;
  Model() {
    encoder = register_module("encoder", std::make_shared<Encoder>(4, 2, 7));
    bn = register_module("bn", std::make_shared<BatchNorm1d>(4));
  }
};

std::vector<std::string> names(const NamedTensors& nt) {
  std::vector<std::string> out;
  for (auto& [n, t] : nt) out.push_back(n);
  return out;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

constexpr double kPi = 3.14159265358979323846;

std::vector<double> host(const Tensor& t) {
  Tensor d = t.to(DType::F64);
  return d.to_vector<double>();
}

}  // namespace

TEST_CASE("layers: modules name parameters recursively with dotted names") {
  Model m;
  std::vector<std::string> expect = {
      "encoder.scale",
      "encoder.layers.0.fc1.weight", "encoder.layers.0.fc1.bias", "encoder.layers.0.fc2.weight",
      "encoder.layers.0.norm.weight", "encoder.layers.0.norm.bias",
      "encoder.layers.1.fc1.weight", "encoder.layers.1.fc1.bias", "encoder.layers.1.fc2.weight",
      "encoder.layers.1.norm.weight", "encoder.layers.1.norm.bias",
      "bn.weight", "bn.bias"};
  CHECK(names(m.named_parameters()) == expect);
  CHECK(names(m.named_buffers()) == std::vector<std::string>{"encoder.step_count", "bn.running_mean", "bn.running_var"});
  CHECK(names(m.encoder->named_parameters("enc"))[0] == "enc.scale");
  CHECK(m.parameters().size() == expect.size());
  for (const Tensor& p : m.parameters()) CHECK(p.requires_grad());
  for (auto& [n, b] : m.named_buffers()) CHECK_FALSE(b.requires_grad());
  std::map<std::string, Tensor> sd = m.state_dict();
  CHECK(sd.size() == expect.size() + 3);
  // Registry entries are the layers' own handles.
  CHECK(sd.at("encoder.layers.1.fc1.weight").same(m.encoder->layers->at<Block>(1)->fc1->weight()));
  CHECK(m.num_parameters() == 4 + 2 * (8 * 4 + 8 + 4 * 8 + 4 + 4) + 8);

  // Bad registrations are errors.
  Module bad;
  bad.register_parameter("w", Tensor::zeros({2}));
  CHECK_THROWS_AS(bad.register_parameter("w", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(bad.register_buffer("w", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(bad.register_module("w", std::make_shared<Module>()), Error);
  CHECK_THROWS_AS(bad.register_parameter("a.b", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(bad.register_parameter("", Tensor::zeros({2})), Error);
  CHECK_THROWS_AS(bad.register_parameter("i", Tensor::zeros({2}, DType::I32)), Error);
  CHECK_THROWS_AS(m.encoder->layers->at<Linear>(0), Error);
}

TEST_CASE("layers: train/eval switches the whole tree, zero_grad drops gradients, to() keeps handles") {
  Model m;
  CHECK(m.is_training());
  CHECK(m.encoder->drop->is_training());
  m.eval();
  CHECK_FALSE(m.is_training());
  CHECK_FALSE(m.encoder->layers->at<Block>(1)->fc2->is_training());
  CHECK_FALSE(m.bn->is_training());
  m.encoder->train();
  CHECK(m.encoder->drop->is_training());
  CHECK_FALSE(m.bn->is_training());
  m.train();
  CHECK(m.bn->is_training());

  for (const Tensor& p : m.parameters()) {
    Tensor q = p;
    q.set_grad(Tensor::ones(p.shape(), p.dtype()));
  }
  m.zero_grad();
  for (const Tensor& p : m.parameters()) CHECK_FALSE(p.grad().defined());

  Tensor w = m.bn->weight();
  m.to(Device::cpu());
  CHECK(w.same(m.bn->weight()));
}

TEST_CASE("layers: initialisation is deterministic and follows torch's bounds") {
  Linear a(16, 8, 42), b(16, 8, 42), c(16, 8, 43);
  CHECK(same_bytes(a.weight(), b.weight()));
  CHECK(same_bytes(a.bias(), b.bias()));
  CHECK_FALSE(same_bytes(a.weight(), c.weight()));
  CHECK(a.weight().shape() == Shape{8, 16});
  CHECK(a.bias().shape() == Shape{8});
  for (double w : host(a.weight())) CHECK(std::fabs(w) <= 0.25);
  for (double w : host(a.bias())) CHECK(std::fabs(w) <= 0.25);
  MLP m1({4, 32, 1}, Activation::Gelu, 5), m2({4, 32, 1}, Activation::Gelu, 5);
  CHECK(names(m1.named_parameters()) ==
        std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"});
  CHECK(same_bytes(m1.layer(1)->weight(), m2.layer(1)->weight()));
  CHECK_FALSE(same_bytes(m1.layer(0)->weight(), MLP({4, 32, 1}, Activation::Gelu, 6).layer(0)->weight()));
  Embedding e(10, 3, 9, DType::F64);
  CHECK(e.weight().shape() == Shape{10, 3});
  Linear d(3, 2, 1, true, DType::F64);
  CHECK(d.weight().dtype() == DType::F64);
  CHECK_THROWS_AS(Linear(0, 2, 1), Error);
  CHECK_THROWS_AS(Dropout(1.0), Error);
}

TEST_CASE("layers: Linear matches a naive x W^T + b") {
  Linear lin(5, 3, 11, true, DType::F64);
  Tensor x = rand_uniform({2, 4, 5}, -1, 1, 3, 0, DType::F64);
  Tensor y = lin.forward(x);
  REQUIRE(y.shape() == Shape{2, 4, 3});
  std::vector<double> xv = host(x), w = host(lin.weight()), b = host(lin.bias()), yv = host(y);
  for (int r = 0; r < 8; ++r)
    for (int o = 0; o < 3; ++o) {
      double ref = b[o];
      for (int i = 0; i < 5; ++i) ref += xv[r * 5 + i] * w[o * 5 + i];
      CHECK(yv[r * 3 + o] == doctest::Approx(ref).epsilon(1e-12));
    }
  Linear nob(5, 3, 11, false, DType::F64);
  CHECK_FALSE(nob.bias().defined());
  CHECK(same_bytes(nob.weight(), lin.weight()));
  CHECK_THROWS_AS(lin.forward(rand_uniform({2, 4}, -1, 1, 3, 0, DType::F64)), Error);
  // Gradients reach weight and bias.
  sum(y).backward();
  CHECK(lin.weight().grad().defined());
  std::vector<double> gb = host(lin.bias().grad());
  for (double g : gb) CHECK(g == doctest::Approx(8.0));
}

TEST_CASE("layers: BatchNorm1d updates running stats in training and uses them in eval") {
  BatchNorm1d bn(3, 0.1, 1e-5, DType::F64);
  Tensor x = rand_uniform({6, 3}, -2, 3, 4, 0, DType::F64);
  std::vector<double> xv = host(x);
  bn.forward(x);
  std::vector<double> rm = host(bn.running_mean()), rv = host(bn.running_var());
  for (int c = 0; c < 3; ++c) {
    double mean = 0, var = 0;
    for (int n = 0; n < 6; ++n) mean += xv[n * 3 + c] / 6;
    for (int n = 0; n < 6; ++n) var += (xv[n * 3 + c] - mean) * (xv[n * 3 + c] - mean) / 5;  // unbiased
    CHECK(rm[c] == doctest::Approx(0.1 * mean).epsilon(1e-12));
    CHECK(rv[c] == doctest::Approx(0.9 + 0.1 * var).epsilon(1e-12));
  }
  bn.eval();
  Tensor y = bn.forward(x);
  std::vector<double> yv = host(y);
  for (int n = 0; n < 6; ++n)
    for (int c = 0; c < 3; ++c)
      CHECK(yv[n * 3 + c] == doctest::Approx((xv[n * 3 + c] - rm[c]) / std::sqrt(rv[c] + 1e-5)).epsilon(1e-12));
  // Eval leaves the running statistics alone.
  CHECK(host(bn.running_mean()) == rm);
}

TEST_CASE("layers: LayerNorm, Embedding and MLP forward") {
  LayerNorm ln(4, 1e-5, DType::F64);
  Tensor x = rand_uniform({3, 4}, -1, 1, 8, 0, DType::F64);
  std::vector<double> xv = host(x), yv = host(ln.forward(x));
  for (int r = 0; r < 3; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < 4; ++i) mean += xv[r * 4 + i] / 4;
    for (int i = 0; i < 4; ++i) var += (xv[r * 4 + i] - mean) * (xv[r * 4 + i] - mean) / 4;
    for (int i = 0; i < 4; ++i)
      CHECK(yv[r * 4 + i] == doctest::Approx((xv[r * 4 + i] - mean) / std::sqrt(var + 1e-5)).epsilon(1e-10));
  }
  Embedding emb(5, 3, 2, DType::F64);
  Tensor idx = Tensor::from_vector<int32_t>({4, 0, 4}, {3});
  std::vector<double> ev = host(emb.forward(idx)), w = host(emb.weight());
  for (int j = 0; j < 3; ++j) {
    CHECK(ev[j] == w[12 + j]);
    CHECK(ev[3 + j] == w[j]);
    CHECK(ev[6 + j] == w[12 + j]);
  }
  MLP mlp({3, 8, 2}, Activation::Relu, 1, 0.0, DType::F64);
  Tensor in = rand_uniform({5, 3}, -1, 1, 9, 0, DType::F64);
  std::vector<double> out = host(mlp.forward(in)), iv = host(in);
  std::vector<double> w0 = host(mlp.layer(0)->weight()), b0 = host(mlp.layer(0)->bias());
  std::vector<double> w1 = host(mlp.layer(1)->weight()), b1 = host(mlp.layer(1)->bias());
  for (int r = 0; r < 5; ++r)
    for (int o = 0; o < 2; ++o) {
      double acc = b1[o];
      for (int h = 0; h < 8; ++h) {
        double z = b0[h];
        for (int i = 0; i < 3; ++i) z += iv[r * 3 + i] * w0[h * 3 + i];
        acc += std::max(z, 0.0) * w1[o * 8 + h];
      }
      CHECK(out[r * 2 + o] == doctest::Approx(acc).epsilon(1e-12));
    }
}

TEST_CASE("layers: Dropout is deterministic per (seed, call) and the identity in eval") {
  Tensor x = Tensor::ones({1000});
  Dropout a(0.3, 77), b(0.3, 77), c(0.3, 78);
  Tensor a1 = a.forward(x), a2 = a.forward(x);
  Tensor b1 = b.forward(x), b2 = b.forward(x);
  CHECK(same_bytes(a1, b1));
  CHECK(same_bytes(a2, b2));
  CHECK_FALSE(same_bytes(a1, a2));                // fresh mask per call
  CHECK_FALSE(same_bytes(a1, c.forward(x)));      // per seed
  CHECK(a.stream() == 2);
  int kept = 0;
  for (double v : host(a1)) {
    CHECK((v == 0.0 || std::fabs(v - 1 / 0.7) < 1e-6));
    kept += v != 0.0;
  }
  CHECK(kept > 620);
  CHECK(kept < 780);
  // Resuming from a stream reproduces the same masks.
  Dropout r(0.3, 77);
  r.set_stream(1);
  CHECK(same_bytes(r.forward(x), a2));
  a.eval();
  CHECK(a.forward(x).same(x));
  CHECK(a.stream() == 2);
  // MLP with dropout: eval is deterministic and dropout-free.
  MLP m({4, 16, 1}, Activation::Gelu, 3, 0.5);
  Tensor in = rand_uniform({8, 4}, -1, 1, 1);
  m.eval();
  CHECK(same_bytes(m.forward(in), m.forward(in)));
  m.train();
  CHECK_FALSE(same_bytes(m.forward(in), m.forward(in)));
}

TEST_CASE("optim: learning-rate schedules") {
  LrSchedule poly{LrSchedule::Kind::Polynomial, 1e-3, 10, 110, 1e-5, 1.0};
  CHECK(lr_at(poly, 1) == doctest::Approx(1e-4));
  CHECK(lr_at(poly, 5) == doctest::Approx(5e-4));
  CHECK(lr_at(poly, 10) == doctest::Approx(1e-3));
  CHECK(lr_at(poly, 60) == doctest::Approx(1e-5 + (1e-3 - 1e-5) * 0.5));
  CHECK(lr_at(poly, 110) == doctest::Approx(1e-5));
  CHECK(lr_at(poly, 1000) == doctest::Approx(1e-5));
  LrSchedule sq = poly;
  sq.power = 2.0;
  CHECK(lr_at(sq, 60) == doctest::Approx(1e-5 + (1e-3 - 1e-5) * 0.25));
  LrSchedule cosine{LrSchedule::Kind::Cosine, 2e-3, 0, 100, 0.0, 1.0};
  CHECK(lr_at(cosine, 1) == doctest::Approx(1e-3 * (1 + std::cos(kPi * 0.01))));
  CHECK(lr_at(cosine, 50) == doctest::Approx(1e-3));
  CHECK(lr_at(cosine, 75) == doctest::Approx(1e-3 * (1 + std::cos(kPi * 0.75))));
  CHECK(lr_at(cosine, 100) == 0.0);
  LrSchedule constant{LrSchedule::Kind::Constant, 3e-4, 4, 0, 0.0, 1.0};
  CHECK(lr_at(constant, 2) == doctest::Approx(1.5e-4));
  CHECK(lr_at(constant, 4000) == doctest::Approx(3e-4));
  // Monotone: up during warmup, down after.
  for (int64_t s = 2; s <= 200; ++s) {
    if (s <= 10) CHECK(lr_at(poly, s) > lr_at(poly, s - 1));
    else CHECK(lr_at(poly, s) <= lr_at(poly, s - 1));
  }
  CHECK_THROWS_AS(lr_at(poly, 0), Error);
  LrSchedule bad = poly;
  bad.total_steps = 10;
  CHECK_THROWS_AS(lr_at(bad, 1), Error);
  bad = poly;
  bad.warmup_steps = -1;
  CHECK_THROWS_AS(validate(bad), Error);
}

TEST_CASE("optim: clip_grad_norm returns the global norm and scales only when above it") {
  Tensor a = Tensor::zeros({2}).set_requires_grad(true);
  Tensor b = Tensor::zeros({2, 2}, DType::F64).set_requires_grad(true);
  Tensor c = Tensor::zeros({3}).set_requires_grad(true);  // no grad: ignored
  a.set_grad(Tensor::from_vector<float>({3, 0}, {2}));
  b.set_grad(Tensor::from_vector<double>({0, 4, 0, 12}, {2, 2}));
  double n = clip_grad_norm({a, b, c}, 100.0);
  CHECK(n == doctest::Approx(13.0));
  CHECK(a.grad().to_vector<float>() == std::vector<float>{3, 0});  // untouched
  n = clip_grad_norm({a, b, c}, 1.3);
  CHECK(n == doctest::Approx(13.0));
  CHECK(a.grad().to_vector<float>()[0] == doctest::Approx(0.3).epsilon(1e-5));
  CHECK(b.grad().to_vector<double>()[3] == doctest::Approx(1.2).epsilon(1e-6));
  CHECK(clip_grad_norm({a, b, c}, 10.0) == doctest::Approx(1.3).epsilon(1e-6));
  b.set_grad(Tensor::from_vector<double>({0, NAN, 0, 1}, {2, 2}));
  CHECK(std::isnan(clip_grad_norm({a, b}, 1.0)));
  CHECK(a.grad().to_vector<float>()[0] == doctest::Approx(0.3).epsilon(1e-5));
  CHECK_THROWS_AS(clip_grad_norm({a}, 0.0), Error);
}

TEST_CASE("optim: AdamW decays matrices only, skips parameters without gradients, keeps per-parameter steps") {
  Linear lin(3, 2, 1, true, DType::F64);
  Tensor frozen = Tensor::ones({4}, DType::F64).set_requires_grad(true);
  NamedTensors params = lin.named_parameters("lin");
  params.emplace_back("frozen", frozen);
  AdamWOptions opt;
  opt.lr = 0.1;
  opt.weight_decay = 0.5;
  AdamW adam(params, opt);
  REQUIRE(adam.slots().size() == 3);
  CHECK(adam.slots()[0].decay);        // lin.weight (2, 3)
  CHECK_FALSE(adam.slots()[1].decay);  // lin.bias (2)
  std::vector<double> w0 = host(lin.weight()), b0 = host(lin.bias());
  Tensor W = lin.weight(), B = lin.bias();
  W.set_grad(Tensor::full({2, 3}, 0.5, DType::F64));
  B.set_grad(Tensor::full({2}, -2.0, DType::F64));
  adam.step();
  // First step with a constant gradient moves every element by lr * sign(g) (plus decoupled decay).
  std::vector<double> w1 = host(lin.weight()), b1 = host(lin.bias());
  for (size_t i = 0; i < w0.size(); ++i) CHECK(w1[i] == doctest::Approx(w0[i] * (1 - 0.05) - 0.1).epsilon(1e-6));
  for (size_t i = 0; i < b0.size(); ++i) CHECK(b1[i] == doctest::Approx(b0[i] + 0.1).epsilon(1e-6));
  CHECK(host(frozen) == std::vector<double>(4, 1.0));
  CHECK(adam.slots()[0].step == 1);
  CHECK(adam.slots()[2].step == 0);
  adam.step(0.01);
  CHECK(adam.lr() == 0.01);
  CHECK(adam.slots()[1].step == 2);

  // Custom predicate: decay nothing.
  AdamW none(params, opt, [](const std::string&, const Tensor&) { return false; });
  for (const auto& s : none.slots()) CHECK_FALSE(s.decay);

  // State round trip through state_tensors.
  std::map<std::string, Tensor> st = adam.state_tensors();
  CHECK(st.count("optim.m.lin.weight") == 1);
  CHECK(st.count("optim.step.frozen") == 1);
  AdamW fresh(params, opt);
  fresh.load_state_tensors(st);
  CHECK(fresh.slots()[1].step == 2);
  CHECK(same_bytes(fresh.slots()[0].v, adam.slots()[0].v));
  st.erase("optim.v.lin.bias");
  try {
    fresh.load_state_tensors(st);
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("optim.v.lin.bias") != std::string::npos);
  }
  adam.zero_grad();
  CHECK_FALSE(lin.weight().grad().defined());
  CHECK_THROWS_AS(AdamW(NamedTensors{{"a", frozen}, {"a", frozen}}), Error);
}
