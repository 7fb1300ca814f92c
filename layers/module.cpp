// Module bookkeeping: registration checks, recursive naming, mode switching, in-place device moves.
#include "layers/module.h"

namespace larmor {

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw Error("Module: invalid name '" + name + "' (must be non-empty and contain no '.')");
  auto taken = [&](const auto& list) {
    for (const auto& [n, x] : list)
      if (n == name) return true;
    return false;
  };
  if (taken(params_) || taken(buffers_) || taken(children_))
    throw Error("Module: name '" + name + "' registered twice");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name);
  if (!t.defined()) throw Error("Module::register_parameter: '" + name + "' is undefined");
  if (!is_floating(t.dtype())) throw Error("Module::register_parameter: '" + name + "' must be floating, got " + t.str());
  if (!t.is_leaf()) t = t.detach();
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  if (!t.defined()) throw Error("Module::register_buffer: '" + name + "' is undefined");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name);
  if (!m) throw Error("Module::register_module: '" + name + "' is null");
  if (m.get() == this) throw Error("Module::register_module: '" + name + "' is the module itself");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, bool params, NamedTensors& out) const {
  std::string p = prefix.empty() ? "" : prefix + ".";
  for (const auto& [n, t] : params ? params_ : buffers_) out.emplace_back(p + n, t);
  for (const auto& [n, c] : children_) c->collect(p + n, params, out);
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  collect(prefix, true, out);
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  collect(prefix, false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [n, t] : named_parameters()) out.emplace(n, t);
  for (auto& [n, t] : named_buffers()) {
    if (!out.emplace(n, t).second) throw Error("Module::state_dict: duplicate name '" + n + "'");
  }
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& [n, t] : named_parameters()) t.set_grad(Tensor());
}

void Module::to(Device device) {
  auto move = [&](const Tensor& t) {
    if (t.device() == device) return;
    Tensor moved = t.to(device);
    TensorImpl& impl = t.impl();
    impl.storage = moved.impl().storage;
    impl.offset = moved.impl().offset;
    impl.grad.reset();
  };
  for (auto& [n, t] : named_parameters()) move(t);
  for (auto& [n, t] : named_buffers()) move(t);
}

uint64_t derive_seed(uint64_t seed, uint64_t k) {
  uint64_t z = seed ^ (0x9E3779B97F4A7C15ull * (k + 1));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace larmor
