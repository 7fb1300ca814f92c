// Reverse-mode autograd over the op tape (micrograd's algorithm on tensors): topologically order the
// nodes reachable from the root, seed the root's gradient, and walk the order backwards calling each
// op's backward rule. Gradients into a tensor used more than once are summed; leaf gradients
// accumulate into .grad across backward() calls (+=), which is how gradient accumulation works.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace larmor {

// Runs backward from `root` seeded with `seed` (same shape as root; ones for a scalar root).
void run_backward(const Tensor& root, const Tensor& seed);

// Gradients of `outputs` with respect to `inputs` without touching .grad (used by gradcheck).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& seeds,
                         const std::vector<Tensor>& inputs);

// ---- gradcheck ----------------------------------------------------------------------------------
// Checks the analytic gradient of the scalar L = sum_k <w_k, f(x)_k> (random fixed weights w_k over
// every floating output) against central finite differences, for each input listed in `wrt`.
// Inputs should be f64. Returns an empty string on success, else a message naming the input, the
// element and both values.
using TensorFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;
};
std::string gradcheck(const TensorFn& f, const std::vector<Tensor>& inputs, const std::vector<int>& wrt,
                      const GradcheckOptions& opt = {});

}  // namespace larmor
