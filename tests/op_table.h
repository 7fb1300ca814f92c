// The op test table (ggml's test-backend-ops, in doctest). Each row names the op(s) it covers, makes
// deterministic inputs, runs the engine, and runs an independent naive reference (plain loops in f64,
// written in the test file, never calling the engine's kernels). test_op_table.cpp runs every row:
//   1. forward in f64 against the reference (tight tolerance) and in f32 (loose tolerance);
//   2. gradcheck in f64 against central finite differences for the inputs listed in grad_wrt;
//   3. coverage: every op in the table must have run, and every differentiable op must be named by a
//      row with a gradcheck, so adding an op without test rows fails the suite.
// Register rows from any test file with: static OpCaseRegistrar reg([](std::vector<OpCase>& t) { ... });
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "engine/rng.h"
#include "kernels/op.h"
#include "kernels/ops.h"

namespace larmor::test {

using Tensors = std::vector<Tensor>;

struct OpCase {
  std::string name;                              // e.g. "Add broadcast (2,3,4)+(3,1)"
  std::vector<OpId> ops;                         // the ops this row tests (forward and, if grad_wrt, backward)
  std::function<Tensors(DType)> make_inputs;     // floating inputs in the given dtype; index inputs i32/i64
  std::function<Tensors(const Tensors&)> run;    // the engine
  std::function<Tensors(const Tensors&)> reference;  // naive f64 reference on CPU; same number of outputs as run
                                                     // (an undefined Tensor skips that output)
  std::vector<int> grad_wrt;                     // inputs to gradcheck (empty: forward only)
  double tol_f64 = 1e-9;                         // max |out-ref| <= tol * (1 + |ref|)
  double tol_f32 = 2e-4;
  GradcheckOptions grad;                         // eps/atol/rtol for the gradcheck
};

std::vector<OpCase>& op_cases();
struct OpCaseRegistrar {
  explicit OpCaseRegistrar(const std::function<void(std::vector<OpCase>&)>& add) { add(op_cases()); }
};

// ---- helpers for writing references ------------------------------------------------------------------
std::vector<double> values(const Tensor& t);            // any floating/int tensor -> f64 host values
Tensor from_values(const std::vector<double>& v, const Shape& s);  // f64 CPU tensor
// Random inputs: uniform in [lo, hi) in dtype (drawn in f64 and cast, so f32 and f64 rows see the same values).
Tensor uniform(const Shape& s, double lo, double hi, uint64_t seed, DType dt);

}  // namespace larmor::test
