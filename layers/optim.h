// AdamW over a list of named parameters (torch.optim.AdamW semantics, one fused AdamWStep op per
// tensor) and global gradient-norm clipping. Weight decay is a per-parameter flag chosen by a
// predicate on the name and tensor; the default decays matrices and leaves 1-D tensors (biases,
// norm scales) alone, the usual transformer recipe.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "layers/module.h"

namespace larmor {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

using DecayPredicate = std::function<bool(const std::string& name, const Tensor& param)>;
bool default_decay(const std::string& name, const Tensor& param);  // param.dim() >= 2

class AdamW {
 public:
  struct Slot {
    std::string name;
    Tensor param;
    Tensor m, v;       // first and second moments (same shape/dtype/device as param)
    int64_t step = 0;  // updates applied to this parameter (torch keeps it per parameter)
    bool decay = true;
  };

  AdamW(const NamedTensors& params, AdamWOptions options = {}, const DecayPredicate& decay = default_decay);

  // One update of every parameter that has a gradient (parameters without .grad are skipped, as torch).
  void step();
  void step(double lr) {
    set_lr(lr);
    step();
  }
  void zero_grad();  // drops the parameters' .grad
  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  const AdamWOptions& options() const { return options_; }
  const std::vector<Slot>& slots() const { return slots_; }

  // Checkpoint state: "optim.m.<name>", "optim.v.<name>" (moments) and "optim.step.<name>" (i64 scalar).
  std::map<std::string, Tensor> state_tensors() const;
  // Restores the state written by state_tensors(); throws an Error listing missing or mismatched entries.
  void load_state_tensors(const std::map<std::string, Tensor>& state);

 private:
  AdamWOptions options_;
  std::vector<Slot> slots_;
};

// Scales all gradients so that their global L2 norm is at most max_norm (coefficient
// max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_) and returns the norm before clipping.
// The norm is accumulated in f64 on the host. A non-finite norm is returned without touching the
// gradients, so the caller can skip the step.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace larmor
