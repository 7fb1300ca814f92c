// CUDA element-wise ops: the same semantics as kernels/cpu/elementwise.cpp. One grid-stride kernel per
// op family; broadcasting computes each operand's offset from the output index with per-axis strides
// (0 on broadcast axes), so any shapes up to 8 axes work without materialising the broadcast.
// Memory-bound: one read per operand and one write per element.
#include <cmath>

#include "kernels/cuda/cuda_utils.cuh"

namespace larmor {
namespace {
using namespace cuda;

enum class Bin { Add, Sub, Mul, Div };

template <typename T, Bin OP>
__device__ __forceinline__ T bin_apply(T a, T b) {
  if constexpr (OP == Bin::Add) return a + b;
  if constexpr (OP == Bin::Sub) return a - b;
  if constexpr (OP == Bin::Mul) return a * b;
  return a / b;
}

template <typename T, Bin OP>
__global__ void binary_kernel(const T* a, const T* b, T* out, int64_t n, BroadcastIndex ia, BroadcastIndex ib,
                              bool same_shape) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    if (same_shape) {
      out[i] = bin_apply<T, OP>(a[i], b[i]);
      continue;
    }
    int64_t rem = i, oa = 0, ob = 0;
    for (int d = ia.ndim - 1; d >= 0; --d) {
      int64_t c = rem % ia.out_shape[d];
      rem /= ia.out_shape[d];
      oa += c * ia.stride[d];
      ob += c * ib.stride[d];
    }
    out[i] = bin_apply<T, OP>(a[oa], b[ob]);
  }
}

BroadcastIndex make_index(const Shape& s, const Shape& out) {
  BroadcastIndex r{};
  r.ndim = static_cast<int>(out.size());
  size_t off = out.size() - s.size();
  int64_t st = 1;
  for (size_t i = out.size(); i-- > 0;) {
    r.out_shape[i] = out[i];
    int64_t d = i < off ? 1 : s[i - off];
    r.stride[i] = d == 1 ? 0 : st;
    st *= d;
  }
  return r;
}

template <Bin OP, OpId ID>
void cuda_binary(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs&) {
  const Shape& os = out[0].shape();
  if (os.size() > static_cast<size_t>(kMaxDims)) op_fail(ID, in, "CUDA binary ops support up to 8 axes");
  int64_t n = out[0].numel();
  if (n == 0) return;
  BroadcastIndex ia = make_index(in[0].shape(), os), ib = make_index(in[1].shape(), os);
  bool same = in[0].shape() == in[1].shape();
  LARMOR_DISPATCH_FLOAT(out[0].dtype(), op_name(ID), [&] {
    binary_kernel<scalar_t, OP><<<blocks_for(n, 256), 256>>>(static_cast<const scalar_t*>(in[0].raw_data()),
                                                             static_cast<const scalar_t*>(in[1].raw_data()),
                                                             static_cast<scalar_t*>(out[0].raw_data()), n, ia, ib, same);
  });
  check_launch(ID);
}

template <typename T>
__global__ void accumulate_kernel(T* dst, const T* src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] += src[i];
}

void cuda_accumulate(const std::vector<Tensor>& in, std::vector<Tensor>&, const Attrs&) {
  int64_t n = in[0].numel();
  if (n == 0) return;
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "AccumulateGrad", [&] {
    accumulate_kernel<scalar_t><<<blocks_for(n, 256), 256>>>(static_cast<scalar_t*>(in[0].raw_data()),
                                                             static_cast<const scalar_t*>(in[1].raw_data()), n);
  });
  check_launch(OpId::AccumulateGrad);
}

}  // namespace

void register_cuda_ops() {
  constexpr int kCuda = static_cast<int>(DeviceType::CUDA);
  mutable_op_def(OpId::Add).forward[kCuda] = cuda_binary<Bin::Add, OpId::Add>;
  mutable_op_def(OpId::Sub).forward[kCuda] = cuda_binary<Bin::Sub, OpId::Sub>;
  mutable_op_def(OpId::Mul).forward[kCuda] = cuda_binary<Bin::Mul, OpId::Mul>;
  mutable_op_def(OpId::Div).forward[kCuda] = cuda_binary<Bin::Div, OpId::Div>;
  mutable_op_def(OpId::AccumulateGrad).forward[kCuda] = cuda_accumulate;
}

}  // namespace larmor
