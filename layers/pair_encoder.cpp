#include "layers/pair_encoder.h"

#include <cmath>

#include "kernels/ops.h"

namespace larmor {

PairEncoderLayer::PairEncoderLayer(const PairEncoderConfig& c, uint64_t seed) : heads_(c.heads) {
  if (c.dim % c.heads != 0)
    throw Error("PairEncoder: dim " + std::to_string(c.dim) + " is not divisible by heads " + std::to_string(c.heads));
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(c.dim));
  q_ = register_module("q", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 0)));
  k_ = register_module("k", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 1)));
  v_ = register_module("v", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 2)));
  out_ = register_module("out", std::make_shared<Linear>(c.dim, c.dim, derive_seed(seed, 3)));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(c.dim));
  fc1_ = register_module("fc1", std::make_shared<Linear>(c.dim, c.ffn, derive_seed(seed, 4)));
  fc2_ = register_module("fc2", std::make_shared<Linear>(c.ffn, c.dim, derive_seed(seed, 5)));
}

Tensor PairEncoderLayer::forward(const Tensor& h, Tensor* bias, const Tensor& key_mask) const {
  const int64_t B = h.size(0), N = h.size(1), D = h.size(2), dh = D / heads_;
  Tensor x = ln1_->forward(h);                                                                   // (B, N, D)
  auto split = [&](const Tensor& t) { return permute(reshape(t, {B, N, heads_, dh}), {0, 2, 1, 3}); };  // (B, H, N, dh)
  PairAttentionOut att = pair_bias_attention(split(q_->forward(x)), split(k_->forward(x)), split(v_->forward(x)),
                                             *bias, key_mask, 1.0 / std::sqrt(static_cast<double>(dh)));
  *bias = att.logits;                                                                            // (B, H, N, N)
  Tensor merged = reshape(permute(att.out, {0, 2, 1, 3}), {B, N, D});                            // (B, N, D)
  Tensor h1 = add(h, out_->forward(merged));
  return add(h1, fc2_->forward(gelu(fc1_->forward(ln2_->forward(h1)))));
}

PairEncoder::PairEncoder(const PairEncoderConfig& c, uint64_t seed) : cfg_(c) {
  tok_ = register_module("tok", std::make_shared<Embedding>(c.num_types, c.dim, derive_seed(seed, 0)));
  std::vector<float> means(c.kernels);
  for (int64_t i = 0; i < c.kernels; ++i)
    means[i] = static_cast<float>(c.max_distance * static_cast<double>(i) / static_cast<double>(std::max<int64_t>(c.kernels - 1, 1)));
  gbf_mean_ = register_parameter("gbf_mean", Tensor::from_vector<float>(means, {c.kernels}));
  gbf_std_ = register_parameter("gbf_std", Tensor::full({c.kernels}, 0.5));
  gbf_proj_ = register_module("gbf_proj", std::make_shared<Linear>(c.kernels, c.heads, derive_seed(seed, 1)));
  layers_ = register_module("layers", std::make_shared<ModuleList>());
  for (int64_t l = 0; l < c.layers; ++l)
    layers_->push_back(std::make_shared<PairEncoderLayer>(c, derive_seed(seed, 10 + static_cast<uint64_t>(l))));
  final_ln_ = register_module("final_ln", std::make_shared<LayerNorm>(c.dim));
}

PairEncoderOutput PairEncoder::forward(const Tensor& tokens, const Tensor& dist, const Tensor& key_mask) const {
  Tensor h = tok_->forward(tokens);                                    // (B, N, D)
  Tensor g = gaussian_basis(dist, gbf_mean_, gbf_std_);                // (B, N, N, K)
  Tensor bias = permute(gbf_proj_->forward(g), {0, 3, 1, 2});          // (B, H, N, N)
  for (size_t l = 0; l < layers_->size(); ++l) h = layers_->at<PairEncoderLayer>(l)->forward(h, &bias, key_mask);
  return {final_ln_->forward(h), bias};
}

AtomRegressor::AtomRegressor(const PairEncoderConfig& c, uint64_t seed) {
  encoder_ = register_module("encoder", std::make_shared<PairEncoder>(c, derive_seed(seed, 0)));
  head_ = register_module("head", std::make_shared<Linear>(c.dim, 1, derive_seed(seed, 1)));
}

Tensor AtomRegressor::forward(const Tensor& tokens, const Tensor& dist, const Tensor& key_mask) const {
  Tensor h = encoder_->forward(tokens, dist, key_mask).hidden;  // (B, N, D)
  return reshape(head_->forward(h), {tokens.size(0), tokens.size(1)});
}

}  // namespace larmor
