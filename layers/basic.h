// The basic layers: Linear, LayerNorm, BatchNorm1d, Embedding, Dropout and an MLP built from them.
// Weights use torch's layouts and initialisations (so checkpoints and reference numbers carry over),
// drawn from the Philox generator (engine/rng.h) with an explicit seed: the same seed gives the same
// model on every machine and thread count.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "layers/module.h"

namespace larmor {

// y = x W^T + b. weight (out, in), bias (out), both U(-1/sqrt(in), 1/sqrt(in)) as torch.nn.Linear.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, uint64_t seed, bool bias = true, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;  // x (..., in) -> (..., out)
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Tensor weight_, bias_;
};

// Over the last axis: weight ones (D), bias zeros (D).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;  // (..., D)
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  double eps_;
  Tensor weight_, bias_;
};

// x (N, C). Batch statistics in training (updating the running_mean/running_var buffers with torch's
// momentum rule), running statistics in eval.
class BatchNorm1d : public Module {
 public:
  explicit BatchNorm1d(int64_t channels, double momentum = 0.1, double eps = 1e-5, DType dtype = DType::F32);
  Tensor forward(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }

 private:
  double momentum_, eps_;
  Tensor weight_, bias_, running_mean_, running_var_;
};

// weight (V, D) ~ N(0, 1) as torch.nn.Embedding; idx (...) i32/i64 -> (..., D).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, uint64_t seed, DType dtype = DType::F32);
  Tensor forward(const Tensor& idx) const;
  const Tensor& weight() const { return weight_; }

 private:
  Tensor weight_;
};

// Inverted dropout. Each training-mode call uses the next Philox stream, so repeated calls draw fresh
// masks while a run stays reproducible from (seed, calls so far). Identity (no copy) in eval or p == 0.
class Dropout : public Module {
 public:
  explicit Dropout(double p, uint64_t seed = 0);
  Tensor forward(const Tensor& x);
  double p() const { return p_; }
  uint64_t stream() const { return stream_; }  // calls made in training mode so far
  void set_stream(uint64_t s) { stream_ = s; }  // to resume a run exactly

 private:
  double p_;
  uint64_t seed_, stream_ = 0;
};

enum class Activation { Gelu, Relu };
Tensor activate(const Tensor& x, Activation a);

// sizes = {in, hidden..., out}: Linear, activation and (if dropout > 0) Dropout between layers; the last
// Linear has no activation. Parameters are named layers.<i>.weight / layers.<i>.bias.
class MLP : public Module {
 public:
  MLP(const std::vector<int64_t>& sizes, Activation act, uint64_t seed, double dropout = 0.0,
      DType dtype = DType::F32);
  Tensor forward(const Tensor& x);
  size_t num_layers() const { return layers_->size(); }
  std::shared_ptr<Linear> layer(size_t i) const { return layers_->at<Linear>(i); }

 private:
  Activation act_;
  std::shared_ptr<ModuleList> layers_;
  std::shared_ptr<Dropout> drop_;  // null without dropout
};

}  // namespace larmor
