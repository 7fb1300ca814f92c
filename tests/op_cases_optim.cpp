// Test rows for the fused AdamW step (kernels/cpu/optim.cpp): three consecutive in-place steps on
// copies of the inputs against a naive f64 loop of torch.optim.AdamW's update. Not differentiable.
#include <cmath>

#include "tests/op_table.h"

namespace larmor::test {
namespace {

struct AdamCfg {
  double lr, b1, b2, eps, wd;
  int64_t first_step;  // step number of the first of the three updates
};

// Inputs: param, m, v, then one gradient per step.
Tensors run_adamw(const Tensors& in, const AdamCfg& c) {
  Tensor p = in[0].clone(), m = in[1].clone(), v = in[2].clone();
  for (int k = 0; k < 3; ++k) adamw_step_(p, in[3 + k], m, v, c.lr, c.b1, c.b2, c.eps, c.wd, c.first_step + k);
  return {p, m, v};
}

Tensors ref_adamw(const Tensors& in, const AdamCfg& c) {
  std::vector<double> p = values(in[0]), m = values(in[1]), v = values(in[2]);
  for (int k = 0; k < 3; ++k) {
    std::vector<double> g = values(in[3 + k]);
    double step = static_cast<double>(c.first_step + k);
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] *= 1 - c.lr * c.wd;
      m[i] = c.b1 * m[i] + (1 - c.b1) * g[i];
      v[i] = c.b2 * v[i] + (1 - c.b2) * g[i] * g[i];
      double mhat = m[i] / (1 - std::pow(c.b1, step));
      double vhat = v[i] / (1 - std::pow(c.b2, step));
      p[i] -= c.lr * mhat / (std::sqrt(vhat) + c.eps);
    }
  }
  const Shape& s = in[0].shape();
  return {from_values(p, s), from_values(m, s), from_values(v, s)};
}

OpCaseRegistrar reg([](std::vector<OpCase>& t) {
  struct Row {
    const char* name;
    Shape shape;
    AdamCfg cfg;
    bool fresh;  // m = v = 0 (first steps) vs a resumed state
  };
  Row rows[] = {
      {"AdamWStep fresh state (5, 7)", {5, 7}, {1e-2, 0.9, 0.999, 1e-8, 0.01, 1}, true},
      {"AdamWStep resumed state, no decay (3, 4, 6)", {3, 4, 6}, {3e-3, 0.8, 0.99, 1e-6, 0.0, 17}, false},
      {"AdamWStep strong decay (40000)", {40000}, {5e-2, 0.9, 0.95, 1e-8, 0.5, 4}, false},
  };
  for (const Row& r : rows) {
    t.push_back(OpCase{
        r.name,
        {OpId::AdamWStep},
        [s = r.shape, fresh = r.fresh](DType dt) {
          Tensors in{uniform(s, -1, 1, 31, dt)};
          if (fresh) {
            in.push_back(Tensor::zeros(s, dt));
            in.push_back(Tensor::zeros(s, dt));
          } else {
            in.push_back(uniform(s, -0.1, 0.1, 32, dt));
            in.push_back(uniform(s, 0.0, 0.02, 33, dt));
          }
          for (uint64_t k = 0; k < 3; ++k) in.push_back(uniform(s, -0.5, 0.5, 40 + k, dt));
          return in;
        },
        [c = r.cfg](const Tensors& in) { return run_adamw(in, c); },
        [c = r.cfg](const Tensors& in) { return ref_adamw(in, c); },
        {},
        1e-9,
        1e-4});
  }
});

}  // namespace
}  // namespace larmor::test
