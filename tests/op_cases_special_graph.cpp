// Test rows for two of the special ops: pair-biased attention (kernels/cpu/pair_attention.cpp) and
// message passing (kernels/cpu/message_passing.cpp). References are plain f64 loops written here: the
// masked softmax is spelled out, and the graph reference does its own stable sort of the edge list.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "tests/op_table.h"

namespace larmor::test {
namespace {

// ---- pair-biased attention --------------------------------------------------------------------------------
// q, k, v (B, H, N, d); bias (B, H, N, N); mask (B, N) -> out, logits, probs (f64).
Tensors ref_pair_attention(const Tensor& q_t, const Tensor& k_t, const Tensor& v_t, const Tensor& bias_t,
                           const Tensor& mask_t, double scale) {
  const Shape& qs = q_t.shape();
  const int64_t B = qs[0], H = qs[1], N = qs[2], d = qs[3];
  std::vector<double> q = values(q_t), k = values(k_t), v = values(v_t), bias = values(bias_t), mask = values(mask_t);
  std::vector<double> out(static_cast<size_t>(B * H * N * d), 0.0), logits(static_cast<size_t>(B * H * N * N)),
      probs(static_cast<size_t>(B * H * N * N), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t bh = b * H + h;
      for (int64_t i = 0; i < N; ++i) {
        // logits over all keys, padded or not
        for (int64_t j = 0; j < N; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += q[(bh * N + i) * d + c] * k[(bh * N + j) * d + c];
          logits[(bh * N + i) * N + j] = scale * dot + bias[(bh * N + i) * N + j];
        }
        // softmax over the real keys only
        double mx = -INFINITY;
        for (int64_t j = 0; j < N; ++j)
          if (mask[b * N + j] != 0) mx = std::max(mx, logits[(bh * N + i) * N + j]);
        if (mx == -INFINITY) continue;  // no real key: probs and out stay 0
        double z = 0;
        for (int64_t j = 0; j < N; ++j)
          if (mask[b * N + j] != 0) z += std::exp(logits[(bh * N + i) * N + j] - mx);
        for (int64_t j = 0; j < N; ++j) {
          double p = mask[b * N + j] != 0 ? std::exp(logits[(bh * N + i) * N + j] - mx) / z : 0.0;
          probs[(bh * N + i) * N + j] = p;
          for (int64_t c = 0; c < d; ++c) out[(bh * N + i) * d + c] += p * v[(bh * N + j) * d + c];
        }
      }
    }
  }
  return {from_values(out, qs), from_values(logits, {B, H, N, N}), from_values(probs, {B, H, N, N})};
}

struct AttnRow {
  const char* name;
  int64_t B, H, N, d;
  std::vector<int32_t> mask;  // (B, N)
  int outputs;                // 0: {out, logits, probs}; 1: {out}; 2: {logits, probs}
};

// ---- message passing -------------------------------------------------------------------------------------
// out[v] = sum over edges into v of (x[src] + emb[k]), where emb row k belongs to the k-th edge of the
// list stably sorted by destination (the order build_graph puts edges in).
Tensor ref_message_passing(const Tensor& x_t, const Tensor& emb_t, const Tensor& src_t, const Tensor& dst_t) {
  const int64_t V = x_t.size(0), D = x_t.size(1), E = src_t.numel();
  std::vector<double> x = values(x_t), emb = values(emb_t), src = values(src_t), dst = values(dst_t);
  std::vector<int64_t> order(static_cast<size_t>(E));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return dst[a] < dst[b]; });
  std::vector<double> out(static_cast<size_t>(V * D), 0.0);
  for (int64_t k = 0; k < E; ++k) {
    const int64_t e = order[k], s = static_cast<int64_t>(src[e]), t = static_cast<int64_t>(dst[e]);
    for (int64_t c = 0; c < D; ++c) out[t * D + c] += x[s * D + c] + emb[k * D + c];
  }
  return from_values(out, {V, D});
}

Graph graph_as(const Graph& g, DType dt) {
  Graph r = g;
  r.src = g.src.to(dt);
  r.dst = g.dst.to(dt);
  r.dst_offsets = g.dst_offsets.to(dt);
  r.src_offsets = g.src_offsets.to(dt);
  r.src_order = g.src_order.to(dt);
  return r;
}

OpCaseRegistrar reg([](std::vector<OpCase>& t) {
  const AttnRow attn_rows[] = {
      {"PairBiasAttention B=2 H=3 N=5 d=4, 2 padded atoms", 2, 3, 5, 4, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 0},
      {"PairBiasAttention fully padded molecule", 2, 2, 5, 3, {0, 0, 0, 0, 0, 1, 0, 1, 1, 0}, 0},
      {"PairBiasAttention only out used (no logits gradient)", 2, 3, 5, 4, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 1},
      {"PairBiasAttention only logits used (no out gradient)", 2, 3, 5, 4, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 2},
  };
  for (const AttnRow& r : attn_rows) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(r.d));
    const Shape vs = {r.B, r.H, r.N, r.d}, ps = {r.B, r.H, r.N, r.N};
    auto pick = [outputs = r.outputs](const Tensors& all) {
      if (outputs == 1) return Tensors{all[0]};
      if (outputs == 2) return Tensors{all[1], all[2]};
      return all;
    };
    t.push_back(OpCase{
        r.name,
        {OpId::PairBiasAttention, OpId::PairBiasAttentionBackward},
        [vs, ps, r](DType dt) {
          return Tensors{uniform(vs, -1, 1, 101, dt), uniform(vs, -1, 1, 102, dt), uniform(vs, -1, 1, 103, dt),
                         uniform(ps, -1, 1, 104, dt), Tensor::from_vector(r.mask, {r.B, r.N})};
        },
        [scale, pick](const Tensors& in) {
          PairAttentionOut o = pair_bias_attention(in[0], in[1], in[2], in[3], in[4], scale);
          return pick({o.out, o.logits, o.probs});
        },
        [scale, pick](const Tensors& in) { return pick(ref_pair_attention(in[0], in[1], in[2], in[3], in[4], scale)); },
        {0, 1, 2, 3}});
  }

  // V = 6, E = 11, given out of destination order: node 4 has no incoming edge, node 5 no outgoing one,
  // 1->1 and 2->2 are self loops, 0->1 appears twice.
  const std::vector<int32_t> src = {2, 0, 1, 3, 0, 1, 4, 3, 0, 2, 1};
  const std::vector<int32_t> dst = {3, 1, 0, 5, 5, 1, 2, 0, 1, 2, 3};
  const int64_t V = 6, E = 11, D = 3;
  struct GraphRow {
    const char* name;
    DType index_dtype;
    bool empty;
  };
  for (GraphRow gr : {GraphRow{"MessagePassing V=6 E=11 (self loops, multi-edges, isolated node)", DType::I32, false},
                      GraphRow{"MessagePassing V=6 E=11 with i64 graph tensors", DType::I64, false},
                      GraphRow{"MessagePassing V=6 E=0 (no edges)", DType::I32, true}}) {
    const int64_t ne = gr.empty ? 0 : E;
    const std::vector<int32_t> s = gr.empty ? std::vector<int32_t>{} : src, d = gr.empty ? std::vector<int32_t>{} : dst;
    t.push_back(OpCase{
        gr.name,
        {OpId::MessagePassing, OpId::MessagePassingBackward},
        [s, d, ne](DType dt) {
          return Tensors{uniform({V, D}, -1, 1, 201, dt), uniform({ne, D}, -1, 1, 202, dt), Tensor::from_vector(s, {ne}),
                         Tensor::from_vector(d, {ne})};
        },
        [idt = gr.index_dtype](const Tensors& in) {
          Graph g = graph_as(build_graph(in[2], in[3], V), idt);
          return Tensors{message_passing(in[0], in[1], g)};
        },
        [](const Tensors& in) { return Tensors{ref_message_passing(in[0], in[1], in[2], in[3])}; },
        {0, 1}});
  }
});

}  // namespace
}  // namespace larmor::test
