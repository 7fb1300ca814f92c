// The fused AdamW step: one in-place pass over (param, grad, m, v) per parameter tensor instead of a
// dozen element-wise ops with their temporaries. It is an op (not host code in layers/) so that it
// gets a CUDA slot and the optimizer never copies parameters between devices. Semantics are
// torch.optim.AdamW's: decoupled weight decay first, then the bias-corrected Adam update
//   param *= 1 - lr*wd
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   param -= lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps)
// The scalar factors are computed once in f64; the per-element arithmetic runs in the tensor dtype.
// Every element is independent, so parallel_for over elements is deterministic.
#include <cmath>

#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// AdamWStep(param, grad, m, v); reals = [lr, beta1, beta2, eps, weight_decay], ints = [step]. No outputs.
std::vector<TensorMeta> infer_AdamWStep(const std::vector<Tensor>& in, const Attrs& a) {
  constexpr OpId id = OpId::AdamWStep;
  op_expect_float(id, in, 0);
  for (size_t k = 1; k < 4; ++k) {
    op_expect_same_dtype(id, in, 0, k);
    if (in[k].shape() != in[0].shape()) op_fail(id, in, "param, grad, m and v must have one shape");
  }
  if (a.reals.size() != 5) op_fail(id, in, "expected reals [lr, beta1, beta2, eps, weight_decay]");
  if (a.ints.size() != 1 || a.i(0) < 1) op_fail(id, in, "expected ints [step] with step >= 1");
  double b1 = a.f(1), b2 = a.f(2);
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
    op_fail(id, in, "betas must lie in [0, 1), got " + std::to_string(b1) + ", " + std::to_string(b2));
  if (!(a.f(3) >= 0)) op_fail(id, in, "eps must be >= 0");
  return {};
}

void fwd_AdamWStep(const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs& a) {
  double lr = a.f(0), b1 = a.f(1), b2 = a.f(2), eps = a.f(3), wd = a.f(4);
  double step = static_cast<double>(a.i(0));
  double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "AdamWStep", [&] {
    scalar_t* p = mptr<scalar_t>(in[0]);
    const scalar_t* g = cptr<scalar_t>(in[1]);
    scalar_t* m = mptr<scalar_t>(in[2]);
    scalar_t* v = mptr<scalar_t>(in[3]);
    const scalar_t decay = static_cast<scalar_t>(1.0 - lr * wd);
    const scalar_t c1 = static_cast<scalar_t>(b1), c1m = static_cast<scalar_t>(1.0 - b1);
    const scalar_t c2 = static_cast<scalar_t>(b2), c2m = static_cast<scalar_t>(1.0 - b2);
    const scalar_t step_size = static_cast<scalar_t>(lr / bc1);
    const scalar_t inv_sqrt_bc2 = static_cast<scalar_t>(1.0 / std::sqrt(bc2));
    const scalar_t e = static_cast<scalar_t>(eps);
    parallel_for(0, in[0].numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        scalar_t gi = g[i];
        scalar_t mi = c1 * m[i] + c1m * gi;
        scalar_t vi = c2 * v[i] + c2m * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + e);
      }
    });
  });
}

}  // namespace

void register_optim_ops() {
  OpDef& d = mutable_op_def(OpId::AdamWStep);
  d.num_inputs = 4;
  d.num_outputs = 0;
  d.num_diff_outputs = 0;
  d.infer = infer_AdamWStep;
  d.forward[0] = fwd_AdamWStep;
}

void adamw_step_(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                 double eps, double weight_decay, int64_t step) {
  call_op(OpId::AdamWStep, {param, grad, m, v}, Attrs{{step}, {lr, beta1, beta2, eps, weight_decay}});
}

}  // namespace larmor
