// The shift model: a Uni-Mol encoder with a pair representation (MODELS.md §3) and per-nucleus node heads
// (NMRNet++, MODELS.md §1c), plus the coordinate, distance and masked-token heads of denoising pretraining.
//
//   h     = Embed(tok) [+ sum_f AtomChem(feat_f)] [+ Solvent(solvent) on the [CLS] token]  (B, N, D)
//   x_ij  = mul[e_ij] * d_ij + bias[e_ij],  e_ij = tok_i * V + tok_j                   (B, N, N)
//   b0    = Linear_K->H(GELU(Linear_K->K(GaussianBasis_K(x)))) [+ GraphPair(type_ij)]  permuted  (B, H, N, N)
//   x     = Dropout(LN(h)) * key_mask
//   per layer (pre-LN): a = pair_bias_attention(q, k, v, bias, key_mask); bias <- a.logits
//                       x += Dropout(Out(a.out));  x += Dropout(FFN(LN(x)))
//   hidden = LN_final(x);  delta_pair = (bias - b0) permuted, zero on padded pairs       (B, N, N, H)
//   shifts[..., n] = Linear_D->1(tanh(Linear_D->D(hidden)))   for each nucleus n with a head
//
// Why it is built this way:
//   - Only existing ops are used, so the CPU and CUDA backends and autograd come for free. The pair
//     representation stays (B, H, N, N), the layout pair_bias_attention reads and writes, and is permuted
//     to (B, N, N, H) once, for the heads.
//   - Distances are data, not parameters: they are computed from the detached coordinates, so the
//     sqrt at d = 0 (the diagonal, and the [CLS]/[SEP]/padding pairs that are forced to 0 as in
//     Uni-Mol) never meets autograd and never produces NaN. Padding is handled by the key mask only;
//     nothing is ever set to -inf.
//   - Per-forward index data (edge types, masks) is built on the host from the small (B, N) token and
//     mask tensors and moved to the model's device once.
//   - Dropout is the stateless Philox dropout op: every call site has a fixed number inside the forward
//     pass and the model keeps a step counter, so stream = step * 4096 + site; a run is reproducible
//     and resumable from (seed, step). Attention dropout needs the probabilities, which the fused op does
//     not expose, so when it is on (and only in training) the attention is composed from matmul, softmax
//     and dropout, with the same logits.
//   - Chemistry inputs (not in Uni-Mol, config switches, off by default): per-atom hybridisation, aromaticity,
//     ring membership, attached-H count and formal charge as embedding rows summed into the token embedding
//     (atom_features), and the bond-graph relation of every pair (bonded by which bond order, or the
//     shortest-path length) as one learned bias per head added to the distance bias (graph_pairs). Uni-Mol
//     must infer bonding and hybridisation from distances alone; handing them over saves a CPU-bound
//     training run most of that work. Both tables start at zero, so switching them on leaves a trained
//     model's function unchanged (a model without them can be continued with them: `--init`).
//   - The coordinate head sums over real atoms only ([CLS]/[SEP] sit at placeholder coordinates), which
//     makes it exactly SE(3)-equivariant for any input placement; n is the number of real tokens.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "layers/basic.h"
#include "layers/module.h"
#include "layers/shift_batch.h"

namespace larmor {

struct ShiftModelConfig {
  int64_t layers = 4;
  int64_t dim = 128;     // D
  int64_t heads = 8;     // H (head_dim = D / H)
  int64_t ffn = 256;
  int64_t kernels = 32;  // K Gaussians
  double emb_dropout = 0.1;         // after the embedding LayerNorm
  double dropout = 0.1;             // on the attention output projection and the FFN output (residual branches)
  double attention_dropout = 0.0;   // on the attention probabilities (composed attention path when > 0)
  double activation_dropout = 0.0;  // after the FFN GELU
  double head_dropout = 0.0;        // before each Linear of the shift heads (pooler dropout)
  int64_t vocab_size = 31;          // Uni-Mol dict.txt + [MASK]
  int64_t num_solvents = 8;         // chem::Solvent classes (0 = unknown)
  std::array<bool, kShiftNuclei> nuclei{true, true, true, true};  // which nuclei (1H, 13C, 19F, 31P) have a head
  bool solvent_conditioning = true;  // add a solvent embedding to the [CLS] token before the embedding LN
  bool atom_features = false;  // add per-atom chemistry embeddings (ShiftBatch::atom_features) to the tokens
  bool graph_pairs = false;    // add a per-head bias of the bond-graph pair type (ShiftBatch::pair_types) to b0

  static ShiftModelConfig small();  // the CPU default (see shift_model.cpp for the measured step time)
  static ShiftModelConfig large();  // Uni-Mol / NMRNet++ size: 15 layers, 512 wide, 64 heads, FFN 2048, K = 128
  void validate() const;            // throws larmor::Error naming the bad field
  int64_t head_dim() const { return dim / heads; }

  // JSON for checkpoint metadata: every field, nuclei as names ["1H", "13C", ...]. from_json accepts a
  // subset (missing fields keep their defaults), rejects unknown keys and validates.
  std::string to_json() const;
  static ShiftModelConfig from_json(const std::string& text);
  bool operator==(const ShiftModelConfig&) const = default;
};

struct ShiftOutput {
  Tensor shifts;      // (B, N, 4) standardised shifts for every token (column n = nucleus n; 0 without a head)
  Tensor pair;        // (B, H, N, N) the last layer's attention logits
  Tensor delta_pair;  // (B, N, N, H) pair - initial bias, 0 where i or j is padding (undefined without with_delta_pair)
  Tensor hidden;      // (B, N, D) after the final LayerNorm
  std::array<bool, kShiftNuclei> has_head{};  // copied from the config: which shift columns are predictions
};

// Weight-decay choice for AdamW (layers/optim.h DecayPredicate): matrices decay, except the lookup tables
// (token, solvent and per-edge-type affine embeddings, whose rows are only touched by the tokens present)
// and 1-D tensors (biases, norm scales, Gaussian means/stds).
bool shift_model_decay(const std::string& name, const Tensor& param);

class ShiftModelLayer : public Module {
 public:
  ShiftModelLayer(const ShiftModelConfig& c, uint64_t seed, DType dtype);
  const ShiftModelConfig& config() const { return cfg_; }

 private:
  friend class ShiftModel;
  ShiftModelConfig cfg_;
  std::shared_ptr<LayerNorm> ln1_, ln2_;
  std::shared_ptr<Linear> qkv_, out_, fc1_, fc2_;
};

class ShiftModel : public Module {
 public:
  ShiftModel(const ShiftModelConfig& c, uint64_t seed, DType dtype = DType::F32);

  // Encoder + shift heads. In training mode each call advances the dropout step. with_delta_pair = false
  // leaves out.delta_pair undefined (it is only read by the pretraining heads and costs a (B, N, N, H)
  // permute, subtract and mask per call); shift training, evaluation and prediction pass false.
  ShiftOutput forward(const ShiftBatch& batch, bool with_delta_pair = true);

  // Denoising-pretraining heads on a forward's output and the batch it came from.
  // x_i' = x_i + sum_{j real atom} (x_j - x_i) / n * f(delta_pair_ij), f = Linear(H,H) GELU Linear(H,1),
  // n = number of real tokens. Rows of [CLS]/[SEP]/padding keep their input coordinates.   -> (B, N, 3)
  Tensor coordinate_head(const ShiftOutput& out, const ShiftBatch& batch) const;
  // Linear(H,H) GELU LN(H) Linear(H,1) on delta_pair, symmetrised (y + y^T) / 2.              -> (B, N, N)
  Tensor distance_head(const ShiftOutput& out) const;
  // Masked-token logits: Linear(D,D) GELU LN(D), then the (tied) token embedding plus a bias. -> (B, N, V)
  Tensor token_head(const ShiftOutput& out) const;

  const ShiftModelConfig& config() const { return cfg_; }
  DType dtype() const { return dtype_; }
  uint64_t seed() const { return seed_; }
  uint64_t dropout_step() const { return step_; }   // training forwards so far
  void set_dropout_step(uint64_t s) { step_ = s; }  // to resume a run exactly

 private:
  struct HostMasks;
  Tensor dropout_site(const Tensor& x, double p, int site) const;
  Tensor attention(const ShiftModelLayer& l, const Tensor& x, Tensor* bias, const Tensor& key_mask,
                   const Tensor& full_mask, int site) const;

  ShiftModelConfig cfg_;
  uint64_t seed_;
  DType dtype_;
  uint64_t step_ = 0;

  std::shared_ptr<Embedding> tok_, solvent_;
  std::shared_ptr<Embedding> atom_chem_;   // (kShiftAtomFeatureRows, D), zero-initialised; null when off
  std::shared_ptr<Embedding> graph_pair_;  // (kShiftPairTypes, H), zero-initialised; null when off
  std::shared_ptr<LayerNorm> emb_ln_;
  std::shared_ptr<Embedding> edge_mul_, edge_bias_;  // (V*V, 1)
  Tensor gbf_mean_, gbf_std_;                        // (K)
  std::shared_ptr<Linear> gbf_fc1_, gbf_fc2_;        // K -> K -> H
  std::shared_ptr<ModuleList> layers_;
  std::shared_ptr<LayerNorm> final_ln_;
  std::array<std::shared_ptr<Linear>, kShiftNuclei> head_fc1_, head_fc2_;  // null without a head
  std::shared_ptr<Linear> coord_fc1_, coord_fc2_;
  std::shared_ptr<Linear> dist_fc1_, dist_fc2_;
  std::shared_ptr<LayerNorm> dist_ln_;
  std::shared_ptr<Linear> mlm_fc_;
  std::shared_ptr<LayerNorm> mlm_ln_;
  Tensor mlm_bias_;  // (V)
};

}  // namespace larmor
