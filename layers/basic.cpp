// The basic layers: thin compositions of ops; all the numerics live in the kernels.
#include "layers/basic.h"

#include <cmath>

#include "engine/rng.h"
#include "kernels/ops.h"

namespace larmor {

namespace {
void expect_positive(const char* layer, const char* what, int64_t v) {
  if (v <= 0) throw Error(std::string(layer) + ": " + what + " must be positive, got " + std::to_string(v));
}
}  // namespace

// ---- Linear ------------------------------------------------------------------------------------------
Linear::Linear(int64_t in_features, int64_t out_features, uint64_t seed, bool bias, DType dtype)
    : in_(in_features), out_(out_features) {
  expect_positive("Linear", "in_features", in_features);
  expect_positive("Linear", "out_features", out_features);
  double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight_ = register_parameter("weight", rand_uniform({out_, in_}, -bound, bound, seed, 0, dtype));  // (out, in)
  if (bias) bias_ = register_parameter("bias", rand_uniform({out_}, -bound, bound, seed, 1, dtype));  // (out)
}

Tensor Linear::forward(const Tensor& x) const {
  if (x.dim() < 1 || x.size(-1) != in_)
    throw Error("Linear: expected input (..., " + std::to_string(in_) + "), got " + x.str());
  Tensor y = matmul(x, weight_, false, true);  // (..., out)
  return bias_.defined() ? add(y, bias_) : y;
}

// ---- LayerNorm -----------------------------------------------------------------------------------------
LayerNorm::LayerNorm(int64_t dim, double eps, DType dtype) : eps_(eps) {
  expect_positive("LayerNorm", "dim", dim);
  weight_ = register_parameter("weight", Tensor::ones({dim}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({dim}, dtype));
}

Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight_, bias_, eps_); }

// ---- BatchNorm1d ---------------------------------------------------------------------------------------
BatchNorm1d::BatchNorm1d(int64_t channels, double momentum, double eps, DType dtype) : momentum_(momentum), eps_(eps) {
  expect_positive("BatchNorm1d", "channels", channels);
  weight_ = register_parameter("weight", Tensor::ones({channels}, dtype));
  bias_ = register_parameter("bias", Tensor::zeros({channels}, dtype));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({channels}, dtype));
  running_var_ = register_buffer("running_var", Tensor::ones({channels}, dtype));
}

Tensor BatchNorm1d::forward(const Tensor& x) const {
  return batch_norm(x, weight_, bias_, running_mean_, running_var_, is_training(), momentum_, eps_);
}

// ---- Embedding -----------------------------------------------------------------------------------------
Embedding::Embedding(int64_t num_embeddings, int64_t dim, uint64_t seed, DType dtype) {
  expect_positive("Embedding", "num_embeddings", num_embeddings);
  expect_positive("Embedding", "dim", dim);
  weight_ = register_parameter("weight", rand_normal({num_embeddings, dim}, 0.0, 1.0, seed, 0, dtype));  // (V, D)
}

Tensor Embedding::forward(const Tensor& idx) const { return embedding(weight_, idx); }

// ---- Dropout -------------------------------------------------------------------------------------------
Dropout::Dropout(double p, uint64_t seed) : p_(p), seed_(seed) {
  if (!(p >= 0 && p < 1)) throw Error("Dropout: p must lie in [0, 1), got " + std::to_string(p));
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p_ == 0) return x;
  return dropout(x, p_, true, seed_, stream_++);
}

// ---- MLP -----------------------------------------------------------------------------------------------
Tensor activate(const Tensor& x, Activation a) { return a == Activation::Gelu ? gelu(x) : relu(x); }

MLP::MLP(const std::vector<int64_t>& sizes, Activation act, uint64_t seed, double dropout_p, DType dtype) : act_(act) {
  if (sizes.size() < 2) throw Error("MLP: need at least {in, out} sizes, got " + std::to_string(sizes.size()));
  layers_ = register_module("layers", std::make_shared<ModuleList>());
  for (size_t i = 0; i + 1 < sizes.size(); ++i)
    layers_->push_back(std::make_shared<Linear>(sizes[i], sizes[i + 1], derive_seed(seed, i), true, dtype));
  if (dropout_p > 0) drop_ = register_module("dropout", std::make_shared<Dropout>(dropout_p, derive_seed(seed, 1000003)));
}

Tensor MLP::forward(const Tensor& x) {
  Tensor h = x;
  for (size_t i = 0; i < layers_->size(); ++i) {
    h = layers_->at<Linear>(i)->forward(h);
    if (i + 1 < layers_->size()) {
      h = activate(h, act_);
      if (drop_) h = drop_->forward(h);
    }
  }
  return h;
}

}  // namespace larmor
