// Property tests for pair-biased attention and message passing, beyond the op-table rows:
//   - atom permutation equivariance of attention (outputs and input gradients), with padding present;
//   - padded keys are invisible: changing k, v, bias at padded key positions leaves out unchanged;
//   - a fully padded molecule gives zeros and finite gradients;
//   - message passing does not depend on the order the edge list is given in (forward and backward);
//   - build_graph's CSR layout and its errors, and the attention shape/dtype errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "autograd/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace larmor {
namespace {

using test::all_finite;  // tests/test_util.h
using test::max_abs_diff;
using test::to_f64;

// Permutes the atom axes of a (B, H, N, X) tensor: row i of molecule b becomes row perm[b][i]. When
// pair is true X = N and the key axis is permuted too. The result is a fresh f64 leaf.
Tensor permute_atoms(const Tensor& t, const std::vector<std::vector<int64_t>>& perm, bool pair) {
  const Shape& s = t.shape();
  const int64_t B = s[0], H = s[1], N = s[2], X = s[3];
  std::vector<double> in = to_f64(t), out(in.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t x = 0; x < X; ++x) {
          const int64_t src_x = pair ? perm[b][x] : x;
          out[((b * H + h) * N + i) * X + x] = in[((b * H + h) * N + perm[b][i]) * X + src_x];
        }
  return Tensor::from_vector(out, s);
}
Tensor permute_mask(const Tensor& m, const std::vector<std::vector<int64_t>>& perm) {
  const int64_t B = m.size(0), N = m.size(1);
  std::vector<int32_t> in = m.to_vector<int32_t>(), out(in.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < N; ++i) out[b * N + i] = in[b * N + perm[b][i]];
  return Tensor::from_vector(out, {B, N});
}

struct AttnInputs {
  Tensor q, k, v, bias, mask;
};
AttnInputs make_attn(int64_t B, int64_t H, int64_t N, int64_t d, const std::vector<int32_t>& mask, uint64_t seed) {
  Rng rng(seed);
  return {rng.uniform({B, H, N, d}, -1, 1, DType::F64), rng.uniform({B, H, N, d}, -1, 1, DType::F64),
          rng.uniform({B, H, N, d}, -1, 1, DType::F64), rng.uniform({B, H, N, N}, -1, 1, DType::F64),
          Tensor::from_vector(mask, {B, N})};
}

TEST_CASE("pair attention: permuting atoms permutes outputs and gradients (with padding)") {
  const int64_t B = 2, H = 2, N = 6, d = 3;
  const double scale = 0.6;
  // molecule 0: one padded atom in the middle; molecule 1: two padded atoms at the end
  AttnInputs a = make_attn(B, H, N, d, {1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0}, 7);
  const std::vector<std::vector<int64_t>> perm = {{3, 0, 5, 2, 1, 4}, {5, 2, 0, 4, 1, 3}};
  AttnInputs p = {permute_atoms(a.q, perm, false), permute_atoms(a.k, perm, false), permute_atoms(a.v, perm, false),
                  permute_atoms(a.bias, perm, true), permute_mask(a.mask, perm)};
  Rng rng(99);
  Tensor w_out = rng.uniform({B, H, N, d}, -1, 1, DType::F64), w_logits = rng.uniform({B, H, N, N}, -1, 1, DType::F64);
  Tensor pw_out = permute_atoms(w_out, perm, false), pw_logits = permute_atoms(w_logits, perm, true);

  for (AttnInputs* x : {&a, &p})
    for (Tensor* t : {&x->q, &x->k, &x->v, &x->bias}) t->set_requires_grad(true);
  PairAttentionOut o = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, scale);
  PairAttentionOut po = pair_bias_attention(p.q, p.k, p.v, p.bias, p.mask, scale);

  CHECK(max_abs_diff(to_f64(po.out), to_f64(permute_atoms(o.out, perm, false))) < 1e-12);
  CHECK(max_abs_diff(to_f64(po.logits), to_f64(permute_atoms(o.logits, perm, true))) < 1e-12);
  CHECK(max_abs_diff(to_f64(po.probs), to_f64(permute_atoms(o.probs, perm, true))) < 1e-12);

  std::vector<Tensor> g = grad({o.out, o.logits}, {w_out, w_logits}, {a.q, a.k, a.v, a.bias});
  std::vector<Tensor> pg = grad({po.out, po.logits}, {pw_out, pw_logits}, {p.q, p.k, p.v, p.bias});
  const char* names[] = {"dq", "dk", "dv", "dbias"};
  for (size_t i = 0; i < 4; ++i) {
    INFO(names[i]);
    CHECK(max_abs_diff(to_f64(pg[i]), to_f64(permute_atoms(g[i], perm, i == 3))) < 1e-12);
  }
}

TEST_CASE("pair attention: values at padded keys do not change out") {
  const int64_t B = 2, H = 3, N = 5, d = 4;
  const std::vector<int32_t> mask = {1, 1, 1, 1, 1, 1, 0, 1, 1, 0};  // molecule 1: atoms 1 and 4 padded
  AttnInputs a = make_attn(B, H, N, d, mask, 11);
  PairAttentionOut o = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, 0.5);

  // Overwrite k, v (rows j) and bias (columns j) of molecule 1 at the padded atoms with large values.
  std::vector<double> k = to_f64(a.k), v = to_f64(a.v), bias = to_f64(a.bias);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t j : {1, 4}) {
      const int64_t bh = 1 * H + h;
      for (int64_t c = 0; c < d; ++c) {
        k[(bh * N + j) * d + c] = 40.0 + c;
        v[(bh * N + j) * d + c] = -25.0 * (c + 1);
      }
      for (int64_t i = 0; i < N; ++i) bias[(bh * N + i) * N + j] = 1e3;
    }
  PairAttentionOut o2 = pair_bias_attention(a.q, Tensor::from_vector(k, a.k.shape()), Tensor::from_vector(v, a.v.shape()),
                                            Tensor::from_vector(bias, a.bias.shape()), a.mask, 0.5);
  // Compare the real query rows (the padded rows do not change either, but nobody reads them).
  std::vector<double> out = to_f64(o.out), out2 = to_f64(o2.out), probs2 = to_f64(o2.probs);
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        if (mask[b * N + i] == 0) continue;
        for (int64_t c = 0; c < d; ++c) {
          const int64_t at = ((b * H + h) * N + i) * d + c;
          worst = std::max(worst, std::fabs(out[at] - out2[at]));
        }
        for (int64_t j = 0; j < N; ++j)
          if (mask[b * N + j] == 0) CHECK(probs2[((b * H + h) * N + i) * N + j] == 0.0);
      }
  CHECK(worst < 1e-12);
  // The logits are unmasked (they are the next layer's pair bias), so they do see the change.
  CHECK(max_abs_diff(to_f64(o.logits), to_f64(o2.logits)) > 1.0);
}

TEST_CASE("pair attention: a fully padded molecule gives zeros and finite gradients") {
  const int64_t B = 2, H = 2, N = 4, d = 3;
  for (DType dt : {DType::F32, DType::F64}) {
    AttnInputs a = make_attn(B, H, N, d, {0, 0, 0, 0, 1, 1, 0, 1}, 5);
    Tensor q = a.q.to(dt), k = a.k.to(dt), v = a.v.to(dt), bias = a.bias.to(dt);
    for (Tensor* t : {&q, &k, &v, &bias}) t->set_requires_grad(true);
    PairAttentionOut o = pair_bias_attention(q, k, v, bias, a.mask, 0.5);
    std::vector<double> out = to_f64(o.out), probs = to_f64(o.probs);
    for (int64_t i = 0; i < H * N * d; ++i) CHECK(out[i] == 0.0);  // molecule 0
    for (int64_t i = 0; i < H * N * N; ++i) CHECK(probs[i] == 0.0);
    CHECK(all_finite(o.out));
    CHECK(all_finite(o.logits));
    std::vector<Tensor> g = grad({o.out, o.logits}, {Tensor::ones(o.out.shape(), dt), Tensor::ones(o.logits.shape(), dt)},
                                 {q, k, v, bias});
    for (const Tensor& gi : g) CHECK(all_finite(gi));
    // Only out weighted: nothing flows into molecule 0 at all.
    std::vector<Tensor> g_out = grad({o.out}, {Tensor::ones(o.out.shape(), dt)}, {q, k, v, bias});
    for (const Tensor& gi : g_out) {
      std::vector<double> h = to_f64(gi);
      const int64_t per_mol = gi.numel() / B;
      for (int64_t i = 0; i < per_mol; ++i) CHECK(h[i] == 0.0);
    }
  }
}

TEST_CASE("pair attention: bad inputs throw errors naming the op and shapes") {
  AttnInputs a = make_attn(2, 2, 4, 3, {1, 1, 1, 1, 1, 1, 1, 0}, 3);
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string m = message([&] { pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask.to(DType::I64), 0.5); });
  CHECK(m.find("PairBiasAttention") != std::string::npos);
  CHECK(m.find("key_mask") != std::string::npos);
  m = message([&] { pair_bias_attention(a.q, a.k, a.v, a.bias.view({2, 2, 2, 8}), a.mask, 0.5); });
  CHECK(m.find("bias") != std::string::npos);
  CHECK(m.find("(2, 2, 4, 4)") != std::string::npos);
  m = message([&] { pair_bias_attention(a.q, a.k.to(DType::F32), a.v, a.bias, a.mask, 0.5); });
  CHECK(m.find("PairBiasAttention") != std::string::npos);
  m = message([&] { pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask.view({4, 2}), 0.5); });
  CHECK(m.find("key_mask") != std::string::npos);
}

// ---- message passing ------------------------------------------------------------------------------------
TEST_CASE("message passing: invariant to the order of the edge list") {
  const int64_t V = 12, E = 40, D = 5;
  std::vector<int32_t> src = rand_int({E}, 0, V, 21).to_vector<int32_t>();
  std::vector<int32_t> dst = rand_int({E}, 0, V, 22).to_vector<int32_t>();
  dst[0] = dst[1] = 3, src[0] = src[1] = 7;  // a multi-edge
  src[2] = dst[2] = 4;                      // a self loop
  std::vector<double> emb = rand_uniform({E, D}, -1, 1, 23, 0, DType::F64).to_vector<double>();
  Tensor x = rand_uniform({V, D}, -1, 1, 24, 0, DType::F64);

  std::vector<int64_t> sigma(E);  // the shuffled list's edge i is the original edge sigma[i]
  std::iota(sigma.begin(), sigma.end(), 0);
  std::mt19937 gen(5);
  std::shuffle(sigma.begin(), sigma.end(), gen);
  std::vector<int32_t> src_b(E), dst_b(E);
  for (int64_t i = 0; i < E; ++i) src_b[i] = src[sigma[i]], dst_b[i] = dst[sigma[i]];

  // Runs message passing on one edge list; `orig` maps the list's edge ids to the original ones. Returns
  // out, dx and dedge (rows indexed by original edge id) for a fixed output weight.
  Tensor w = rand_uniform({V, D}, -1, 1, 25, 0, DType::F64);
  auto run = [&](const std::vector<int32_t>& s, const std::vector<int32_t>& t, const std::vector<int64_t>& orig) {
    Tensor perm;
    Graph g = build_graph(Tensor::from_vector(s, {E}), Tensor::from_vector(t, {E}), V, &perm);
    std::vector<int32_t> pv = perm.to_vector<int32_t>();
    std::vector<double> e_sorted(E * D);
    for (int64_t k = 0; k < E; ++k)
      for (int64_t c = 0; c < D; ++c) e_sorted[k * D + c] = emb[orig[pv[k]] * D + c];
    Tensor xl = x.clone().set_requires_grad(true);
    Tensor el = Tensor::from_vector(e_sorted, {E, D}).set_requires_grad(true);
    Tensor out = message_passing(xl, el, g);
    std::vector<Tensor> gr = grad({out}, {w}, {xl, el});
    std::vector<double> ge = to_f64(gr[1]), dedge(E * D);
    for (int64_t k = 0; k < E; ++k)
      for (int64_t c = 0; c < D; ++c) dedge[orig[pv[k]] * D + c] = ge[k * D + c];
    return std::vector<std::vector<double>>{to_f64(out), to_f64(gr[0]), dedge};
  };
  std::vector<int64_t> identity(E);
  std::iota(identity.begin(), identity.end(), 0);
  auto ra = run(src, dst, identity);
  auto rb = run(src_b, dst_b, sigma);
  CHECK(max_abs_diff(ra[0], rb[0]) < 1e-12);
  CHECK(max_abs_diff(ra[1], rb[1]) < 1e-12);
  CHECK(max_abs_diff(ra[2], rb[2]) == 0.0);
}

TEST_CASE("build_graph: CSR layout, stable order, and errors") {
  // edges: 0:(2->1) 1:(0->2) 2:(1->1) 3:(2->0) 4:(0->1)
  Tensor perm;
  Graph g = build_graph(Tensor::from_vector<int32_t>({2, 0, 1, 2, 0}, {5}), Tensor::from_vector<int32_t>({1, 2, 1, 0, 1}, {5}),
                        4, &perm);
  CHECK(g.num_nodes == 4);
  CHECK(perm.to_vector<int32_t>() == std::vector<int32_t>{3, 0, 2, 4, 1});
  CHECK(g.src.to_vector<int32_t>() == std::vector<int32_t>{2, 2, 1, 0, 0});
  CHECK(g.dst.to_vector<int32_t>() == std::vector<int32_t>{0, 1, 1, 1, 2});
  CHECK(g.dst_offsets.to_vector<int32_t>() == std::vector<int32_t>{0, 1, 4, 5, 5});
  CHECK(g.src_offsets.to_vector<int32_t>() == std::vector<int32_t>{0, 2, 3, 5, 5});
  CHECK(g.src_order.to_vector<int32_t>() == std::vector<int32_t>{3, 4, 2, 0, 1});
  Graph same = g.to(Device::cpu());
  CHECK(same.src_order.to_vector<int32_t>() == g.src_order.to_vector<int32_t>());

  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string m = message([] { build_graph(Tensor::from_vector<int32_t>({0, 5}, {2}), Tensor::from_vector<int32_t>({1, 1}, {2}), 4); });
  CHECK(m.find("build_graph") != std::string::npos);
  CHECK(m.find("source 5") != std::string::npos);
  m = message([] { build_graph(Tensor::from_vector<int32_t>({0, 1}, {2}), Tensor::from_vector<int32_t>({-1, 1}, {2}), 4); });
  CHECK(m.find("destination -1") != std::string::npos);
  m = message([] { build_graph(Tensor::from_vector<int32_t>({0, 1}, {2}), Tensor::from_vector<int32_t>({1}, {1}), 4); });
  CHECK(m.find("build_graph") != std::string::npos);
  m = message([&] { message_passing(Tensor::zeros({3, 2}, DType::F64), Tensor::zeros({5, 2}, DType::F64), g); });
  CHECK(m.find("message_passing") != std::string::npos);
  m = message([&] { message_passing(Tensor::zeros({4, 2}, DType::F64), Tensor::zeros({5, 3}, DType::F64), g); });
  CHECK(m.find("MessagePassing") != std::string::npos);
}

TEST_CASE("pair attention: keep_probs = false gives the same out and logits and no probabilities") {
  const int64_t B = 2, H = 3, N = 7, d = 4;
  AttnInputs a = make_attn(B, H, N, d, {1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1}, 21);
  PairAttentionOut kept = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, 0.4);
  PairAttentionOut lean = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, 0.4, /*keep_probs=*/false);
  CHECK(kept.probs.numel() == B * H * N * N);
  CHECK(lean.probs.numel() == 0);
  // Same values up to rounding: Eigen may take a differently vectorised path for the scratch buffer.
  CHECK(max_abs_diff(to_f64(kept.out), to_f64(lean.out)) < 1e-12);
  CHECK(max_abs_diff(to_f64(kept.logits), to_f64(lean.logits)) == 0);

  // When autograd records the call the probabilities are kept anyway, and the backward works.
  a.q.set_requires_grad(true);
  PairAttentionOut rec = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, 0.4, /*keep_probs=*/false);
  CHECK(rec.probs.numel() == B * H * N * N);
  sum(rec.out).backward();
  CHECK(a.q.grad().shape() == a.q.shape());
}

}  // namespace
}  // namespace larmor
