// Shape and movement ops. Reshape is a view (no copy); Permute, Slice and Concat copy into a fresh
// contiguous tensor (every tensor in larmor is contiguous, see engine/tensor.h).
//
// The copies only move elements, so they are written on raw element words (4 or 8 bytes) and work for
// every dtype, index tensors included. Permute first drops size-1 axes and merges runs of axes that stay
// adjacent in the permutation, so the common cases (identity, swapping two inner blocks, attention's
// (B, N, H, d) -> (B, H, N, d)) become a few long contiguous runs copied with memcpy; the remaining
// cases gather one output row at a time with a fixed input stride. Slice and Concat are one memcpy per
// (outer index, piece). Every output element is written by exactly one thread.
//
// Backward rules: Permute -> Permute with the inverse permutation; Slice -> SliceBackward (zeros with
// the gradient copied into the range; a dedicated op so CUDA gets its own slot); Concat -> one Slice of
// the gradient per input.
#include <cstring>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

std::vector<int64_t> row_major_strides(const Shape& s) {
  std::vector<int64_t> st(s.size());
  int64_t v = 1;
  for (size_t d = s.size(); d-- > 0;) {
    st[d] = v;
    v *= s[d];
  }
  return st;
}

// Product of s[lo, hi).
int64_t span_numel(const Shape& s, size_t lo, size_t hi) {
  int64_t n = 1;
  for (size_t d = lo; d < hi; ++d) n *= s[d];
  return n;
}

// ---- Reshape: attrs.ints = target shape (-1 allowed once) ---------------------------------------------
std::vector<TensorMeta> infer_Reshape(const std::vector<Tensor>& in, const Attrs& a) {
  try {
    Tensor v = in[0].view(a.ints);
    return {{v.shape(), in[0].dtype()}};
  } catch (const Error& e) {
    op_fail(OpId::Reshape, in, std::string("cannot reshape to ") + shape_str(a.ints));
  }
}
std::vector<Tensor> view_Reshape(const std::vector<Tensor>& in, const Attrs& a) { return {in[0].view(a.ints)}; }
std::vector<Tensor> bwd_Reshape(const Node& n, const std::vector<Tensor>& g) { return {reshape(g[0], n.inputs[0].shape())}; }

// ---- Permute: attrs.ints = perm (output axis d is input axis perm[d]; negative entries allowed) -------
std::vector<int64_t> norm_perm(const std::vector<Tensor>& in, const Attrs& a) {
  int64_t nd = in[0].dim();
  if (static_cast<int64_t>(a.ints.size()) != nd)
    op_fail(OpId::Permute, in, "permutation " + shape_str(a.ints) + " has " + std::to_string(a.ints.size()) +
                                   " entries for a " + std::to_string(nd) + "-D input");
  std::vector<int64_t> p(nd);
  std::vector<bool> seen(nd, false);
  for (int64_t d = 0; d < nd; ++d) {
    int64_t ax = a.ints[d] < 0 ? a.ints[d] + nd : a.ints[d];
    if (ax < 0 || ax >= nd || seen[ax])
      op_fail(OpId::Permute, in, "permutation " + shape_str(a.ints) + " is not a permutation of the " +
                                     std::to_string(nd) + " axes");
    seen[ax] = true;
    p[d] = ax;
  }
  return p;
}

std::vector<TensorMeta> infer_Permute(const std::vector<Tensor>& in, const Attrs& a) {
  std::vector<int64_t> p = norm_perm(in, a);
  Shape out(p.size());
  for (size_t d = 0; d < p.size(); ++d) out[d] = in[0].shape()[p[d]];
  return {{out, in[0].dtype()}};
}

// The permutation reduced to (size, input stride) per output axis after dropping size-1 axes and merging
// output axes whose input axes are consecutive.
struct PermPlan {
  std::vector<int64_t> size, in_stride;
};
PermPlan plan_permute(const Shape& s, const std::vector<int64_t>& perm) {
  std::vector<int64_t> st = row_major_strides(s);
  PermPlan p;
  int64_t prev = -2;  // input axis of the previous kept output axis
  for (int64_t ax : perm) {
    if (s[ax] == 1) continue;
    bool merge = prev >= 0 && ax > prev;
    for (int64_t k = prev + 1; merge && k < ax; ++k) merge = s[k] == 1;  // only size-1 axes in between
    if (merge) {
      p.size.back() *= s[ax];
      p.in_stride.back() = st[ax];
    } else {
      p.size.push_back(s[ax]);
      p.in_stride.push_back(st[ax]);
    }
    prev = ax;
  }
  return p;
}

template <typename E>  // E: an element word (uint32_t or uint64_t)
void permute_copy(const E* x, E* y, const PermPlan& p, int64_t numel) {
  if (numel == 0) return;
  size_t nd = p.size.size();
  if (nd == 0 || (nd == 1 && p.in_stride[0] == 1)) {  // identity after merging
    if (numel) std::memcpy(y, x, static_cast<size_t>(numel) * sizeof(E));
    return;
  }
  int64_t inner = p.size[nd - 1], inner_stride = p.in_stride[nd - 1];
  int64_t rows = numel / inner;
  parallel_for(0, rows, std::max<int64_t>(1, kGrain / inner), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      int64_t rem = r, off = 0;
      for (size_t d = nd - 1; d-- > 0;) {
        off += (rem % p.size[d]) * p.in_stride[d];
        rem /= p.size[d];
      }
      E* dst = y + r * inner;
      const E* src = x + off;
      if (inner_stride == 1) {
        std::memcpy(dst, src, static_cast<size_t>(inner) * sizeof(E));
      } else {
        for (int64_t i = 0; i < inner; ++i) dst[i] = src[i * inner_stride];
      }
    }
  });
}

void fwd_Permute(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  PermPlan p = plan_permute(in[0].shape(), norm_perm(in, a));
  if (dtype_size(in[0].dtype()) == 4) permute_copy(cptr<uint32_t>(in[0]), mptr<uint32_t>(out[0]), p, out[0].numel());
  else permute_copy(cptr<uint64_t>(in[0]), mptr<uint64_t>(out[0]), p, out[0].numel());
}

std::vector<Tensor> bwd_Permute(const Node& n, const std::vector<Tensor>& g) {
  std::vector<int64_t> p = norm_perm(n.inputs, n.attrs), inv(p.size());
  for (size_t d = 0; d < p.size(); ++d) inv[p[d]] = static_cast<int64_t>(d);
  return {permute(g[0], inv)};
}

// ---- Slice: attrs.ints = [axis, start, end]; SliceBackward: [axis, start, end, full size] --------------
// Copies of a range [start, end) on one axis, viewed as (outer, axis, inner) with row-major layout.
// `in_len`/`out_len` are the axis lengths of source and destination, `in_start`/`out_start` where the
// range begins in each; `len` elements along the axis are moved per outer index.
void range_copy(const Tensor& src, const Tensor& dst, int64_t axis, int64_t in_len, int64_t in_start, int64_t out_len,
                int64_t out_start, int64_t len) {
  const Shape& s = dst.shape();
  int64_t outer = span_numel(s, 0, static_cast<size_t>(axis));
  size_t esz = dtype_size(dst.dtype());
  size_t inner_bytes = static_cast<size_t>(span_numel(s, static_cast<size_t>(axis) + 1, s.size())) * esz;
  size_t chunk = inner_bytes * static_cast<size_t>(len);
  if (chunk == 0 || outer == 0) return;
  const char* x = static_cast<const char*>(src.raw_data());
  char* y = static_cast<char*>(dst.raw_data());
  int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(kGrain * 4 / std::max<size_t>(chunk, 1)));
  parallel_for(0, outer, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o)
      std::memcpy(y + (o * out_len + out_start) * inner_bytes, x + (o * in_len + in_start) * inner_bytes, chunk);
  });
}

struct SliceArgs {
  int64_t axis, start, end;
};
SliceArgs slice_args(OpId id, const std::vector<Tensor>& in, const Attrs& a, int64_t axis_size_of_range_tensor = -1) {
  if (a.ints.size() < 3) op_fail(id, in, "needs attrs [axis, start, end]");
  if (in[0].dim() == 0) op_fail(id, in, "cannot slice a 0-D tensor");
  SliceArgs r{op_norm_axis(id, in, a.ints[0], in[0].dim()), a.ints[1], a.ints[2]};
  int64_t size = axis_size_of_range_tensor >= 0 ? axis_size_of_range_tensor : in[0].shape()[r.axis];
  if (r.start < 0 || r.start > r.end || r.end > size)
    op_fail(id, in, "range [" + std::to_string(r.start) + ", " + std::to_string(r.end) + ") on axis " +
                        std::to_string(a.ints[0]) + " is outside 0 <= start <= end <= " + std::to_string(size));
  return r;
}

std::vector<TensorMeta> infer_Slice(const std::vector<Tensor>& in, const Attrs& a) {
  SliceArgs r = slice_args(OpId::Slice, in, a);
  Shape out = in[0].shape();
  out[r.axis] = r.end - r.start;
  return {{out, in[0].dtype()}};
}
void fwd_Slice(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  SliceArgs r = slice_args(OpId::Slice, in, a);
  range_copy(in[0], out[0], r.axis, in[0].shape()[r.axis], r.start, r.end - r.start, 0, r.end - r.start);
}
std::vector<Tensor> bwd_Slice(const Node& n, const std::vector<Tensor>& g) {
  SliceArgs r = slice_args(OpId::Slice, n.inputs, n.attrs);
  Attrs b{{r.axis, r.start, r.end, n.inputs[0].shape()[r.axis]}, {}};
  return {call_op1(OpId::SliceBackward, {g[0]}, b)};
}

std::vector<TensorMeta> infer_SliceBackward(const std::vector<Tensor>& in, const Attrs& a) {
  if (a.ints.size() < 4) op_fail(OpId::SliceBackward, in, "needs attrs [axis, start, end, full size]");
  SliceArgs r = slice_args(OpId::SliceBackward, in, a, a.ints[3]);
  if (in[0].shape()[r.axis] != r.end - r.start)
    op_fail(OpId::SliceBackward, in, "dy has " + std::to_string(in[0].shape()[r.axis]) + " entries on axis " +
                                         std::to_string(r.axis) + " for the range [" + std::to_string(r.start) +
                                         ", " + std::to_string(r.end) + ")");
  Shape out = in[0].shape();
  out[r.axis] = a.ints[3];
  return {{out, in[0].dtype()}};
}
void fwd_SliceBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  SliceArgs r = slice_args(OpId::SliceBackward, in, a, a.ints[3]);
  if (out[0].numel()) std::memset(out[0].raw_data(), 0, out[0].nbytes());
  range_copy(in[0], out[0], r.axis, r.end - r.start, 0, a.ints[3], r.start, r.end - r.start);
}

// ---- Concat: inputs xs..., attrs.ints = [axis] ---------------------------------------------------------
int64_t concat_axis(const std::vector<Tensor>& in, const Attrs& a) {
  if (in.empty()) op_fail(OpId::Concat, in, "needs at least one input");
  if (a.ints.empty()) op_fail(OpId::Concat, in, "needs attrs [axis]");
  if (in[0].dim() == 0) op_fail(OpId::Concat, in, "cannot concatenate 0-D tensors");
  return op_norm_axis(OpId::Concat, in, a.ints[0], in[0].dim());
}

std::vector<TensorMeta> infer_Concat(const std::vector<Tensor>& in, const Attrs& a) {
  int64_t axis = concat_axis(in, a);
  Shape out = in[0].shape();
  out[axis] = 0;
  for (size_t k = 0; k < in.size(); ++k) {
    op_expect_same_dtype(OpId::Concat, in, 0, k);
    const Shape& s = in[k].shape();
    bool ok = s.size() == out.size();
    for (size_t d = 0; ok && d < s.size(); ++d) ok = static_cast<int64_t>(d) == axis || s[d] == in[0].shape()[d];
    if (!ok)
      op_fail(OpId::Concat, in, "input " + std::to_string(k) + " " + shape_str(s) + " does not match input 0 " +
                                    shape_str(in[0].shape()) + " outside axis " + std::to_string(a.ints[0]));
    out[axis] += s[axis];
  }
  return {{out, in[0].dtype()}};
}
void fwd_Concat(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  int64_t axis = concat_axis(in, a);
  int64_t total = out[0].shape()[axis], off = 0;
  for (const Tensor& x : in) {
    int64_t len = x.shape()[axis];
    range_copy(x, out[0], axis, len, 0, total, off, len);
    off += len;
  }
}
std::vector<Tensor> bwd_Concat(const Node& n, const std::vector<Tensor>& g) {
  int64_t axis = concat_axis(n.inputs, n.attrs), off = 0;
  std::vector<Tensor> r(n.inputs.size());
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    int64_t len = n.inputs[k].shape()[axis];
    if (n.needs_grad[k]) r[k] = slice(g[0], axis, off, off + len);
    off += len;
  }
  return r;
}

}  // namespace

void register_shape_ops() {
  OpDef& r = mutable_op_def(OpId::Reshape);
  r.num_inputs = 1;
  r.infer = infer_Reshape;
  r.view = view_Reshape;
  r.backward = bwd_Reshape;

  OpDef& p = mutable_op_def(OpId::Permute);
  p.num_inputs = 1;
  p.infer = infer_Permute;
  p.forward[0] = fwd_Permute;
  p.backward = bwd_Permute;

  OpDef& s = mutable_op_def(OpId::Slice);
  s.num_inputs = 1;
  s.infer = infer_Slice;
  s.forward[0] = fwd_Slice;
  s.backward = bwd_Slice;

  OpDef& sb = mutable_op_def(OpId::SliceBackward);
  sb.num_inputs = 1;
  sb.infer = infer_SliceBackward;
  sb.forward[0] = fwd_SliceBackward;

  OpDef& c = mutable_op_def(OpId::Concat);
  c.num_inputs = -1;
  c.infer = infer_Concat;
  c.forward[0] = fwd_Concat;
  c.backward = bwd_Concat;
}

Tensor reshape(const Tensor& a, const Shape& shape) { return call_op1(OpId::Reshape, {a}, {shape, {}}); }

Tensor permute(const Tensor& a, const std::vector<int64_t>& perm) { return call_op1(OpId::Permute, {a}, {perm, {}}); }

Tensor transpose(const Tensor& a, int64_t ax0, int64_t ax1) {
  int64_t nd = a.dim();
  int64_t i = op_norm_axis(OpId::Permute, {a}, ax0, nd), j = op_norm_axis(OpId::Permute, {a}, ax1, nd);
  std::vector<int64_t> perm(nd);
  for (int64_t d = 0; d < nd; ++d) perm[d] = d;
  std::swap(perm[i], perm[j]);
  return permute(a, perm);
}

Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t end) {
  return call_op1(OpId::Slice, {a}, {{axis, start, end}, {}});
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) { return call_op1(OpId::Concat, xs, {{axis}, {}}); }

}  // namespace larmor
