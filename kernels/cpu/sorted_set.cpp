// TODO(helper): sorted_set ops — see kernels/op.h and kernels/ops.h.
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
void register_sorted_set_ops() {}
}  // namespace larmor
