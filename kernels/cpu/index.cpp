// Gather, scatter and CSR-segment ops: the index plumbing of the graph and embedding layers.
//
// Every op moves whole rows (the trailing "feature" block of F elements), so rows are the unit of work.
// Gathers (Embedding, IndexSelect, SegmentBroadcast) copy rows by bytes and work for any dtype. The two
// sums are deterministic whatever the thread count: SegmentSum walks each segment's rows in order, one
// thread per segment; ScatterAdd first groups edges by output row with a stable counting sort (serial,
// O(E)) and then sums each output row in edge order, one thread per output row. There is never a shared
// accumulator written by two threads, so no atomics and bit-identical results across runs.
// Index ranges and offsets are validated before anything is written; a bad index throws a larmor::Error
// naming the op, the position and the value.
// Backwards pair the ops up: gather <-> ScatterAdd, SegmentSum <-> SegmentBroadcast.
#include <cstring>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// Elements per leading-axis row.
int64_t row_size(const Shape& s) { return shape_numel(Shape(s.begin() + 1, s.end())); }

// Reads an index tensor as int64 (CPU), validating every entry against [0, limit).
std::vector<int64_t> read_indices(OpId id, const std::vector<Tensor>& in, size_t k, int64_t limit) {
  const Tensor& t = in[k];
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  LARMOR_DISPATCH_INDEX(t.dtype(), op_name(id), [&] {
    const index_t* p = cptr<index_t>(t);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(p[i]);
  });
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] < 0 || v[i] >= limit)
      op_fail(id, in, "index " + std::to_string(v[i]) + " at position " + std::to_string(i) + " out of range [0, " +
                          std::to_string(limit) + ")");
  return v;
}

// Reads CSR offsets (S+1) as int64, validating offsets[0] == 0, non-decreasing, offsets[S] == total.
std::vector<int64_t> read_offsets(OpId id, const std::vector<Tensor>& in, size_t k, int64_t total) {
  const Tensor& t = in[k];
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  LARMOR_DISPATCH_INDEX(t.dtype(), op_name(id), [&] {
    const index_t* p = cptr<index_t>(t);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int64_t>(p[i]);
  });
  if (v.empty() || v[0] != 0) op_fail(id, in, "offsets must start at 0");
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] < v[i - 1])
      op_fail(id, in, "offsets must be non-decreasing: offsets[" + std::to_string(i) + "] = " + std::to_string(v[i]) +
                          " < offsets[" + std::to_string(i - 1) + "] = " + std::to_string(v[i - 1]));
  if (v.back() != total)
    op_fail(id, in, "offsets end at " + std::to_string(v.back()) + ", expected " + std::to_string(total));
  return v;
}

// Copies rows: out row r = src row rows[r], row_bytes each.
void gather_rows(const Tensor& src, Tensor& out, const std::vector<int64_t>& rows, int64_t row_elems) {
  size_t row_bytes = static_cast<size_t>(row_elems) * dtype_size(src.dtype());
  const char* s = static_cast<const char*>(src.raw_data());
  char* o = static_cast<char*>(out.raw_data());
  int64_t n = static_cast<int64_t>(rows.size());
  parallel_for(0, n, std::max<int64_t>(1, kGrain / std::max<int64_t>(row_elems, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      if (row_bytes) std::memcpy(o + r * row_bytes, s + rows[static_cast<size_t>(r)] * row_bytes, row_bytes);
  });
}

void expect_index_vector(OpId id, const std::vector<Tensor>& in, size_t k) {
  op_expect_index(id, in, k);
  op_expect_dim(id, in, k, 1);
}

// ---- Embedding(weight (V, D), idx (...)) -> (..., D) ----------------------------------------------------
std::vector<TensorMeta> infer_Embedding(const std::vector<Tensor>& in, const Attrs&) {
  op_expect_dim(OpId::Embedding, in, 0, 2);
  op_expect_index(OpId::Embedding, in, 1);
  Shape s = in[1].shape();
  s.push_back(in[0].shape()[1]);
  return {{s, in[0].dtype()}};
}
void fwd_Embedding(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  std::vector<int64_t> rows = read_indices(OpId::Embedding, in, 1, in[0].shape()[0]);
  gather_rows(in[0], out[0], rows, in[0].shape()[1]);
}
std::vector<Tensor> bwd_Embedding(const Node& n, const std::vector<Tensor>& g) {
  if (!n.needs_grad[0]) return {Tensor(), Tensor()};
  const Tensor& w = n.inputs[0];                                 // (V, D)
  Tensor idx = n.inputs[1].detach().view({n.inputs[1].numel()});  // (n)
  Tensor g2 = reshape(g[0], {idx.numel(), w.shape()[1]});         // (n, D)
  return {scatter_add(g2, idx, w.shape()[0]), Tensor()};
}

// ---- IndexSelect(x (N, ...), idx (M)) -> (M, ...) -----------------------------------------------------
std::vector<TensorMeta> infer_IndexSelect(const std::vector<Tensor>& in, const Attrs&) {
  if (in[0].dim() < 1) op_fail(OpId::IndexSelect, in, "x must have at least one axis");
  expect_index_vector(OpId::IndexSelect, in, 1);
  Shape s = in[0].shape();
  s[0] = in[1].shape()[0];
  return {{s, in[0].dtype()}};
}
void fwd_IndexSelect(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  std::vector<int64_t> rows = read_indices(OpId::IndexSelect, in, 1, in[0].shape()[0]);
  gather_rows(in[0], out[0], rows, row_size(in[0].shape()));
}
std::vector<Tensor> bwd_IndexSelect(const Node& n, const std::vector<Tensor>& g) {
  return {scatter_add(g[0], n.inputs[1].detach(), n.inputs[0].shape()[0]), Tensor()};
}

// ---- ScatterAdd(src (E, ...), idx (E); ints=[num_out]) -> (num_out, ...) ---------------------------------
std::vector<TensorMeta> infer_ScatterAdd(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::ScatterAdd;
  op_expect_float(id, in, 0);
  if (in[0].dim() < 1) op_fail(id, in, "src must have at least one axis");
  expect_index_vector(id, in, 1);
  if (in[1].shape()[0] != in[0].shape()[0]) op_fail(id, in, "idx must have one entry per row of src");
  if (a.i(0) < 0) op_fail(id, in, "num_out must be >= 0, got " + std::to_string(a.i(0)));
  Shape s = in[0].shape();
  s[0] = a.i(0);
  return {{s, in[0].dtype()}};
}
void fwd_ScatterAdd(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  int64_t num_out = a.i(0);
  std::vector<int64_t> idx = read_indices(OpId::ScatterAdd, in, 1, num_out);
  // Stable counting sort of edges by output row: edges of row o are order[start[o], start[o+1]).
  std::vector<int64_t> start(static_cast<size_t>(num_out) + 1, 0), order(idx.size());
  for (int64_t o : idx) ++start[static_cast<size_t>(o) + 1];
  for (size_t o = 0; o < static_cast<size_t>(num_out); ++o) start[o + 1] += start[o];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (size_t e = 0; e < idx.size(); ++e) order[static_cast<size_t>(fill[static_cast<size_t>(idx[e])]++)] = static_cast<int64_t>(e);
  }
  int64_t f = row_size(in[0].shape());
  int64_t avg = num_out ? std::max<int64_t>(1, static_cast<int64_t>(idx.size()) / num_out) : 1;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "ScatterAdd", [&] {
    const scalar_t* src = cptr<scalar_t>(in[0]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    parallel_for(0, num_out, std::max<int64_t>(1, kGrain / std::max<int64_t>(f * avg, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        scalar_t* yr = y + o * f;
        std::fill(yr, yr + f, scalar_t(0));
        for (int64_t k = start[static_cast<size_t>(o)]; k < start[static_cast<size_t>(o) + 1]; ++k) {
          const scalar_t* sr = src + order[static_cast<size_t>(k)] * f;
          for (int64_t j = 0; j < f; ++j) yr[j] += sr[j];
        }
      }
    });
  });
}
std::vector<Tensor> bwd_ScatterAdd(const Node& n, const std::vector<Tensor>& g) {
  return {index_select(g[0], n.inputs[1].detach()), Tensor()};
}

// ---- SegmentSum(x (E, ...), offsets (S+1)) -> (S, ...) --------------------------------------------------
std::vector<TensorMeta> infer_SegmentSum(const std::vector<Tensor>& in, const Attrs&) {
  const OpId id = OpId::SegmentSum;
  op_expect_float(id, in, 0);
  if (in[0].dim() < 1) op_fail(id, in, "x must have at least one axis");
  expect_index_vector(id, in, 1);
  if (in[1].numel() < 1) op_fail(id, in, "offsets must have S+1 >= 1 entries");
  Shape s = in[0].shape();
  s[0] = in[1].numel() - 1;
  return {{s, in[0].dtype()}};
}
void fwd_SegmentSum(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  std::vector<int64_t> off = read_offsets(OpId::SegmentSum, in, 1, in[0].shape()[0]);
  int64_t segs = static_cast<int64_t>(off.size()) - 1;
  int64_t f = row_size(in[0].shape());
  int64_t avg = segs ? std::max<int64_t>(1, in[0].shape()[0] / segs) : 1;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "SegmentSum", [&] {
    const scalar_t* x = cptr<scalar_t>(in[0]);
    scalar_t* y = mptr<scalar_t>(out[0]);
    parallel_for(0, segs, std::max<int64_t>(1, kGrain / std::max<int64_t>(f * avg, 1)), [&](int64_t lo, int64_t hi) {
      for (int64_t s = lo; s < hi; ++s) {
        scalar_t* yr = y + s * f;
        std::fill(yr, yr + f, scalar_t(0));
        for (int64_t e = off[static_cast<size_t>(s)]; e < off[static_cast<size_t>(s) + 1]; ++e)
          for (int64_t j = 0; j < f; ++j) yr[j] += x[e * f + j];
      }
    });
  });
}
std::vector<Tensor> bwd_SegmentSum(const Node& n, const std::vector<Tensor>& g) {
  return {segment_broadcast(g[0], n.inputs[1].detach()), Tensor()};
}

// ---- SegmentBroadcast(g (S, ...), offsets (S+1)) -> (E, ...), E = offsets[S] --------------------------------
std::vector<TensorMeta> infer_SegmentBroadcast(const std::vector<Tensor>& in, const Attrs&) {
  const OpId id = OpId::SegmentBroadcast;
  if (in[0].dim() < 1) op_fail(id, in, "g must have at least one axis");
  expect_index_vector(id, in, 1);
  if (in[1].numel() != in[0].shape()[0] + 1) op_fail(id, in, "offsets must have S+1 entries for g (S, ...)");
  // The output length is data: read the last offset (one element, any device).
  int64_t e = static_cast<int64_t>(in[1].narrow0(in[1].numel() - 1, 1).item());
  if (e < 0) op_fail(id, in, "offsets end at a negative value " + std::to_string(e));
  Shape s = in[0].shape();
  s[0] = e;
  return {{s, in[0].dtype()}};
}
void fwd_SegmentBroadcast(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  std::vector<int64_t> off = read_offsets(OpId::SegmentBroadcast, in, 1, out[0].shape()[0]);
  std::vector<int64_t> rows(static_cast<size_t>(off.back()));
  for (size_t s = 0; s + 1 < off.size(); ++s)
    for (int64_t e = off[s]; e < off[s + 1]; ++e) rows[static_cast<size_t>(e)] = static_cast<int64_t>(s);
  gather_rows(in[0], out[0], rows, row_size(in[0].shape()));
}
std::vector<Tensor> bwd_SegmentBroadcast(const Node& n, const std::vector<Tensor>& g) {
  return {segment_sum(g[0], n.inputs[1].detach()), Tensor()};
}

}  // namespace

void register_index_ops() {
  struct Row { OpId id; InferFn inf; KernelFn fwd; BackwardFn bwd; };
  for (Row r : {Row{OpId::Embedding, infer_Embedding, fwd_Embedding, bwd_Embedding},
                Row{OpId::IndexSelect, infer_IndexSelect, fwd_IndexSelect, bwd_IndexSelect},
                Row{OpId::ScatterAdd, infer_ScatterAdd, fwd_ScatterAdd, bwd_ScatterAdd},
                Row{OpId::SegmentSum, infer_SegmentSum, fwd_SegmentSum, bwd_SegmentSum},
                Row{OpId::SegmentBroadcast, infer_SegmentBroadcast, fwd_SegmentBroadcast, bwd_SegmentBroadcast}}) {
    OpDef& d = mutable_op_def(r.id);
    d.num_inputs = 2;
    d.infer = r.inf;
    d.forward[0] = r.fwd;
    d.backward = r.bwd;
  }
}

// ---- front-ends ----------------------------------------------------------------------------------------
Tensor embedding(const Tensor& weight, const Tensor& idx) { return call_op1(OpId::Embedding, {weight, idx}); }
Tensor index_select(const Tensor& x, const Tensor& idx) { return call_op1(OpId::IndexSelect, {x, idx}); }
Tensor scatter_add(const Tensor& src, const Tensor& idx, int64_t num_out) {
  return call_op1(OpId::ScatterAdd, {src, idx}, {{num_out}, {}});
}
Tensor segment_sum(const Tensor& x, const Tensor& offsets) { return call_op1(OpId::SegmentSum, {x, offsets}); }
Tensor segment_broadcast(const Tensor& g, const Tensor& offsets) {
  return call_op1(OpId::SegmentBroadcast, {g, offsets});
}

}  // namespace larmor
