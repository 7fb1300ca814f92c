// Test rows for softmax/normalisation (norm.cpp), gather/scatter/segments (index.cpp), dropout and the
// Gaussian basis (misc.cpp). Every reference is a plain f64 loop over host values; the dropout reference
// recomputes the Philox mask itself. Separate TEST_CASEs cover what a row cannot: batch norm's in-place
// running statistics, validation errors, and ScatterAdd's thread-count independence.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "engine/philox.h"
#include "engine/thread_pool.h"
#include "tests/op_table.h"

namespace larmor::test {
namespace {

Tensor ints32(const std::vector<int32_t>& v, const Shape& s) { return Tensor::from_vector<int32_t>(v, s); }
Tensor ints64(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector<int64_t>(v, s); }
Tensor reals(const std::vector<double>& v, const Shape& s, DType dt) { return from_values(v, s).to(dt); }

// ---- references --------------------------------------------------------------------------------------
// Row-wise (last axis) softmax / log-softmax with an optional mask; masked entries and fully masked rows 0.
Tensor ref_softmax(const Tensor& x, const Tensor& mask, bool log_space) {
  std::vector<double> v = values(x), m = mask.defined() ? values(mask) : std::vector<double>(v.size(), 1.0);
  int64_t d = x.shape().back();
  std::vector<double> out(v.size(), 0.0);
  for (size_t r = 0; r < v.size() / static_cast<size_t>(d); ++r) {
    size_t b = r * static_cast<size_t>(d);
    double mx = -INFINITY;
    for (int64_t j = 0; j < d; ++j)
      if (m[b + j] != 0) mx = std::max(mx, v[b + j]);
    if (mx == -INFINITY) continue;
    double s = 0;
    for (int64_t j = 0; j < d; ++j)
      if (m[b + j] != 0) s += std::exp(v[b + j] - mx);
    for (int64_t j = 0; j < d; ++j)
      if (m[b + j] != 0) out[b + j] = log_space ? v[b + j] - mx - std::log(s) : std::exp(v[b + j] - mx) / s;
  }
  return from_values(out, x.shape());
}

// LayerNorm over the last axis: y, mean, rstd.
Tensors ref_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  std::vector<double> v = values(x), wv = values(w), bv = values(b);
  int64_t d = x.shape().back();
  size_t rows = v.size() / static_cast<size_t>(d);
  std::vector<double> y(v.size()), mean(rows), rstd(rows);
  for (size_t r = 0; r < rows; ++r) {
    double s = 0, q = 0;
    for (int64_t j = 0; j < d; ++j) s += v[r * d + j];
    mean[r] = s / d;
    for (int64_t j = 0; j < d; ++j) q += (v[r * d + j] - mean[r]) * (v[r * d + j] - mean[r]);
    rstd[r] = 1 / std::sqrt(q / d + eps);
    for (int64_t j = 0; j < d; ++j) y[r * d + j] = (v[r * d + j] - mean[r]) * rstd[r] * wv[j] + bv[j];
  }
  Shape rs(x.shape().begin(), x.shape().end() - 1);
  return {from_values(y, x.shape()), from_values(mean, rs), from_values(rstd, rs)};
}

// BatchNorm on (N, C). Returns y; *new_rm / *new_rv get the updated running stats when training.
Tensor ref_batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm, const Tensor& rv, bool training,
                      double momentum, double eps, std::vector<double>* new_rm = nullptr,
                      std::vector<double>* new_rv = nullptr) {
  std::vector<double> v = values(x), wv = values(w), bv = values(b), rmv = values(rm), rvv = values(rv);
  int64_t n = x.shape()[0], c = x.shape()[1];
  std::vector<double> y(v.size());
  for (int64_t k = 0; k < c; ++k) {
    double mu = rmv[k], var = rvv[k];
    if (training) {
      double s = 0, q = 0;
      for (int64_t i = 0; i < n; ++i) s += v[i * c + k];
      mu = s / n;
      for (int64_t i = 0; i < n; ++i) q += (v[i * c + k] - mu) * (v[i * c + k] - mu);
      var = q / n;
      rmv[k] = (1 - momentum) * rmv[k] + momentum * mu;
      rvv[k] = (1 - momentum) * rvv[k] + momentum * q / (n - 1);
    }
    for (int64_t i = 0; i < n; ++i) y[i * c + k] = (v[i * c + k] - mu) / std::sqrt(var + eps) * wv[k] + bv[k];
  }
  if (new_rm) *new_rm = rmv;
  if (new_rv) *new_rv = rvv;
  return from_values(y, x.shape());
}

// out row r = x row rows[r] (rows of the leading axis).
Tensor ref_gather(const Tensor& x, const std::vector<int64_t>& rows, Shape out_shape) {
  std::vector<double> v = values(x);
  size_t f = static_cast<size_t>(shape_numel(Shape(x.shape().begin() + 1, x.shape().end())));
  std::vector<double> out;
  for (int64_t r : rows)
    for (size_t j = 0; j < f; ++j) out.push_back(v[static_cast<size_t>(r) * f + j]);
  return from_values(out, out_shape);
}

// out row targets[e] += x row e.
Tensor ref_scatter(const Tensor& x, const std::vector<int64_t>& targets, int64_t num_out) {
  std::vector<double> v = values(x);
  size_t f = static_cast<size_t>(shape_numel(Shape(x.shape().begin() + 1, x.shape().end())));
  std::vector<double> out(static_cast<size_t>(num_out) * f, 0.0);
  for (size_t e = 0; e < targets.size(); ++e)
    for (size_t j = 0; j < f; ++j) out[static_cast<size_t>(targets[e]) * f + j] += v[e * f + j];
  Shape s = x.shape();
  s[0] = num_out;
  return from_values(out, s);
}

// Segment id of every row under CSR offsets.
std::vector<int64_t> segment_ids(const std::vector<double>& offsets) {
  std::vector<int64_t> ids;
  for (size_t s = 0; s + 1 < offsets.size(); ++s)
    for (double e = offsets[s]; e < offsets[s + 1]; ++e) ids.push_back(static_cast<int64_t>(s));
  return ids;
}

std::vector<int64_t> as_int(const Tensor& t) {
  std::vector<int64_t> r;
  for (double v : values(t)) r.push_back(static_cast<int64_t>(v));
  return r;
}

Tensor ref_dropout(const Tensor& x, double p, uint64_t seed, uint64_t stream) {
  std::vector<double> v = values(x);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(philox_uniform(seed, stream, i)) >= p ? v[i] / (1 - p) : 0.0;
  return from_values(v, x.shape());
}

Tensor ref_gaussian(const Tensor& x, const Tensor& mean, const Tensor& sd) {
  std::vector<double> xv = values(x), mv = values(mean), sv = values(sd), out;
  const double pi = 3.14159265358979323846;
  for (double xi : xv)
    for (size_t k = 0; k < mv.size(); ++k) {
      double s = std::fabs(sv[k]) + 1e-5, z = (xi - mv[k]) / s;
      out.push_back(std::exp(-0.5 * z * z) / (std::sqrt(2 * pi) * s));
    }
  Shape shape = x.shape();
  shape.push_back(static_cast<int64_t>(mv.size()));
  return from_values(out, shape);
}

// ---- rows --------------------------------------------------------------------------------------------
OpCaseRegistrar reg([](std::vector<OpCase>& t) {
  // Softmax / LogSoftmax: plain, padding mask (trailing keys masked per row), a fully masked row.
  struct SoftmaxRow { const char* name; OpId op, bwd; bool log_space; };
  for (SoftmaxRow r : {SoftmaxRow{"Softmax", OpId::Softmax, OpId::SoftmaxBackward, false},
                       SoftmaxRow{"LogSoftmax", OpId::LogSoftmax, OpId::LogSoftmaxBackward, true}}) {
    auto run = [log_space = r.log_space](const Tensors& in) {
      Tensor m = in.size() > 1 ? in[1] : Tensor();
      return Tensors{log_space ? log_softmax(in[0], m) : softmax(in[0], m)};
    };
    auto ref = [log_space = r.log_space](const Tensors& in) {
      return Tensors{ref_softmax(in[0], in.size() > 1 ? in[1] : Tensor(), log_space)};
    };
    t.push_back(OpCase{std::string(r.name) + " (3, 5)", {r.op, r.bwd},
                       [](DType dt) { return Tensors{uniform({3, 5}, -3, 3, 31, dt)}; }, run, ref, {0}});
    t.push_back(OpCase{std::string(r.name) + " padding mask (2, 3, 6)", {r.op, r.bwd},
                       [](DType dt) {
                         std::vector<int32_t> m;
                         for (int b = 0; b < 2; ++b)
                           for (int i = 0; i < 3; ++i)
                             for (int j = 0; j < 6; ++j) m.push_back(j < 6 - 2 * b - i ? 1 : 0);  // 6..2 valid keys
                         return Tensors{uniform({2, 3, 6}, -3, 3, 32, dt), ints32(m, {2, 3, 6})};
                       },
                       run, ref, {0}});
    t.push_back(OpCase{std::string(r.name) + " fully masked row (3, 4)", {r.op, r.bwd},
                       [](DType dt) {
                         return Tensors{uniform({3, 4}, -3, 3, 33, dt),
                                        ints32({1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0}, {3, 4})};
                       },
                       run, ref, {0}});
  }

  // LayerNorm: all three outputs (y, mean, rstd) against the reference.
  t.push_back(OpCase{"LayerNorm (2, 3, 8)", {OpId::LayerNorm, OpId::LayerNormBackward},
                     [](DType dt) {
                       return Tensors{uniform({2, 3, 8}, -2, 2, 41, dt), uniform({8}, 0.5, 1.5, 42, dt),
                                      uniform({8}, -0.5, 0.5, 43, dt)};
                     },
                     [](const Tensors& in) { return call_op(OpId::LayerNorm, {in[0], in[1], in[2]}, {{}, {1e-5}}); },
                     [](const Tensors& in) { return ref_layer_norm(in[0], in[1], in[2], 1e-5); },
                     {0, 1, 2}});
  t.push_back(OpCase{"LayerNorm front-end (5, 4)", {OpId::LayerNorm, OpId::LayerNormBackward},
                     [](DType dt) {
                       return Tensors{uniform({5, 4}, -2, 2, 44, dt), uniform({4}, 0.5, 1.5, 45, dt),
                                      uniform({4}, -0.5, 0.5, 46, dt)};
                     },
                     [](const Tensors& in) { return Tensors{layer_norm(in[0], in[1], in[2], 1e-3)}; },
                     [](const Tensors& in) { return Tensors{ref_layer_norm(in[0], in[1], in[2], 1e-3)[0]}; },
                     {0, 1, 2}});

  // BatchNorm: train (batch statistics) and eval (running statistics).
  auto bn_inputs = [](DType dt) {
    return Tensors{uniform({6, 4}, -2, 2, 51, dt), uniform({4}, 0.5, 1.5, 52, dt), uniform({4}, -0.5, 0.5, 53, dt),
                   uniform({4}, -0.5, 0.5, 54, dt), uniform({4}, 0.5, 2.0, 55, dt)};
  };
  for (bool training : {true, false}) {
    t.push_back(OpCase{std::string("BatchNorm ") + (training ? "train" : "eval") + " (6, 4)",
                       {OpId::BatchNorm, OpId::BatchNormBackward}, bn_inputs,
                       [training](const Tensors& in) {
                         return Tensors{batch_norm(in[0], in[1], in[2], in[3], in[4], training, 0.1, 1e-5)};
                       },
                       [training](const Tensors& in) {
                         return Tensors{ref_batch_norm(in[0], in[1], in[2], in[3], in[4], training, 0.1, 1e-5)};
                       },
                       {0, 1, 2}});
  }

  // Gathers and scatters with repeated indices.
  t.push_back(OpCase{"Embedding (5, 3) with idx (2, 4) repeated", {OpId::Embedding, OpId::ScatterAdd},
                     [](DType dt) {
                       return Tensors{uniform({5, 3}, -1, 1, 61, dt), ints32({4, 0, 4, 2, 2, 2, 0, 4}, {2, 4})};
                     },
                     [](const Tensors& in) { return Tensors{embedding(in[0], in[1])}; },
                     [](const Tensors& in) { return Tensors{ref_gather(in[0], as_int(in[1]), {2, 4, 3})}; },
                     {0}});
  t.push_back(OpCase{"IndexSelect (4, 2, 3) with i64 idx (6) repeated", {OpId::IndexSelect, OpId::ScatterAdd},
                     [](DType dt) { return Tensors{uniform({4, 2, 3}, -1, 1, 62, dt), ints64({3, 1, 3, 3, 0, 1}, {6})}; },
                     [](const Tensors& in) { return Tensors{index_select(in[0], in[1])}; },
                     [](const Tensors& in) { return Tensors{ref_gather(in[0], as_int(in[1]), {6, 2, 3})}; },
                     {0}});
  t.push_back(OpCase{"ScatterAdd (7, 3) into 5 rows, repeated and missing targets", {OpId::ScatterAdd, OpId::IndexSelect},
                     [](DType dt) { return Tensors{uniform({7, 3}, -1, 1, 63, dt), ints32({2, 0, 2, 4, 2, 0, 4}, {7})}; },
                     [](const Tensors& in) { return Tensors{scatter_add(in[0], in[1], 5)}; },
                     [](const Tensors& in) { return Tensors{ref_scatter(in[0], as_int(in[1]), 5)}; },
                     {0}});

  // Segments: offsets [0, 2, 2, 5, 6] (segment 1 empty).
  t.push_back(OpCase{"SegmentSum (6, 2, 2) with an empty segment", {OpId::SegmentSum, OpId::SegmentBroadcast},
                     [](DType dt) { return Tensors{uniform({6, 2, 2}, -1, 1, 71, dt), ints32({0, 2, 2, 5, 6}, {5})}; },
                     [](const Tensors& in) { return Tensors{segment_sum(in[0], in[1])}; },
                     [](const Tensors& in) { return Tensors{ref_scatter(in[0], segment_ids(values(in[1])), 4)}; },
                     {0}});
  t.push_back(OpCase{"SegmentBroadcast (4, 3) to 6 rows with an empty segment", {OpId::SegmentBroadcast, OpId::SegmentSum},
                     [](DType dt) { return Tensors{uniform({4, 3}, -1, 1, 72, dt), ints64({0, 2, 2, 5, 6}, {5})}; },
                     [](const Tensors& in) { return Tensors{segment_broadcast(in[0], in[1])}; },
                     [](const Tensors& in) { return Tensors{ref_gather(in[0], segment_ids(values(in[1])), {6, 3})}; },
                     {0}});

  // Dropout: training with the Philox mask; eval and p = 0 are the identity.
  t.push_back(OpCase{"Dropout p=0.3 training (5, 7)", {OpId::Dropout},
                     [](DType dt) { return Tensors{uniform({5, 7}, -2, 2, 81, dt)}; },
                     [](const Tensors& in) { return Tensors{dropout(in[0], 0.3, true, 0xDEADBEEFCAFEull, 3)}; },
                     [](const Tensors& in) { return Tensors{ref_dropout(in[0], 0.3, 0xDEADBEEFCAFEull, 3)}; },
                     {0}});
  t.push_back(OpCase{"Dropout eval is identity", {OpId::Dropout},
                     [](DType dt) { return Tensors{uniform({4, 3}, -2, 2, 82, dt)}; },
                     [](const Tensors& in) { return Tensors{dropout(in[0], 0.5, false, 7, 0)}; },
                     [](const Tensors& in) { return Tensors{from_values(values(in[0]), in[0].shape())}; },
                     {0}});
  t.push_back(OpCase{"Dropout p=0 training is identity", {OpId::Dropout},
                     [](DType dt) { return Tensors{uniform({4, 3}, -2, 2, 83, dt)}; },
                     [](const Tensors& in) { return Tensors{dropout(in[0], 0.0, true, 7, 0)}; },
                     [](const Tensors& in) { return Tensors{from_values(values(in[0]), in[0].shape())}; },
                     {}});

  // Gaussian basis, K = 5 with negative std entries.
  t.push_back(OpCase{"GaussianBasis (3, 4) K=5 with negative std", {OpId::GaussianBasis, OpId::GaussianBasisBackward},
                     [](DType dt) {
                       return Tensors{uniform({3, 4}, 0, 4, 91, dt), reals({0.0, 1.0, 1.8, 2.5, 3.5}, {5}, dt),
                                      reals({0.7, -0.9, 1.3, -0.5, 1.1}, {5}, dt)};
                     },
                     [](const Tensors& in) { return Tensors{gaussian_basis(in[0], in[1], in[2])}; },
                     [](const Tensors& in) { return Tensors{ref_gaussian(in[0], in[1], in[2])}; },
                     {0, 1, 2}});
});

// Expects f() to throw a larmor::Error whose message contains every string in `parts`.
template <typename F>
void expect_error(F f, std::initializer_list<const char*> parts) {
  std::string msg;
  try {
    f();
  } catch (const Error& e) {
    msg = e.what();
  }
  INFO("message: " << msg);
  REQUIRE(!msg.empty());
  for (const char* p : parts) CHECK(msg.find(p) != std::string::npos);
}

}  // namespace

TEST_CASE("batch_norm training updates running statistics in place (torch momentum, unbiased variance)") {
  Tensor x = uniform({6, 4}, -2, 2, 51, DType::F64), w = uniform({4}, 0.5, 1.5, 52, DType::F64),
         b = uniform({4}, -0.5, 0.5, 53, DType::F64);
  Tensor rm = uniform({4}, -0.5, 0.5, 54, DType::F64), rv = uniform({4}, 0.5, 2.0, 55, DType::F64);
  std::vector<double> want_rm, want_rv;
  Tensor ref = ref_batch_norm(x, w, b, rm, rv, true, 0.2, 1e-5, &want_rm, &want_rv);
  x.set_requires_grad(true);
  Tensor y = batch_norm(x, w, b, rm, rv, true, 0.2, 1e-5);
  std::vector<double> got_y = values(y), got_rm = values(rm), got_rv = values(rv), ref_y = values(ref);
  for (size_t i = 0; i < got_y.size(); ++i) CHECK(got_y[i] == doctest::Approx(ref_y[i]).epsilon(1e-12));
  for (size_t k = 0; k < 4; ++k) {
    CHECK(got_rm[k] == doctest::Approx(want_rm[k]).epsilon(1e-12));
    CHECK(got_rv[k] == doctest::Approx(want_rv[k]).epsilon(1e-12));
  }
  CHECK(!rm.requires_grad());
  CHECK(!rv.requires_grad());
  sum(y).backward();
  CHECK(!rm.grad().defined());
  CHECK(!rv.grad().defined());

  // Eval leaves the running statistics alone.
  batch_norm(x, w, b, rm, rv, false);
  CHECK(values(rm) == got_rm);
  CHECK(values(rv) == got_rv);

  // N = 1 in training is an error (no variance), as in torch; fine in eval.
  Tensor x1 = uniform({1, 4}, -1, 1, 56, DType::F64);
  expect_error([&] { batch_norm(x1, w, b, rm, rv, true); }, {"BatchNorm", "more than 1 value per channel"});
  CHECK_NOTHROW(batch_norm(x1, w, b, rm, rv, false));
  // Running statistics may not require grad.
  Tensor rg = rm.clone();
  rg.set_requires_grad(true);
  expect_error([&] { batch_norm(x, w, b, rg, rv, true); }, {"BatchNorm", "running statistics"});
}

TEST_CASE("softmax of a fully masked row is zero with zero gradient, never NaN") {
  Tensor x = uniform({2, 3}, -1, 1, 5, DType::F32);
  x.set_requires_grad(true);
  Tensor m = ints32({0, 0, 0, 1, 1, 0}, {2, 3});
  for (bool log_space : {false, true}) {
    Tensor y = log_space ? log_softmax(x, m) : softmax(x, m);
    std::vector<double> v = values(y);
    for (size_t i = 0; i < 3; ++i) CHECK(v[i] == 0.0);
    CHECK(v[5] == 0.0);
    std::vector<Tensor> g = grad({y}, {Tensor::ones({2, 3})}, {x});
    std::vector<double> gv = values(g[0]);
    for (double e : gv) CHECK(std::isfinite(e));
    for (size_t i : {0, 1, 2, 5}) CHECK(gv[i] == 0.0);
  }
}

TEST_CASE("nn ops reject bad indices, offsets and arguments with the op name") {
  Tensor w = uniform({5, 3}, -1, 1, 1, DType::F32);
  expect_error([&] { embedding(w, ints32({0, 9, 1}, {3})); }, {"Embedding", "index 9", "position 1"});
  expect_error([&] { embedding(w, ints64({-1}, {1})); }, {"Embedding", "index -1"});
  expect_error([&] { index_select(w, ints32({2, 5}, {2})); }, {"IndexSelect", "index 5"});
  expect_error([&] { index_select(w, ints32({0, 1}, {1, 2})); }, {"IndexSelect", "1-D"});
  expect_error([&] { scatter_add(w, ints32({0, 1, 3, 2, 0}, {5}), 3); }, {"ScatterAdd", "index 3"});
  expect_error([&] { scatter_add(w, ints32({0, 1}, {2}), 3); }, {"ScatterAdd", "one entry per row"});
  expect_error([&] { segment_sum(w, ints32({0, 3, 2, 5}, {4})); }, {"SegmentSum", "non-decreasing"});
  expect_error([&] { segment_sum(w, ints32({1, 3, 5}, {3})); }, {"SegmentSum", "start at 0"});
  expect_error([&] { segment_sum(w, ints32({0, 3, 4}, {3})); }, {"SegmentSum", "end at 4"});
  expect_error([&] { segment_broadcast(w, ints32({0, 2, 1, 2, 3, 4}, {6})); }, {"SegmentBroadcast", "non-decreasing"});
  expect_error([&] { segment_broadcast(w, ints32({0, 1, 2}, {3})); }, {"SegmentBroadcast", "S+1"});
  expect_error([&] { softmax(w, ints32({1, 1, 1}, {3})); }, {"Softmax", "mask"});
  expect_error([&] { call_op(OpId::LogSoftmax, {w, w, w}); }, {"LogSoftmax", "optional mask"});
  expect_error([&] { layer_norm(w, Tensor::ones({4}), Tensor::zeros({3})); }, {"LayerNorm"});
  expect_error([&] { dropout(w, 1.0, true, 1, 0); }, {"Dropout", "p must be in [0, 1)"});
  expect_error([&] { gaussian_basis(w, Tensor::zeros({4}), Tensor::ones({3})); }, {"GaussianBasis"});
}

TEST_CASE("scatter_add and segment_sum are bit-identical across thread counts") {
  const int64_t e = 20000, f = 3, v = 37;
  Tensor src = uniform({e, f}, -1, 1, 9, DType::F32);
  Tensor idx = rand_int({e}, 0, v, 10, 0, DType::I32);
  std::vector<int32_t> off;
  for (int64_t s = 0; s <= 100; ++s) off.push_back(static_cast<int32_t>(s * e / 100));
  Tensor offsets = ints32(off, {101});
  int saved = num_threads();
  set_num_threads(1);
  std::vector<float> a = scatter_add(src, idx, v).to_vector<float>(), sa = segment_sum(src, offsets).to_vector<float>();
  set_num_threads(4);
  std::vector<float> b = scatter_add(src, idx, v).to_vector<float>(), sb = segment_sum(src, offsets).to_vector<float>();
  set_num_threads(saved);
  CHECK(a == b);
  CHECK(sa == sb);
}

}  // namespace larmor::test
