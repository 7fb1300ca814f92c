// GIN-style message passing over a CSR graph, CPU reference, and the graph builder.
//
//   out[v] = sum over edges e into v of (x[src[e]] + edge_emb[e])         x (V, D), edge_emb (E, D)
//
// Edges are sorted by destination once (build_graph), so the aggregation is a segment sum over
// [dst_offsets[v], dst_offsets[v+1]): one task per destination row, a fixed summation order, no atomics
// and no shared accumulators (ENGINE.md C2, D2). The backward of the gather x[src[e]] is itself a
// scatter; instead of scattering, it walks a precomputed reverse CSR (edges grouped by source, in
// src_order) so dx is again a per-row segment sum:
//   dedge[e] = dout[dst[e]]
//   dx[u]    = sum over e in src_order[src_offsets[u] .. src_offsets[u+1]) of dout[dst[e]]
// Both the forward and the backward are deterministic whatever the thread count, and the CUDA kernels
// can use the same layout (warp per row).
#include <algorithm>
#include <limits>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

void expect_index_1d(OpId id, const std::vector<Tensor>& in, size_t k, int64_t len, const char* what) {
  op_expect_index(id, in, k);
  op_expect_same_dtype(id, in, 2, k);  // all index tensors share one dtype
  if (in[k].shape() != Shape{len})
    op_fail(id, in, std::string(what) + " must be " + shape_str({len}) + ", got " + shape_str(in[k].shape()));
}

// CSR offsets: offsets[0] = 0, non-decreasing, offsets[V] = E. Checked on the host (O(V), serial).
template <typename I>
void check_offsets(OpId id, const std::vector<Tensor>& in, const I* off, int64_t V, int64_t E, const char* what) {
  if (off[0] != 0 || static_cast<int64_t>(off[V]) != E)
    op_fail(id, in, std::string(what) + " must start at 0 and end at the edge count " + std::to_string(E));
  for (int64_t v = 0; v < V; ++v)
    if (off[v + 1] < off[v]) op_fail(id, in, std::string(what) + " must be non-decreasing (node " + std::to_string(v) + ")");
}
template <typename I>
void check_ids(OpId id, const std::vector<Tensor>& in, const I* ids, int64_t n, int64_t limit, const char* what) {
  for (int64_t e = 0; e < n; ++e)
    if (ids[e] < 0 || static_cast<int64_t>(ids[e]) >= limit)
      op_fail(id, in, std::string(what) + "[" + std::to_string(e) + "] = " + std::to_string(static_cast<int64_t>(ids[e])) +
                          " is outside [0, " + std::to_string(limit) + ")");
}

// ---- MessagePassing(x, edge_emb, src, dst, dst_offsets, src_offsets, src_order) -> out (V, D) ----------
std::vector<TensorMeta> infer_MessagePassing(const std::vector<Tensor>& in, const Attrs&) {
  const OpId id = OpId::MessagePassing;
  op_expect_arity(id, in, 7);
  op_expect_float(id, in, 0);
  op_expect_dim(id, in, 0, 2);
  op_expect_float(id, in, 1);
  op_expect_same_dtype(id, in, 0, 1);
  op_expect_dim(id, in, 1, 2);
  const int64_t V = in[0].size(0), D = in[0].size(1), E = in[1].size(0);
  if (in[1].size(1) != D) op_fail(id, in, "x and edge_emb must have the same feature size");
  expect_index_1d(id, in, 2, E, "src");
  expect_index_1d(id, in, 3, E, "dst");
  expect_index_1d(id, in, 4, V + 1, "dst_offsets");
  expect_index_1d(id, in, 5, V + 1, "src_offsets");
  expect_index_1d(id, in, 6, E, "src_order");
  return {{{V, D}, in[0].dtype()}};
}

template <typename T, typename I>
void message_passing_forward(const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  const int64_t V = in[0].size(0), D = in[0].size(1), E = in[1].size(0);
  const T* x = cptr<T>(in[0]);         // (V, D)
  const T* edge = cptr<T>(in[1]);      // (E, D)
  const I* src = cptr<I>(in[2]);       // (E)
  const I* dst_off = cptr<I>(in[4]);   // (V+1)
  T* y = mptr<T>(out[0]);              // (V, D)
  check_offsets(OpId::MessagePassing, in, dst_off, V, E, "dst_offsets");
  check_ids(OpId::MessagePassing, in, src, E, V, "src");
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, D * (1 + E / std::max<int64_t>(V, 1))));
  parallel_for(0, V, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t v = lo; v < hi; ++v) {
      T* yv = y + v * D;
      std::fill(yv, yv + D, T(0));
      for (int64_t e = dst_off[v]; e < static_cast<int64_t>(dst_off[v + 1]); ++e) {
        const T* xs = x + static_cast<int64_t>(src[e]) * D;
        const T* ee = edge + e * D;
        for (int64_t c = 0; c < D; ++c) yv[c] += xs[c] + ee[c];
      }
    }
  });
}

void fwd_MessagePassing(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "MessagePassing", [&] {
    LARMOR_DISPATCH_INDEX(in[2].dtype(), "MessagePassing", [&] { message_passing_forward<scalar_t, index_t>(in, out); });
  });
}

// ---- MessagePassingBackward(dout, src, dst, src_offsets, src_order; ints=[V]) -> dx (V, D), dedge (E, D)
std::vector<TensorMeta> infer_MessagePassingBackward(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::MessagePassingBackward;
  op_expect_arity(id, in, 5);
  op_expect_float(id, in, 0);
  op_expect_dim(id, in, 0, 2);
  const int64_t V = a.i(0), D = in[0].size(1);
  if (a.ints.size() != 1 || V != in[0].size(0))
    op_fail(id, in, "ints must be [V] with V = dout rows (" + std::to_string(in[0].size(0)) + ")");
  op_expect_index(id, in, 1);
  op_expect_dim(id, in, 1, 1);
  const int64_t E = in[1].size(0);
  for (size_t k = 2; k < 5; ++k) {
    op_expect_index(id, in, k);
    op_expect_same_dtype(id, in, 1, k);
  }
  if (in[2].shape() != Shape{E} || in[4].shape() != Shape{E} || in[3].shape() != Shape{V + 1})
    op_fail(id, in, "expected src, dst, src_order of " + shape_str({E}) + " and src_offsets of " + shape_str({V + 1}));
  return {{{V, D}, in[0].dtype()}, {{E, D}, in[0].dtype()}};
}

template <typename T, typename I>
void message_passing_backward(const std::vector<Tensor>& in, std::vector<Tensor>& out) {
  const OpId id = OpId::MessagePassingBackward;
  const int64_t V = in[0].size(0), D = in[0].size(1), E = in[1].size(0);
  const T* dy = cptr<T>(in[0]);         // (V, D)
  const I* dst = cptr<I>(in[2]);        // (E)
  const I* src_off = cptr<I>(in[3]);    // (V+1)
  const I* src_order = cptr<I>(in[4]);  // (E)
  T* dx = mptr<T>(out[0]);              // (V, D)
  T* dedge = mptr<T>(out[1]);           // (E, D)
  check_offsets(id, in, src_off, V, E, "src_offsets");
  check_ids(id, in, dst, E, V, "dst");
  check_ids(id, in, src_order, E, E, "src_order");

  // dedge[e] = dout[dst[e]]
  parallel_for(0, E, std::max<int64_t>(1, kGrain / std::max<int64_t>(D, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t e = lo; e < hi; ++e) std::copy_n(dy + static_cast<int64_t>(dst[e]) * D, D, dedge + e * D);
  });
  // dx[u] = sum of dout[dst[e]] over the edges leaving u, in reverse-CSR order
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, D * (1 + E / std::max<int64_t>(V, 1))));
  parallel_for(0, V, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t u = lo; u < hi; ++u) {
      T* g = dx + u * D;
      std::fill(g, g + D, T(0));
      for (int64_t k = src_off[u]; k < static_cast<int64_t>(src_off[u + 1]); ++k) {
        const T* d = dy + static_cast<int64_t>(dst[src_order[k]]) * D;
        for (int64_t c = 0; c < D; ++c) g[c] += d[c];
      }
    }
  });
}

void fwd_MessagePassingBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "MessagePassingBackward", [&] {
    LARMOR_DISPATCH_INDEX(in[1].dtype(), "MessagePassingBackward",
                          [&] { message_passing_backward<scalar_t, index_t>(in, out); });
  });
}

std::vector<Tensor> bwd_MessagePassing(const Node& n, const std::vector<Tensor>& g) {
  std::vector<Tensor> grads(7);
  if (!g[0].defined()) return grads;
  Attrs a;
  a.ints = {n.inputs[0].size(0)};
  std::vector<Tensor> d = call_op(OpId::MessagePassingBackward,
                                  {g[0], n.inputs[2], n.inputs[3], n.inputs[5], n.inputs[6]}, a);
  if (n.needs_grad[0]) grads[0] = d[0];
  if (n.needs_grad[1]) grads[1] = d[1];
  return grads;
}

}  // namespace

void register_message_passing_ops() {
  OpDef& f = mutable_op_def(OpId::MessagePassing);
  f.num_inputs = 7;
  f.infer = infer_MessagePassing;
  f.forward[0] = fwd_MessagePassing;
  f.backward = bwd_MessagePassing;

  OpDef& b = mutable_op_def(OpId::MessagePassingBackward);
  b.num_inputs = 5;
  b.num_outputs = 2;
  b.infer = infer_MessagePassingBackward;
  b.forward[0] = fwd_MessagePassingBackward;
}

// ---- graph construction ----------------------------------------------------------------------------------
Graph build_graph(const Tensor& src, const Tensor& dst, int64_t num_nodes, Tensor* perm) {
  auto fail = [&](const std::string& msg) {
    throw Error("build_graph: " + msg + "; src " + (src.defined() ? src.str() : "undefined") + ", dst " +
                (dst.defined() ? dst.str() : "undefined") + ", num_nodes " + std::to_string(num_nodes));
  };
  if (!src.defined() || !dst.defined()) fail("src and dst must be defined");
  if (!src.device().is_cpu() || !dst.device().is_cpu()) fail("src and dst must be CPU tensors");
  for (const Tensor* t : {&src, &dst})
    if (t->dtype() != DType::I32 && t->dtype() != DType::I64) fail("src and dst must be i32 or i64");
  if (src.dim() != 1 || dst.dim() != 1 || src.numel() != dst.numel()) fail("src and dst must be 1-D of equal length");
  const int64_t E = src.numel(), V = num_nodes;
  const int64_t i32_max = std::numeric_limits<int32_t>::max();
  if (V < 0 || V > i32_max - 1 || E > i32_max) fail("node and edge counts must fit in i32");

  auto read = [](const Tensor& t) {
    std::vector<int64_t> r(static_cast<size_t>(t.numel()));
    LARMOR_DISPATCH_INDEX(t.dtype(), "build_graph", [&] {
      const index_t* p = t.data<index_t>();
      for (size_t i = 0; i < r.size(); ++i) r[i] = p[i];
    });
    return r;
  };
  const std::vector<int64_t> s = read(src), d = read(dst);
  for (int64_t e = 0; e < E; ++e) {
    if (s[e] < 0 || s[e] >= V)
      fail("edge " + std::to_string(e) + " has source " + std::to_string(s[e]) + ", outside [0, " + std::to_string(V) + ")");
    if (d[e] < 0 || d[e] >= V)
      fail("edge " + std::to_string(e) + " has destination " + std::to_string(d[e]) + ", outside [0, " +
           std::to_string(V) + ")");
  }

  // Stable counting sort by destination: dst_offsets, and order[k] = input edge placed at slot k.
  std::vector<int32_t> dst_off(static_cast<size_t>(V + 1), 0), order(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) ++dst_off[d[e] + 1];
  for (int64_t v = 0; v < V; ++v) dst_off[v + 1] += dst_off[v];
  {
    std::vector<int32_t> next(dst_off.begin(), dst_off.end() - 1);
    for (int64_t e = 0; e < E; ++e) order[next[d[e]]++] = static_cast<int32_t>(e);
  }
  std::vector<int32_t> sorted_src(static_cast<size_t>(E)), sorted_dst(static_cast<size_t>(E));
  for (int64_t k = 0; k < E; ++k) {
    sorted_src[k] = static_cast<int32_t>(s[order[k]]);
    sorted_dst[k] = static_cast<int32_t>(d[order[k]]);
  }
  // Reverse CSR over sources: sorted edge ids grouped by source, ascending within a source (stable).
  std::vector<int32_t> src_off(static_cast<size_t>(V + 1), 0), src_order(static_cast<size_t>(E));
  for (int64_t k = 0; k < E; ++k) ++src_off[sorted_src[k] + 1];
  for (int64_t v = 0; v < V; ++v) src_off[v + 1] += src_off[v];
  {
    std::vector<int32_t> next(src_off.begin(), src_off.end() - 1);
    for (int64_t k = 0; k < E; ++k) src_order[next[sorted_src[k]]++] = static_cast<int32_t>(k);
  }

  Graph g;
  g.src = Tensor::from_vector(sorted_src, {E});
  g.dst = Tensor::from_vector(sorted_dst, {E});
  g.dst_offsets = Tensor::from_vector(dst_off, {V + 1});
  g.src_offsets = Tensor::from_vector(src_off, {V + 1});
  g.src_order = Tensor::from_vector(src_order, {E});
  g.num_nodes = V;
  if (perm) *perm = Tensor::from_vector(order, {E});
  return g;
}

Graph Graph::to(Device dev) const {
  Graph g;
  g.src = src.to(dev);
  g.dst = dst.to(dev);
  g.dst_offsets = dst_offsets.to(dev);
  g.src_offsets = src_offsets.to(dev);
  g.src_order = src_order.to(dev);
  g.num_nodes = num_nodes;
  return g;
}

Tensor message_passing(const Tensor& x, const Tensor& edge_emb, const Graph& g) {
  if (x.defined() && g.dst_offsets.defined() && x.dim() >= 1 && x.size(0) != g.num_nodes)
    throw Error("message_passing: x " + x.str() + " has " + std::to_string(x.size(0)) + " rows but the graph has " +
                std::to_string(g.num_nodes) + " nodes");
  return call_op1(OpId::MessagePassing, {x, edge_emb, g.src, g.dst, g.dst_offsets, g.src_offsets, g.src_order});
}

}  // namespace larmor
