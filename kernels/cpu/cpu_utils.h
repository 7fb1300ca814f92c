// Small helpers shared by the CPU kernels: broadcasting index math and typed pointers.
#pragma once
#include <vector>

#include "engine/tensor.h"
#include "engine/thread_pool.h"
#include "kernels/op.h"

namespace larmor::cpu {

// numpy broadcasting of two shapes; throws through op_fail on mismatch.
Shape broadcast_shapes(OpId id, const std::vector<Tensor>& in, const Shape& a, const Shape& b);

// Row-major strides of `shape` as seen from an output of rank `out_rank` with broadcast axes at stride 0.
std::vector<int64_t> broadcast_strides(const Shape& shape, const Shape& out_shape);

// Elements per chunk worth a thread.
inline constexpr int64_t kGrain = 1 << 14;

template <typename T>
inline const T* cptr(const Tensor& t) { return static_cast<const T*>(t.raw_data()); }
template <typename T>
inline T* mptr(const Tensor& t) { return static_cast<T*>(t.raw_data()); }

}  // namespace larmor::cpu
