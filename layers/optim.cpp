// AdamW bookkeeping around the fused AdamWStep op, and gradient clipping.
#include "layers/optim.h"

#include <cmath>

#include "kernels/ops.h"

namespace larmor {

bool default_decay(const std::string&, const Tensor& param) { return param.dim() >= 2; }

AdamW::AdamW(const NamedTensors& params, AdamWOptions options, const DecayPredicate& decay) : options_(options) {
  if (!(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1))
    throw Error("AdamW: betas must lie in [0, 1)");
  if (!(options.lr >= 0) || !(options.eps >= 0) || !(options.weight_decay >= 0))
    throw Error("AdamW: lr, eps and weight_decay must be >= 0");
  for (const auto& [name, p] : params) {
    if (!p.defined() || !is_floating(p.dtype())) throw Error("AdamW: parameter '" + name + "' must be a floating tensor");
    for (const Slot& s : slots_)
      if (s.name == name) throw Error("AdamW: parameter '" + name + "' given twice");
    Slot s;
    s.name = name;
    s.param = p;
    s.m = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.v = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.decay = decay ? decay(name, p) : true;
    slots_.push_back(std::move(s));
  }
}

void AdamW::step() {
  NoGradGuard ng;
  for (Slot& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    // The moments live where the parameter lives (a Module::to() after construction moves them).
    if (s.m.device() != s.param.device()) {
      s.m = s.m.to(s.param.device());
      s.v = s.v.to(s.param.device());
    }
    ++s.step;
    adamw_step_(s.param, g, s.m, s.v, options_.lr, options_.beta1, options_.beta2, options_.eps,
                s.decay ? options_.weight_decay : 0.0, s.step);
  }
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.set_grad(Tensor());
}

std::map<std::string, Tensor> AdamW::state_tensors() const {
  std::map<std::string, Tensor> out;
  for (const Slot& s : slots_) {
    out["optim.m." + s.name] = s.m;
    out["optim.v." + s.name] = s.v;
    out["optim.step." + s.name] = Tensor::from_vector<int64_t>({s.step}, {});
  }
  return out;
}

void AdamW::load_state_tensors(const std::map<std::string, Tensor>& state) {
  std::string problems;
  auto find = [&](const std::string& key, const Shape& shape, DType dtype) -> Tensor {
    auto it = state.find(key);
    if (it == state.end()) {
      problems += "\n  missing: " + key;
      return Tensor();
    }
    if (it->second.shape() != shape || it->second.dtype() != dtype) {
      problems += "\n  mismatched: " + key + " is " + it->second.str() + ", expected " + dtype_name(dtype) +
                  shape_str(shape);
      return Tensor();
    }
    return it->second;
  };
  struct Loaded {
    Tensor m, v, step;
  };
  std::vector<Loaded> loaded;
  for (const Slot& s : slots_) {
    loaded.push_back({find("optim.m." + s.name, s.param.shape(), s.param.dtype()),
                      find("optim.v." + s.name, s.param.shape(), s.param.dtype()),
                      find("optim.step." + s.name, {}, DType::I64)});
  }
  if (!problems.empty()) throw Error("AdamW::load_state_tensors: optimizer state does not match:" + problems);
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    s.m = loaded[i].m.to(s.param.device()).clone();
    s.v = loaded[i].v.to(s.param.device()).clone();
    s.step = static_cast<int64_t>(loaded[i].step.item());
  }
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  if (!(max_norm > 0)) throw Error("clip_grad_norm: max_norm must be > 0, got " + std::to_string(max_norm));
  double sq = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor h = g.to(Device::cpu());
    LARMOR_DISPATCH_FLOAT(h.dtype(), "clip_grad_norm", [&] {
      const scalar_t* d = h.data<scalar_t>();
      for (int64_t i = 0; i < h.numel(); ++i) sq += static_cast<double>(d[i]) * static_cast<double>(d[i]);
    });
  }
  double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) return norm;
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1) return norm;
  NoGradGuard ng;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) g.copy_(mul_scalar(g, coef));
  }
  return norm;
}

}  // namespace larmor
