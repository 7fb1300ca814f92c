// The public op API: one differentiable function per op in the table (op.h). Each is a thin wrapper
// around call_op, defined next to its kernels in kernels/cpu/<group>.cpp. All ops work on CPU and,
// once a CUDA kernel is registered, on CUDA; inputs must share one device.
//
// Conventions: shapes in comments are row-major; negative axes count from the end; index tensors are
// i32 or i64; masks are i32 with 1 = keep, 0 = masked.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor.h"

namespace larmor {

// ---- element-wise (broadcasting numpy-style for binary ops) -------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor gelu(const Tensor& a);  // exact: x * Phi(x) (erf form, as torch.nn.GELU)
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor square(const Tensor& a);

// ---- reductions ------------------------------------------------------------------------------------
// axes empty = all axes. keepdim keeps reduced axes as size 1.
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor max(const Tensor& a, const std::vector<int64_t>& axes = {}, bool keepdim = false);  // grad to first argmax
// Sums a broadcast gradient back to `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);

// ---- shape -----------------------------------------------------------------------------------------
Tensor reshape(const Tensor& a, const Shape& shape);  // a view; -1 allowed once
Tensor permute(const Tensor& a, const std::vector<int64_t>& perm);
Tensor transpose(const Tensor& a, int64_t ax0, int64_t ax1);  // permute that swaps two axes
Tensor slice(const Tensor& a, int64_t axis, int64_t start, int64_t end);  // copy of [start, end) on axis
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);

// ---- linear algebra ------------------------------------------------------------------------------------
// a (..., M, K) @ b (..., K, N) -> (..., M, N) with the same leading batch dims, or b 2-D (K, N)
// shared across the batch (a Linear layer). trans_a / trans_b use a^T / b^T of the last two axes.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// ---- softmax and normalisation ---------------------------------------------------------------------
// Over the last axis. mask (optional, i32, same shape as x): 0 entries get probability 0; a fully
// masked row gives all zeros (and zero gradient), never NaN.
Tensor softmax(const Tensor& x, const Tensor& mask = Tensor());
Tensor log_softmax(const Tensor& x, const Tensor& mask = Tensor());  // masked entries give 0
// Over the last axis D: x (..., D), weight (D), bias (D).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// x (N, C); running_mean/var (C) updated in place when training (momentum as torch: new = (1-m)*old + m*batch,
// unbiased batch variance for the running estimate). In eval mode uses the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// ---- gather / scatter / segments ----------------------------------------------------------------------
Tensor embedding(const Tensor& weight, const Tensor& idx);  // weight (V, D), idx (...) -> (..., D)
Tensor index_select(const Tensor& x, const Tensor& idx);    // x (N, ...), idx (M) -> (M, ...)
Tensor scatter_add(const Tensor& src, const Tensor& idx, int64_t num_out);  // src (E, ...), idx (E) -> (num_out, ...)
// Deterministic CSR segment sum: x (E, ...), offsets (S+1) ascending, offsets[0]=0, offsets[S]=E -> (S, ...).
Tensor segment_sum(const Tensor& x, const Tensor& offsets);
// Inverse shape of segment_sum: g (S, ...) -> (E, ...) with row e = g[segment of e].
Tensor segment_broadcast(const Tensor& g, const Tensor& offsets);

// ---- randomness and bases ------------------------------------------------------------------------------
// Inverted dropout with a Philox mask: element i kept iff philox_uniform(seed, stream, i) >= p; kept
// values scaled by 1/(1-p). Identity when !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream);
// Uni-Mol Gaussian basis: x (...), mean (K), std (K) -> (..., K),
// g = exp(-0.5 ((x - mean)/s)^2) / (sqrt(2 pi) s), s = |std| + 1e-5.
Tensor gaussian_basis(const Tensor& x, const Tensor& mean, const Tensor& std);

// ---- the four special ops ----------------------------------------------------------------------------
struct PairAttentionOut {
  Tensor out;     // (B, H, N, d)   softmax(logits, key mask) @ v
  Tensor logits;  // (B, H, N, N)   scale * q k^T + bias (unmasked: the next layer's pair bias)
  Tensor probs;   // (B, H, N, N)   auxiliary (no gradient): the attention probabilities; empty (0 elements)
                  //                when keep_probs is false and autograd does not record the call
};
// q, k, v (B, H, N, d); bias (B, H, N, N); key_mask (B, N) i32 (1 = real atom, 0 = padding).
// Padded keys get probability 0; a query row with no valid key gives out = 0. keep_probs = false saves
// writing the (B, H, N, N) probabilities in inference (they are still kept if autograd records the call).
PairAttentionOut pair_bias_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                                     const Tensor& key_mask, double scale, bool keep_probs = true);

// GIN-style message passing over a destination-sorted CSR graph (see Graph below):
// out[v] = sum over edges e into v of (x[src[e]] + edge_emb[e]).  x (V, D), edge_emb (E, D) -> (V, D).
struct Graph {
  Tensor src;          // (E) source node of edge e; edges sorted by destination
  Tensor dst;          // (E) destination node of edge e (non-decreasing)
  Tensor dst_offsets;  // (V+1) CSR over destinations: edges of v are [dst_offsets[v], dst_offsets[v+1])
  Tensor src_offsets;  // (V+1) reverse CSR over sources, indexing into src_order
  Tensor src_order;    // (E) edge ids grouped by source (stable), for the deterministic backward
  int64_t num_nodes = 0;
  Device device() const { return src.device(); }
  Graph to(Device d) const;
};
// Builds a Graph from an unsorted edge list (CPU i32 tensors); returns the graph and, in *perm, the
// order in which the input edges were placed (edge_emb rows must be given in that order).
Graph build_graph(const Tensor& src, const Tensor& dst, int64_t num_nodes, Tensor* perm = nullptr);
Tensor message_passing(const Tensor& x, const Tensor& edge_emb, const Graph& g);

// Segmented sorted-set loss. pred, target (P); offsets (S+1) i32 partition both into S segments
// (molecule x nucleus [x multiplicity class]). In each segment both are sorted ascending with a stable
// sort where NaN sorts after +inf, and the loss compares the i-th smallest prediction with the i-th
// smallest target. The gradient flows to pred only (scattered back through the sort permutation).
enum class SetLossKind : int { L1 = 0, Squared = 1, Huber = 2 };
enum class Reduction : int { Mean = 0, Sum = 1 };
Tensor sorted_set_loss(const Tensor& pred, const Tensor& target, const Tensor& offsets, SetLossKind kind,
                       double huber_delta = 1.0, Reduction reduction = Reduction::Mean);

// InfoNCE with optional soft targets on a logit matrix S (R, C):
//   loss = row_weight * CE(scale*S, T) + col_weight * CE((scale*S)^T, T^T),
//   CE(P, T) = mean_i -sum_j T_ij log_softmax(P_i)_j.
// targets undefined = identity (hard; needs R == C). Soft targets (R, C) as K-M3AID: T^T used as is.
Tensor info_nce(const Tensor& logits, const Tensor& targets, double scale = 1.0, double row_weight = 1.0,
                double col_weight = 1.0);

// ---- in-place helpers (no autograd) --------------------------------------------------------------------
void accumulate_(Tensor& dst, const Tensor& src);  // dst += src, same shape and dtype
// One AdamW step in place (decoupled weight decay, bias-corrected moments), torch.optim.AdamW semantics.
void adamw_step_(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1, double beta2,
                 double eps, double weight_decay, int64_t step);

}  // namespace larmor
