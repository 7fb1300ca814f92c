// Pair-biased multi-head attention (the Uni-Mol / NMRNet attention block), CPU reference.
//
// The kernel follows the loop nest of llm.c's attention_forward/backward with a bias term: one task per
// (batch, head) pair, each doing three small GEMMs (Eigen, row-major maps straight onto the tensor
// buffers) and a row-wise softmax written out by hand so that padding is explicit:
//   logits = scale * q k^T + bias            (B, H, N, N)  NOT masked: it is the next layer's pair bias
//   probs  = softmax over valid keys         (B, H, N, N)  padded keys -> 0; no valid key -> all 0
//   out    = probs @ v                       (B, H, N, d)
// Padding is a separate i32 key mask, never a -inf stored in a tensor, so a fully padded molecule gives
// zeros (not NaN) and nothing downstream subtracts infinities (ENGINE.md C1).
//
// Backward is a dedicated op (PairBiasAttentionBackward) so that the CUDA backend can fuse it:
//   dP = dout v^T;  dV = P^T dout;  dS = P * (dP - rowsum(dP * P)) + dlogits;  dbias = dS;
//   dq = scale * dS k;  dk = scale * dS^T q.
// The incoming logits gradient is ADDED to dS (ENGINE.md C7): the logits are an output in their own
// right, and dropping that term would silently cut the pair path between layers. The mask is not needed
// in backward: P is already 0 at padded keys, while the logits (and so the pair gradient) exist there.
// Each (b, h) task writes only its own slices, so results are independent of the thread count.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MapMat = Eigen::Map<RowMat<T>>;
template <typename T>
using CMapMat = Eigen::Map<const RowMat<T>>;
template <typename T>
using RowArr = Eigen::Array<T, 1, Eigen::Dynamic>;

double scale_attr(OpId id, const std::vector<Tensor>& in, const Attrs& a) {
  if (a.reals.size() != 1) op_fail(id, in, "expects one real attribute (scale), got " + std::to_string(a.reals.size()));
  return a.reals[0];
}

// ints[0] = 0: the probabilities are not kept (no gradient will be taken); the probs output is then empty
// and each task softmaxes into its own scratch. Absent or 1: kept (the backward reads them).
bool keep_probs(const Attrs& a) { return a.ints.empty() || a.ints[0] != 0; }

// in[k] must be a 4-D float tensor of `shape` with the dtype of in[0].
void expect_shape(OpId id, const std::vector<Tensor>& in, size_t k, const Shape& shape, const char* what) {
  op_expect_float(id, in, k);
  op_expect_same_dtype(id, in, 0, k);
  if (in[k].shape() != shape)
    op_fail(id, in, std::string(what) + " must be " + shape_str(shape) + ", got " + shape_str(in[k].shape()));
}

// ---- PairBiasAttention(q, k, v, bias, key_mask; reals=[scale]) -> out, logits, probs -------------------
std::vector<TensorMeta> infer_PairBiasAttention(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::PairBiasAttention;
  op_expect_arity(id, in, 5);
  scale_attr(id, in, a);
  op_expect_float(id, in, 0);
  op_expect_dim(id, in, 0, 4);
  const Shape& qs = in[0].shape();  // (B, H, N, d)
  const int64_t B = qs[0], H = qs[1], N = qs[2];
  expect_shape(id, in, 1, qs, "k");
  expect_shape(id, in, 2, qs, "v");
  expect_shape(id, in, 3, {B, H, N, N}, "bias");
  if (in[4].dtype() != DType::I32) op_fail(id, in, "key_mask must be i32 (1 = real atom, 0 = padding)");
  if (in[4].shape() != Shape{B, N})
    op_fail(id, in, "key_mask must be " + shape_str({B, N}) + ", got " + shape_str(in[4].shape()));
  DType dt = in[0].dtype();
  const Shape probs_shape = keep_probs(a) ? Shape{B, H, N, N} : Shape{0};
  return {{qs, dt}, {{B, H, N, N}, dt}, {probs_shape, dt}};
}

template <typename T>
void pair_attention_forward(const std::vector<Tensor>& in, std::vector<Tensor>& out, T scale, bool keep) {
  const Shape& qs = in[0].shape();
  const int64_t B = qs[0], H = qs[1], N = qs[2], d = qs[3];
  const T* q = cptr<T>(in[0]);
  const T* k = cptr<T>(in[1]);
  const T* v = cptr<T>(in[2]);
  const T* bias = cptr<T>(in[3]);
  const int32_t* key_mask = cptr<int32_t>(in[4]);  // (B, N)
  T* o = mptr<T>(out[0]);
  T* logits = mptr<T>(out[1]);
  T* probs = keep ? mptr<T>(out[2]) : nullptr;
  parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
    RowArr<T> maskv(N);                   // (N) the key mask as 0/1
    RowMat<T> scratch(keep ? 0 : N, N);   // (N, N) this task's probabilities when they are not kept
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / H;
      const int64_t vec_off = bh * N * d, pair_off = bh * N * N;
      CMapMat<T> Q(q + vec_off, N, d), K(k + vec_off, N, d), V(v + vec_off, N, d);  // (N, d)
      CMapMat<T> Bias(bias + pair_off, N, N);                                      // (N, N)
      MapMat<T> S(logits + pair_off, N, N), P(keep ? probs + pair_off : scratch.data(), N, N);  // (N, N)
      MapMat<T> O(o + vec_off, N, d);                                              // (N, d)
      const int32_t* mask = key_mask + b * N;                                      // (N)

      // logits = scale * q k^T + bias
      S.noalias() = Q * K.transpose();
      S = scale * S + Bias;

      // probs = softmax over the valid keys of each query row (max-subtracted); one row at a time through
      // Eigen's packet exp (the scalar std::exp loop was most of this op's time). When the valid keys are
      // a prefix [0, L) (padding at the end, as every larmor batch), the softmax and probs @ v run over
      // those L columns only; a batch of mixed sizes has L ~ 0.4 N on average.
      int64_t valid = 0, prefix = 0;
      for (int64_t j = 0; j < N; ++j) {
        maskv[j] = mask[j] != 0 ? T(1) : T(0);
        valid += mask[j] != 0;
        if (mask[j] != 0 && prefix == j) ++prefix;
      }
      const int64_t L = valid == prefix ? prefix : N;  // columns the softmax and probs @ v read
      for (int64_t i = 0; i < N; ++i) {
        Eigen::Map<const RowArr<T>> srow(S.data() + i * N, L);
        Eigen::Map<RowArr<T>> prow(P.data() + i * N, N);
        if (valid == 0) {  // every key is padding: probability 0 everywhere, out row 0
          prow.setZero();
          continue;
        }
        if (valid == L) {  // all valid keys are the first L
          prow.head(L) = (srow - srow.maxCoeff()).exp();
          prow.tail(N - L).setZero();
        } else {
          const T row_max = (maskv > T(0)).select(srow, -std::numeric_limits<T>::infinity()).maxCoeff();
          prow = (maskv > T(0)).select((srow - row_max).exp(), T(0));
        }
        prow.head(L) *= T(1) / prow.head(L).sum();  // the sum is >= 1: the max element contributes exp(0)
      }

      // out = probs @ v (the probabilities past column L are 0)
      O.noalias() = P.leftCols(L) * V.topRows(L);
    }
  });
}

void fwd_PairBiasAttention(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "PairBiasAttention",
                        [&] { pair_attention_forward<scalar_t>(in, out, static_cast<scalar_t>(a.f(0)), keep_probs(a)); });
}

// ---- PairBiasAttentionBackward(dout, dlogits, q, k, v, probs; reals=[scale]) -> dq, dk, dv, dbias ------
std::vector<TensorMeta> infer_PairBiasAttentionBackward(const std::vector<Tensor>& in, const Attrs& a) {
  const OpId id = OpId::PairBiasAttentionBackward;
  op_expect_arity(id, in, 6);
  scale_attr(id, in, a);
  op_expect_float(id, in, 0);
  op_expect_dim(id, in, 0, 4);
  const Shape& qs = in[0].shape();  // (B, H, N, d)
  const Shape ps = {qs[0], qs[1], qs[2], qs[2]};  // (B, H, N, N)
  expect_shape(id, in, 1, ps, "dlogits");
  expect_shape(id, in, 2, qs, "q");
  expect_shape(id, in, 3, qs, "k");
  expect_shape(id, in, 4, qs, "v");
  expect_shape(id, in, 5, ps, "probs");
  DType dt = in[0].dtype();
  return {{qs, dt}, {qs, dt}, {qs, dt}, {ps, dt}};
}

template <typename T>
void pair_attention_backward(const std::vector<Tensor>& in, std::vector<Tensor>& out, T scale) {
  const Shape& qs = in[0].shape();
  const int64_t B = qs[0], H = qs[1], N = qs[2], d = qs[3];
  const T* dout = cptr<T>(in[0]);
  const T* dlogits = cptr<T>(in[1]);
  const T* q = cptr<T>(in[2]);
  const T* k = cptr<T>(in[3]);
  const T* v = cptr<T>(in[4]);
  const T* probs = cptr<T>(in[5]);
  T* dq = mptr<T>(out[0]);
  T* dk = mptr<T>(out[1]);
  T* dv = mptr<T>(out[2]);
  T* dbias = mptr<T>(out[3]);
  parallel_for(0, B * H, 1, [&](int64_t lo, int64_t hi) {
    RowMat<T> dP(N, N);  // (N, N) scratch, one per chunk
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t vec_off = bh * N * d, pair_off = bh * N * N;
      CMapMat<T> dO(dout + vec_off, N, d), Q(q + vec_off, N, d), K(k + vec_off, N, d), V(v + vec_off, N, d);
      CMapMat<T> dL(dlogits + pair_off, N, N), P(probs + pair_off, N, N);
      MapMat<T> dQ(dq + vec_off, N, d), dK(dk + vec_off, N, d), dV(dv + vec_off, N, d);
      MapMat<T> dS(dbias + pair_off, N, N);  // dbias = dS

      dP.noalias() = dO * V.transpose();   // dP = dout v^T
      dV.noalias() = P.transpose() * dO;   // dV = P^T dout
      for (int64_t i = 0; i < N; ++i) {    // dS = P * (dP - rowsum(dP * P)) + dlogits
        const T* p = P.data() + i * N;
        const T* dp = dP.data() + i * N;
        const T* dl = dL.data() + i * N;
        T* ds = dS.data() + i * N;
        T row_dot = 0;
        for (int64_t j = 0; j < N; ++j) row_dot += dp[j] * p[j];
        for (int64_t j = 0; j < N; ++j) ds[j] = p[j] * (dp[j] - row_dot) + dl[j];
      }
      dQ.noalias() = scale * (dS * K);              // dq = scale * dS k
      dK.noalias() = scale * (dS.transpose() * Q);  // dk = scale * dS^T q
    }
  });
}

void fwd_PairBiasAttentionBackward(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "PairBiasAttentionBackward",
                        [&] { pair_attention_backward<scalar_t>(in, out, static_cast<scalar_t>(a.f(0))); });
}

// Node backward: g = {dout, dlogits}, either possibly undefined (no gradient flowed): use zeros.
std::vector<Tensor> bwd_PairBiasAttention(const Node& n, const std::vector<Tensor>& g) {
  std::vector<Tensor> grads(5);
  const bool have_dout = g.size() > 0 && g[0].defined();
  const bool have_dlogits = g.size() > 1 && g[1].defined();
  if (!have_dout && !have_dlogits) return grads;
  const Tensor& q = n.inputs[0];
  const Tensor& probs = n.saved_outputs[2];
  Tensor dout = have_dout ? g[0] : Tensor::zeros(n.output_meta[0].shape, n.output_meta[0].dtype, q.device());
  Tensor dlogits = have_dlogits ? g[1] : Tensor::zeros(n.output_meta[1].shape, n.output_meta[1].dtype, q.device());
  std::vector<Tensor> d = call_op(OpId::PairBiasAttentionBackward,
                                  {dout, dlogits, q.detach(), n.inputs[1].detach(), n.inputs[2].detach(), probs},
                                  n.attrs);
  for (size_t i = 0; i < 4; ++i)
    if (n.needs_grad[i]) grads[i] = d[i];
  return grads;
}

}  // namespace

void register_pair_attention_ops() {
  OpDef& f = mutable_op_def(OpId::PairBiasAttention);
  f.num_inputs = 5;
  f.num_outputs = 3;
  f.num_diff_outputs = 2;  // out, logits; probs is auxiliary
  f.infer = infer_PairBiasAttention;
  f.forward[0] = fwd_PairBiasAttention;
  f.backward = bwd_PairBiasAttention;
  f.saves_outputs = true;

  OpDef& b = mutable_op_def(OpId::PairBiasAttentionBackward);
  b.num_inputs = 6;
  b.num_outputs = 4;
  b.infer = infer_PairBiasAttentionBackward;
  b.forward[0] = fwd_PairBiasAttentionBackward;
}

PairAttentionOut pair_bias_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                                     const Tensor& key_mask, double scale, bool keep_probs) {
  Attrs a;
  a.reals = {scale};
  // Kept whenever autograd records this call, whatever the caller asked.
  const bool recorded = grad_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad() || bias.requires_grad());
  a.ints = {keep_probs || recorded ? 1 : 0};
  std::vector<Tensor> r = call_op(OpId::PairBiasAttention, {q, k, v, bias, key_mask}, a);
  return {r[0], r[1], r[2]};
}

}  // namespace larmor
