// The Uni-Mol-style encoder with a pair representation (MODELS.md §3), the backbone of the shift model:
//
//   h    = Embed(tokens)                                              (B, N, D)
//   bias = Linear_K->H( GaussianBasis(dist) )  permuted               (B, H, N, N)
//   per layer (pre-LN):  a = pair_bias_attention(q, k, v, bias, mask);  bias <- a.logits
//                        h = h + Out(a.out);  h = h + FFN(LN(h))
//   hidden = LN_final(h)
//
// The attention logits of each layer become the next layer's bias, so the pair representation is the
// running sum b0 + sum_l q_l k_l^T / sqrt(d) and gradients flow through it. Padding is a separate i32 key
// mask and is never written into the pair tensor as -inf (ENGINE.md C1).
#pragma once
#include <memory>

#include "layers/basic.h"
#include "layers/module.h"

namespace larmor {

struct PairEncoderConfig {
  int64_t num_types = 4;   // token vocabulary
  int64_t dim = 32;        // D
  int64_t heads = 4;       // H (head_dim = D / H)
  int64_t kernels = 16;    // K Gaussian kernels
  int64_t layers = 2;
  int64_t ffn = 64;
  double max_distance = 5.5;  // Gaussian means start evenly spaced on [0, max_distance]
};

class PairEncoderLayer : public Module {
 public:
  PairEncoderLayer(const PairEncoderConfig& c, uint64_t seed);
  // h (B, N, D), *bias (B, H, N, N) -> h (B, N, D); *bias becomes this layer's logits.
  Tensor forward(const Tensor& h, Tensor* bias, const Tensor& key_mask) const;

 private:
  int64_t heads_;
  std::shared_ptr<LayerNorm> ln1_, ln2_;
  std::shared_ptr<Linear> q_, k_, v_, out_, fc1_, fc2_;
};

struct PairEncoderOutput {
  Tensor hidden;  // (B, N, D) after the final LayerNorm
  Tensor pair;    // (B, H, N, N) the last layer's logits
};

class PairEncoder : public Module {
 public:
  PairEncoder(const PairEncoderConfig& c, uint64_t seed);
  // tokens (B, N) i32, dist (B, N, N), key_mask (B, N) i32 (1 = real atom).
  PairEncoderOutput forward(const Tensor& tokens, const Tensor& dist, const Tensor& key_mask) const;
  const PairEncoderConfig& config() const { return cfg_; }
  const Tensor& gbf_mean() const { return gbf_mean_; }
  const Linear& gbf_proj() const { return *gbf_proj_; }

 private:
  PairEncoderConfig cfg_;
  std::shared_ptr<Embedding> tok_;
  Tensor gbf_mean_, gbf_std_;  // (K)
  std::shared_ptr<Linear> gbf_proj_;
  std::shared_ptr<ModuleList> layers_;
  std::shared_ptr<LayerNorm> final_ln_;
};

// Encoder plus a per-atom scalar head: (B, N) predictions (the shape of a shift head).
class AtomRegressor : public Module {
 public:
  AtomRegressor(const PairEncoderConfig& c, uint64_t seed);
  Tensor forward(const Tensor& tokens, const Tensor& dist, const Tensor& key_mask) const;  // (B, N)
  const PairEncoder& encoder() const { return *encoder_; }

 private:
  std::shared_ptr<PairEncoder> encoder_;
  std::shared_ptr<Linear> head_;
};

}  // namespace larmor
