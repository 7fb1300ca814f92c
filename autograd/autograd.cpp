#include "autograd/autograd.h"

#include <cmath>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "autograd/node.h"
#include "engine/rng.h"
#include "kernels/ops.h"

namespace larmor {
namespace {

// Adds g into slot (out-of-place the first time, so a gradient tensor shared by two inputs, e.g. the
// two sides of an add, is never mutated through the other).
void add_into(Tensor& slot, const Tensor& g) {
  if (!slot.defined()) {
    slot = g;
  } else {
    slot = add(slot, g);
  }
}

std::vector<Node*> topo_order(const std::vector<Node*>& roots) {
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  // Iterative post-order DFS (deep models would overflow a recursive one).
  std::vector<std::pair<Node*, size_t>> stack;
  for (Node* r : roots) {
    if (!r || seen.count(r)) continue;
    seen.insert(r);
    stack.push_back({r, 0});
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->inputs.size()) {
        const Tensor& in = n->inputs[i++];
        Node* c = in.defined() && in.grad_fn() ? in.grad_fn().get() : nullptr;
        if (c && !seen.count(c)) {
          seen.insert(c);
          stack.push_back({c, 0});
        }
      } else {
        order.push_back(n);
        stack.pop_back();
      }
    }
  }
  return order;  // children before parents
}

// Core walk. For each leaf (no grad_fn) that receives a gradient, calls on_leaf(leaf, g).
void walk(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
          const std::function<void(const Tensor&, const Tensor&)>& on_leaf) {
  NoGradGuard no_grad;
  std::unordered_map<Node*, std::vector<Tensor>> grads;
  std::vector<Node*> root_nodes;
  for (size_t r = 0; r < roots.size(); ++r) {
    const Tensor& root = roots[r];
    if (!root.requires_grad()) continue;
    if (root.is_leaf()) {
      on_leaf(root, seeds[r]);
      continue;
    }
    Node* n = root.grad_fn().get();
    auto& slots = grads[n];
    slots.resize(n->num_diff_outputs);
    add_into(slots[root.impl().output_index], seeds[r]);
    root_nodes.push_back(n);
  }
  std::vector<Node*> order = topo_order(root_nodes);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = *it;
    auto gi = grads.find(n);
    if (gi == grads.end()) continue;
    std::vector<Tensor> gout = std::move(gi->second);
    grads.erase(gi);
    gout.resize(n->num_diff_outputs);
    const OpDef& def = op_def(n->op);
    std::vector<Tensor> gin = def.backward(*n, gout);
    if (gin.size() != n->inputs.size())
      throw Error(std::string(def.name) + " backward returned " + std::to_string(gin.size()) + " gradients for " +
                  std::to_string(n->inputs.size()) + " inputs");
    for (size_t i = 0; i < gin.size(); ++i) {
      if (!n->needs_grad[i] || !gin[i].defined()) continue;
      const Tensor& in = n->inputs[i];
      if (gin[i].shape() != in.shape())
        throw Error(std::string(def.name) + " backward: gradient " + gin[i].str() + " for input " + std::to_string(i) +
                    " of shape " + in.str());
      if (in.grad_fn()) {
        auto& slots = grads[in.grad_fn().get()];
        slots.resize(in.grad_fn()->num_diff_outputs);
        add_into(slots[in.impl().output_index], gin[i]);
      } else {
        on_leaf(in, gin[i]);
      }
    }
  }
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& seed) {
  if (!root.requires_grad()) throw Error("backward: tensor " + root.str() + " does not require grad (no autograd history)");
  if (seed.shape() != root.shape() || seed.dtype() != root.dtype())
    throw Error("backward: seed " + seed.str() + " does not match " + root.str());
  walk({root}, {seed}, [](const Tensor& leaf, const Tensor& g) {
    TensorImpl& li = leaf.impl();
    if (!li.grad) {
      li.grad = g.clone().impl_ptr();  // own buffer: later accumulation happens in place
    } else {
      Tensor acc(li.grad);
      accumulate_(acc, g);
    }
  });
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds,
                         const std::vector<Tensor>& inputs) {
  if (outputs.size() != seeds.size()) throw Error("grad: outputs and seeds differ in count");
  std::unordered_map<TensorImpl*, size_t> index;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_leaf()) throw Error("grad: inputs must be leaf tensors");
    index[inputs[i].impl_ptr().get()] = i;
  }
  std::vector<Tensor> result(inputs.size());
  walk(outputs, seeds, [&](const Tensor& leaf, const Tensor& g) {
    auto it = index.find(leaf.impl_ptr().get());
    if (it != index.end()) add_into(result[it->second], g);
  });
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!result[i].defined()) result[i] = Tensor::zeros(inputs[i].shape(), inputs[i].dtype(), inputs[i].device());
  return result;
}

void Tensor::backward() const {
  if (numel() != 1) throw Error("backward: implicit seed needs a one-element tensor, got " + str());
  run_backward(*this, Tensor::ones(shape(), dtype(), device()));
}
void Tensor::backward(const Tensor& seed) const { run_backward(*this, seed); }

std::string gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs_in, const std::vector<int>& wrt,
                      const GradcheckOptions& opt) {
  // Private copies so perturbation never touches the caller's tensors.
  std::vector<Tensor> inputs;
  for (const Tensor& t : inputs_in) inputs.push_back(t.defined() ? t.detach().clone() : Tensor());
  for (int k : wrt) inputs[k].set_requires_grad(true);

  std::vector<Tensor> outs = f(inputs);
  // Only outputs that carry gradient enter L (auxiliary outputs such as attention probabilities don't).
  Rng rng(opt.seed);
  std::vector<bool> use(outs.size(), false);
  std::vector<Tensor> weights(outs.size()), differentiable, seeds;
  for (size_t j = 0; j < outs.size(); ++j) {
    const Tensor& o = outs[j];
    if (!o.defined() || !is_floating(o.dtype()) || !o.requires_grad()) continue;
    use[j] = true;
    weights[j] = rng.uniform(o.shape(), -1.0, 1.0, o.dtype()).to(o.device());
    differentiable.push_back(o);
    seeds.push_back(weights[j]);
  }
  if (differentiable.empty()) return "gradcheck: function has no differentiable output";
  std::vector<Tensor> wrt_inputs;
  for (int k : wrt) wrt_inputs.push_back(inputs[k]);
  std::vector<Tensor> analytic = grad(differentiable, seeds, wrt_inputs);

  auto objective = [&]() {
    NoGradGuard ng;
    std::vector<Tensor> o = f(inputs);
    double s = 0;
    for (size_t j = 0; j < o.size(); ++j) {
      if (!use[j]) continue;
      Tensor a = o[j].to(DType::F64).to(Device::cpu()), w = weights[j].to(DType::F64).to(Device::cpu());
      const double* pa = a.data<double>();
      const double* pw = w.data<double>();
      for (int64_t i = 0; i < a.numel(); ++i) s += pa[i] * pw[i];
    }
    return s;
  };

  for (size_t w = 0; w < wrt.size(); ++w) {
    Tensor x = inputs[wrt[w]];
    if (x.dtype() != DType::F64 || !x.device().is_cpu()) return "gradcheck: inputs must be f64 CPU tensors";
    Tensor ga = analytic[w].to(DType::F64).to(Device::cpu());
    double* px = x.data<double>();
    const double* pg = ga.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      double orig = px[i];
      px[i] = orig + opt.eps;
      double fp = objective();
      px[i] = orig - opt.eps;
      double fm = objective();
      px[i] = orig;
      double numeric = (fp - fm) / (2 * opt.eps);
      double err = std::fabs(numeric - pg[i]);
      if (!(err <= opt.atol + opt.rtol * std::fabs(numeric))) {
        std::ostringstream m;
        m.precision(10);
        m << "gradcheck: input " << wrt[w] << " element " << i << ": analytic " << pg[i] << " vs numeric " << numeric
          << " (|diff| " << err << ")";
        return m.str();
      }
    }
  }
  return "";
}

}  // namespace larmor
