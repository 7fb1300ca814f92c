// Softmax, log-softmax, layer norm and batch norm.
//
// All four are row-wise (softmax/layer norm: rows of the last axis; batch norm: columns of (N, C)), so
// each kernel walks independent rows with parallel_for and keeps every sum inside one thread in a fixed
// order: results do not depend on the thread count. Masked softmax subtracts the max over the unmasked
// entries only, and a row with no unmasked entry is written as zeros (never exp(-inf - -inf) = NaN).
// Backwards are dedicated ops (ggml's SOFT_MAX_BACK pattern): they are one pass over the saved output
// instead of a chain of broadcasting element-wise ops, and each gets its own CUDA slot.
// LayerNorm and BatchNorm return their per-row (per-channel) mean and rstd as auxiliary outputs
// (no gradient) so the backward never recomputes statistics. Parameter gradients (dweight, dbias) are
// reductions over rows: they are parallelised over columns, each column summed by one thread.
#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// ---- Softmax / LogSoftmax (x (..., D) [, mask i32 (..., D)]) -------------------------------------------
void check_softmax_inputs(OpId id, const std::vector<Tensor>& in, size_t data_inputs) {
  if (in.size() != data_inputs && in.size() != data_inputs + 1)
    op_fail(id, in, "expected " + std::to_string(data_inputs) + " inputs plus an optional mask, got " +
                        std::to_string(in.size()));
  for (size_t k = 0; k < data_inputs; ++k) {
    op_expect_float(id, in, k);
    op_expect_same_dtype(id, in, 0, k);
    if (in[k].shape() != in[0].shape()) op_fail(id, in, "inputs must have one shape");
  }
  if (in[0].dim() < 1) op_fail(id, in, "input must have at least one axis");
  if (in.size() == data_inputs + 1) {
    const Tensor& m = in[data_inputs];
    if (m.dtype() != DType::I32) op_fail(id, in, "mask must be i32 (1 = keep, 0 = masked)");
    if (m.shape() != in[0].shape()) op_fail(id, in, "mask must have the shape of x");
  }
}

std::vector<TensorMeta> infer_Softmax(const std::vector<Tensor>& in, const Attrs&) {
  check_softmax_inputs(OpId::Softmax, in, 1);
  return {{in[0].shape(), in[0].dtype()}};
}
std::vector<TensorMeta> infer_LogSoftmax(const std::vector<Tensor>& in, const Attrs&) {
  check_softmax_inputs(OpId::LogSoftmax, in, 1);
  return {{in[0].shape(), in[0].dtype()}};
}

template <bool LOG>
void softmax_kernel(const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  const Tensor& xt = in[0];
  int64_t d = xt.shape().back();
  int64_t rows = d ? xt.numel() / d : 0;
  const int32_t* mask = in.size() > 1 ? cptr<int32_t>(in[1]) : nullptr;
  LARMOR_DISPATCH_FLOAT(xt.dtype(), LOG ? "LogSoftmax" : "Softmax", [&] {
    const scalar_t* x = cptr<scalar_t>(xt);
    scalar_t* y = mptr<scalar_t>(out[0]);
    parallel_for(0, rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(d, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = x + r * d;
        const int32_t* mr = mask ? mask + r * d : nullptr;
        scalar_t* yr = y + r * d;
        bool any = false;
        scalar_t m = -std::numeric_limits<scalar_t>::infinity();
        for (int64_t j = 0; j < d; ++j)
          if (!mr || mr[j]) {
            m = any ? std::max(m, xr[j]) : xr[j];
            any = true;
          }
        if (!any) {  // fully masked row
          std::fill(yr, yr + d, scalar_t(0));
          continue;
        }
        scalar_t s = 0;
        for (int64_t j = 0; j < d; ++j) {
          if (mr && !mr[j]) {
            yr[j] = 0;
            continue;
          }
          scalar_t e = std::exp(xr[j] - m);
          s += e;
          if (!LOG) yr[j] = e;
        }
        if (LOG) {
          scalar_t ls = std::log(s);
          for (int64_t j = 0; j < d; ++j)
            if (!mr || mr[j]) yr[j] = xr[j] - m - ls;
        } else {
          scalar_t inv = scalar_t(1) / s;
          for (int64_t j = 0; j < d; ++j) yr[j] *= inv;
        }
      }
    });
  });
}
void fwd_Softmax(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) { softmax_kernel<false>(in, out); }
void fwd_LogSoftmax(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) { softmax_kernel<true>(in, out); }

std::vector<Tensor> softmax_backward(OpId bwd, const Node& n, const std::vector<Tensor>& g) {
  std::vector<Tensor> grads(n.inputs.size());
  if (!n.needs_grad[0] || !g[0].defined()) return grads;
  std::vector<Tensor> args = {n.saved_outputs[0], g[0]};
  if (n.inputs.size() > 1) args.push_back(n.inputs[1].detach());
  grads[0] = call_op1(bwd, args);
  return grads;
}
std::vector<Tensor> bwd_Softmax(const Node& n, const std::vector<Tensor>& g) {
  return softmax_backward(OpId::SoftmaxBackward, n, g);
}
std::vector<Tensor> bwd_LogSoftmax(const Node& n, const std::vector<Tensor>& g) {
  return softmax_backward(OpId::LogSoftmaxBackward, n, g);
}

// SoftmaxBackward(y, dy [, mask]) -> dx = y * (dy - sum(dy * y)); masked entries and fully masked rows
// get 0 (y is already 0 there). LogSoftmaxBackward(y, dy [, mask]) -> dx = dy - exp(y) * sum(dy) over
// the unmasked entries.
std::vector<TensorMeta> infer_SoftmaxBackward(const std::vector<Tensor>& in, const Attrs&) {
  check_softmax_inputs(OpId::SoftmaxBackward, in, 2);
  return {{in[0].shape(), in[0].dtype()}};
}
std::vector<TensorMeta> infer_LogSoftmaxBackward(const std::vector<Tensor>& in, const Attrs&) {
  check_softmax_inputs(OpId::LogSoftmaxBackward, in, 2);
  return {{in[0].shape(), in[0].dtype()}};
}

template <bool LOG>
void softmax_backward_kernel(const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  int64_t d = in[0].shape().back();
  int64_t rows = d ? in[0].numel() / d : 0;
  const int32_t* mask = in.size() > 2 ? cptr<int32_t>(in[2]) : nullptr;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), LOG ? "LogSoftmaxBackward" : "SoftmaxBackward", [&] {
    const scalar_t* y = cptr<scalar_t>(in[0]);
    const scalar_t* dy = cptr<scalar_t>(in[1]);
    scalar_t* dx = mptr<scalar_t>(out[0]);
    parallel_for(0, rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(d, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* yr = y + r * d;
        const scalar_t* gr = dy + r * d;
        const int32_t* mr = mask ? mask + r * d : nullptr;
        scalar_t* dr = dx + r * d;
        scalar_t s = 0;
        for (int64_t j = 0; j < d; ++j)
          if (!mr || mr[j]) s += LOG ? gr[j] : gr[j] * yr[j];
        for (int64_t j = 0; j < d; ++j) {
          if (mr && !mr[j]) dr[j] = 0;
          else dr[j] = LOG ? gr[j] - std::exp(yr[j]) * s : yr[j] * (gr[j] - s);
        }
      }
    });
  });
}
void fwd_SoftmaxBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  softmax_backward_kernel<false>(in, out);
}
void fwd_LogSoftmaxBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  softmax_backward_kernel<true>(in, out);
}

// ---- LayerNorm(x (..., D), weight (D), bias (D); reals=[eps]) -> y, mean (...), rstd (...) --------------
std::vector<TensorMeta> infer_LayerNorm(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::LayerNorm;
  for (size_t k = 0; k < 3; ++k) {
    op_expect_float(id, in, k);
    op_expect_same_dtype(id, in, 0, k);
  }
  if (in[0].dim() < 1) op_fail(id, in, "x must have at least one axis");
  int64_t d = in[0].shape().back();
  if (in[1].shape() != Shape{d} || in[2].shape() != Shape{d}) op_fail(id, in, "weight and bias must be (D) with D = x's last axis");
  if (d == 0) op_fail(id, in, "cannot normalise over an empty axis");
  if (!(a.f(0) >= 0)) op_fail(id, in, "eps must be >= 0");
  Shape rs(in[0].shape().begin(), in[0].shape().end() - 1);
  return {{in[0].shape(), in[0].dtype()}, {rs, in[0].dtype()}, {rs, in[0].dtype()}};
}
void fwd_LayerNorm(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  int64_t d = in[0].shape().back();
  int64_t rows = in[0].numel() / d;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "LayerNorm", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    const scalar_t* w = cptr<scalar_t>(in[1]);
    const scalar_t* b = cptr<scalar_t>(in[2]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    scalar_t* mean = mptr<scalar_t>(out[1]);
    scalar_t* rstd = mptr<scalar_t>(out[2]);
    const scalar_t eps = static_cast<scalar_t>(a.f(0));
    parallel_for(0, rows, std::max<int64_t>(1, kGrain / d), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = x + r * d;
        scalar_t s = 0;
        for (int64_t j = 0; j < d; ++j) s += xr[j];
        scalar_t mu = s / static_cast<scalar_t>(d);
        scalar_t v = 0;
        for (int64_t j = 0; j < d; ++j) v += (xr[j] - mu) * (xr[j] - mu);
        scalar_t rs = scalar_t(1) / std::sqrt(v / static_cast<scalar_t>(d) + eps);
        for (int64_t j = 0; j < d; ++j) y[r * d + j] = (xr[j] - mu) * rs * w[j] + b[j];
        mean[r] = mu;
        rstd[r] = rs;
      }
    });
  });
}
std::vector<Tensor> bwd_LayerNorm(const Node& n, const std::vector<Tensor>& g) {
  if (!g[0].defined()) return {Tensor(), Tensor(), Tensor()};
  std::vector<Tensor> r = call_op(OpId::LayerNormBackward, {n.inputs[0].detach(), n.inputs[1].detach(),
                                                            n.saved_outputs[1], n.saved_outputs[2], g[0]});
  for (size_t k = 0; k < 3; ++k)
    if (!n.needs_grad[k]) r[k] = Tensor();
  return r;
}

// LayerNormBackward(x, weight, mean, rstd, dy) -> dx, dweight, dbias. With xhat = (x - mean) * rstd and
// gh = dy * weight: dx = rstd * (gh - mean_j(gh) - xhat * mean_j(gh * xhat)).
std::vector<TensorMeta> infer_LayerNormBackward(const std::vector<Tensor>& in, const Attrs&) {
  const OpId id = OpId::LayerNormBackward;
  for (size_t k = 0; k < 5; ++k) {
    op_expect_float(id, in, k);
    op_expect_same_dtype(id, in, 0, k);
  }
  if (in[0].dim() < 1) op_fail(id, in, "x must have at least one axis");
  int64_t d = in[0].shape().back();
  Shape rs(in[0].shape().begin(), in[0].shape().end() - 1);
  if (in[1].shape() != Shape{d} || in[2].shape() != rs || in[3].shape() != rs || in[4].shape() != in[0].shape())
    op_fail(id, in, "expected x (..., D), weight (D), mean (...), rstd (...), dy (..., D)");
  return {{in[0].shape(), in[0].dtype()}, {in[1].shape(), in[0].dtype()}, {in[1].shape(), in[0].dtype()}};
}
void fwd_LayerNormBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  int64_t d = in[0].shape().back();
  int64_t rows = d ? in[0].numel() / d : 0;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "LayerNormBackward", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    const scalar_t* w = cptr<scalar_t>(in[1]);
    const scalar_t* mean = cptr<scalar_t>(in[2]);
    const scalar_t* rstd = cptr<scalar_t>(in[3]);
    const scalar_t* dy = cptr<scalar_t>(in[4]);
    scalar_t* dx = mptr<scalar_t>(out[0]);
    scalar_t* dw = mptr<scalar_t>(out[1]);
    scalar_t* db = mptr<scalar_t>(out[2]);
    const scalar_t inv_d = d ? scalar_t(1) / static_cast<scalar_t>(d) : scalar_t(0);
    parallel_for(0, rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(d, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const scalar_t* xr = x + r * d;
        const scalar_t* gr = dy + r * d;
        scalar_t s1 = 0, s2 = 0;  // sum(gh), sum(gh * xhat)
        for (int64_t j = 0; j < d; ++j) {
          scalar_t gh = gr[j] * w[j];
          s1 += gh;
          s2 += gh * (xr[j] - mean[r]) * rstd[r];
        }
        for (int64_t j = 0; j < d; ++j) {
          scalar_t xhat = (xr[j] - mean[r]) * rstd[r];
          dx[r * d + j] = rstd[r] * (gr[j] * w[j] - s1 * inv_d - xhat * s2 * inv_d);
        }
      }
    });
    // Parameter gradients: one thread per column, rows summed in order.
    parallel_for(0, d, std::max<int64_t>(1, kGrain / std::max<int64_t>(rows, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j) {
        scalar_t sw = 0, sb = 0;
        for (int64_t r = 0; r < rows; ++r) {
          scalar_t g = dy[r * d + j];
          sw += g * (x[r * d + j] - mean[r]) * rstd[r];
          sb += g;
        }
        dw[j] = sw;
        db[j] = sb;
      }
    });
  });
}

// ---- BatchNorm(x (N, C), weight (C), bias (C), running_mean (C), running_var (C);
//                ints=[training], reals=[momentum, eps]) -> y (N, C), mean (C), rstd (C) ----------------------
// Training normalises with the batch mean and biased variance and updates the running statistics in
// place (unbiased variance, as torch); eval normalises with the running statistics. Either way the
// statistics used are returned, so the backward only needs to know which case it is in.
std::vector<TensorMeta> infer_BatchNorm(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::BatchNorm;
  for (size_t k = 0; k < 5; ++k) {
    op_expect_float(id, in, k);
    op_expect_same_dtype(id, in, 0, k);
  }
  op_expect_dim(id, in, 0, 2);
  int64_t n = in[0].shape()[0], c = in[0].shape()[1];
  for (size_t k = 1; k < 5; ++k)
    if (in[k].shape() != Shape{c}) op_fail(id, in, "weight, bias, running_mean and running_var must be (C) with x (N, C)");
  if (in[3].requires_grad() || in[4].requires_grad()) op_fail(id, in, "running statistics must not require grad");
  if (a.i(0) && n < 2)
    op_fail(id, in, "expected more than 1 value per channel when training, got N = " + std::to_string(n));
  double m = a.f(0), eps = a.f(1);
  if (!(m >= 0 && m <= 1)) op_fail(id, in, "momentum must be in [0, 1], got " + std::to_string(m));
  if (!(eps >= 0)) op_fail(id, in, "eps must be >= 0");
  return {{in[0].shape(), in[0].dtype()}, {{c}, in[0].dtype()}, {{c}, in[0].dtype()}};
}
void fwd_BatchNorm(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  int64_t n = in[0].shape()[0], c = in[0].shape()[1];
  bool training = a.i(0) != 0;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "BatchNorm", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    const scalar_t* w = cptr<scalar_t>(in[1]);
    const scalar_t* b = cptr<scalar_t>(in[2]);
    scalar_t* rmean = mptr<scalar_t>(in[3]);
    scalar_t* rvar = mptr<scalar_t>(in[4]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    scalar_t* mean = mptr<scalar_t>(out[1]);
    scalar_t* rstd = mptr<scalar_t>(out[2]);
    const scalar_t mom = static_cast<scalar_t>(a.f(0)), eps = static_cast<scalar_t>(a.f(1));
    parallel_for(0, c, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        scalar_t mu, var;
        if (training) {
          scalar_t s = 0;
          for (int64_t i = 0; i < n; ++i) s += x[i * c + k];
          mu = s / static_cast<scalar_t>(n);
          scalar_t v = 0;
          for (int64_t i = 0; i < n; ++i) v += (x[i * c + k] - mu) * (x[i * c + k] - mu);
          var = v / static_cast<scalar_t>(n);
          rmean[k] = (scalar_t(1) - mom) * rmean[k] + mom * mu;
          rvar[k] = (scalar_t(1) - mom) * rvar[k] + mom * (v / static_cast<scalar_t>(n - 1));
        } else {
          mu = rmean[k];
          var = rvar[k];
        }
        scalar_t rs = scalar_t(1) / std::sqrt(var + eps);
        for (int64_t i = 0; i < n; ++i) y[i * c + k] = (x[i * c + k] - mu) * rs * w[k] + b[k];
        mean[k] = mu;
        rstd[k] = rs;
      }
    });
  });
}
std::vector<Tensor> bwd_BatchNorm(const Node& n, const std::vector<Tensor>& g) {
  std::vector<Tensor> grads(5);
  if (!g[0].defined()) return grads;
  Attrs a;
  a.ints = {n.attrs.i(0)};
  std::vector<Tensor> r = call_op(OpId::BatchNormBackward, {n.inputs[0].detach(), n.inputs[1].detach(),
                                                            n.saved_outputs[1], n.saved_outputs[2], g[0]}, a);
  for (size_t k = 0; k < 3; ++k)
    if (n.needs_grad[k]) grads[k] = r[k];
  return grads;  // running statistics: never a gradient
}

// BatchNormBackward(x, weight, mean, rstd, dy; ints=[training]) -> dx, dweight, dbias.
// Training: dx = w rstd (dy - mean_i(dy) - xhat mean_i(dy xhat)); eval (fixed statistics): dx = w rstd dy.
std::vector<TensorMeta> infer_BatchNormBackward(const std::vector<Tensor>& in, const Attrs&) {
  const OpId id = OpId::BatchNormBackward;
  for (size_t k = 0; k < 5; ++k) {
    op_expect_float(id, in, k);
    op_expect_same_dtype(id, in, 0, k);
  }
  op_expect_dim(id, in, 0, 2);
  int64_t c = in[0].shape()[1];
  if (in[1].shape() != Shape{c} || in[2].shape() != Shape{c} || in[3].shape() != Shape{c} || in[4].shape() != in[0].shape())
    op_fail(id, in, "expected x (N, C), weight (C), mean (C), rstd (C), dy (N, C)");
  return {{in[0].shape(), in[0].dtype()}, {{c}, in[0].dtype()}, {{c}, in[0].dtype()}};
}
void fwd_BatchNormBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  int64_t n = in[0].shape()[0], c = in[0].shape()[1];
  bool training = a.i(0) != 0;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "BatchNormBackward", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    const scalar_t* w = cptr<scalar_t>(in[1]);
    const scalar_t* mean = cptr<scalar_t>(in[2]);
    const scalar_t* rstd = cptr<scalar_t>(in[3]);
    const scalar_t* dy = cptr<scalar_t>(in[4]);
    scalar_t* dx = mptr<scalar_t>(out[0]);
    scalar_t* dw = mptr<scalar_t>(out[1]);
    scalar_t* db = mptr<scalar_t>(out[2]);
    parallel_for(0, c, std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        scalar_t sg = 0, sgx = 0;  // sum(dy), sum(dy * xhat)
        for (int64_t i = 0; i < n; ++i) {
          scalar_t g = dy[i * c + k];
          sg += g;
          sgx += g * (x[i * c + k] - mean[k]) * rstd[k];
        }
        dw[k] = sgx;
        db[k] = sg;
        scalar_t scale = w[k] * rstd[k];
        scalar_t inv_n = n ? scalar_t(1) / static_cast<scalar_t>(n) : scalar_t(0);
        for (int64_t i = 0; i < n; ++i) {
          scalar_t g = dy[i * c + k];
          if (training) {
            scalar_t xhat = (x[i * c + k] - mean[k]) * rstd[k];
            dx[i * c + k] = scale * (g - sg * inv_n - xhat * sgx * inv_n);
          } else {
            dx[i * c + k] = scale * g;
          }
        }
      }
    });
  });
}

}  // namespace

void register_norm_ops() {
  struct Row { OpId id; int nin; int nout; InferFn inf; KernelFn fwd; BackwardFn bwd; bool saves; };
  for (Row r : {Row{OpId::Softmax, -1, 1, infer_Softmax, fwd_Softmax, bwd_Softmax, true},
                Row{OpId::LogSoftmax, -1, 1, infer_LogSoftmax, fwd_LogSoftmax, bwd_LogSoftmax, true},
                Row{OpId::SoftmaxBackward, -1, 1, infer_SoftmaxBackward, fwd_SoftmaxBackward, nullptr, false},
                Row{OpId::LogSoftmaxBackward, -1, 1, infer_LogSoftmaxBackward, fwd_LogSoftmaxBackward, nullptr, false},
                Row{OpId::LayerNorm, 3, 3, infer_LayerNorm, fwd_LayerNorm, bwd_LayerNorm, true},
                Row{OpId::LayerNormBackward, 5, 3, infer_LayerNormBackward, fwd_LayerNormBackward, nullptr, false},
                Row{OpId::BatchNorm, 5, 3, infer_BatchNorm, fwd_BatchNorm, bwd_BatchNorm, true},
                Row{OpId::BatchNormBackward, 5, 3, infer_BatchNormBackward, fwd_BatchNormBackward, nullptr, false}}) {
    OpDef& d = mutable_op_def(r.id);
    d.num_inputs = r.nin;
    d.num_outputs = r.nout;
    d.num_diff_outputs = r.bwd ? 1 : r.nout;
    d.infer = r.inf;
    d.forward[0] = r.fwd;
    d.backward = r.bwd;
    d.saves_outputs = r.saves;
  }
}

// ---- front-ends ----------------------------------------------------------------------------------------
Tensor softmax(const Tensor& x, const Tensor& mask) {
  return mask.defined() ? call_op1(OpId::Softmax, {x, mask}) : call_op1(OpId::Softmax, {x});
}
Tensor log_softmax(const Tensor& x, const Tensor& mask) {
  return mask.defined() ? call_op1(OpId::LogSoftmax, {x, mask}) : call_op1(OpId::LogSoftmax, {x});
}
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  return call_op1(OpId::LayerNorm, {x, weight, bias}, {{}, {eps}});
}
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum, double eps) {
  return call_op1(OpId::BatchNorm, {x, weight, bias, running_mean, running_var}, {{training ? 1 : 0}, {momentum, eps}});
}

}  // namespace larmor
