#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "tests/op_table.h"

namespace larmor::test {

std::vector<OpCase>& op_cases() {
  static std::vector<OpCase> cases;
  return cases;
}

std::vector<double> values(const Tensor& t) {
  Tensor h = t.to(Device::cpu());
  std::vector<double> v(static_cast<size_t>(h.numel()));
  LARMOR_DISPATCH_ALL(h.dtype(), "values", [&] {
    const scalar_t* p = h.data<scalar_t>();
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(p[i]);
  });
  return v;
}

Tensor from_values(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector<double>(v, s); }

Tensor uniform(const Shape& s, double lo, double hi, uint64_t seed, DType dt) {
  return rand_uniform(s, lo, hi, seed, 0, DType::F64).to(dt);
}

namespace {

// Max violation of |a - r| <= tol * (1 + |r|), as a ratio (<= 1 passes); NaN in both counts as equal.
double compare(const Tensor& out, const Tensor& ref, double tol, std::string* where) {
  if (out.shape() != ref.shape()) {
    *where = "shape " + shape_str(out.shape()) + " vs reference " + shape_str(ref.shape());
    return INFINITY;
  }
  std::vector<double> a = values(out), r = values(ref);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(r[i])) continue;
    double ratio = std::fabs(a[i] - r[i]) / (tol * (1 + std::fabs(r[i])));
    if (!(ratio <= worst)) {
      worst = std::isnan(ratio) ? INFINITY : ratio;
      *where = "element " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs reference " + std::to_string(r[i]);
    }
  }
  return worst;
}

Tensors cast_floats(const Tensors& xs, DType dt) {
  Tensors out;
  for (const Tensor& x : xs) out.push_back(x.defined() && is_floating(x.dtype()) ? x.to(dt) : x);
  return out;
}

}  // namespace

TEST_CASE("op table: every row matches its reference, passes gradcheck, and every op is covered") {
  const auto& cases = op_cases();
  REQUIRE(!cases.empty());
  // LARMOR_OP_ROWS=substring runs only the matching rows (and skips the coverage check).
  const char* filter = std::getenv("LARMOR_OP_ROWS");
  std::set<OpId> gradchecked;
  for (const OpCase& c : cases) {
    if (filter && c.name.find(filter) == std::string::npos) continue;
    INFO("row: " << c.name);
    Tensors in64 = c.make_inputs(DType::F64);
    Tensors ref = c.reference(in64);
    for (DType dt : {DType::F64, DType::F32}) {
      INFO("dtype " << dtype_name(dt));
      Tensors in = cast_floats(in64, dt);
      Tensors out;
      {
        NoGradGuard ng;
        out = c.run(in);
      }
      REQUIRE(out.size() == ref.size());
      for (size_t k = 0; k < out.size(); ++k) {
        if (!ref[k].defined()) continue;
        std::string where;
        double bad = compare(out[k], ref[k], dt == DType::F64 ? c.tol_f64 : c.tol_f32, &where);
        INFO("output " << k << ": " << where);
        CHECK(bad <= 1.0);
      }
    }
    if (!c.grad_wrt.empty()) {
      std::string msg = gradcheck(c.run, in64, c.grad_wrt, c.grad);
      INFO(msg);
      CHECK(msg.empty());
      for (OpId id : c.ops) gradchecked.insert(id);
    }
  }
  if (filter) return;
  // Coverage: the whole table ran on the CPU, and every differentiable op was gradchecked by name.
  for (int i = 0; i < kNumOps; ++i) {
    OpId id = static_cast<OpId>(i);
    INFO("op " << std::string(op_name(id)));
    const OpDef& d = op_def(id);
    CHECK(bool(d.infer));
    CHECK((bool(d.forward[0]) || bool(d.view)));
    CHECK(op_call_count(id, DeviceType::CPU) > 0);
    if (d.backward) CHECK(gradchecked.count(id) == 1);
  }
}

}  // namespace larmor::test
