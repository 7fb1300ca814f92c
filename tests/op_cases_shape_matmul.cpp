// Test rows for the reductions (kernels/cpu/reduce.cpp), the shape ops (kernels/cpu/shape.cpp) and
// matmul (kernels/cpu/matmul.cpp). Every reference is a plain loop over f64 host values on
// multi-indices; none calls the engine. Plus a check that shape errors name the op and the shapes.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>

#include "engine/thread_pool.h"
#include "tests/op_table.h"

namespace larmor::test {
namespace {

using Index = std::vector<int64_t>;

Index unravel(int64_t flat, const Shape& s) {
  Index idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = flat % s[d];
    flat /= s[d];
  }
  return idx;
}
int64_t ravel(const Index& idx, const Shape& s) {
  int64_t off = 0;
  for (size_t d = 0; d < s.size(); ++d) off = off * s[d] + idx[d];
  return off;
}
int64_t norm_axis(int64_t ax, size_t nd) { return ax < 0 ? ax + static_cast<int64_t>(nd) : ax; }

// Tie-free values in [-2, 2): a fixed permutation of n evenly spaced values (Max gradients are unique).
Tensor distinct(const Shape& s, int64_t salt, DType dt) {
  int64_t n = shape_numel(s);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = -2.0 + 4.0 * static_cast<double>((i * 7919 + salt) % n) / n;
  return from_values(v, s).to(dt);
}

// ---- reductions ---------------------------------------------------------------------------------------
enum class RedKind { Sum, Mean, Max };

Tensor ref_reduce(const Tensor& x, std::vector<int64_t> axes, bool keepdim, RedKind kind) {
  const Shape& s = x.shape();
  std::vector<bool> red(s.size(), axes.empty());
  for (int64_t a : axes) red[norm_axis(a, s.size())] = true;
  Shape kept, out;
  for (size_t d = 0; d < s.size(); ++d) {
    kept.push_back(red[d] ? 1 : s[d]);
    if (!red[d] || keepdim) out.push_back(red[d] ? 1 : s[d]);
  }
  std::vector<double> xv = values(x);
  size_t nout = static_cast<size_t>(shape_numel(kept));
  std::vector<double> acc(nout, kind == RedKind::Max ? -std::numeric_limits<double>::infinity() : 0.0);
  std::vector<int64_t> count(nout, 0);
  for (int64_t f = 0; f < x.numel(); ++f) {
    Index idx = unravel(f, s);
    for (size_t d = 0; d < s.size(); ++d)
      if (red[d]) idx[d] = 0;
    size_t o = static_cast<size_t>(ravel(idx, kept));
    acc[o] = kind == RedKind::Max ? std::max(acc[o], xv[f]) : acc[o] + xv[f];
    ++count[o];
  }
  if (kind == RedKind::Mean)
    for (size_t o = 0; o < nout; ++o) acc[o] /= static_cast<double>(count[o]);
  return from_values(acc, out);
}

// ---- shape ops ----------------------------------------------------------------------------------------
Tensor ref_permute(const Tensor& x, const std::vector<int64_t>& perm) {
  const Shape& s = x.shape();
  Shape os(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) os[d] = s[norm_axis(perm[d], s.size())];
  std::vector<double> xv = values(x), out(static_cast<size_t>(x.numel()));
  for (int64_t f = 0; f < x.numel(); ++f) {
    Index oi = unravel(f, os), ii(s.size());
    for (size_t d = 0; d < perm.size(); ++d) ii[norm_axis(perm[d], s.size())] = oi[d];
    out[f] = xv[ravel(ii, s)];
  }
  return from_values(out, os);
}

Tensor ref_slice(const Tensor& x, int64_t axis, int64_t start, int64_t end) {
  const Shape& s = x.shape();
  int64_t ax = norm_axis(axis, s.size());
  Shape os = s;
  os[ax] = end - start;
  std::vector<double> xv = values(x), out(static_cast<size_t>(shape_numel(os)));
  for (size_t f = 0; f < out.size(); ++f) {
    Index i = unravel(static_cast<int64_t>(f), os);
    i[ax] += start;
    out[f] = xv[ravel(i, s)];
  }
  return from_values(out, os);
}

Tensor ref_pad_range(const Tensor& dy, int64_t axis, int64_t start, int64_t full) {
  Shape os = dy.shape();
  os[axis] = full;
  std::vector<double> dv = values(dy), out(static_cast<size_t>(shape_numel(os)), 0.0);
  for (int64_t f = 0; f < dy.numel(); ++f) {
    Index i = unravel(f, dy.shape());
    i[axis] += start;
    out[ravel(i, os)] = dv[f];
  }
  return from_values(out, os);
}

Tensor ref_concat(const Tensors& xs, int64_t axis) {
  int64_t ax = norm_axis(axis, xs[0].dim());
  Shape os = xs[0].shape();
  os[ax] = 0;
  for (const Tensor& x : xs) os[ax] += x.shape()[ax];
  std::vector<double> out(static_cast<size_t>(shape_numel(os)));
  int64_t off = 0;
  for (const Tensor& x : xs) {
    std::vector<double> xv = values(x);
    for (int64_t f = 0; f < x.numel(); ++f) {
      Index i = unravel(f, x.shape());
      i[ax] += off;
      out[ravel(i, os)] = xv[f];
    }
    off += x.shape()[ax];
  }
  return from_values(out, os);
}

// ---- matmul: a (..., M, K) or (..., K, M); b (..., K, N) / (..., N, K) or 2-D shared --------------------
Tensor ref_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const Shape &sa = a.shape(), &sb = b.shape();
  size_t na = sa.size(), nb = sb.size();
  Shape batch(sa.begin(), sa.end() - 2);
  bool shared = nb == 2 && na > 2;
  int64_t B = shape_numel(batch);
  int64_t M = ta ? sa[na - 1] : sa[na - 2], K = ta ? sa[na - 2] : sa[na - 1];
  int64_t N = tb ? sb[nb - 2] : sb[nb - 1];
  std::vector<double> av = values(a), bv = values(b), out(static_cast<size_t>(B * M * N), 0.0);
  for (int64_t q = 0; q < B; ++q) {
    const double* ap = av.data() + q * M * K;
    const double* bp = bv.data() + (shared ? 0 : q * K * N);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += (ta ? ap[k * M + i] : ap[i * K + k]) * (tb ? bp[j * K + k] : bp[k * N + j]);
        out[q * M * N + i * N + j] = s;
      }
  }
  Shape os = batch;
  os.push_back(M);
  os.push_back(N);
  return from_values(out, os);
}

// Stored shape of an operand given its batch dims, logical (rows, cols) and whether it is transposed.
Shape stored(Shape batch, int64_t rows, int64_t cols, bool trans) {
  batch.push_back(trans ? cols : rows);
  batch.push_back(trans ? rows : cols);
  return batch;
}

std::string tflags(bool ta, bool tb) { return std::string(ta ? "T" : "N") + (tb ? "T" : "N"); }

OpCaseRegistrar reg([](std::vector<OpCase>& t) {
  // ---- Sum / Mean / Max ----
  struct RedRow {
    Shape shape;
    std::vector<int64_t> axes;
    bool keepdim;
  };
  RedRow red_rows[] = {
      {{3, 4}, {}, false},        {{2, 3, 4}, {}, true},       {{2, 3, 4}, {1}, false}, {{2, 3, 4}, {1}, true},
      {{2, 3, 4}, {0, 2}, false}, {{2, 3, 4}, {0, 2}, true},   {{2, 3, 4}, {-1}, false}, {{2, 3, 4, 5}, {-3, 3}, true},
      {{5}, {0}, false},
  };
  struct RedOp {
    const char* name;
    RedKind kind;
    std::vector<OpId> ops;
    Tensor (*op)(const Tensor&, const std::vector<int64_t>&, bool);
  };
  RedOp red_ops[] = {{"Sum", RedKind::Sum, {OpId::Sum}, sum},
                     {"Mean", RedKind::Mean, {OpId::Mean}, mean},
                     {"Max", RedKind::Max, {OpId::Max, OpId::MaxBackward}, max}};
  int64_t salt = 1;
  for (const RedOp& r : red_ops) {
    for (const RedRow& rr : red_rows) {
      ++salt;
      t.push_back(OpCase{
          std::string(r.name) + " " + shape_str(rr.shape) + " axes " + shape_str(rr.axes) + (rr.keepdim ? " keepdim" : ""),
          r.ops,
          [s = rr.shape, salt, kind = r.kind](DType dt) {
            return Tensors{kind == RedKind::Max ? distinct(s, salt, dt) : uniform(s, -2, 2, 100 + salt, dt)};
          },
          [op = r.op, axes = rr.axes, kd = rr.keepdim](const Tensors& in) { return Tensors{op(in[0], axes, kd)}; },
          [kind = r.kind, axes = rr.axes, kd = rr.keepdim](const Tensors& in) {
            return Tensors{ref_reduce(in[0], axes, kd, kind)};
          },
          {0}});
    }
  }

  // ---- Reshape ----
  std::pair<Shape, Shape> reshapes[] = {{{2, 3, 4}, {6, 4}}, {{2, 3, 4}, {4, -1}}, {{6}, {1, 2, 1, 3}}, {{1}, {}}};
  for (auto& [from, to] : reshapes) {
    t.push_back(OpCase{"Reshape " + shape_str(from) + " to " + shape_str(to), {OpId::Reshape},
                       [s = from](DType dt) { return Tensors{uniform(s, -1, 1, 5, dt)}; },
                       [to = to](const Tensors& in) { return Tensors{reshape(in[0], to)}; },
                       [to = to](const Tensors& in) {
                         Shape s = to;
                         int64_t known = 1, hole = -1;
                         for (size_t d = 0; d < s.size(); ++d) {
                           if (s[d] < 0) hole = static_cast<int64_t>(d);
                           else known *= s[d];
                         }
                         if (hole >= 0) s[hole] = in[0].numel() / known;
                         return Tensors{from_values(values(in[0]), s)};
                       },
                       {0}});
  }

  // ---- Permute / transpose ----
  std::pair<Shape, std::vector<int64_t>> perms[] = {
      {{3, 5}, {1, 0}},           {{2, 3, 4}, {2, 0, 1}},       {{2, 3, 4}, {0, 1, 2}},
      {{2, 3, 4, 5}, {0, 2, 1, 3}}, {{2, 3, 4, 5}, {3, 1, 0, 2}}, {{2, 1, 3, 4}, {3, 0, 2, 1}},
      {{2, 3, 4}, {-1, 0, -2}},   {{2, 0, 3}, {2, 1, 0}},
  };
  for (auto& [s, p] : perms) {
    t.push_back(OpCase{"Permute " + shape_str(s) + " by " + shape_str(p), {OpId::Permute},
                       [s = s](DType dt) { return Tensors{uniform(s, -1, 1, 6, dt)}; },
                       [p = p](const Tensors& in) { return Tensors{permute(in[0], p)}; },
                       [p = p](const Tensors& in) { return Tensors{ref_permute(in[0], p)}; },
                       {0}});
  }
  t.push_back(OpCase{"Permute via transpose (2, 3, 4) axes 0 and -1", {OpId::Permute},
                     [](DType dt) { return Tensors{uniform({2, 3, 4}, -1, 1, 7, dt)}; },
                     [](const Tensors& in) { return Tensors{transpose(in[0], 0, -1)}; },
                     [](const Tensors& in) { return Tensors{ref_permute(in[0], {2, 1, 0})}; },
                     {0}});
  t.push_back(OpCase{"Permute via transpose (3, 4, 5) last two axes", {OpId::Permute},
                     [](DType dt) { return Tensors{uniform({3, 4, 5}, -1, 1, 8, dt)}; },
                     [](const Tensors& in) { return Tensors{transpose(in[0], -1, -2)}; },
                     [](const Tensors& in) { return Tensors{ref_permute(in[0], {0, 2, 1})}; },
                     {0}});

  // ---- Slice (+ SliceBackward through the gradcheck) ----
  struct SliceRow {
    Shape s;
    int64_t axis, start, end;
  };
  SliceRow slices[] = {{{3, 5, 4}, 1, 1, 4}, {{3, 5, 4}, 0, 2, 3}, {{3, 5, 4}, -1, 0, 2},
                       {{6}, 0, 0, 6},       {{3, 5, 4}, 2, 2, 2}};
  for (const SliceRow& r : slices) {
    t.push_back(OpCase{"Slice " + shape_str(r.s) + " axis " + std::to_string(r.axis) + " [" + std::to_string(r.start) +
                           ", " + std::to_string(r.end) + ")",
                       {OpId::Slice, OpId::SliceBackward},
                       [s = r.s](DType dt) { return Tensors{uniform(s, -1, 1, 9, dt)}; },
                       [r](const Tensors& in) { return Tensors{slice(in[0], r.axis, r.start, r.end)}; },
                       [r](const Tensors& in) { return Tensors{ref_slice(in[0], r.axis, r.start, r.end)}; },
                       {0}});
  }
  t.push_back(OpCase{"SliceBackward direct (2, 3, 4) axis 1 [2, 5) of 6", {OpId::SliceBackward},
                     [](DType dt) { return Tensors{uniform({2, 3, 4}, -1, 1, 10, dt)}; },
                     [](const Tensors& in) { return Tensors{call_op1(OpId::SliceBackward, {in[0]}, {{1, 2, 5, 6}, {}})}; },
                     [](const Tensors& in) { return Tensors{ref_pad_range(in[0], 1, 2, 6)}; },
                     {}});

  // ---- Concat ----
  struct ConcatRow {
    std::vector<Shape> shapes;
    int64_t axis;
  };
  ConcatRow concats[] = {
      {{{2, 3, 4}, {2, 1, 4}, {2, 5, 4}}, 1},
      {{{2, 3}, {4, 3}, {1, 3}}, 0},
      {{{2, 3, 2}, {2, 3, 1}}, -1},
      {{{2, 2, 4}, {2, 0, 4}, {2, 1, 4}}, 1},
      {{{3, 2}}, 1},
  };
  for (const ConcatRow& r : concats) {
    std::string nm = "Concat axis " + std::to_string(r.axis);
    for (const Shape& s : r.shapes) {
      nm += ' ';
      nm += shape_str(s);
    }
    std::vector<int> wrt;
    for (size_t k = 0; k < r.shapes.size(); ++k) wrt.push_back(static_cast<int>(k));
    t.push_back(OpCase{nm, {OpId::Concat},
                       [r](DType dt) {
                         Tensors xs;
                         for (size_t k = 0; k < r.shapes.size(); ++k) xs.push_back(uniform(r.shapes[k], -1, 1, 20 + k, dt));
                         return xs;
                       },
                       [r](const Tensors& in) { return Tensors{concat(in, r.axis)}; },
                       [r](const Tensors& in) { return Tensors{ref_concat(in, r.axis)}; },
                       wrt});
  }

  // ---- Matmul ----
  struct MmRow {
    std::string what;
    Shape batch_a, batch_b;  // batch_b empty with non-empty batch_a: shared 2-D b
    int64_t M, K, N;
    bool ta, tb;
    std::vector<int> wrt;
  };
  std::vector<MmRow> mm;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      mm.push_back({"2-D", {}, {}, 3, 4, 5, ta, tb, {0, 1}});
      mm.push_back({"batched", {2, 3}, {2, 3}, 4, 2, 3, ta, tb, {0, 1}});
      mm.push_back({"shared 2-D b", {2, 3}, {}, 3, 5, 2, ta, tb, {0, 1}});
    }
  mm.push_back({"1-row", {}, {}, 1, 4, 3, false, false, {0, 1}});
  mm.push_back({"1-col", {}, {}, 3, 4, 1, false, true, {0, 1}});
  mm.push_back({"outer product K=1", {2}, {2}, 3, 1, 4, false, false, {0, 1}});
  mm.push_back({"K=0 gives zeros", {}, {}, 3, 0, 2, false, false, {}});
  mm.push_back({"empty batch", {0}, {0}, 3, 2, 2, false, false, {}});
  // Several row blocks of the parallel kernel (kRowBlock = 128 output rows).
  mm.push_back({"shared b, many rows", {3}, {}, 100, 6, 5, false, false, {1}});
  mm.push_back({"batched, many rows", {2}, {2}, 150, 5, 4, true, false, {1}});
  mm.push_back({"shared b trans_a, many rows", {2}, {}, 150, 5, 4, true, true, {1}});
  for (const MmRow& r : mm) {
    Shape sa = stored(r.batch_a, r.M, r.K, r.ta), sb = stored(r.batch_b, r.K, r.N, r.tb);
    t.push_back(OpCase{"Matmul " + r.what + " " + tflags(r.ta, r.tb) + " a" + shape_str(sa) + " b" + shape_str(sb),
                       {OpId::Matmul},
                       [sa, sb](DType dt) { return Tensors{uniform(sa, -1, 1, 31, dt), uniform(sb, -1, 1, 32, dt)}; },
                       [r](const Tensors& in) { return Tensors{matmul(in[0], in[1], r.ta, r.tb)}; },
                       [r](const Tensors& in) { return Tensors{ref_matmul(in[0], in[1], r.ta, r.tb)}; },
                       r.wrt});
  }
});

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_CASE("shape and matmul errors name the op and the shapes") {
  auto has = [](const std::string& msg, std::initializer_list<const char*> parts) {
    for (const char* p : parts)
      if (msg.find(p) == std::string::npos) return false;
    return true;
  };
  Tensor a23 = Tensor::zeros({2, 3}), b45 = Tensor::zeros({4, 5}), x234 = Tensor::zeros({2, 3, 4});
  std::string m = error_of([&] { matmul(a23, b45); });
  INFO(m);
  CHECK(has(m, {"Matmul", "(2, 3)", "(4, 5)", "K=3", "K=4"}));
  m = error_of([&] { matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({3, 4, 5})); });
  CHECK(has(m, {"Matmul", "batch", "(2, 3, 4)", "(3, 4, 5)"}));
  m = error_of([&] { matmul(a23, Tensor::zeros({2, 3, 4})); });
  CHECK(has(m, {"Matmul", "(2, 3)", "(2, 3, 4)"}));
  m = error_of([&] { concat({a23, Tensor::zeros({3, 3}), Tensor::zeros({2, 4})}, 1); });
  CHECK(has(m, {"Concat", "(2, 3)", "(3, 3)", "(2, 4)"}));
  m = error_of([&] { concat({a23, Tensor::zeros({2, 3}, DType::F64)}, 0); });
  CHECK(has(m, {"Concat", "dtype"}));
  m = error_of([&] { permute(x234, {0, 0, 1}); });
  CHECK(has(m, {"Permute", "(2, 3, 4)", "(0, 0, 1)"}));
  m = error_of([&] { permute(x234, {1, 0}); });
  CHECK(has(m, {"Permute", "(2, 3, 4)"}));
  m = error_of([&] { transpose(x234, 0, 3); });
  CHECK(has(m, {"Permute", "(2, 3, 4)", "axis 3"}));
  m = error_of([&] { slice(x234, 1, 2, 4); });
  CHECK(has(m, {"Slice", "(2, 3, 4)", "[2, 4)"}));
  m = error_of([&] { slice(x234, 1, 2, 1); });
  CHECK(has(m, {"Slice", "(2, 3, 4)"}));
}

TEST_CASE("matmul results do not depend on the thread count") {
  // The row blocks are fixed, so the result does not depend on the thread count.
  Tensor a = uniform({4, 70, 33}, -1, 1, 41, DType::F32), b = uniform({33, 17}, -1, 1, 42, DType::F32);
  int prev = num_threads();
  set_num_threads(1);
  std::vector<float> one = matmul(a, b).to_vector<float>();
  set_num_threads(std::max(prev, 2));
  std::vector<float> many = matmul(a, b).to_vector<float>();
  set_num_threads(prev);
  CHECK(one == many);
}

}  // namespace larmor::test
