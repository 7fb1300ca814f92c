// In-place helpers used by autograd and the optimizers (AccumulateGrad, AdamWStep), plus dropout and
// the Gaussian distance basis.
#include <cmath>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

// ---- AccumulateGrad(dst, src): dst += src in place; returns nothing useful (output is a 0-d dummy) ------
std::vector<TensorMeta> infer_AccumulateGrad(const std::vector<Tensor>& in, const Attrs&) {
  op_expect_float(OpId::AccumulateGrad, in, 0);
  op_expect_same_dtype(OpId::AccumulateGrad, in, 0, 1);
  if (in[0].shape() != in[1].shape()) op_fail(OpId::AccumulateGrad, in, "dst and src shapes differ");
  return {};
}
void fwd_AccumulateGrad(const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs&) {
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "AccumulateGrad", [&] {
    scalar_t* d = mptr<scalar_t>(in[0]);
    const scalar_t* s = cptr<scalar_t>(in[1]);
    parallel_for(0, in[0].numel(), kGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) d[i] += s[i];
    });
  });
}

}  // namespace

void register_misc_ops() {
  OpDef& acc = mutable_op_def(OpId::AccumulateGrad);
  acc.num_inputs = 2;
  acc.num_outputs = 0;
  acc.num_diff_outputs = 0;
  acc.infer = infer_AccumulateGrad;
  acc.forward[0] = fwd_AccumulateGrad;
}

void accumulate_(Tensor& dst, const Tensor& src) { call_op(OpId::AccumulateGrad, {dst, src}); }

}  // namespace larmor
