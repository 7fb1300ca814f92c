// Test rows for the two loss ops: SortedSetLoss (kernels/cpu/sorted_set.cpp) and InfoNce
// (kernels/cpu/info_nce.cpp). References are plain f64 loops: the sorted-set reference sorts with an
// insertion sort (stable by construction, NaN last) instead of std::stable_sort, and the InfoNCE
// reference builds log_softmax rows and columns explicitly.
#include <algorithm>
#include <cmath>

#include "tests/op_table.h"

namespace larmor::test {
namespace {

// ---- sorted-set loss -----------------------------------------------------------------------------------

bool ref_less(double x, double y) {  // NaN after everything, NaNs equal
  if (std::isnan(x)) return false;
  if (std::isnan(y)) return true;
  return x < y;
}

// Stable insertion sort of the indices [b, e) by v.
std::vector<int64_t> ref_sorted_indices(const std::vector<double>& v, int64_t b, int64_t e) {
  std::vector<int64_t> idx;
  for (int64_t i = b; i < e; ++i) {
    size_t pos = idx.size();
    while (pos > 0 && ref_less(v[i], v[idx[pos - 1]])) --pos;  // strictly-less: equal keys stay behind
    idx.insert(idx.begin() + static_cast<std::ptrdiff_t>(pos), i);
  }
  return idx;
}

double ref_elem_loss(int kind, double d, double delta) {
  if (kind == 0) return std::fabs(d);
  if (kind == 1) return d * d;
  return std::fabs(d) <= delta ? 0.5 * d * d : delta * (std::fabs(d) - 0.5 * delta);
}

// -> {loss, perm_pred, perm_target} as f64 tensors.
Tensors ref_sorted_set(const Tensors& in, int kind, int reduction, double delta) {
  std::vector<double> p = values(in[0]), t = values(in[1]), off = values(in[2]);
  std::vector<double> pp(p.size()), pt(p.size());
  double total = 0;
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    int64_t b = static_cast<int64_t>(off[s]), e = static_cast<int64_t>(off[s + 1]);
    std::vector<int64_t> ip = ref_sorted_indices(p, b, e), it = ref_sorted_indices(t, b, e);
    for (int64_t k = 0; k < e - b; ++k) {
      pp[b + k] = static_cast<double>(ip[k]);
      pt[b + k] = static_cast<double>(it[k]);
      total += ref_elem_loss(kind, p[ip[k]] - t[it[k]], delta);
    }
  }
  if (reduction == 0) total = p.empty() ? 0.0 : total / static_cast<double>(p.size());
  int64_t n = static_cast<int64_t>(p.size());
  return {from_values({total}, {}), from_values(pp, {n}), from_values(pt, {n})};
}

// Deterministic search over seeds for inputs on which the loss is smooth: predictions tie-free (gap
// > 1e-2 inside a segment) and every sorted difference |d| at least 1e-2 away from 0 and from delta, so
// the finite differences of gradcheck never cross a kink or reorder the sort.
std::vector<double> smooth_pred(const std::vector<int64_t>& off, const std::vector<double>& target, double delta,
                                uint64_t seed0) {
  int64_t n = off.back();
  for (uint64_t seed = seed0;; ++seed) {
    std::vector<double> p = values(uniform({n}, -2, 2, seed, DType::F64));
    bool ok = true;
    for (size_t s = 0; ok && s + 1 < off.size(); ++s) {
      std::vector<int64_t> ip = ref_sorted_indices(p, off[s], off[s + 1]);
      std::vector<int64_t> it = ref_sorted_indices(target, off[s], off[s + 1]);
      for (size_t k = 0; ok && k < ip.size(); ++k) {
        if (k > 0 && p[ip[k]] - p[ip[k - 1]] < 1e-2) ok = false;
        double ad = std::fabs(p[ip[k]] - target[it[k]]);
        if (ad < 1e-2 || std::fabs(ad - delta) < 1e-2) ok = false;
      }
    }
    if (ok) return p;
  }
}

Tensor offsets_tensor(const std::vector<int64_t>& off, DType dt) {
  std::vector<int64_t> v = off;
  Tensor t = Tensor::from_vector<int64_t>(v, {static_cast<int64_t>(v.size())});
  return dt == DType::I64 ? t : t.to(DType::I32);
}

Tensors run_sorted_set(const Tensors& in, int kind, int reduction, double delta) {
  Attrs a;
  a.ints = {kind, reduction};
  a.reals = {delta};
  return call_op(OpId::SortedSetLoss, in, a);
}

// ---- InfoNCE -------------------------------------------------------------------------------------------

// T (R, C) or identity if undefined.
Tensor ref_info_nce(const Tensor& logits, const Tensor& targets, double scale, double rw, double cw) {
  int64_t R = logits.size(0), C = logits.size(1);
  std::vector<double> s = values(logits), t;
  if (targets.defined()) {
    t = values(targets);
  } else {
    t.assign(static_cast<size_t>(R * C), 0.0);
    for (int64_t i = 0; i < R; ++i) t[i * C + i] = 1;
  }
  double row = 0, col = 0;
  for (int64_t i = 0; i < R; ++i) {  // CE over rows of scale*S
    double m = -INFINITY;
    for (int64_t j = 0; j < C; ++j) m = std::max(m, scale * s[i * C + j]);
    double z = 0;
    for (int64_t j = 0; j < C; ++j) z += std::exp(scale * s[i * C + j] - m);
    for (int64_t j = 0; j < C; ++j) row -= t[i * C + j] * (scale * s[i * C + j] - m - std::log(z));
  }
  for (int64_t j = 0; j < C; ++j) {  // CE over rows of (scale*S)^T against T^T
    double m = -INFINITY;
    for (int64_t i = 0; i < R; ++i) m = std::max(m, scale * s[i * C + j]);
    double z = 0;
    for (int64_t i = 0; i < R; ++i) z += std::exp(scale * s[i * C + j] - m);
    for (int64_t i = 0; i < R; ++i) col -= t[i * C + j] * (scale * s[i * C + j] - m - std::log(z));
  }
  return from_values({rw * row / static_cast<double>(R) + cw * col / static_cast<double>(C)}, {});
}

// K-M3AID soft targets: T = softmax_row(10^p / (|a_i - b_j| + 10^-n)) (R, C).
Tensor kmaid_targets(const std::vector<double>& a, const std::vector<double>& b, double n, double p) {
  int64_t R = static_cast<int64_t>(a.size()), C = static_cast<int64_t>(b.size());
  std::vector<double> t(static_cast<size_t>(R * C));
  for (int64_t i = 0; i < R; ++i) {
    double m = -INFINITY, z = 0;
    for (int64_t j = 0; j < C; ++j) {
      t[i * C + j] = std::pow(10.0, p) / (std::fabs(a[i] - b[j]) + std::pow(10.0, -n));
      m = std::max(m, t[i * C + j]);
    }
    for (int64_t j = 0; j < C; ++j) z += (t[i * C + j] = std::exp(t[i * C + j] - m));
    for (int64_t j = 0; j < C; ++j) t[i * C + j] /= z;
  }
  return from_values(t, {R, C});
}

OpCaseRegistrar reg([](std::vector<OpCase>& t) {
  // Segments of sizes 6, 0, 1, 9 (an empty one and a singleton).
  const std::vector<int64_t> off = {0, 6, 6, 7, 16};
  const char* kind_names[] = {"L1", "squared", "Huber"};
  const char* red_names[] = {"mean", "sum"};
  const double delta = 0.7;
  for (int kind = 0; kind < 3; ++kind) {
    for (int red = 0; red < 2; ++red) {
      std::vector<double> target = values(uniform({16}, -2, 2, 301 + kind, DType::F64));
      std::vector<double> pred = smooth_pred(off, target, delta, 400 + 10 * kind);
      DType odt = red == 0 ? DType::I32 : DType::I64;
      t.push_back(OpCase{std::string("SortedSetLoss ") + kind_names[kind] + " " + red_names[red] + " segments 6,0,1,9",
                         {OpId::SortedSetLoss, OpId::SortedSetLossBackward},
                         [=](DType dt) {
                           return Tensors{from_values(pred, {16}).to(dt), from_values(target, {16}).to(dt),
                                          offsets_tensor(off, odt)};
                         },
                         [=](const Tensors& in) { return run_sorted_set(in, kind, red, delta); },
                         [=](const Tensors& in) { return ref_sorted_set(in, kind, red, delta); },
                         {0}});
    }
  }
  // Ties in the targets (and in the predictions for the forward-only row): stable order keeps equal
  // values in their original relative order, so the permutations are fully determined.
  {
    const std::vector<int64_t> toff = {0, 5, 12};
    std::vector<double> target = {1, 0, 1, 2, 0, 3, 1, 3, 1, -1, 3, 1};
    std::vector<double> pred = smooth_pred(toff, target, 1.0, 500);
    t.push_back(OpCase{"SortedSetLoss Huber sum ties in targets", {OpId::SortedSetLoss, OpId::SortedSetLossBackward},
                       [=](DType dt) {
                         return Tensors{from_values(pred, {12}).to(dt), from_values(target, {12}).to(dt),
                                        offsets_tensor(toff, DType::I32)};
                       },
                       [=](const Tensors& in) { return run_sorted_set(in, 2, 1, 1.0); },
                       [=](const Tensors& in) { return ref_sorted_set(in, 2, 1, 1.0); },
                       {0}});
    std::vector<double> tied_pred = {0.5, 0.5, -1, 0.5, 2, 2, 0.25, 0.25, 0.25, 7, -3, 0.25};
    t.push_back(OpCase{"SortedSetLoss L1 mean ties in both (forward)", {OpId::SortedSetLoss},
                       [=](DType dt) {
                         return Tensors{from_values(tied_pred, {12}).to(dt), from_values(target, {12}).to(dt),
                                        offsets_tensor(toff, DType::I64)};
                       },
                       [=](const Tensors& in) { return run_sorted_set(in, 0, 0, 1.0); },
                       [=](const Tensors& in) { return ref_sorted_set(in, 0, 0, 1.0); },
                       {}});
  }
  // NaN sorts after +inf; the loss becomes NaN but the permutations stay defined.
  {
    std::vector<double> pred = {NAN, 1, INFINITY, -2, NAN, 0.5, NAN};
    std::vector<double> target = {0, NAN, -1, 3, 2, NAN, 1};
    t.push_back(OpCase{"SortedSetLoss squared NaN ordering (forward)", {OpId::SortedSetLoss},
                       [=](DType dt) {
                         return Tensors{from_values(pred, {7}).to(dt), from_values(target, {7}).to(dt),
                                        offsets_tensor({0, 4, 7}, DType::I32)};
                       },
                       [=](const Tensors& in) { return run_sorted_set(in, 1, 1, 1.0); },
                       [=](const Tensors& in) { return ref_sorted_set(in, 1, 1, 1.0); },
                       {}});
  }
  // Empty input: mean is 0, not NaN.
  t.push_back(OpCase{"SortedSetLoss L1 mean empty", {OpId::SortedSetLoss},
                     [](DType dt) {
                       return Tensors{Tensor::zeros({0}, dt), Tensor::zeros({0}, dt), offsets_tensor({0, 0}, DType::I32)};
                     },
                     [](const Tensors& in) { return run_sorted_set(in, 0, 0, 1.0); },
                     [](const Tensors& in) { return ref_sorted_set(in, 0, 0, 1.0); },
                     {}});
  // Through the front-end (loss only), with gradcheck.
  {
    std::vector<double> target = values(uniform({16}, -2, 2, 321, DType::F64));
    std::vector<double> pred = smooth_pred(off, target, 0.3, 700);
    t.push_back(OpCase{"SortedSetLoss front-end Huber mean", {OpId::SortedSetLoss, OpId::SortedSetLossBackward},
                       [=](DType dt) {
                         return Tensors{from_values(pred, {16}).to(dt), from_values(target, {16}).to(dt),
                                        offsets_tensor(off, DType::I32)};
                       },
                       [](const Tensors& in) {
                         return Tensors{sorted_set_loss(in[0], in[1], in[2], SetLossKind::Huber, 0.3, Reduction::Mean)};
                       },
                       [](const Tensors& in) { return Tensors{ref_sorted_set(in, 2, 0, 0.3)[0]}; },
                       {0}});
  }

  // ---- InfoNCE ----
  t.push_back(OpCase{"InfoNce hard targets 6x6", {OpId::InfoNce, OpId::InfoNceBackward},
                     [](DType dt) { return Tensors{uniform({6, 6}, -2, 2, 801, dt)}; },
                     [](const Tensors& in) { return Tensors{info_nce(in[0], Tensor(), 1.0, 1.0, 1.0)}; },
                     [](const Tensors& in) { return Tensors{ref_info_nce(in[0], Tensor(), 1.0, 1.0, 1.0)}; },
                     {0}});
  t.push_back(OpCase{"InfoNce hard targets 6x6 scale 2.5 weights 0.3/1.7", {OpId::InfoNce, OpId::InfoNceBackward},
                     [](DType dt) { return Tensors{uniform({6, 6}, -2, 2, 802, dt)}; },
                     [](const Tensors& in) { return Tensors{info_nce(in[0], Tensor(), 2.5, 0.3, 1.7)}; },
                     [](const Tensors& in) { return Tensors{ref_info_nce(in[0], Tensor(), 2.5, 0.3, 1.7)}; },
                     {0}});
  {
    std::vector<double> a = values(uniform({5}, 0, 3, 811, DType::F64));
    std::vector<double> b = values(uniform({7}, 0, 3, 812, DType::F64));
    Tensor soft = kmaid_targets(a, b, 1, 0);  // n=1, p=0: genuinely soft
    t.push_back(OpCase{"InfoNce soft K-M3AID targets 5x7 scale 0.8 weights 0.6/1.2", {OpId::InfoNce, OpId::InfoNceBackward},
                       [=](DType dt) { return Tensors{uniform({5, 7}, -2, 2, 813, dt), soft.to(dt)}; },
                       [](const Tensors& in) { return Tensors{info_nce(in[0], in[1], 0.8, 0.6, 1.2)}; },
                       [](const Tensors& in) { return Tensors{ref_info_nce(in[0], in[1], 0.8, 0.6, 1.2)}; },
                       {0}});
  }
  {
    // SP/WP-style binary unnormalised targets, one all-zero row: row sums != 1 exercise rowsum(T).
    std::vector<double> bin = {1, 0, 1, 0, 0,  //
                               0, 0, 0, 0, 0,  //
                               1, 1, 1, 0, 1,  //
                               0, 0, 0, 1, 0};
    t.push_back(OpCase{"InfoNce binary unnormalised targets 4x5 scale 1.5", {OpId::InfoNce, OpId::InfoNceBackward},
                       [=](DType dt) { return Tensors{uniform({4, 5}, -2, 2, 821, dt), from_values(bin, {4, 5}).to(dt)}; },
                       [](const Tensors& in) { return Tensors{info_nce(in[0], in[1], 1.5, 1.0, 0.5)}; },
                       [](const Tensors& in) { return Tensors{ref_info_nce(in[0], in[1], 1.5, 1.0, 0.5)}; },
                       {0}});
  }
  // Large logits: stable log-sum-exp (a naive exp would overflow in f32).
  t.push_back(OpCase{"InfoNce hard targets 5x5 large logits", {OpId::InfoNce, OpId::InfoNceBackward},
                     [](DType dt) { return Tensors{uniform({5, 5}, 80, 120, 831, dt)}; },
                     [](const Tensors& in) { return Tensors{info_nce(in[0], Tensor(), 1.0, 1.0, 1.0)}; },
                     [](const Tensors& in) { return Tensors{ref_info_nce(in[0], Tensor(), 1.0, 1.0, 1.0)}; },
                     {0}});
});

}  // namespace
}  // namespace larmor::test
