// Module: a named tree of parameters, buffers and child modules (torch.nn.Module's bookkeeping, without
// hooks or forward dispatch). Each module keeps handles to its tensors; the tree gives them dotted names
// ("encoder.layers.0.fc1.weight") used by the optimizer (weight-decay choice) and checkpoints.
//
// Tensors are registered by handle: the member a layer uses in forward() and the registry entry share
// one TensorImpl, so moving a module to another device or loading a checkpoint rewrites the impl in
// place and every handle sees the new data. forward() is not virtual: layers have different signatures.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace larmor {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Registration. Names are non-empty, contain no '.', and are unique within the module across
  // parameters, buffers and children. Returns the registered handle.
  Tensor register_parameter(const std::string& name, Tensor t);  // sets requires_grad (floating only)
  Tensor register_buffer(const std::string& name, Tensor t);     // state without gradient (running stats)
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // Recursive, in registration order, with dotted names (prefix + "." + ...).
  NamedTensors named_parameters(const std::string& prefix = "") const;
  NamedTensors named_buffers(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  // Parameters and buffers together, by name (what a checkpoint stores).
  std::map<std::string, Tensor> state_dict() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  int64_t num_parameters() const;  // total elements

  // Train/eval mode, recursive. Affects Dropout and BatchNorm1d.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  void zero_grad();            // drops every parameter's .grad
  void to(Device device);      // moves parameters and buffers in place (handles stay valid; grads dropped)

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params, NamedTensors& out) const;

  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// An ordered list of child modules named "0", "1", ... (torch.nn.ModuleList).
class ModuleList : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_module(std::to_string(items_.size()), m);
    items_.push_back(m);
    return m;
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return items_.at(i); }
  template <typename M>
  std::shared_ptr<M> at(size_t i) const {
    auto p = std::dynamic_pointer_cast<M>(items_.at(i));
    if (!p) throw Error("ModuleList::at: item " + std::to_string(i) + " has another type");
    return p;
  }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

// Deterministic child seeds: derive_seed(seed, k) mixes (seed, k) with SplitMix64 so that every layer of
// a model built from one seed gets its own, well-separated Philox key.
uint64_t derive_seed(uint64_t seed, uint64_t k);

}  // namespace larmor
