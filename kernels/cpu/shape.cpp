// Shape and movement ops. Reshape is a view (no copy); Permute, Slice and Concat copy into a fresh
// contiguous tensor (every tensor in larmor is contiguous, see engine/tensor.h).
#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// ---- Reshape: attrs.ints = target shape (-1 allowed once) ---------------------------------------------
std::vector<TensorMeta> infer_Reshape(const std::vector<Tensor>& in, const Attrs& a) {
  try {
    Tensor v = in[0].view(a.ints);
    return {{v.shape(), in[0].dtype()}};
  } catch (const Error& e) {
    op_fail(OpId::Reshape, in, std::string("cannot reshape to ") + shape_str(a.ints));
  }
}
std::vector<Tensor> view_Reshape(const std::vector<Tensor>& in, const Attrs& a) { return {in[0].view(a.ints)}; }
std::vector<Tensor> bwd_Reshape(const Node& n, const std::vector<Tensor>& g) { return {reshape(g[0], n.inputs[0].shape())}; }

}  // namespace

void register_shape_ops() {
  OpDef& r = mutable_op_def(OpId::Reshape);
  r.num_inputs = 1;
  r.infer = infer_Reshape;
  r.view = view_Reshape;
  r.backward = bwd_Reshape;
}

Tensor reshape(const Tensor& a, const Shape& shape) { return call_op1(OpId::Reshape, {a}, {shape, {}}); }

}  // namespace larmor
