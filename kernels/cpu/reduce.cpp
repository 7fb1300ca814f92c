// Reductions over a set of axes. The input is viewed as (outer..., reduced..., inner...) by walking
// every output element and, for each, every reduced index; indices are computed from row-major
// strides, so any axis set works; when the reduced axes are one contiguous run (bias gradients, last-axis
// and leading-axis sums: nearly every call) a row / column-block loop does the same arithmetic without the
// per-element index math. Sums accumulate in the input precision in a fixed order, so results
// are deterministic whatever the thread count (parallelism is over output elements).
// Max's backward routes the gradient to the first maximal element (MaxBackward), like torch.amax's
// subgradient choice being one valid one; gradcheck avoids ties.
#include <algorithm>
#include <limits>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// attrs: ints = [keepdim, axis0, axis1, ...]; no axes = all axes.
struct ReducePlan {
  std::vector<bool> reduced;  // per input axis
  Shape out_shape;            // with keepdim applied
  Shape kept_shape;           // out shape with reduced axes as 1 (for broadcasting back)
};

ReducePlan plan_reduce(OpId id, const std::vector<Tensor>& in, const Attrs& a) {
  const Shape& s = in[0].shape();
  int64_t nd = static_cast<int64_t>(s.size());
  ReducePlan p;
  p.reduced.assign(nd, a.ints.size() <= 1);
  if (a.ints.size() > 1) {
    for (size_t k = 1; k < a.ints.size(); ++k) {
      int64_t ax = op_norm_axis(id, in, a.ints[k], nd);
      if (p.reduced[ax]) op_fail(id, in, "axis " + std::to_string(a.ints[k]) + " given twice");
      p.reduced[ax] = true;
    }
  }
  bool keepdim = a.i(0) != 0;
  for (int64_t d = 0; d < nd; ++d) {
    p.kept_shape.push_back(p.reduced[d] ? 1 : s[d]);
    if (!p.reduced[d]) p.out_shape.push_back(s[d]);
    else if (keepdim) p.out_shape.push_back(1);
  }
  return p;
}

std::vector<TensorMeta> infer_reduce(OpId id, const std::vector<Tensor>& in, const Attrs& a) {
  op_expect_float(id, in, 0);
  ReducePlan p = plan_reduce(id, in, a);
  if (id == OpId::Max) {
    for (size_t d = 0; d < p.reduced.size(); ++d)
      if (p.reduced[d] && in[0].shape()[d] == 0) op_fail(id, in, "max over an empty axis");
  }
  return {{p.out_shape, in[0].dtype()}};
}
std::vector<TensorMeta> infer_Sum(const std::vector<Tensor>& in, const Attrs& a) { return infer_reduce(OpId::Sum, in, a); }
std::vector<TensorMeta> infer_Mean(const std::vector<Tensor>& in, const Attrs& a) { return infer_reduce(OpId::Mean, in, a); }
std::vector<TensorMeta> infer_Max(const std::vector<Tensor>& in, const Attrs& a) { return infer_reduce(OpId::Max, in, a); }

// Calls visit(out_index, in_offsets_begin...) : for each output element, the list of input offsets.
struct ReduceIndexer {
  std::vector<int64_t> out_axes_size, out_axes_stride;  // kept axes
  std::vector<int64_t> red_axes_size, red_axes_stride;  // reduced axes
  int64_t red_count = 1;
  ReduceIndexer(const Shape& s, const std::vector<bool>& reduced) {
    std::vector<int64_t> stride(s.size());
    int64_t st = 1;
    for (size_t d = s.size(); d-- > 0;) {
      stride[d] = st;
      st *= s[d];
    }
    for (size_t d = 0; d < s.size(); ++d) {
      if (reduced[d]) {
        red_axes_size.push_back(s[d]);
        red_axes_stride.push_back(stride[d]);
        red_count *= s[d];
      } else {
        out_axes_size.push_back(s[d]);
        out_axes_stride.push_back(stride[d]);
      }
    }
  }
  int64_t base(int64_t o) const {
    int64_t off = 0;
    for (size_t d = out_axes_size.size(); d-- > 0;) {
      off += (o % out_axes_size[d]) * out_axes_stride[d];
      o /= out_axes_size[d];
    }
    return off;
  }
  int64_t red(int64_t r) const {
    int64_t off = 0;
    for (size_t d = red_axes_size.size(); d-- > 0;) {
      off += (r % red_axes_size[d]) * red_axes_stride[d];
      r /= red_axes_size[d];
    }
    return off;
  }
};

// The input as (outer O, reduced R, inner C) when the reduced axes (size-1 axes ignored) form one
// contiguous run: (B, N, D) summed over (0, 1) is (1, B*N, D), a LayerNorm-style last-axis sum is (B*N, D, 1).
// Other axis sets (reduced, kept, reduced) have no such view and take the general indexer.
struct ReduceBlock {
  bool ok = false;
  int64_t outer = 1, reduced = 1, inner = 1;
};
ReduceBlock plan_block(const Shape& s, const std::vector<bool>& reduced) {
  ReduceBlock blk;
  int stage = 0;  // 0: outer kept axes, 1: reduced run, 2: inner kept axes
  for (size_t d = 0; d < s.size(); ++d) {
    if (s[d] == 1) continue;
    if (reduced[d]) {
      if (stage == 2) return blk;  // a second reduced run
      stage = 1;
      blk.reduced *= s[d];
    } else {
      if (stage == 1) stage = 2;
      (stage == 0 ? blk.outer : blk.inner) *= s[d];
    }
  }
  blk.ok = true;
  return blk;
}

// Every output element is combined from its reduced elements in increasing reduced index, starting from 0
// (sum) or -inf (max), exactly as the general path does, so both paths give bit-identical results and
// neither depends on the thread count (each output element belongs to one thread). With C > 1 the
// reduction runs a whole block of output columns per input row (a column sum: contiguous, vectorised,
// same order per column).
template <int KIND, typename T>
void reduce_block(const T* x, T* y, const ReduceBlock& blk) {
  const int64_t R = blk.reduced, C = blk.inner;
  auto finish = [R](T s) {
    if (KIND != 1) return s;
    return R ? s / static_cast<T>(R) : std::numeric_limits<T>::quiet_NaN();
  };
  const T init = KIND == 2 ? -std::numeric_limits<T>::infinity() : T(0);
  const int64_t nout = blk.outer * C;
  parallel_for(0, nout, std::max<int64_t>(1, kGrain / std::max<int64_t>(R, 1)), [&](int64_t lo, int64_t hi) {
    if (C == 1) {  // row reductions over contiguous runs of R
      for (int64_t o = lo; o < hi; ++o) {
        const T* row = x + o * R;
        T s = init;
        if (KIND == 2) {
          for (int64_t r = 0; r < R; ++r) s = std::max(s, row[r]);
        } else {
          for (int64_t r = 0; r < R; ++r) s += row[r];
        }
        y[o] = finish(s);
      }
      return;
    }
    for (int64_t start = lo; start < hi;) {  // column blocks [c0, c1) of one outer index
      const int64_t oo = start / C, c0 = start % C, c1 = std::min(C, c0 + (hi - start)), w = c1 - c0;
      T* __restrict acc = y + oo * C + c0;
      for (int64_t c = 0; c < w; ++c) acc[c] = init;
      for (int64_t r = 0; r < R; ++r) {
        const T* __restrict row = x + (oo * R + r) * C + c0;
        if (KIND == 2) {
          for (int64_t c = 0; c < w; ++c) acc[c] = std::max(acc[c], row[c]);
        } else {
          for (int64_t c = 0; c < w; ++c) acc[c] += row[c];
        }
      }
      if (KIND == 1)
        for (int64_t c = 0; c < w; ++c) acc[c] = finish(acc[c]);
      start += w;
    }
  });
}

template <int KIND>  // 0 sum, 1 mean, 2 max
void reduce_kernel(OpId id, const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  ReducePlan p = plan_reduce(id, in, a);
  const ReduceBlock blk = plan_block(in[0].shape(), p.reduced);
  if (blk.ok && in[0].numel() > 0) {
    LARMOR_DISPATCH_FLOAT(in[0].dtype(), op_name(id), [&] {
      reduce_block<KIND>(cptr<scalar_t>(in[0]), mptr<scalar_t>(out[0]), blk);
    });
    return;
  }
  ReduceIndexer ix(in[0].shape(), p.reduced);
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), op_name(id), [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    int64_t nout = out[0].numel();
    parallel_for(0, nout, std::max<int64_t>(1, kGrain / std::max<int64_t>(ix.red_count, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        int64_t b = ix.base(o);
        if (KIND == 2) {
          scalar_t m = -std::numeric_limits<scalar_t>::infinity();
          for (int64_t r = 0; r < ix.red_count; ++r) m = std::max(m, x[b + ix.red(r)]);
          y[o] = m;
        } else {
          scalar_t s = 0;
          for (int64_t r = 0; r < ix.red_count; ++r) s += x[b + ix.red(r)];
          y[o] = KIND == 1 ? (ix.red_count ? s / static_cast<scalar_t>(ix.red_count) : std::numeric_limits<scalar_t>::quiet_NaN()) : s;
        }
      }
    });
  });
}
void fwd_Sum(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) { reduce_kernel<0>(OpId::Sum, in, out, a); }
void fwd_Mean(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) { reduce_kernel<1>(OpId::Mean, in, out, a); }
void fwd_Max(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) { reduce_kernel<2>(OpId::Max, in, out, a); }

// Gradient of a sum: broadcast g (out shape) back to the input shape.
Tensor expand_back(const Tensor& g, const ReducePlan& p, const Shape& in_shape) {
  Tensor gk = reshape(g, p.kept_shape);
  return add(gk, Tensor::zeros(in_shape, g.dtype(), g.device()));
}
std::vector<Tensor> bwd_Sum(const Node& n, const std::vector<Tensor>& g) {
  ReducePlan p = plan_reduce(OpId::Sum, n.inputs, n.attrs);
  return {expand_back(g[0], p, n.inputs[0].shape())};
}
std::vector<Tensor> bwd_Mean(const Node& n, const std::vector<Tensor>& g) {
  ReducePlan p = plan_reduce(OpId::Mean, n.inputs, n.attrs);
  int64_t count = n.inputs[0].numel() / std::max<int64_t>(shape_numel(p.kept_shape), 1);
  return {expand_back(mul_scalar(g[0], 1.0 / std::max<int64_t>(count, 1)), p, n.inputs[0].shape())};
}
std::vector<Tensor> bwd_Max(const Node& n, const std::vector<Tensor>& g) {
  return {call_op1(OpId::MaxBackward, {n.inputs[0].detach(), g[0]}, n.attrs)};
}

// MaxBackward(x, dy) -> dx: dy goes to the first maximal element of each reduced group. Same attrs as Max.
std::vector<TensorMeta> infer_MaxBackward(const std::vector<Tensor>& in, const Attrs& a) {
  op_expect_float(OpId::MaxBackward, in, 0);
  op_expect_same_dtype(OpId::MaxBackward, in, 0, 1);
  std::vector<Tensor> x = {in[0]};
  ReducePlan p = plan_reduce(OpId::MaxBackward, x, a);
  if (shape_numel(p.out_shape) != in[1].numel()) op_fail(OpId::MaxBackward, in, "dy does not match the reduced shape");
  return {{in[0].shape(), in[0].dtype()}};
}
void fwd_MaxBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  std::vector<Tensor> x = {in[0]};
  ReducePlan p = plan_reduce(OpId::MaxBackward, x, a);
  ReduceIndexer ix(in[0].shape(), p.reduced);
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "MaxBackward", [&] {
    const scalar_t* xp = cptr<scalar_t>(in[0]);
    const scalar_t* dy = cptr<scalar_t>(in[1]);
    scalar_t* dx = mptr<scalar_t>(out[0]);
    std::fill(dx, dx + out[0].numel(), scalar_t(0));
    int64_t nout = in[1].numel();
    parallel_for(0, nout, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        int64_t b = ix.base(o), best = -1;
        scalar_t m = -std::numeric_limits<scalar_t>::infinity();
        for (int64_t r = 0; r < ix.red_count; ++r) {
          scalar_t v = xp[b + ix.red(r)];
          if (best < 0 || v > m) {
            m = v;
            best = b + ix.red(r);
          }
        }
        if (best >= 0) dx[best] += dy[o];
      }
    });
  });
}

Attrs reduce_attrs(const std::vector<int64_t>& axes, bool keepdim) {
  Attrs a;
  a.ints.push_back(keepdim ? 1 : 0);
  a.ints.insert(a.ints.end(), axes.begin(), axes.end());
  return a;
}

}  // namespace

void register_reduce_ops() {
  struct Row { OpId id; InferFn inf; KernelFn fwd; BackwardFn bwd; };
  for (Row r : {Row{OpId::Sum, infer_Sum, fwd_Sum, bwd_Sum}, Row{OpId::Mean, infer_Mean, fwd_Mean, bwd_Mean},
                Row{OpId::Max, infer_Max, fwd_Max, bwd_Max}}) {
    OpDef& d = mutable_op_def(r.id);
    d.num_inputs = 1;
    d.infer = r.inf;
    d.forward[0] = r.fwd;
    d.backward = r.bwd;
  }
  OpDef& mb = mutable_op_def(OpId::MaxBackward);
  mb.num_inputs = 2;
  mb.infer = infer_MaxBackward;
  mb.forward[0] = fwd_MaxBackward;
}

Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  return call_op1(OpId::Sum, {a}, reduce_attrs(axes, keepdim));
}
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  return call_op1(OpId::Mean, {a}, reduce_attrs(axes, keepdim));
}
Tensor max(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  return call_op1(OpId::Max, {a}, reduce_attrs(axes, keepdim));
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  const Shape& s = a.shape();
  if (shape.size() > s.size()) throw Error("sum_to: cannot reduce " + a.str() + " to " + shape_str(shape));
  size_t off = s.size() - shape.size();
  std::vector<int64_t> axes;
  for (size_t d = 0; d < s.size(); ++d) {
    if (d < off) axes.push_back(static_cast<int64_t>(d));
    else if (shape[d - off] == 1 && s[d] != 1) axes.push_back(static_cast<int64_t>(d));
    else if (shape[d - off] != s[d]) throw Error("sum_to: cannot reduce " + a.str() + " to " + shape_str(shape));
  }
  Tensor r = axes.empty() ? a : sum(a, axes, true);
  return reshape(r, shape);
}

}  // namespace larmor
