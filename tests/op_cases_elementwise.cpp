// Test rows for the element-wise ops (kernels/cpu/elementwise.cpp): each reference is a plain loop.
#include <cmath>

#include "tests/op_table.h"

namespace larmor::test {
namespace {

// Reference broadcasting binary op on f64 host values.
Tensor ref_binary(const Tensor& a, const Tensor& b, double (*f)(double, double)) {
  const Shape &sa = a.shape(), &sb = b.shape();
  size_t n = std::max(sa.size(), sb.size());
  Shape so(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i + sa.size() >= n ? sa[i + sa.size() - n] : 1;
    int64_t db = i + sb.size() >= n ? sb[i + sb.size() - n] : 1;
    so[i] = std::max(da, db);
  }
  std::vector<double> va = values(a), vb = values(b), out(static_cast<size_t>(shape_numel(so)));
  for (size_t flat = 0; flat < out.size(); ++flat) {
    std::vector<int64_t> idx(n);
    size_t rem = flat;
    for (size_t d = n; d-- > 0;) {
      idx[d] = static_cast<int64_t>(rem % static_cast<size_t>(so[d]));
      rem /= static_cast<size_t>(so[d]);
    }
    auto offset = [&](const Shape& s) {
      int64_t off = 0;
      for (size_t d = 0; d < s.size(); ++d) {
        int64_t i = idx[d + n - s.size()];
        off = off * s[d] + (s[d] == 1 ? 0 : i);
      }
      return off;
    };
    out[flat] = f(va[offset(sa)], vb[offset(sb)]);
  }
  return from_values(out, so);
}

Tensor ref_unary(const Tensor& a, double (*f)(double)) {
  std::vector<double> v = values(a);
  for (double& x : v) x = f(x);
  return from_values(v, a.shape());
}

struct BinaryRow {
  const char* name;
  OpId id;
  Tensor (*op)(const Tensor&, const Tensor&);
  double (*ref)(double, double);
};
struct UnaryRow {
  const char* name;
  OpId id;
  Tensor (*op)(const Tensor&);
  double (*ref)(double);
  double lo, hi;  // input range (avoid kinks and domain edges for gradcheck)
};

OpCaseRegistrar reg([](std::vector<OpCase>& t) {
  BinaryRow binaries[] = {
      {"Add", OpId::Add, add, [](double x, double y) { return x + y; }},
      {"Sub", OpId::Sub, sub, [](double x, double y) { return x - y; }},
      {"Mul", OpId::Mul, mul, [](double x, double y) { return x * y; }},
      {"Div", OpId::Div, div, [](double x, double y) { return x / y; }},
  };
  std::pair<Shape, Shape> shapes[] = {{{3, 4}, {3, 4}}, {{2, 3, 4}, {3, 1}}, {{4}, {2, 1, 4}}, {{}, {2, 3}}};
  for (const BinaryRow& r : binaries) {
    for (auto& [sa, sb] : shapes) {
      t.push_back(OpCase{
          std::string(r.name) + " " + shape_str(sa) + " with " + shape_str(sb),
          {r.id},
          [sa = sa, sb = sb](DType dt) {
            // Keep divisors away from zero.
            return Tensors{uniform(sa, -2, 2, 11, dt), uniform(sb, 0.5, 2, 12, dt)};
          },
          [op = r.op](const Tensors& in) { return Tensors{op(in[0], in[1])}; },
          [f = r.ref](const Tensors& in) { return Tensors{ref_binary(in[0], in[1], f)}; },
          {0, 1}});
    }
  }
  t.push_back(OpCase{"AddScalar", {OpId::AddScalar}, [](DType dt) { return Tensors{uniform({5, 3}, -1, 1, 3, dt)}; },
                     [](const Tensors& in) { return Tensors{add_scalar(in[0], 2.5)}; },
                     [](const Tensors& in) { return Tensors{ref_unary(in[0], [](double x) { return x + 2.5; })}; },
                     {0}});
  t.push_back(OpCase{"MulScalar", {OpId::MulScalar}, [](DType dt) { return Tensors{uniform({5, 3}, -1, 1, 4, dt)}; },
                     [](const Tensors& in) { return Tensors{mul_scalar(in[0], -1.5)}; },
                     [](const Tensors& in) { return Tensors{ref_unary(in[0], [](double x) { return x * -1.5; })}; },
                     {0}});
  UnaryRow unaries[] = {
      {"Neg", OpId::Neg, neg, [](double x) { return -x; }, -2, 2},
      {"Exp", OpId::Exp, exp, [](double x) { return std::exp(x); }, -2, 2},
      {"Log", OpId::Log, log, [](double x) { return std::log(x); }, 0.2, 3},
      {"Tanh", OpId::Tanh, tanh, [](double x) { return std::tanh(x); }, -2, 2},
      {"Gelu", OpId::Gelu, gelu, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, -3, 3},
      {"Relu", OpId::Relu, relu, [](double x) { return x > 0 ? x : 0.0; }, 0.05, 2},
      {"Relu negative side", OpId::Relu, relu, [](double x) { return x > 0 ? x : 0.0; }, -2, -0.05},
      {"Sigmoid", OpId::Sigmoid, sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, -3, 3},
      {"Abs", OpId::Abs, abs, [](double x) { return std::fabs(x); }, 0.05, 2},
      {"Abs negative side", OpId::Abs, abs, [](double x) { return std::fabs(x); }, -2, -0.05},
      {"Sqrt", OpId::Sqrt, sqrt, [](double x) { return std::sqrt(x); }, 0.2, 3},
      {"Square", OpId::Square, square, [](double x) { return x * x; }, -2, 2},
  };
  for (const UnaryRow& r : unaries) {
    t.push_back(OpCase{std::string(r.name), {r.id, OpId::UnaryBackward},
                       [lo = r.lo, hi = r.hi](DType dt) { return Tensors{uniform({4, 7}, lo, hi, 21, dt)}; },
                       [op = r.op](const Tensors& in) { return Tensors{op(in[0])}; },
                       [f = r.ref](const Tensors& in) { return Tensors{ref_unary(in[0], f)}; },
                       {0}});
  }
});

}  // namespace
}  // namespace larmor::test

namespace larmor::test {
namespace {
// AccumulateGrad is in place (dst += src) and returns nothing; the row returns dst after the call.
OpCaseRegistrar reg_accumulate([](std::vector<OpCase>& t) {
  t.push_back(OpCase{"AccumulateGrad in place", {OpId::AccumulateGrad},
                     [](DType dt) { return Tensors{uniform({3, 5}, -1, 1, 31, dt), uniform({3, 5}, -1, 1, 32, dt)}; },
                     [](const Tensors& in) {
                       Tensor dst = in[0].clone();
                       accumulate_(dst, in[1]);
                       return Tensors{dst};
                     },
                     [](const Tensors& in) {
                       std::vector<double> a = values(in[0]), b = values(in[1]);
                       for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
                       return Tensors{from_values(a, in[0].shape())};
                     },
                     {}});
});
}  // namespace
}  // namespace larmor::test
