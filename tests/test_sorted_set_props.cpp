// Property tests for the sorted-set loss (kernels/cpu/sorted_set.cpp):
//   - it is the optimal assignment: on random small sets, the sum-reduced loss of one segment equals the
//     minimum over all pairings (brute force over permutations, sizes 1..6) and the Hungarian algorithm
//     written below (sizes 1..8), for L1, squared and Huber costs;
//   - NaN sorts last, permutations are deterministic (also across thread counts) and stable under ties;
//   - the loss is invariant to permuting pred and target within their segments;
// plus the error messages of both loss ops on bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "engine/thread_pool.h"
#include "kernels/op.h"
#include "kernels/ops.h"

namespace larmor::test {
namespace {

double cost(SetLossKind kind, double d, double delta) {
  switch (kind) {
    case SetLossKind::L1: return std::fabs(d);
    case SetLossKind::Squared: return d * d;
    case SetLossKind::Huber: return std::fabs(d) <= delta ? 0.5 * d * d : delta * (std::fabs(d) - 0.5 * delta);
  }
  return 0;
}

double brute_force_min(const std::vector<double>& p, const std::vector<double>& t, SetLossKind kind, double delta) {
  std::vector<int> sigma(p.size());
  std::iota(sigma.begin(), sigma.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double c = 0;
    for (size_t i = 0; i < p.size(); ++i) c += cost(kind, p[i] - t[sigma[i]], delta);
    best = std::min(best, c);
  } while (std::next_permutation(sigma.begin(), sigma.end()));
  return best;
}

// Hungarian algorithm (shortest augmenting paths with row/column potentials), O(n^3). a is n x n,
// 1-based internally; returns the minimum total cost of a perfect assignment.
double hungarian_min(const std::vector<std::vector<double>>& a) {
  const int n = static_cast<int>(a.size());
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(n + 1, 0);
  std::vector<int> match(n + 1, 0), way(n + 1, 0);  // match[j] = row assigned to column j (0 = none)
  for (int i = 1; i <= n; ++i) {
    match[0] = i;
    int j0 = 0;
    std::vector<double> minv(n + 1, inf);
    std::vector<bool> used(n + 1, false);
    do {
      used[j0] = true;
      int i0 = match[j0], j1 = 0;
      double delta = inf;
      for (int j = 1; j <= n; ++j) {
        if (used[j]) continue;
        double cur = a[i0 - 1][j - 1] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int j = 0; j <= n; ++j) {
        if (used[j]) {
          u[match[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (match[j0] != 0);
    do {  // augment along the path
      int j1 = way[j0];
      match[j0] = match[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  double total = 0;
  for (int j = 1; j <= n; ++j) total += a[match[j] - 1][j - 1];
  return total;
}

double engine_loss(const std::vector<double>& p, const std::vector<double>& t, const std::vector<int32_t>& off,
                   SetLossKind kind, double delta, Reduction red = Reduction::Sum) {
  int64_t n = static_cast<int64_t>(p.size());
  return sorted_set_loss(Tensor::from_vector(p, {n}), Tensor::from_vector(t, {n}),
                         Tensor::from_vector(off, {static_cast<int64_t>(off.size())}), kind, delta, red)
      .item();
}

struct Perms {
  std::vector<int32_t> pred, target;
  double loss;
};
Perms engine_perms(const std::vector<double>& p, const std::vector<double>& t, const std::vector<int32_t>& off,
                   SetLossKind kind = SetLossKind::L1) {
  int64_t n = static_cast<int64_t>(p.size());
  Attrs a;
  a.ints = {static_cast<int64_t>(kind), static_cast<int64_t>(Reduction::Sum)};
  a.reals = {1.0};
  auto out = call_op(OpId::SortedSetLoss,
                     {Tensor::from_vector(p, {n}), Tensor::from_vector(t, {n}),
                      Tensor::from_vector(off, {static_cast<int64_t>(off.size())})},
                     a);
  return {out[1].to_vector<int32_t>(), out[2].to_vector<int32_t>(), out[0].item()};
}

const SetLossKind kKinds[] = {SetLossKind::L1, SetLossKind::Squared, SetLossKind::Huber};

}  // namespace

TEST_CASE("sorted-set loss equals the optimal assignment (brute force and Hungarian)") {
  std::mt19937_64 gen(20240611);
  std::uniform_real_distribution<double> u(-3, 3);
  std::uniform_int_distribution<int> coin(0, 3);
  for (int seed = 0; seed < 300; ++seed) {
    int n = 1 + seed % 8;
    std::vector<double> p(n), t(n);
    for (int i = 0; i < n; ++i) {
      p[i] = u(gen);
      // Some draws with ties (values on a coarse grid) to cover equal keys.
      t[i] = coin(gen) == 0 ? std::round(u(gen)) : u(gen);
    }
    double delta = 0.25 + 0.25 * (seed % 5);
    for (SetLossKind kind : kKinds) {
      INFO("seed " << seed << " n " << n << " kind " << static_cast<int>(kind));
      double loss = engine_loss(p, t, {0, n}, kind, delta);
      std::vector<std::vector<double>> c(n, std::vector<double>(n));
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) c[i][j] = cost(kind, p[i] - t[j], delta);
      CHECK(loss == doctest::Approx(hungarian_min(c)).epsilon(1e-12).scale(1.0));
      if (n <= 6) CHECK(loss == doctest::Approx(brute_force_min(p, t, kind, delta)).epsilon(1e-12).scale(1.0));
    }
  }
}

TEST_CASE("sorted-set loss: the Hungarian helper agrees with brute force on arbitrary costs") {
  // Guards the test's own oracle: random non-Monge cost matrices.
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> u(0, 10);
  for (int rep = 0; rep < 60; ++rep) {
    int n = 1 + rep % 6;
    std::vector<std::vector<double>> c(n, std::vector<double>(n));
    for (auto& row : c)
      for (double& x : row) x = u(gen);
    std::vector<int> sigma(n);
    std::iota(sigma.begin(), sigma.end(), 0);
    double best = std::numeric_limits<double>::infinity();
    do {
      double s = 0;
      for (int i = 0; i < n; ++i) s += c[i][sigma[i]];
      best = std::min(best, s);
    } while (std::next_permutation(sigma.begin(), sigma.end()));
    CHECK(hungarian_min(c) == doctest::Approx(best).epsilon(1e-12));
  }
}

TEST_CASE("sorted-set loss: NaN sorts last, ties are stable, permutations are deterministic") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  // Segment 0: [0, 6), segment 1: [6, 10).
  std::vector<double> p = {nan, 2.0, -inf, nan, inf, 2.0, /**/ 1.0, nan, 1.0, -0.0};
  std::vector<double> t = {3.0, 3.0, nan, 1.0, 3.0, 0.0, /**/ 0.0, 0.0, 0.0, 0.0};
  Perms r = engine_perms(p, t, {0, 6, 10});
  // pred seg 0: -inf(2) 2(1) 2(5) inf(4) nan(0) nan(3); seg 1: -0(9) 1(6) 1(8) nan(7)
  CHECK(r.pred == std::vector<int32_t>{2, 1, 5, 4, 0, 3, 9, 6, 8, 7});
  // target seg 0: 0(5) 1(3) 3(0) 3(1) 3(4) nan(2); seg 1 all equal: identity order
  CHECK(r.target == std::vector<int32_t>{5, 3, 0, 1, 4, 2, 6, 7, 8, 9});
  CHECK(std::isnan(r.loss));

  // +0 and -0 compare equal (stable: original order kept).
  Perms z = engine_perms({0.0, -0.0, 0.0, -0.0}, {1, 1, 1, 1}, {0, 4});
  CHECK(z.pred == std::vector<int32_t>{0, 1, 2, 3});

  // Deterministic across calls and thread counts, on a large input with many ties and NaNs.
  std::mt19937_64 gen(3);
  std::uniform_int_distribution<int> small(0, 9);
  const int segs = 3000;
  std::vector<int32_t> off = {0};
  std::vector<double> bp, bt;
  for (int s = 0; s < segs; ++s) {
    int n = 1 + small(gen) * 3;
    for (int i = 0; i < n; ++i) {
      int a = small(gen), b = small(gen);
      bp.push_back(a == 0 ? nan : a * 0.5);
      bt.push_back(b == 0 ? nan : b * 0.25);
    }
    off.push_back(static_cast<int32_t>(bp.size()));
  }
  Perms first = engine_perms(bp, bt, off);
  int prev = num_threads();
  set_num_threads(1);
  Perms serial = engine_perms(bp, bt, off);
  set_num_threads(prev);
  Perms again = engine_perms(bp, bt, off);
  CHECK(first.pred == serial.pred);
  CHECK(first.target == serial.target);
  CHECK(first.pred == again.pred);
  CHECK(first.target == again.target);
  // Stability: inside a segment, equal keys appear in increasing original index.
  for (size_t s = 0; s + 1 < off.size(); ++s) {
    for (int32_t k = off[s] + 1; k < off[s + 1]; ++k) {
      auto same = [](double x, double y) { return (std::isnan(x) && std::isnan(y)) || x == y; };
      if (same(bp[first.pred[k]], bp[first.pred[k - 1]])) CHECK(first.pred[k] > first.pred[k - 1]);
      if (same(bt[first.target[k]], bt[first.target[k - 1]])) CHECK(first.target[k] > first.target[k - 1]);
    }
  }
}

TEST_CASE("sorted-set loss is invariant to permuting pred and target within segments") {
  std::mt19937_64 gen(11);
  std::uniform_real_distribution<double> u(-5, 5);
  std::uniform_int_distribution<int> size(0, 9);
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<int32_t> off = {0};
    std::vector<double> p, t;
    for (int s = 0; s < 12; ++s) {
      int n = size(gen);
      for (int i = 0; i < n; ++i) {
        p.push_back(u(gen));
        t.push_back(rep % 2 ? std::round(u(gen)) : u(gen));  // odd reps: tied targets
      }
      off.push_back(static_cast<int32_t>(p.size()));
    }
    std::vector<double> p2 = p, t2 = t;
    for (size_t s = 0; s + 1 < off.size(); ++s) {
      std::shuffle(p2.begin() + off[s], p2.begin() + off[s + 1], gen);
      std::shuffle(t2.begin() + off[s], t2.begin() + off[s + 1], gen);
    }
    for (SetLossKind kind : kKinds) {
      for (Reduction red : {Reduction::Mean, Reduction::Sum}) {
        // Same sorted sequences, same summation order: bitwise equal.
        CHECK(engine_loss(p, t, off, kind, 0.8, red) == engine_loss(p2, t2, off, kind, 0.8, red));
      }
    }
  }
}

TEST_CASE("loss ops reject bad input with errors naming the op") {
  auto f = [](std::vector<double> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); };
  auto o = [](std::vector<int32_t> v) { return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}); };
  auto throws_with = [](auto&& fn, const std::string& needle) {
    try {
      fn();
    } catch (const Error& e) {
      std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(needle) != std::string::npos);
      return;
    }
    FAIL("no error thrown, expected: " << needle);
  };
  auto ssl = [&](Tensor p, Tensor t, Tensor off) { return sorted_set_loss(p, t, off, SetLossKind::L1); };
  throws_with([&] { ssl(f({1, 2, 3}), f({1, 2}), o({0, 3})); }, "SortedSetLoss: pred and target must have the same length");
  throws_with([&] { ssl(f({1, 2, 3}), f({1, 2, 3}), o({1, 3})); }, "offsets must start at 0");
  throws_with([&] { ssl(f({1, 2, 3}), f({1, 2, 3}), o({0, 2, 1, 3})); }, "offsets must be non-decreasing");
  throws_with([&] { ssl(f({1, 2, 3}), f({1, 2, 3}), o({0, 2})); }, "offsets must end at the number of elements 3");
  throws_with([&] { ssl(f({1, 2, 3}), f({1, 2, 3}), f({0, 3})); }, "input 2 must be i32 or i64");
  throws_with([&] { sorted_set_loss(f({1}), f({1}), o({0, 1}), SetLossKind::Huber, -1.0); }, "huber_delta must be > 0");
  throws_with([&] { info_nce(Tensor::zeros({3, 4}, DType::F64), Tensor()); }, "InfoNce: without targets (identity) the logits must be square");
  throws_with([&] { info_nce(Tensor::zeros({3, 4}), Tensor::zeros({4, 3})); }, "InfoNce: targets must have the shape of the logits");
  throws_with([&] { info_nce(Tensor::zeros({3, 3}), Tensor::zeros({3, 3}, DType::F64)); }, "must have the same dtype");
}

TEST_CASE("sorted-set loss: target gets no gradient, pred gradient scatters through the permutation") {
  Tensor p = Tensor::from_vector<double>({3.0, 1.0, 2.0}, {3});
  Tensor t = Tensor::from_vector<double>({0.0, 10.0, 5.0}, {3});
  p.set_requires_grad(true);
  t.set_requires_grad(true);
  Tensor loss = sorted_set_loss(p, t, Tensor::from_vector<int32_t>({0, 3}, {2}), SetLossKind::Squared, 1.0, Reduction::Sum);
  loss.backward();
  // sorted pred 1(1) 2(2) 3(0) vs sorted target 0 5 10: d = 1, -3, -7 -> dpred = 2d scattered.
  CHECK(p.grad().to_vector<double>() == std::vector<double>{-14.0, 2.0, -6.0});
  CHECK(!t.grad().defined());
}

}  // namespace larmor::test
