// TODO(helper): norm ops — see kernels/op.h and kernels/ops.h.
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
void register_norm_ops() {}
}  // namespace larmor
