// layers/shift_model + layers/shift_loss: config presets and JSON, geometric properties of the model
// (rotation/translation invariance of shifts, equivariance of the coordinate head, permutation
// equivariance, padding independence), solvent conditioning, deterministic dropout, gradients reaching
// every parameter, the loss against hand computations and on empty target sets, and a tiny overfit.
// Batches are built by hand (ShiftBatch is plain tensors), so nothing here needs the chemistry library.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "engine/rng.h"
#include "engine/thread_pool.h"
#include "kernels/ops.h"
#include "layers/optim.h"
#include "layers/shift_loss.h"
#include "layers/shift_model.h"
#include "tests/test_util.h"

using namespace larmor;

namespace {

using test::make_batch;  // tests/test_util.h: hand-built batches of random molecules
using test::Mol;
using test::random_mol;

ShiftTargets targets(const std::vector<int64_t>& index, const std::vector<float>& target, const std::vector<int32_t>& offsets) {
  ShiftTargets t;
  t.index = Tensor::from_vector<int64_t>(index, {static_cast<int64_t>(index.size())});
  t.target = Tensor::from_vector<float>(target, {static_cast<int64_t>(target.size())});
  t.offsets = Tensor::from_vector<int32_t>(offsets, {static_cast<int64_t>(offsets.size())});
  return t;
}

ShiftModelConfig tiny_config() { return test::tiny_shift_config(16, 0.1); }  // the default dropout

// Rotation matrix from a (normalised) random quaternion, row-major.
std::array<double, 9> random_rotation(uint64_t seed) {
  std::vector<double> q = rand_normal({4}, 0, 1, seed, 0, DType::F64).to_vector<double>();
  double n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  double w = q[0] / n, x = q[1] / n, y = q[2] / n, z = q[3] / n;
  return {1 - 2 * (y * y + z * z), 2 * (x * y - z * w),     2 * (x * z + y * w),
          2 * (x * y + z * w),     1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
          2 * (x * z - y * w),     2 * (y * z + x * w),     1 - 2 * (x * x + y * y)};
}

Mol transformed(const Mol& m, const std::array<double, 9>& R, const std::array<double, 3>& t) {
  Mol o = m;
  for (size_t i = 0; i < m.tokens.size(); ++i)
    for (int r = 0; r < 3; ++r) {
      double v = t[r];
      for (int k = 0; k < 3; ++k) v += R[r * 3 + k] * m.xyz[i * 3 + k];
      o.xyz[i * 3 + r] = v;
    }
  return o;
}

std::vector<float> f32(const Tensor& t) { return t.to(DType::F32).to_vector<float>(); }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

bool all_finite(const Tensor& t) {
  for (float v : f32(t))
    if (!std::isfinite(v)) return false;
  return true;
}

}  // namespace

TEST_CASE("ShiftModelConfig: presets, validation and JSON round trip") {
  ShiftModelConfig s = ShiftModelConfig::small(), l = ShiftModelConfig::large();
  CHECK(l.layers == 15);
  CHECK(l.dim == 512);
  CHECK(l.heads == 64);
  CHECK(l.ffn == 2048);
  CHECK(l.kernels == 128);
  CHECK(l.head_dim() == 8);
  CHECK(s.vocab_size == 31);
  CHECK(s.num_solvents == 8);
  s.validate();
  l.validate();
  CHECK(ShiftModelConfig::from_json(s.to_json()) == s);
  CHECK(ShiftModelConfig::from_json(l.to_json()) == l);
  ShiftModelConfig c = tiny_config();
  c.nuclei = {false, true, false, true};
  c.solvent_conditioning = false;
  c.attention_dropout = 0.05;
  CHECK(ShiftModelConfig::from_json(c.to_json()) == c);
  CHECK(ShiftModelConfig::from_json(R"({"layers": 3})").layers == 3);
  CHECK_THROWS_AS(ShiftModelConfig::from_json(R"({"layres": 3})"), Error);
  CHECK_THROWS_AS(ShiftModelConfig::from_json(R"({"nuclei": ["2H"]})"), Error);
  CHECK_THROWS_AS(ShiftModelConfig::from_json(R"({"dim": "wide"})"), Error);
  CHECK_THROWS_AS(ShiftModelConfig::from_json(R"({"dim": 30, "heads": 4})"), Error);
  CHECK_THROWS_AS(ShiftModelConfig::from_json("not json"), Error);
  ShiftModelConfig bad = tiny_config();
  bad.dropout = 1.0;
  CHECK_THROWS_AS(ShiftModel(bad, 1), Error);
}

TEST_CASE("ShiftModel: output shapes, parameter names and bad input") {
  ShiftModel model(tiny_config(), 7);
  model.eval();
  ShiftBatch b = make_batch({random_mol(5, 1), random_mol(3, 2)});
  ShiftOutput o = model.forward(b);
  CHECK(o.shifts.shape() == Shape{2, 7, 4});
  CHECK(o.pair.shape() == Shape{2, 4, 7, 7});
  CHECK(o.delta_pair.shape() == Shape{2, 7, 7, 4});
  CHECK(o.hidden.shape() == Shape{2, 7, 16});
  CHECK(model.coordinate_head(o, b).shape() == Shape{2, 7, 3});
  CHECK(model.distance_head(o).shape() == Shape{2, 7, 7});
  CHECK(model.token_head(o).shape() == Shape{2, 7, 31});
  CHECK(all_finite(o.shifts));
  CHECK(all_finite(o.pair));
  // delta_pair is 0 on padded pairs (row 1 has 3 atoms: tokens 5 and 6 are padding).
  std::vector<float> dp = f32(o.delta_pair);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 5; j < 7; ++j)
      for (int64_t h = 0; h < 4; ++h) {
        CHECK(dp[(((1 * 7 + i) * 7 + j) * 4) + h] == 0.0f);
        CHECK(dp[(((1 * 7 + j) * 7 + i) * 4) + h] == 0.0f);
      }
  auto st = model.state_dict();
  for (const char* name : {"tokens.weight", "solvent.weight", "edge_mul.weight", "edge_bias.weight", "gbf_mean",
                           "layers.1.qkv.weight", "final_ln.weight", "head_1H_fc1.weight", "head_31P_fc2.bias",
                           "coord_fc1.weight", "dist_ln.weight", "mlm_bias"})
    CHECK_MESSAGE(st.count(name) == 1, name);
  CHECK(f32(st.at("edge_mul.weight")) == std::vector<float>(31 * 31, 1.0f));
  CHECK(f32(st.at("edge_bias.weight")) == std::vector<float>(31 * 31, 0.0f));
  CHECK(shift_model_decay("layers.0.qkv.weight", st.at("layers.0.qkv.weight")));
  CHECK(!shift_model_decay("layers.0.qkv.bias", st.at("layers.0.qkv.bias")));
  CHECK(!shift_model_decay("edge_mul.weight", st.at("edge_mul.weight")));
  CHECK(!shift_model_decay("tokens.weight", st.at("tokens.weight")));

  ShiftBatch bad = b;
  bad.tokens = Tensor::from_vector<int32_t>(std::vector<int32_t>(14, 31), {2, 7});
  CHECK_THROWS_AS(model.forward(bad), Error);
  bad = b;
  bad.coords = Tensor::zeros({2, 7, 2});
  CHECK_THROWS_AS(model.forward(bad), Error);
  bad = b;
  bad.solvent = Tensor::from_vector<int32_t>({0, 8}, {2});
  CHECK_THROWS_AS(model.forward(bad), Error);
  bad = b;
  bad.key_mask = Tensor::ones({2, 6}, DType::I32);
  CHECK_THROWS_AS(model.forward(bad), Error);
}

TEST_CASE("ShiftModel: shifts are invariant to rotation + translation; coordinate head is equivariant") {
  ShiftModel model(tiny_config(), 11);
  model.eval();
  std::vector<Mol> mols = {random_mol(9, 3), random_mol(6, 4)};
  ShiftBatch b = make_batch(mols);
  ShiftOutput o = model.forward(b);
  std::vector<float> x_out = f32(model.coordinate_head(o, b));
  std::vector<float> d_out = f32(model.distance_head(o));
  for (uint64_t trial = 0; trial < 3; ++trial) {
    auto R = random_rotation(100 + trial);
    std::array<double, 3> t{1.5 - trial, 0.7 * trial, -2.0};
    std::vector<Mol> moved;
    for (auto& m : mols) moved.push_back(transformed(m, R, t));
    ShiftBatch b2 = make_batch(moved);
    ShiftOutput o2 = model.forward(b2);
    CHECK(max_abs_diff(f32(o.shifts), f32(o2.shifts)) < 1e-5);
    CHECK(max_abs_diff(f32(o.pair), f32(o2.pair)) < 1e-4);
    CHECK(max_abs_diff(d_out, f32(model.distance_head(o2))) < 1e-5);
    // coordinate head: out(R x + t) = R out(x) + t on atom rows
    std::vector<float> x2 = f32(model.coordinate_head(o2, b2));
    const int64_t N = b.seq_len();
    double worst = 0;
    for (size_t bb = 0; bb < mols.size(); ++bb)
      for (size_t i = 0; i < mols[bb].tokens.size(); ++i) {
        const float* p = &x_out[(bb * N + 1 + i) * 3];
        for (int r = 0; r < 3; ++r) {
          double want = t[r];
          for (int k = 0; k < 3; ++k) want += R[r * 3 + k] * p[k];
          worst = std::max(worst, std::fabs(want - x2[(bb * N + 1 + i) * 3 + r]));
        }
      }
    CHECK(worst < 2e-5);
  }
  // the coordinate head actually moves atoms (a non-trivial equivariance check)
  CHECK(max_abs_diff(x_out, f32(b.coords)) > 1e-4);
}

TEST_CASE("ShiftModel: permuting atoms permutes shifts; padding does not change predictions") {
  ShiftModel model(tiny_config(), 12);
  model.eval();
  Mol m = random_mol(8, 5);
  m.solvent = 2;
  ShiftOutput o = model.forward(make_batch({m}));
  std::vector<float> s = f32(o.shifts);  // (1, 10, 4)

  std::vector<size_t> perm = {3, 0, 7, 5, 1, 6, 2, 4};  // new atom i = old atom perm[i]
  Mol pm = m;
  for (size_t i = 0; i < perm.size(); ++i) {
    pm.tokens[i] = m.tokens[perm[i]];
    for (int k = 0; k < 3; ++k) pm.xyz[i * 3 + k] = m.xyz[perm[i] * 3 + k];
  }
  std::vector<float> sp = f32(model.forward(make_batch({pm})).shifts);
  double worst = 0;
  for (size_t i = 0; i < perm.size(); ++i)
    for (int n = 0; n < 4; ++n) worst = std::max(worst, std::fabs(double(sp[(1 + i) * 4 + n]) - s[(1 + perm[i]) * 4 + n]));
  CHECK(worst < 1e-5);
  for (int64_t tok : {0, 9})  // [CLS] and [SEP]
    for (int n = 0; n < 4; ++n) CHECK(std::fabs(sp[tok * 4 + n] - s[tok * 4 + n]) < 1e-5);

  // Batched with a longer molecule (and extra padding): row 0 predicts the same.
  Mol longer = random_mol(13, 6);
  longer.solvent = 1;
  ShiftBatch big = make_batch({m, longer}, 17);
  std::vector<float> sb = f32(model.forward(big).shifts);  // (2, 17, 4)
  worst = 0;
  for (int64_t i = 0; i < 10; ++i)
    for (int n = 0; n < 4; ++n) worst = std::max(worst, std::fabs(double(sb[i * 4 + n]) - s[i * 4 + n]));
  CHECK(worst < 1e-5);
}

TEST_CASE("ShiftModel: the solvent embedding matters only with conditioning on") {
  std::vector<Mol> mols = {random_mol(6, 7), random_mol(6, 7)};
  mols[0].solvent = 1;
  mols[1].solvent = 3;
  for (bool on : {true, false}) {
    ShiftModelConfig c = tiny_config();
    c.solvent_conditioning = on;
    ShiftModel model(c, 13);
    model.eval();
    CHECK(model.state_dict().count("solvent.weight") == (on ? 1u : 0u));
    std::vector<float> s = f32(model.forward(make_batch(mols)).shifts);  // (2, 8, 4)
    std::vector<float> r0(s.begin(), s.begin() + 32), r1(s.begin() + 32, s.end());
    if (on)
      CHECK(max_abs_diff(r0, r1) > 1e-3);
    else
      CHECK(max_abs_diff(r0, r1) == 0.0);
    if (!on) {  // the solvent tensor is not even needed
      ShiftBatch b = make_batch(mols);
      b.solvent = Tensor();
      CHECK(max_abs_diff(f32(model.forward(b).shifts), s) == 0.0);
    }
  }
}

TEST_CASE("ShiftModel: dropout is deterministic per (seed, step) and off in eval") {
  ShiftModelConfig c = tiny_config();
  c.attention_dropout = 0.2;
  c.activation_dropout = 0.1;
  c.head_dropout = 0.1;
  ShiftBatch b = make_batch({random_mol(7, 8), random_mol(5, 9)});
  ShiftModel a(c, 21), a2(c, 21);
  std::vector<float> s1 = f32(a.forward(b).shifts), s2 = f32(a.forward(b).shifts);
  CHECK(a.dropout_step() == 2);
  CHECK(max_abs_diff(s1, s2) > 1e-4);               // fresh masks each step
  CHECK(max_abs_diff(s1, f32(a2.forward(b).shifts)) == 0.0);  // same seed, same step
  a.set_dropout_step(1);
  CHECK(max_abs_diff(s2, f32(a.forward(b).shifts)) == 0.0);   // resumable
  a.eval();
  std::vector<float> e1 = f32(a.forward(b).shifts);
  CHECK(a.dropout_step() == 2);
  CHECK(max_abs_diff(e1, f32(a.forward(b).shifts)) == 0.0);

  // With one layer and only attention dropout, the last logits do not depend on the dropout mask: the
  // composed training path (matmul/softmax/dropout) must give the fused op's logits.
  ShiftModelConfig one = tiny_config();
  one.layers = 1;
  one.emb_dropout = one.dropout = 0;
  one.attention_dropout = 0.3;
  ShiftModel m1(one, 22);
  std::vector<float> p_train = f32(m1.forward(b).pair), s_train = f32(m1.forward(b).shifts);
  m1.eval();
  ShiftOutput oe = m1.forward(b);
  CHECK(max_abs_diff(p_train, f32(oe.pair)) < 1e-5);
  CHECK(max_abs_diff(s_train, f32(oe.shifts)) > 1e-4);
}

TEST_CASE("shift_loss: matches hand computation; parts; Huber; weights") {
  ShiftModel model(tiny_config(), 31);
  model.eval();
  ShiftBatch b = make_batch({random_mol(6, 10), random_mol(4, 11)});  // N = 8
  // 13C assigned: three single atoms; 1H assigned: one pair (diastereotopic) of row 1; 13C unassigned:
  // one set of 3 in row 0.
  b.assigned[1] = targets({1, 2, 8 + 3}, {0.5f, -1.0f, 2.0f}, {0, 1, 2, 3});
  b.assigned[0] = targets({8 + 1, 8 + 2}, {0.3f, -0.2f}, {0, 2});
  b.unassigned[1] = targets({3, 4, 5}, {1.0f, -0.5f, 0.0f}, {0, 3});
  ShiftOutput o = model.forward(b);
  std::vector<float> s = f32(o.shifts);  // (2, 8, 4)
  auto pred = [&](int64_t flat, int n) { return static_cast<double>(s[flat * 4 + n]); };
  auto sorted_l1 = [](std::vector<double> p, std::vector<double> t) {
    std::sort(p.begin(), p.end());
    std::sort(t.begin(), t.end());
    double acc = 0;
    for (size_t i = 0; i < p.size(); ++i) acc += std::fabs(p[i] - t[i]);
    return acc;
  };
  double c_atom = (std::fabs(pred(1, 1) - 0.5) + std::fabs(pred(2, 1) + 1.0) + std::fabs(pred(11, 1) - 2.0)) / 3;
  double h_atom = sorted_l1({pred(9, 0), pred(10, 0)}, {0.3, -0.2}) / 2;
  double c_set = sorted_l1({pred(3, 1), pred(4, 1), pred(5, 1)}, {1.0, -0.5, 0.0}) / 3;

  ShiftLossOptions opt;
  opt.unassigned_weight = 16;
  ShiftLossParts parts;
  Tensor loss = shift_loss(o, b, opt, &parts);
  CHECK(loss.dim() == 0);
  CHECK(loss.item() == doctest::Approx(c_atom + h_atom + 16 * c_set).epsilon(1e-5));
  CHECK(parts.total == doctest::Approx(loss.item()));
  CHECK(parts.assigned[1] == doctest::Approx(c_atom).epsilon(1e-5));
  CHECK(parts.assigned[0] == doctest::Approx(h_atom).epsilon(1e-5));
  CHECK(parts.unassigned[1] == doctest::Approx(c_set).epsilon(1e-5));
  CHECK(parts.unassigned[0] == 0.0);
  CHECK(parts.assigned_count == std::array<int64_t, 4>{2, 3, 0, 0});
  CHECK(parts.unassigned_count == std::array<int64_t, 4>{0, 3, 0, 0});

  opt.nucleus_weight = {2.0, 0.5, 1.0, 1.0};
  opt.unassigned_weight = 4;
  CHECK(shift_loss(o, b, opt).item() == doctest::Approx(2 * h_atom + 0.5 * (c_atom + 4 * c_set)).epsilon(1e-5));

  // Huber with a delta that straddles the residuals.
  ShiftLossOptions hub;
  hub.kind = SetLossKind::Huber;
  hub.huber_delta = 0.7;
  auto huber = [&](double d) { return std::fabs(d) <= 0.7 ? 0.5 * d * d : 0.7 * (std::fabs(d) - 0.35); };
  double c_hub = (huber(pred(1, 1) - 0.5) + huber(pred(2, 1) + 1.0) + huber(pred(11, 1) - 2.0)) / 3;
  ShiftBatch only_c = b;
  only_c.assigned[0] = ShiftTargets{};
  only_c.unassigned[1] = ShiftTargets{};
  CHECK(shift_loss(o, only_c, hub).item() == doctest::Approx(c_hub).epsilon(1e-5));

  // Inconsistent targets are errors, not crashes.
  ShiftBatch bad = b;
  bad.assigned[1] = targets({1, 2}, {0.5f, -1.0f, 2.0f}, {0, 3});
  CHECK_THROWS_AS(shift_loss(o, bad, opt), Error);
  bad.assigned[1] = targets({1, 2, 99}, {0.5f, -1.0f, 2.0f}, {0, 3});
  CHECK_THROWS_AS(shift_loss(o, bad, opt), Error);
  bad.assigned[1] = targets({1, 2, 3}, {0.5f, -1.0f, 2.0f}, {0, 2});
  CHECK_THROWS_AS(shift_loss(o, bad, opt), Error);
}

TEST_CASE("shift_loss: empty target sets and head-less nuclei give 0 or skip, never NaN") {
  ShiftModelConfig c = tiny_config();
  c.nuclei = {true, true, false, false};
  ShiftModel model(c, 32);
  ShiftBatch b = make_batch({random_mol(5, 12)});
  ShiftLossParts parts;
  ShiftOutput o = model.forward(b);
  Tensor loss = shift_loss(o, b, ShiftLossOptions{}, &parts);
  CHECK(loss.item() == 0.0);
  loss.backward();
  for (auto& [name, p] : model.named_parameters())
    if (p.grad().defined()) CHECK_MESSAGE(all_finite(p.grad()), name);
  model.zero_grad();

  // Zero-length (but defined) target tensors, and 19F targets without a 19F head: skipped.
  b.assigned[1] = targets({}, {}, {0});
  b.unassigned[0] = targets({}, {}, {0, 0});
  b.assigned[2] = targets({2}, {1.0f}, {0, 1});
  o = model.forward(b);
  loss = shift_loss(o, b, ShiftLossOptions{}, &parts);
  CHECK(loss.item() == 0.0);
  CHECK(parts.assigned_count[2] == 1);
  CHECK(parts.assigned[2] == 0.0);
  loss.backward();
  CHECK(std::isfinite(parts.total));
}

TEST_CASE("ShiftModel: every parameter that should learn gets a finite, non-zero gradient") {
  ShiftModelConfig c = tiny_config();
  c.attention_dropout = 0.1;
  ShiftModel model(c, 41);
  std::vector<Mol> mols = {random_mol(7, 13), random_mol(5, 14)};
  mols[0].solvent = 1;
  mols[1].solvent = 4;
  ShiftBatch b = make_batch(mols);  // N = 9
  for (int n = 0; n < 4; ++n) {
    b.assigned[n] = targets({1 + n, 9 + 1 + n}, {0.5f, -0.5f}, {0, 1, 2});
    b.unassigned[n] = targets({2, 3, 4}, {0.1f * n, 1.0f, -1.0f}, {0, 3});
  }
  ShiftOutput o = model.forward(b);
  shift_loss(o, b, ShiftLossOptions{}).backward();
  auto is_pretrain_head = [](const std::string& n) {
    return n.rfind("coord_", 0) == 0 || n.rfind("dist_", 0) == 0 || n.rfind("mlm_", 0) == 0;
  };
  for (auto& [name, p] : model.named_parameters()) {
    if (is_pretrain_head(name)) {
      CHECK_MESSAGE(!p.grad().defined(), name);
      continue;
    }
    REQUIRE_MESSAGE(p.grad().defined(), name);
    CHECK_MESSAGE(all_finite(p.grad()), name);
    std::vector<float> g = f32(p.grad());
    double norm = 0;
    for (float v : g) norm += std::fabs(v);
    CHECK_MESSAGE(norm > 0, name);
  }
  model.zero_grad();

  // The pretraining heads: a loss on coordinates, distances and token logits reaches them too.
  o = model.forward(b);
  Tensor l = add(add(sum(square(model.coordinate_head(o, b))), sum(square(model.distance_head(o)))),
                 sum(square(model.token_head(o))));
  l.backward();
  for (auto& [name, p] : model.named_parameters()) {
    if (!is_pretrain_head(name)) continue;
    REQUIRE_MESSAGE(p.grad().defined(), name);
    CHECK_MESSAGE(all_finite(p.grad()), name);
  }
}

TEST_CASE("ShiftModel: analytic gradients match finite differences (f64, smooth loss)") {
  ShiftModelConfig c = tiny_config();
  c.emb_dropout = c.dropout = 0;
  ShiftModel model(c, 45, DType::F64);
  std::vector<Mol> mols = {random_mol(5, 17), random_mol(4, 18)};
  mols[0].solvent = 2;
  ShiftBatch b = make_batch(mols);  // N = 7
  b.assigned[1] = targets({1, 2, 7 + 1}, {0.5f, -0.5f, 1.0f}, {0, 1, 2, 3});
  b.unassigned[0] = targets({3, 4, 5}, {0.2f, 1.0f, -1.0f}, {0, 3});
  ShiftLossOptions opt;
  opt.kind = SetLossKind::Huber;
  opt.huber_delta = 100;  // quadratic everywhere: smooth
  opt.unassigned_weight = 2;
  auto loss_value = [&] {
    NoGradGuard ng;
    return shift_loss(model.forward(b), b, opt).item();
  };
  shift_loss(model.forward(b), b, opt).backward();
  auto st = model.state_dict();
  int checked = 0;
  for (const char* name : {"gbf_mean", "gbf_std", "edge_mul.weight", "edge_bias.weight", "solvent.weight", "tokens.weight",
                           "gbf_fc1.weight", "layers.0.qkv.weight", "layers.1.fc2.bias", "emb_ln.weight", "head_13C_fc1.weight"}) {
    Tensor p = st.at(name);
    std::vector<double> g = p.grad().to_vector<double>();
    for (size_t e : test::largest_gradient_entries(g, 3)) {
      const double fd = test::central_difference(p.data<double>() + e, loss_value);
      CHECK_MESSAGE(std::fabs(fd - g[e]) <= 1e-5 + 1e-4 * std::fabs(g[e]), name << "[" << e << "]: analytic " << g[e] << " vs numeric " << fd);
      ++checked;
    }
  }
  CHECK(checked >= 30);
}

TEST_CASE("ShiftModel: a tiny config overfits a 2-molecule batch (f64)") {
  ShiftModelConfig c = tiny_config();
  c.emb_dropout = c.dropout = 0;
  ShiftModel model(c, 51, DType::F64);
  ShiftBatch b = make_batch({random_mol(8, 15), random_mol(6, 16)});  // N = 10
  // Targets: a function of each atom's neighbourhood (a local density), like a shift is.
  std::vector<int32_t> tok = b.tokens.to_vector<int32_t>(), km = b.key_mask.to_vector<int32_t>();
  std::vector<float> xyz = b.coords.to_vector<float>();
  auto density = [&](int64_t i) {
    const int64_t row = i / 10;
    double acc = 0;
    for (int64_t j = row * 10; j < row * 10 + 10; ++j) {
      if (j == i || km[j] == 0 || tok[j] <= 2) continue;
      double d2 = 0;
      for (int k = 0; k < 3; ++k) d2 += std::pow(xyz[i * 3 + k] - xyz[j * 3 + k], 2);
      acc += std::exp(-d2 / 2);
    }
    return static_cast<float>(acc - 1.0);
  };
  std::vector<int64_t> ci, hi;
  std::vector<float> ct, ht;
  for (int64_t i = 0; i < 20; ++i) {
    if (tok[i] == 4) {
      ci.push_back(i);
      ct.push_back(density(i));
    } else if (tok[i] == 8) {
      hi.push_back(i);
      ht.push_back(-density(i));
    }
  }
  REQUIRE(ci.size() >= 2);
  REQUIRE(hi.size() >= 2);
  std::vector<int32_t> coff(ci.size() + 1);
  std::iota(coff.begin(), coff.end(), 0);
  b.assigned[1] = targets(ci, ct, coff);
  b.unassigned[0] = targets(hi, ht, {0, static_cast<int32_t>(hi.size())});
  ShiftLossOptions opt;
  opt.unassigned_weight = 1;
  AdamW adam(model.named_parameters(), {.lr = 3e-3, .weight_decay = 0.0});
  double first = 0, last = 0;
  for (int step = 0; step < 250; ++step) {
    adam.zero_grad();
    Tensor loss = shift_loss(model.forward(b), b, opt);
    if (step == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    adam.step(step < 200 ? 3e-3 : 1e-3);
  }
  CHECK_MESSAGE(last < first / 10, "overfit: loss " << first << " -> " << last);
}

// Timing of small() on a realistic batch; skipped by default (run with --no-skip -tc="*step time*"; set
// CFG to a ShiftModelConfig JSON to time another size).
TEST_CASE("ShiftModel: small() training step time" * doctest::skip()) {
  ShiftModelConfig c = ShiftModelConfig::small();
  if (std::getenv("CFG")) c = ShiftModelConfig::from_json(std::getenv("CFG"));
  ShiftModel model(c, 61);
  std::vector<Mol> mols;
  for (int i = 0; i < 20; ++i) mols.push_back(random_mol(30 + (i * 7) % 9, 200 + i));  // 30..38 atoms (NMR8K mean: 34 with H)
  ShiftBatch b = make_batch(mols);
  const int64_t N = b.seq_len();
  std::vector<int32_t> tok = b.tokens.to_vector<int32_t>();
  std::vector<int64_t> ci;
  std::vector<float> ct;
  for (int64_t i = 0; i < 20 * N; ++i)
    if (tok[i] == 4) {
      ci.push_back(i);
      ct.push_back(0.1f * static_cast<float>(i % 13) - 0.6f);
    }
  std::vector<int32_t> coff(ci.size() + 1);
  std::iota(coff.begin(), coff.end(), 0);
  b.assigned[1] = targets(ci, ct, coff);
  AdamW adam(model.named_parameters(), {.lr = 1e-4});
  const int warm = 2, steps = 10;
  double total = 0, best = 1e9;
  for (int s = 0; s < warm + steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    adam.zero_grad();
    Tensor loss = shift_loss(model.forward(b), b, ShiftLossOptions{});
    loss.backward();
    clip_grad_norm(model.parameters(), 1.0);
    adam.step();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warm) total += dt, best = std::min(best, dt);
  }
  std::printf("small(): %lld parameters, B = 20, N = %lld, training step %.1f ms mean, %.1f ms best (%d threads)\n",
              static_cast<long long>(model.num_parameters()), static_cast<long long>(N), 1000 * total / steps,
              1000 * best, num_threads());
}

TEST_CASE("ShiftModel: chemistry inputs (atom features, graph pairs)") {
  ShiftModelConfig plain = tiny_config();
  ShiftModelConfig chem = plain;
  chem.atom_features = true;
  chem.graph_pairs = true;
  CHECK(ShiftModelConfig::from_json(chem.to_json()) == chem);
  CHECK_FALSE(ShiftModelConfig::from_json(plain.to_json()).atom_features);

  Mol m = random_mol(8, 21);
  m.solvent = 1;
  test::add_random_chem(m, 22);
  Mol other = random_mol(5, 23);
  test::add_random_chem(other, 24);
  const ShiftBatch b = make_batch({m, other}, 12);

  // Both tables start at zero: a model with them computes what the same weights compute without them, so a
  // trained model can be continued with them.
  ShiftModel base(plain, 31), with(chem, 31);
  base.eval();
  with.eval();
  std::map<std::string, Tensor> state = with.state_dict();
  CHECK(state.count("atom_chem.weight") == 1);
  CHECK(state.count("graph_pair.weight") == 1);
  CHECK(max_abs_diff(f32(base.forward(b).shifts), f32(with.forward(b).shifts)) < 1e-6);

  // With non-zero tables the inputs matter, and the model stays invariant / equivariant.
  {
    NoGradGuard ng;
    state.at("atom_chem.weight").copy_(rand_normal({kShiftAtomFeatureRows, chem.dim}, 0, 0.5, 41));
    state.at("graph_pair.weight").copy_(rand_normal({kShiftPairTypes, chem.heads}, 0, 0.5, 42));
  }
  const std::vector<float> s = f32(with.forward(make_batch({m})).shifts);  // (1, 10, 4)
  CHECK(max_abs_diff(s, f32(base.forward(make_batch({m})).shifts)) > 1e-3);
  Mol changed = m;
  changed.feats[3 * kShiftAtomFeatures + 1] = kShiftAtomFeatureOffsets[1] + (m.feats[3 * kShiftAtomFeatures + 1] == 8 ? 2 : 1);
  CHECK(max_abs_diff(s, f32(with.forward(make_batch({changed})).shifts)) > 1e-4);
  Mol repaired = m;
  repaired.pairs[1 * 8 + 2] = repaired.pairs[2 * 8 + 1] = m.pairs[1 * 8 + 2] == 6 ? 7 : 6;
  CHECK(max_abs_diff(s, f32(with.forward(make_batch({repaired})).shifts)) > 1e-4);

  auto R = random_rotation(55);
  CHECK(max_abs_diff(s, f32(with.forward(make_batch({transformed(m, R, {0.5, -1.0, 2.0})})).shifts)) < 1e-5);

  std::vector<size_t> perm = {3, 0, 7, 5, 1, 6, 2, 4};  // new atom i = old atom perm[i]
  Mol pm = m;
  for (size_t i = 0; i < perm.size(); ++i) {
    pm.tokens[i] = m.tokens[perm[i]];
    for (int k = 0; k < 3; ++k) pm.xyz[i * 3 + k] = m.xyz[perm[i] * 3 + k];
    for (int k = 0; k < kShiftAtomFeatures; ++k) pm.feats[i * kShiftAtomFeatures + k] = m.feats[perm[i] * kShiftAtomFeatures + k];
    for (size_t j = 0; j < perm.size(); ++j) pm.pairs[i * 8 + j] = m.pairs[perm[i] * 8 + perm[j]];
  }
  const std::vector<float> sp = f32(with.forward(make_batch({pm})).shifts);
  double worst = 0;
  for (size_t i = 0; i < perm.size(); ++i)
    for (int n = 0; n < 4; ++n) worst = std::max(worst, std::fabs(double(sp[(1 + i) * 4 + n]) - s[(1 + perm[i]) * 4 + n]));
  CHECK(worst < 1e-5);

  // Padding rows of a longer batch do not change row 0.
  const std::vector<float> sb = f32(with.forward(make_batch({m, other}, 15)).shifts);  // (2, 15, 4)
  worst = 0;
  for (int64_t i = 0; i < 10; ++i)
    for (int n = 0; n < 4; ++n) worst = std::max(worst, std::fabs(double(sb[i * 4 + n]) - s[i * 4 + n]));
  CHECK(worst < 1e-5);

  // The model asks for the inputs it uses, and rejects ids outside their tables.
  ShiftBatch bare = b;
  bare.pair_types = Tensor();
  CHECK_THROWS_WITH_AS(with.forward(bare), doctest::Contains("pair_types"), Error);
  ShiftBatch bad = b;
  bad.atom_features = Tensor::full({2, 12, kShiftAtomFeatures}, kShiftAtomFeatureRows, DType::I32);
  CHECK_THROWS_WITH_AS(with.forward(bad), doctest::Contains("outside [0, 25)"), Error);
  CHECK_NOTHROW(base.forward(bare));  // a model without them ignores them

  // Gradients reach both tables.
  with.train();
  Tensor loss = sum(square(with.forward(b, false).shifts));
  loss.backward();
  for (const char* name : {"atom_chem.weight", "graph_pair.weight"}) {
    const std::vector<float> g = f32(state.at(name).grad());
    double mx = 0;
    for (float v : g) mx = std::max(mx, std::fabs(double(v)));
    CHECK_MESSAGE(mx > 0, name);
  }
}
