// In-place helpers used by autograd and the optimizers (AccumulateGrad, AdamWStep), plus dropout and
// the Gaussian distance basis.
//
// Dropout draws its mask from Philox (engine/philox.h): element i is kept iff
// philox_uniform(seed, stream, i) >= p, a pure function of (seed, stream, i). So the mask never has to
// be stored: the backward is the same Dropout applied to the gradient, and a CUDA kernel reproduces
// the CPU mask bit for bit. The Gaussian basis is element-wise over (x, k); its backward is a dedicated
// op that recomputes g once (keeping dy * g in a scratch buffer) and reduces dmean/dstd over x's elements
// in order, each k owned by one thread (deterministic, independent of the thread count).
#include <algorithm>
#include <Eigen/Dense>
#include <cmath>

#include "autograd/node.h"
#include "engine/philox.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// ---- AccumulateGrad(dst, src): dst += src in place; returns nothing useful (output is a 0-d dummy) ------
std::vector<TensorMeta> infer_AccumulateGrad(const std::vector<Tensor>& in, const Attrs&) {
  op_expect_float(OpId::AccumulateGrad, in, 0);
  op_expect_same_dtype(OpId::AccumulateGrad, in, 0, 1);
  if (in[0].shape() != in[1].shape()) op_fail(OpId::AccumulateGrad, in, "dst and src shapes differ");
  return {};
}
void fwd_AccumulateGrad(const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs&) {
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "AccumulateGrad", [&] {
    scalar_t* d = mptr<scalar_t>(in[0]);
    const scalar_t* s = cptr<scalar_t>(in[1]);
    parallel_for(0, in[0].numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) d[i] += s[i];
    });
  });
}

// ---- Dropout(x; ints=[training, seed (int64 bits), stream], reals=[p]) -> y ----------------------------------
std::vector<TensorMeta> infer_Dropout(const std::vector<Tensor>& in, const Attrs& a) {
  op_expect_float(OpId::Dropout, in, 0);
  double p = a.f(0);
  if (!(p >= 0 && p < 1)) op_fail(OpId::Dropout, in, "p must be in [0, 1), got " + std::to_string(p));
  return {{in[0].shape(), in[0].dtype()}};
}
void fwd_Dropout(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const double p = a.f(0);
  const bool active = a.i(0) != 0 && p > 0;
  const uint64_t seed = static_cast<uint64_t>(a.i(1)), stream = static_cast<uint64_t>(a.i(2));
  // philox_uniform is k * 2^-24 for the 24-bit integer k = word >> 8, and p * 2^24 is exact in double, so
  // "uniform >= p" is "k >= ceil(p * 2^24)": the same mask from an integer compare in a branch-free loop
  // that the compiler vectorises (the Philox rounds dominate).
  const uint32_t keep_from = static_cast<uint32_t>(std::ceil(p * 16777216.0));
  const uint32_t stream_lo = static_cast<uint32_t>(stream), stream_hi = static_cast<uint32_t>(stream >> 32);
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "Dropout", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    const scalar_t scale = static_cast<scalar_t>(1.0 / (1.0 - p));
    if (!active) {
      std::copy(x, x + in[0].numel(), y);
      return;
    }
    parallel_for(0, in[0].numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const uint64_t u = static_cast<uint64_t>(i);
        const Philox4 r = philox4x32_10(seed, static_cast<uint32_t>(u), static_cast<uint32_t>(u >> 32), stream_lo, stream_hi);
        const scalar_t kept = x[i] * scale;  // unconditional load: a select, not a masked load
        y[i] = (r.v[0] >> 8) >= keep_from ? kept : scalar_t(0);
      }
    });
  });
}
std::vector<Tensor> bwd_Dropout(const Node& n, const std::vector<Tensor>& g) {
  return {call_op1(OpId::Dropout, {g[0]}, n.attrs)};  // same attrs: same mask and scale
}

// ---- GaussianBasis(x (...), mean (K), std (K)) -> (..., K) ---------------------------------------------------
// g = exp(-z^2 / 2) / (sqrt(2 pi) s), z = (x - mean) / s, s = |std| + 1e-5.
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kStdFloor = 1e-5;

void check_gaussian_inputs(OpId id, const std::vector<Tensor>& in, size_t n) {
  for (size_t k = 0; k < n; ++k) {
    op_expect_float(id, in, k);
    op_expect_same_dtype(id, in, 0, k);
  }
  if (in[1].dim() != 1 || in[2].shape() != in[1].shape()) op_fail(id, in, "mean and std must both be (K)");
}
std::vector<TensorMeta> infer_GaussianBasis(const std::vector<Tensor>& in, const Attrs&) {
  check_gaussian_inputs(OpId::GaussianBasis, in, 3);
  Shape s = in[0].shape();
  s.push_back(in[1].shape()[0]);
  return {{s, in[0].dtype()}};
}
// The per-basis-function constants of g = exp(-z^2 / 2) / (sqrt(2 pi) s), z = (x - mean) / s. The forward and
// the backward's first pass evaluate a row of K functions at once with Eigen's packet exp (the scalar
// std::exp made this op a tenth of shift-model inference).
template <typename T>
struct GaussianRow {
  using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
  Arr mean, s, inv_s, coef;  // (K): mean, s = |std| + floor, 1 / s, 1 / (sqrt(2 pi) s)
  GaussianRow(const T* m, const T* sd, int64_t k) : mean(k), s(k), inv_s(k), coef(k) {
    for (int64_t j = 0; j < k; ++j) {
      mean[j] = m[j];
      s[j] = std::abs(sd[j]) + static_cast<T>(kStdFloor);
      inv_s[j] = T(1) / s[j];
      coef[j] = static_cast<T>(kInvSqrt2Pi) / s[j];
    }
  }
};
void fwd_GaussianBasis(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  int64_t n = in[0].numel(), k = in[1].shape()[0];
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "GaussianBasis", [&] {
    using Arr = typename GaussianRow<scalar_t>::Arr;
    const scalar_t* x = cptr<scalar_t>(in[0]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    const GaussianRow<scalar_t> g(cptr<scalar_t>(in[1]), cptr<scalar_t>(in[2]), k);
    parallel_for(0, n, std::max<int64_t>(1, kGrain / std::max<int64_t>(k, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        Eigen::Map<Arr> row(y + i * k, k);
        row = (scalar_t(-0.5) * ((x[i] - g.mean) * g.inv_s).square()).exp() * g.coef;
      }
    });
  });
}
std::vector<Tensor> bwd_GaussianBasis(const Node& n, const std::vector<Tensor>& g) {
  std::vector<Tensor> r = call_op(OpId::GaussianBasisBackward,
                                  {n.inputs[0].detach(), n.inputs[1].detach(), n.inputs[2].detach(), g[0]});
  for (size_t k = 0; k < 3; ++k)
    if (!n.needs_grad[k]) r[k] = Tensor();
  return r;
}

// GaussianBasisBackward(x, mean, std, dy) -> dx, dmean, dstd. With t = dy * g:
// dx = sum_k -t z / s, dmean_k = sum_i t z / s, dstd_k = sign(std_k) sum_i t (z^2 - 1) / s.
std::vector<TensorMeta> infer_GaussianBasisBackward(const std::vector<Tensor>& in, const Attrs&) {
  check_gaussian_inputs(OpId::GaussianBasisBackward, in, 4);
  Shape s = in[0].shape();
  s.push_back(in[1].shape()[0]);
  if (in[3].shape() != s) op_fail(OpId::GaussianBasisBackward, in, "dy must be (..., K) for x (...)");
  return {{in[0].shape(), in[0].dtype()}, {in[1].shape(), in[0].dtype()}, {in[2].shape(), in[0].dtype()}};
}
void fwd_GaussianBasisBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  int64_t n = in[0].numel(), k = in[1].shape()[0];
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "GaussianBasisBackward", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    const scalar_t* sd = cptr<scalar_t>(in[2]);
    const scalar_t* dy = cptr<scalar_t>(in[3]);
    scalar_t* dx = mptr<scalar_t>(out[0]);
    scalar_t* dmean = mptr<scalar_t>(out[1]);
    scalar_t* dstd = mptr<scalar_t>(out[2]);
    const GaussianRow<scalar_t> g(cptr<scalar_t>(in[1]), sd, k);
    // Pass 1, one row of x per index: p = dy * g (kept for pass 2, so exp runs once per element) and
    // dx = sum_k -p z / s (Eigen's vectorised sum: a fixed order for a given K, whatever the thread count).
    // prod (..., K) = dy * g. Eigen storage, not std::vector: Eigen's packet loops peel scalar iterations up to
    // the first aligned address, and scalar and packet exp / sums round differently, so every buffer they
    // touch must have the same alignment on every run (malloc's 16 bytes made resumed runs differ).
    using Arr = typename GaussianRow<scalar_t>::Arr;
    Arr prod(n * k);
    parallel_for(0, n, std::max<int64_t>(1, kGrain / std::max<int64_t>(k, 1)), [&](int64_t lo, int64_t hi) {
      Arr z(k);
      for (int64_t i = lo; i < hi; ++i) {
        Eigen::Map<Arr> p(prod.data() + i * k, k);
        Eigen::Map<const Arr> dyrow(dy + i * k, k);
        z = (x[i] - g.mean) * g.inv_s;
        p = dyrow * (scalar_t(-0.5) * z.square()).exp() * g.coef;
        dx[i] = -(p * z * g.inv_s).sum();
      }
    });
    // Pass 2, a block of basis functions per index: dmean, dstd summed over x in increasing order, all the
    // block's k at once per row (contiguous reads of prod, not a k-strided walk per basis function).
    parallel_for(0, k, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
      std::vector<scalar_t> am(static_cast<size_t>(hi - lo), scalar_t(0)), as(static_cast<size_t>(hi - lo), scalar_t(0));
      for (int64_t i = 0; i < n; ++i) {
        const scalar_t xi = x[i];
        const scalar_t* prow = prod.data() + i * k;
        for (int64_t j = lo; j < hi; ++j) {
          const scalar_t z = (xi - g.mean[j]) / g.s[j];
          const scalar_t t = prow[j] / g.s[j];
          am[j - lo] += t * z;
          as[j - lo] += t * (z * z - scalar_t(1));
        }
      }
      for (int64_t j = lo; j < hi; ++j) {
        const scalar_t sign = sd[j] > 0 ? scalar_t(1) : (sd[j] < 0 ? scalar_t(-1) : scalar_t(0));
        dmean[j] = am[j - lo];
        dstd[j] = sign * as[j - lo];
      }
    });
  });
}

}  // namespace

void register_misc_ops() {
  OpDef& acc = mutable_op_def(OpId::AccumulateGrad);
  acc.num_inputs = 2;
  acc.num_outputs = 0;
  acc.num_diff_outputs = 0;
  acc.infer = infer_AccumulateGrad;
  acc.forward[0] = fwd_AccumulateGrad;

  OpDef& dr = mutable_op_def(OpId::Dropout);
  dr.num_inputs = 1;
  dr.infer = infer_Dropout;
  dr.forward[0] = fwd_Dropout;
  dr.backward = bwd_Dropout;

  OpDef& gb = mutable_op_def(OpId::GaussianBasis);
  gb.num_inputs = 3;
  gb.infer = infer_GaussianBasis;
  gb.forward[0] = fwd_GaussianBasis;
  gb.backward = bwd_GaussianBasis;

  OpDef& gbb = mutable_op_def(OpId::GaussianBasisBackward);
  gbb.num_inputs = 4;
  gbb.num_outputs = 3;
  gbb.num_diff_outputs = 3;
  gbb.infer = infer_GaussianBasisBackward;
  gbb.forward[0] = fwd_GaussianBasisBackward;
}

void accumulate_(Tensor& dst, const Tensor& src) { call_op(OpId::AccumulateGrad, {dst, src}); }

Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream) {
  return call_op1(OpId::Dropout, {x}, {{training ? 1 : 0, static_cast<int64_t>(seed), static_cast<int64_t>(stream)}, {p}});
}
Tensor gaussian_basis(const Tensor& x, const Tensor& mean, const Tensor& std) {
  return call_op1(OpId::GaussianBasis, {x, mean, std});
}

}  // namespace larmor
