// A tape node: one recorded op call. It holds its inputs (which keeps their history alive), detached
// copies of the outputs the backward needs, the attrs, and which inputs need a gradient. Outputs point
// to their node through TensorImpl::grad_fn; nodes never point to their outputs, so there are no cycles.
#pragma once
#include <memory>
#include <vector>

#include "engine/tensor.h"
#include "kernels/op.h"

namespace larmor {

struct Node {
  OpId op;
  Attrs attrs;
  std::vector<Tensor> inputs;         // as passed to the op (with their grad_fn)
  std::vector<Tensor> saved_outputs;  // detached outputs, if the op's def.saves_outputs
  std::vector<bool> needs_grad;       // per input: does a gradient have to flow into it?
  int num_diff_outputs = 1;
  // Shape/dtype of every differentiable output, so missing output gradients can be zero-filled.
  std::vector<TensorMeta> output_meta;
};

}  // namespace larmor
