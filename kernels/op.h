// The op table: every op the engine knows, in one list (ggml's enum + ATen's declarative table).
//
// An op is a row {name, arity, shape rule, forward kernel per device, backward rule}. The shape rule
// validates inputs and computes output shapes/dtypes (throwing a larmor::Error that names the op and
// the shapes); the dispatcher (dispatch.cpp) allocates outputs on the inputs' device, runs the kernel
// for that device, and records a tape node when autograd is on. Backward rules are written in terms
// of other ops (so they run on whichever device the tensors are on); where that would be slow or
// awkward there is a dedicated *_backward op with its own CPU and CUDA kernels (ggml's SOFT_MAX_BACK).
//
// Adding an op: add X(Name) below, register its row in the group file (kernels/cpu/<group>.cpp), add
// its front-end to ops.h, and add test rows to tests/op_cases_<group>.cpp. The op test fails for any
// op that no test row exercises.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace larmor {

// clang-format off
#define LARMOR_OPS(X)                                                                         \
  /* element-wise, broadcasting (elementwise.cpp) */                                          \
  X(Add) X(Sub) X(Mul) X(Div) X(AddScalar) X(MulScalar)                                       \
  X(Neg) X(Exp) X(Log) X(Tanh) X(Gelu) X(Relu) X(Sigmoid) X(Abs) X(Sqrt) X(Square)            \
  X(UnaryBackward)                                                                            \
  /* reductions (reduce.cpp) */                                                               \
  X(Sum) X(Mean) X(Max) X(MaxBackward)                                                        \
  /* shape and movement (shape.cpp) */                                                        \
  X(Reshape) X(Permute) X(Slice) X(SliceBackward) X(Concat)                                   \
  /* linear algebra (matmul.cpp) */                                                           \
  X(Matmul)                                                                                   \
  /* normalisation and softmax (norm.cpp) */                                                  \
  X(Softmax) X(LogSoftmax) X(SoftmaxBackward) X(LogSoftmaxBackward)                           \
  X(LayerNorm) X(LayerNormBackward) X(BatchNorm) X(BatchNormBackward)                         \
  /* gather / scatter / segments (index.cpp) */                                               \
  X(Embedding) X(IndexSelect) X(ScatterAdd) X(SegmentSum) X(SegmentBroadcast)                 \
  /* randomness and bases (misc.cpp) */                                                       \
  X(Dropout) X(GaussianBasis) X(GaussianBasisBackward)                                        \
  /* the four special ops (pair_attention.cpp, message_passing.cpp, sorted_set.cpp, info_nce.cpp) */ \
  X(PairBiasAttention) X(PairBiasAttentionBackward)                                           \
  X(MessagePassing) X(MessagePassingBackward)                                                 \
  X(SortedSetLoss) X(SortedSetLossBackward)                                                   \
  X(InfoNce) X(InfoNceBackward)                                                               \
  /* in-place helpers for autograd and optimizers (misc.cpp) */                               \
  X(AccumulateGrad) /* optim.cpp */ X(AdamWStep)
// clang-format on

enum class OpId : int {
#define LARMOR_OP_ENUM(name) name,
  LARMOR_OPS(LARMOR_OP_ENUM)
#undef LARMOR_OP_ENUM
  COUNT
};
inline constexpr int kNumOps = static_cast<int>(OpId::COUNT);

// Scalar parameters of one op call (ggml's op_params): integers (axes, flags, seeds) and reals.
struct Attrs {
  std::vector<int64_t> ints;
  std::vector<double> reals;
  int64_t i(size_t k) const { return k < ints.size() ? ints[k] : 0; }
  double f(size_t k) const { return k < reals.size() ? reals[k] : 0.0; }
};

struct TensorMeta {
  Shape shape;
  DType dtype;
};

struct Node;
using InferFn = std::vector<TensorMeta> (*)(const std::vector<Tensor>& in, const Attrs& a);
using KernelFn = void (*)(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a);
// Views (Reshape): return outputs that alias the input storage instead of running a kernel.
using ViewFn = std::vector<Tensor> (*)(const std::vector<Tensor>& in, const Attrs& a);
// Backward: given the node (inputs, saved outputs, attrs) and the gradients of the differentiable
// outputs (an undefined Tensor where no gradient flowed), return one gradient per input (undefined
// where the input needs none: see node.needs_grad). Runs with grad mode off.
using BackwardFn = std::vector<Tensor> (*)(const Node& node, const std::vector<Tensor>& grad_out);

struct OpDef {
  const char* name = nullptr;
  int num_inputs = 0;        // -1: variadic (Concat)
  int num_outputs = 1;       // total outputs
  int num_diff_outputs = 1;  // the first num_diff_outputs outputs carry gradients; the rest are auxiliary
  InferFn infer = nullptr;
  KernelFn forward[kNumDeviceTypes] = {nullptr, nullptr};
  ViewFn view = nullptr;
  BackwardFn backward = nullptr;  // null: not differentiable (indices, backward ops, in-place helpers)
  bool saves_outputs = false;     // keep (detached) outputs on the tape node for backward
};

// The table, filled once by the group registration functions (CPU rows) and, when built with CUDA, by
// the CUDA backend (forward[CUDA] slots).
const OpDef& op_def(OpId id);
OpDef& mutable_op_def(OpId id);
const char* op_name(OpId id);

// Runs an op: validate, allocate, run the kernel for the inputs' device, record autograd.
std::vector<Tensor> call_op(OpId id, const std::vector<Tensor>& inputs, const Attrs& attrs = {});
inline Tensor call_op1(OpId id, const std::vector<Tensor>& inputs, const Attrs& attrs = {}) {
  return call_op(id, inputs, attrs)[0];
}

// How many times each op ran on each device since start (the op test uses it to prove coverage).
int64_t op_call_count(OpId id, DeviceType dev = DeviceType::CPU);

// Shape-rule helpers: throw larmor::Error("<op>: <msg>; inputs: f32(2, 3)@cpu, ...").
[[noreturn]] void op_fail(OpId id, const std::vector<Tensor>& in, const std::string& msg);
void op_expect_arity(OpId id, const std::vector<Tensor>& in, size_t n);
void op_expect_float(OpId id, const std::vector<Tensor>& in, size_t k);  // input k is f32/f64
void op_expect_index(OpId id, const std::vector<Tensor>& in, size_t k);  // input k is i32/i64
void op_expect_same_dtype(OpId id, const std::vector<Tensor>& in, size_t a, size_t b);
void op_expect_dim(OpId id, const std::vector<Tensor>& in, size_t k, int64_t dim);
int64_t op_norm_axis(OpId id, const std::vector<Tensor>& in, int64_t axis, int64_t ndim);  // negative axes

// Group registration (one per kernels/cpu/<group>.cpp); called once by op_def's initialiser.
void register_elementwise_ops();
void register_reduce_ops();
void register_shape_ops();
void register_matmul_ops();
void register_norm_ops();
void register_index_ops();
void register_misc_ops();
void register_optim_ops();
void register_pair_attention_ops();
void register_message_passing_ops();
void register_sorted_set_ops();
void register_info_nce_ops();
#ifdef LARMOR_WITH_CUDA
void register_cuda_ops();  // kernels/cuda/*.cu
#endif

}  // namespace larmor
