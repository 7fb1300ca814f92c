// InfoNCE / CLIP loss with optional soft targets (CPU reference), as one fused op instead of a chain
// of scale + log_softmax (rows) + transpose + log_softmax (columns) + mul + sum: at B = 4096 the chain
// would write several B x B intermediates, while the loss only needs per-row and per-column
// log-sum-exps and two target-weighted sums. With z = scale*S (R, C) and targets T (identity if absent):
//   loss = rw/R * sum_i [ rowsum_i(T) * lse_row_i(z) - sum_j T_ij z_ij ]
//        + cw/C * sum_j [ colsum_j(T) * lse_col_j(z) - sum_i T_ij z_ij ]
// (T^T is used as is: columns are not renormalised, as in K-M3AID). Differentiating,
//   dloss/dS_ij = scale * ( rw/R * (rowsum_i(T) softmax_row(z)_ij - T_ij)
//                         + cw/C * (colsum_j(T) softmax_col(z)_ij - T_ij) ),
// where the rowsum/colsum factors matter for targets whose rows/columns do not sum to 1.
// The backward op (InfoNceBackward) recomputes the two log-sum-exp vectors (O(RC), cheaper than keeping
// auxiliary outputs alive on the tape) and writes dlogits in one pass.
// Numerics: log-sum-exp subtracts the max (an all -inf row/column uses max 0 instead of -inf - -inf);
// sums accumulate in double. Rows are processed in parallel; columns in parallel over contiguous
// column chunks that stream the matrix row by row (cache friendly); per-row / per-column terms are
// summed serially in index order, so results do not depend on the thread count.
// attrs: reals = [scale, row_weight, col_weight].
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// Common validation of (logits (R, C)[, targets (R, C)]) for the forward and the backward op; `first`
// is the index of logits in `in`.
void check_info_nce(OpId id, const std::vector<Tensor>& in, size_t first, const Attrs& a) {
  if (in.size() != first + 1 && in.size() != first + 2)
    op_fail(id, in, "expected " + std::to_string(first + 1) + " or " + std::to_string(first + 2) + " inputs, got " +
                        std::to_string(in.size()));
  op_expect_float(id, in, first);
  op_expect_dim(id, in, first, 2);
  const Shape& s = in[first].shape();
  if (s[0] < 1 || s[1] < 1) op_fail(id, in, "logits must be non-empty");
  if (in.size() == first + 2) {
    op_expect_same_dtype(id, in, first, first + 1);
    if (in[first + 1].shape() != s) op_fail(id, in, "targets must have the shape of the logits");
  } else if (s[0] != s[1]) {
    op_fail(id, in, "without targets (identity) the logits must be square, got " + shape_str(s));
  }
  if (a.reals.size() != 3) op_fail(id, in, "attrs must be reals = [scale, row_weight, col_weight]");
  if (!std::isfinite(a.f(0))) op_fail(id, in, "scale must be finite");
}

// Per-row and per-column statistics of z = scale*S with targets T (null = identity).
struct NceStats {
  std::vector<double> row_lse, row_t, row_tz;  // (R) lse_i, rowsum_i(T), sum_j T_ij z_ij
  std::vector<double> col_lse, col_t, col_tz;  // (C) lse_j, colsum_j(T), sum_i T_ij z_ij
};

template <typename scalar_t>
NceStats nce_stats(const scalar_t* s, const scalar_t* t, int64_t R, int64_t C, double scale) {
  NceStats st;
  st.row_lse.resize(R);
  st.row_t.resize(R);
  st.row_tz.resize(R);
  st.col_lse.resize(C);
  st.col_t.resize(C);
  st.col_tz.resize(C);
  const scalar_t sc = static_cast<scalar_t>(scale);
  parallel_for(0, R, std::max<int64_t>(1, kGrain / C), [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const scalar_t* si = s + i * C;
      scalar_t m = -std::numeric_limits<scalar_t>::infinity();
      for (int64_t j = 0; j < C; ++j) m = std::max(m, sc * si[j]);
      if (m == -std::numeric_limits<scalar_t>::infinity()) m = 0;
      double sum = 0, tsum = 0, tz = 0;
      for (int64_t j = 0; j < C; ++j) sum += static_cast<double>(std::exp(sc * si[j] - m));
      if (t) {
        const scalar_t* ti = t + i * C;
        for (int64_t j = 0; j < C; ++j) {
          tsum += static_cast<double>(ti[j]);
          tz += static_cast<double>(ti[j]) * static_cast<double>(sc * si[j]);
        }
      } else {
        tsum = 1;
        tz = static_cast<double>(sc * si[i]);
      }
      st.row_lse[i] = static_cast<double>(m) + std::log(sum);
      st.row_t[i] = tsum;
      st.row_tz[i] = tz;
    }
  });
  // Columns: each task owns a contiguous column range and streams the rows over it.
  parallel_for(0, C, std::max<int64_t>(1, kGrain / R), [&](int64_t lo, int64_t hi) {
    int64_t w = hi - lo;
    std::vector<scalar_t> m(w, -std::numeric_limits<scalar_t>::infinity());
    std::vector<double> sum(w, 0.0), tsum(w, 0.0), tz(w, 0.0);
    for (int64_t i = 0; i < R; ++i) {
      const scalar_t* si = s + i * C + lo;
      for (int64_t k = 0; k < w; ++k) m[k] = std::max(m[k], sc * si[k]);
    }
    for (int64_t k = 0; k < w; ++k)
      if (m[k] == -std::numeric_limits<scalar_t>::infinity()) m[k] = 0;
    for (int64_t i = 0; i < R; ++i) {
      const scalar_t* si = s + i * C + lo;
      for (int64_t k = 0; k < w; ++k) sum[k] += static_cast<double>(std::exp(sc * si[k] - m[k]));
      if (t) {
        const scalar_t* ti = t + i * C + lo;
        for (int64_t k = 0; k < w; ++k) {
          tsum[k] += static_cast<double>(ti[k]);
          tz[k] += static_cast<double>(ti[k]) * static_cast<double>(sc * si[k]);
        }
      }
    }
    for (int64_t k = 0; k < w; ++k) {
      int64_t j = lo + k;
      st.col_lse[j] = static_cast<double>(m[k]) + std::log(sum[k]);
      st.col_t[j] = t ? tsum[k] : 1.0;
      st.col_tz[j] = t ? tz[k] : static_cast<double>(sc * s[j * C + j]);
    }
  });
  return st;
}

// InfoNce(logits (R, C)[, targets (R, C)]) -> loss ().
std::vector<TensorMeta> infer_InfoNce(const std::vector<Tensor>& in, const Attrs& a) {
  check_info_nce(OpId::InfoNce, in, 0, a);
  return {{{}, in[0].dtype()}};
}

void fwd_InfoNce(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t R = in[0].size(0), C = in[0].size(1);
  const double scale = a.f(0), rw = a.f(1), cw = a.f(2);
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "InfoNce", [&] {
    const scalar_t* t = in.size() == 2 ? cptr<scalar_t>(in[1]) : nullptr;
    NceStats st = nce_stats(cptr<scalar_t>(in[0]), t, R, C, scale);
    double row = 0, col = 0;
    for (int64_t i = 0; i < R; ++i) row += st.row_t[i] * st.row_lse[i] - st.row_tz[i];
    for (int64_t j = 0; j < C; ++j) col += st.col_t[j] * st.col_lse[j] - st.col_tz[j];
    *mptr<scalar_t>(out[0]) = static_cast<scalar_t>(rw * row / static_cast<double>(R) + cw * col / static_cast<double>(C));
  });
}

std::vector<Tensor> bwd_InfoNce(const Node& n, const std::vector<Tensor>& g) {
  std::vector<Tensor> res(n.inputs.size());  // targets get no gradient
  if (!n.needs_grad[0]) return res;
  const Tensor& logits = n.inputs[0];
  if (!g[0].defined()) {
    res[0] = Tensor::zeros(logits.shape(), logits.dtype(), logits.device());
    return res;
  }
  std::vector<Tensor> args = {g[0], logits.detach()};
  if (n.inputs.size() == 2) args.push_back(n.inputs[1].detach());
  res[0] = call_op1(OpId::InfoNceBackward, args, n.attrs);
  return res;
}

// InfoNceBackward(dloss (), logits (R, C)[, targets (R, C)]) -> dlogits (R, C).
std::vector<TensorMeta> infer_InfoNceBackward(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::InfoNceBackward;
  if (in.empty()) op_fail(id, in, "expected 2 or 3 inputs, got 0");
  op_expect_float(id, in, 0);
  if (in[0].numel() != 1) op_fail(id, in, "dloss must have one element");
  check_info_nce(id, in, 1, a);
  op_expect_same_dtype(id, in, 0, 1);
  return {{in[1].shape(), in[1].dtype()}};
}

void fwd_InfoNceBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t R = in[1].size(0), C = in[1].size(1);
  const double scale = a.f(0), rw = a.f(1), cw = a.f(2);
  LARMOR_DISPATCH_FLOAT(in[1].dtype(), "InfoNceBackward", [&] {
    const scalar_t* s = cptr<scalar_t>(in[1]);
    const scalar_t* t = in.size() == 3 ? cptr<scalar_t>(in[2]) : nullptr;
    scalar_t* ds = mptr<scalar_t>(out[0]);
    NceStats st = nce_stats(s, t, R, C, scale);
    const double g = static_cast<double>(*cptr<scalar_t>(in[0])) * scale;
    const double kr = g * rw / static_cast<double>(R), kc = g * cw / static_cast<double>(C);
    const scalar_t sc = static_cast<scalar_t>(scale);
    parallel_for(0, R, std::max<int64_t>(1, kGrain / C), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const scalar_t* si = s + i * C;
        const scalar_t* ti = t ? t + i * C : nullptr;
        scalar_t* di = ds + i * C;
        const double rl = st.row_lse[i], rt = st.row_t[i];
        for (int64_t j = 0; j < C; ++j) {
          double z = static_cast<double>(sc * si[j]);
          double tij = ti ? static_cast<double>(ti[j]) : (i == j ? 1.0 : 0.0);
          // exp in the input precision (f32 exp is ~2x cheaper); the argument is formed in double.
          double pr = static_cast<double>(std::exp(static_cast<scalar_t>(z - rl)));
          double pc = static_cast<double>(std::exp(static_cast<scalar_t>(z - st.col_lse[j])));
          di[j] = static_cast<scalar_t>(kr * (pr * rt - tij) + kc * (pc * st.col_t[j] - tij));
        }
      }
    });
  });
}

}  // namespace

void register_info_nce_ops() {
  OpDef& f = mutable_op_def(OpId::InfoNce);
  f.num_inputs = -1;
  f.infer = infer_InfoNce;
  f.forward[0] = fwd_InfoNce;
  f.backward = bwd_InfoNce;
  OpDef& b = mutable_op_def(OpId::InfoNceBackward);
  b.num_inputs = -1;
  b.infer = infer_InfoNceBackward;
  b.forward[0] = fwd_InfoNceBackward;
}

Tensor info_nce(const Tensor& logits, const Tensor& targets, double scale, double row_weight, double col_weight) {
  Attrs a;
  a.reals = {scale, row_weight, col_weight};
  if (!targets.defined()) return call_op1(OpId::InfoNce, {logits}, a);
  return call_op1(OpId::InfoNce, {logits, targets}, a);
}

}  // namespace larmor
