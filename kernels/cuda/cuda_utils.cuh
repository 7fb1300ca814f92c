// Shared helpers for CUDA kernels: launch checks that name the op, grid sizing, broadcast indexing.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "engine/cuda_runtime.h"
#include "engine/tensor.h"
#include "kernels/op.h"

namespace larmor::cuda {

inline constexpr int kMaxDims = 8;

// Row-major strides of an operand broadcast to an output of rank <= kMaxDims (0 on broadcast axes).
struct BroadcastIndex {
  int ndim;
  int64_t out_shape[kMaxDims];
  int64_t stride[kMaxDims];
};

inline int blocks_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 16 ? (b < 1 ? 1 : b) : 65535 * 16);
}

// After every launch: a failure becomes a larmor::Error naming the op.
inline void check_launch(OpId id) { cuda_check_last(op_name(id)); }

}  // namespace larmor::cuda
