// Segmented sorted-set loss (CPU reference). Predictions and targets of one segment (molecule x nucleus)
// form two unordered sets of equal size; sorting both and pairing the i-th smallest with the i-th
// smallest is the optimal assignment for any convex cost of the difference (L1, squared, Huber), so no
// Hungarian matching is needed. The kernel is built around that:
//   - one task per segment (parallel_for over segments; segments never share outputs), each doing two
//     std::stable_sort calls on index arrays with a comparator that defines a total order where NaN
//     sorts after +inf (std::sort with a plain < on NaN is UB) and -0 == +0 (CUB's float order), so a
//     CUDA segmented stable sort can reproduce the same permutations bit for bit;
//   - the permutations are outputs (global indices), so the backward is a bijective scatter
//     dpred[perm_pred[i]] = dloss * dl/dd(sorted_pred[i] - sorted_target[i]) that needs no offsets and
//     no re-sort (SortedSetLossBackward), and is deterministic without atomics;
//   - the loss total is summed per segment in double, then over segments in a fixed order, so the result
//     does not depend on the thread count.
// attrs: ints = [kind (SetLossKind), reduction (Reduction)], reals = [huber_delta].
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// Validates kind / reduction / delta; shared by the forward and the backward op.
void check_attrs(OpId id, const std::vector<Tensor>& in, const Attrs& a) {
  int64_t kind = a.i(0), red = a.i(1);
  if (kind < 0 || kind > 2) op_fail(id, in, "kind must be 0 (L1), 1 (squared) or 2 (Huber), got " + std::to_string(kind));
  if (red < 0 || red > 1) op_fail(id, in, "reduction must be 0 (mean) or 1 (sum), got " + std::to_string(red));
  if (kind == 2 && !(a.f(0) > 0)) op_fail(id, in, "huber_delta must be > 0, got " + std::to_string(a.f(0)));
}

// Strict weak order on floats: ascending, -0 == +0, every NaN equal to every other NaN and after +inf.
template <typename T>
inline bool nan_last_less(T x, T y) {
  if (std::isnan(x)) return false;
  if (std::isnan(y)) return true;
  return x < y;
}

// Elementwise loss and its derivative with respect to the prediction, as functions of d = p - t.
inline double set_loss(int64_t kind, double d, double delta) {
  if (kind == 0) return std::fabs(d);
  if (kind == 1) return d * d;
  double ad = std::fabs(d);
  return ad <= delta ? 0.5 * d * d : delta * (ad - 0.5 * delta);
}
inline double set_loss_grad(int64_t kind, double d, double delta) {
  if (kind == 0) return d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
  if (kind == 1) return 2 * d;
  if (std::fabs(d) <= delta) return d;
  return d > 0 ? delta : -delta;
}

template <typename index_t>
void check_offsets(OpId id, const std::vector<Tensor>& in, const index_t* off, int64_t nseg, int64_t p) {
  if (off[0] != 0) op_fail(id, in, "offsets must start at 0, got " + std::to_string(off[0]));
  for (int64_t s = 0; s < nseg; ++s)
    if (off[s + 1] < off[s])
      op_fail(id, in, "offsets must be non-decreasing, got offsets[" + std::to_string(s) + "]=" + std::to_string(off[s]) +
                          " > offsets[" + std::to_string(s + 1) + "]=" + std::to_string(off[s + 1]));
  if (static_cast<int64_t>(off[nseg]) != p)
    op_fail(id, in, "offsets must end at the number of elements " + std::to_string(p) + ", got " + std::to_string(off[nseg]));
}

// SortedSetLoss(pred (P), target (P), offsets (S+1)) -> loss (), perm_pred (P) i32, perm_target (P) i32.
std::vector<TensorMeta> infer_SortedSetLoss(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::SortedSetLoss;
  op_expect_float(id, in, 0);
  op_expect_same_dtype(id, in, 0, 1);
  op_expect_index(id, in, 2);
  op_expect_dim(id, in, 0, 1);
  op_expect_dim(id, in, 1, 1);
  op_expect_dim(id, in, 2, 1);
  check_attrs(id, in, a);
  int64_t p = in[0].numel();
  if (in[1].numel() != p) op_fail(id, in, "pred and target must have the same length");
  if (in[2].numel() < 1) op_fail(id, in, "offsets must have S+1 >= 1 entries");
  if (p > std::numeric_limits<int32_t>::max()) op_fail(id, in, "more than 2^31-1 elements (permutations are i32)");
  // Offsets values are checked here when they are host-readable (the CPU path); a device backend
  // validates them in its own kernel rather than synchronising.
  if (in[2].device().is_cpu()) {
    LARMOR_DISPATCH_INDEX(in[2].dtype(), "SortedSetLoss", [&] {
      check_offsets(id, in, cptr<index_t>(in[2]), in[2].numel() - 1, p);
    });
  }
  return {{{}, in[0].dtype()}, {{p}, DType::I32}, {{p}, DType::I32}};
}

void fwd_SortedSetLoss(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t kind = a.i(0), reduction = a.i(1);
  const double delta = a.f(0);
  const int64_t p = in[0].numel(), nseg = in[2].numel() - 1;
  std::vector<int64_t> off(static_cast<size_t>(nseg + 1));
  LARMOR_DISPATCH_INDEX(in[2].dtype(), "SortedSetLoss", [&] {
    const index_t* o = cptr<index_t>(in[2]);
    for (int64_t s = 0; s <= nseg; ++s) off[s] = o[s];
  });
  std::vector<double> seg_total(static_cast<size_t>(nseg), 0.0);  // (S) per-segment loss sums
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "SortedSetLoss", [&] {
    const scalar_t* pred = cptr<scalar_t>(in[0]);    // (P)
    const scalar_t* target = cptr<scalar_t>(in[1]);  // (P)
    int32_t* perm_pred = mptr<int32_t>(out[1]);      // (P)
    int32_t* perm_target = mptr<int32_t>(out[2]);    // (P)
    // Segments are small (10..120): give each thread a batch worth roughly kGrain/16 elements.
    int64_t grain = std::max<int64_t>(1, (kGrain / 16) / std::max<int64_t>(1, p / std::max<int64_t>(nseg, 1)));
    parallel_for(0, nseg, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t s = lo; s < hi; ++s) {
        int32_t b = static_cast<int32_t>(off[s]), e = static_cast<int32_t>(off[s + 1]);
        int32_t* pp = perm_pred + b;
        int32_t* pt = perm_target + b;
        std::iota(pp, pp + (e - b), b);
        std::iota(pt, pt + (e - b), b);
        std::stable_sort(pp, pp + (e - b), [&](int32_t i, int32_t j) { return nan_last_less(pred[i], pred[j]); });
        std::stable_sort(pt, pt + (e - b), [&](int32_t i, int32_t j) { return nan_last_less(target[i], target[j]); });
        double acc = 0;
        for (int32_t k = 0; k < e - b; ++k)
          acc += set_loss(kind, static_cast<double>(pred[pp[k]]) - static_cast<double>(target[pt[k]]), delta);
        seg_total[s] = acc;
      }
    });
    double total = 0;
    for (double v : seg_total) total += v;
    if (reduction == static_cast<int64_t>(Reduction::Mean)) total = p > 0 ? total / static_cast<double>(p) : 0.0;
    *mptr<scalar_t>(out[0]) = static_cast<scalar_t>(total);
  });
}

std::vector<Tensor> bwd_SortedSetLoss(const Node& n, const std::vector<Tensor>& g) {
  if (!n.needs_grad[0]) return {Tensor(), Tensor(), Tensor()};
  const Tensor& pred = n.inputs[0];
  if (!g[0].defined()) return {Tensor::zeros(pred.shape(), pred.dtype(), pred.device()), Tensor(), Tensor()};
  Tensor dpred = call_op1(OpId::SortedSetLossBackward,
                          {g[0], pred.detach(), n.inputs[1].detach(), n.saved_outputs[1], n.saved_outputs[2]}, n.attrs);
  return {dpred, Tensor(), Tensor()};  // the target is data, not a parameter: no gradient
}

// SortedSetLossBackward(dloss (), pred (P), target (P), perm_pred (P), perm_target (P)) -> dpred (P).
std::vector<TensorMeta> infer_SortedSetLossBackward(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::SortedSetLossBackward;
  op_expect_float(id, in, 0);
  op_expect_same_dtype(id, in, 0, 1);
  op_expect_same_dtype(id, in, 0, 2);
  op_expect_index(id, in, 3);
  op_expect_index(id, in, 4);
  if (in[0].numel() != 1) op_fail(id, in, "dloss must have one element");
  for (size_t k = 1; k <= 4; ++k) op_expect_dim(id, in, k, 1);
  check_attrs(id, in, a);
  int64_t p = in[1].numel();
  for (size_t k = 2; k <= 4; ++k)
    if (in[k].numel() != p) op_fail(id, in, "pred, target and both permutations must have the same length");
  if (in[3].device().is_cpu()) {
    for (size_t k = 3; k <= 4; ++k) {
      LARMOR_DISPATCH_INDEX(in[k].dtype(), "SortedSetLossBackward", [&] {
        const index_t* q = cptr<index_t>(in[k]);
        for (int64_t i = 0; i < p; ++i)
          if (q[i] < 0 || q[i] >= p) op_fail(id, in, "permutation entry " + std::to_string(q[i]) + " out of range");
      });
    }
  }
  return {{in[1].shape(), in[1].dtype()}};
}

void fwd_SortedSetLossBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  const int64_t kind = a.i(0), reduction = a.i(1);
  const double delta = a.f(0);
  const int64_t p = in[1].numel();
  LARMOR_DISPATCH_FLOAT(in[1].dtype(), "SortedSetLossBackward", [&] {
    const scalar_t* pred = cptr<scalar_t>(in[1]);
    const scalar_t* target = cptr<scalar_t>(in[2]);
    scalar_t* dpred = mptr<scalar_t>(out[0]);
    double g = static_cast<double>(*cptr<scalar_t>(in[0]));
    if (reduction == static_cast<int64_t>(Reduction::Mean)) g = p > 0 ? g / static_cast<double>(p) : 0.0;
    LARMOR_DISPATCH_INDEX(in[3].dtype(), "SortedSetLossBackward", [&] {
      using pp_t = index_t;
      const pp_t* perm_pred = cptr<pp_t>(in[3]);
      LARMOR_DISPATCH_INDEX(in[4].dtype(), "SortedSetLossBackward", [&] {
        const index_t* perm_target = cptr<index_t>(in[4]);
        // Bijective scatter: position i writes exactly one element of dpred.
        parallel_for(0, p, kGrain, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            double d = static_cast<double>(pred[perm_pred[i]]) - static_cast<double>(target[perm_target[i]]);
            dpred[perm_pred[i]] = static_cast<scalar_t>(g * set_loss_grad(kind, d, delta));
          }
        });
      });
    });
  });
}

}  // namespace

void register_sorted_set_ops() {
  OpDef& f = mutable_op_def(OpId::SortedSetLoss);
  f.num_inputs = 3;
  f.num_outputs = 3;
  f.num_diff_outputs = 1;
  f.infer = infer_SortedSetLoss;
  f.forward[0] = fwd_SortedSetLoss;
  f.backward = bwd_SortedSetLoss;
  f.saves_outputs = true;  // the permutations
  OpDef& b = mutable_op_def(OpId::SortedSetLossBackward);
  b.num_inputs = 5;
  b.infer = infer_SortedSetLossBackward;
  b.forward[0] = fwd_SortedSetLossBackward;
}

Tensor sorted_set_loss(const Tensor& pred, const Tensor& target, const Tensor& offsets, SetLossKind kind,
                       double huber_delta, Reduction reduction) {
  Attrs a;
  a.ints = {static_cast<int64_t>(kind), static_cast<int64_t>(reduction)};
  a.reals = {huber_delta};
  return call_op(OpId::SortedSetLoss, {pred, target, offsets}, a)[0];
}

}  // namespace larmor
