// The dispatcher: the single path every op call takes (validate -> allocate -> kernel -> tape).
//
// Opt-in op profile: with LARMOR_PROFILE=1 in the environment, every call's wall time (shape rule,
// allocation and kernel; not the tape) is accumulated per (op, phase) and a table sorted by time is
// printed to stderr at exit. Phase "fwd" is a call with grad mode on, "bwd/nograd" one with it off (the
// backward pass runs with grad mode off, and so does inference). When the variable is unset the cost is
// one predictable branch on a cached flag per call.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "autograd/node.h"
#include "kernels/op.h"

namespace larmor {
namespace {

OpDef g_table[kNumOps];
std::atomic<int64_t> g_counts[kNumOps][kNumDeviceTypes];

const char* const kOpNames[] = {
#define LARMOR_OP_NAME(name) #name,
    LARMOR_OPS(LARMOR_OP_NAME)
#undef LARMOR_OP_NAME
};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == kNumOps, "op name table out of sync with LARMOR_OPS");

void init_table() {
  for (int i = 0; i < kNumOps; ++i) g_table[i].name = kOpNames[i];
  register_elementwise_ops();
  register_reduce_ops();
  register_shape_ops();
  register_matmul_ops();
  register_norm_ops();
  register_index_ops();
  register_misc_ops();
  register_optim_ops();
  register_pair_attention_ops();
  register_message_passing_ops();
  register_sorted_set_ops();
  register_info_nce_ops();
#ifdef LARMOR_WITH_CUDA
  register_cuda_ops();
#endif
  for (int i = 0; i < kNumOps; ++i) g_table[i].name = kOpNames[i];  // rows keep their canonical names
}

OpDef* table() {
  static std::once_flag once;
  std::call_once(once, init_table);
  return g_table;
}

// ---- opt-in profile ----------------------------------------------------------------------------------
struct OpProfile {
  std::atomic<int64_t> ns[kNumOps][2] = {};     // [op][0 fwd, 1 bwd/nograd]
  std::atomic<int64_t> calls[kNumOps][2] = {};
  ~OpProfile() { print(); }
  void print() const {
    struct Row { int op, phase; int64_t ns, calls; };
    std::vector<Row> rows;
    int64_t total = 0;
    for (int i = 0; i < kNumOps; ++i)
      for (int p = 0; p < 2; ++p) {
        int64_t c = calls[i][p].load();
        if (c == 0) continue;
        rows.push_back({i, p, ns[i][p].load(), c});
        total += rows.back().ns;
      }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.ns > b.ns; });
    std::fprintf(stderr, "\nLARMOR_PROFILE: wall time per op (shape rule + allocation + kernel)\n");
    std::fprintf(stderr, "%-26s %-11s %10s %12s %10s %7s\n", "op", "phase", "calls", "total ms", "us/call", "share");
    for (const Row& r : rows)
      std::fprintf(stderr, "%-26s %-11s %10lld %12.1f %10.1f %6.1f%%\n", kOpNames[r.op], r.phase ? "bwd/nograd" : "fwd",
                   static_cast<long long>(r.calls), r.ns / 1e6, r.ns / 1e3 / static_cast<double>(r.calls),
                   total ? 100.0 * static_cast<double>(r.ns) / static_cast<double>(total) : 0.0);
    std::fprintf(stderr, "%-26s %-11s %10s %12.1f\n", "total", "", "", total / 1e6);
  }
};

bool profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LARMOR_PROFILE");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}
OpProfile& profile() {
  static OpProfile p;  // constructed on first use, printed when static objects are destroyed at exit
  return p;
}

std::string inputs_str(const std::vector<Tensor>& in) {
  std::ostringstream o;
  for (size_t i = 0; i < in.size(); ++i) o << (i ? ", " : "") << (in[i].defined() ? in[i].str() : "undefined");
  return o.str();
}

}  // namespace

const OpDef& op_def(OpId id) { return table()[static_cast<int>(id)]; }
OpDef& mutable_op_def(OpId id) {
  // Called from inside init_table (registration) as well as after it: no call_once here.
  return g_table[static_cast<int>(id)];
}
const char* op_name(OpId id) { return kOpNames[static_cast<int>(id)]; }

int64_t op_call_count(OpId id, DeviceType dev) {
  return g_counts[static_cast<int>(id)][static_cast<int>(dev)].load();
}

void op_fail(OpId id, const std::vector<Tensor>& in, const std::string& msg) {
  throw Error(std::string(op_name(id)) + ": " + msg + "; inputs: " + inputs_str(in));
}
void op_expect_arity(OpId id, const std::vector<Tensor>& in, size_t n) {
  if (in.size() != n) op_fail(id, in, "expected " + std::to_string(n) + " inputs, got " + std::to_string(in.size()));
}
void op_expect_float(OpId id, const std::vector<Tensor>& in, size_t k) {
  if (!is_floating(in[k].dtype())) op_fail(id, in, "input " + std::to_string(k) + " must be f32 or f64");
}
void op_expect_index(OpId id, const std::vector<Tensor>& in, size_t k) {
  DType t = in[k].dtype();
  if (t != DType::I32 && t != DType::I64) op_fail(id, in, "input " + std::to_string(k) + " must be i32 or i64");
}
void op_expect_same_dtype(OpId id, const std::vector<Tensor>& in, size_t a, size_t b) {
  if (in[a].dtype() != in[b].dtype())
    op_fail(id, in, "inputs " + std::to_string(a) + " and " + std::to_string(b) + " must have the same dtype");
}
void op_expect_dim(OpId id, const std::vector<Tensor>& in, size_t k, int64_t dim) {
  if (in[k].dim() != dim)
    op_fail(id, in, "input " + std::to_string(k) + " must be " + std::to_string(dim) + "-D, got " + in[k].str());
}
int64_t op_norm_axis(OpId id, const std::vector<Tensor>& in, int64_t axis, int64_t ndim) {
  int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim) op_fail(id, in, "axis " + std::to_string(axis) + " out of range for " + std::to_string(ndim) + "-D");
  return a;
}

std::vector<Tensor> call_op(OpId id, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  const bool profiling = profile_enabled();
  std::chrono::steady_clock::time_point t0;
  if (profiling) t0 = std::chrono::steady_clock::now();
  const OpDef& def = op_def(id);
  if (def.num_inputs >= 0) op_expect_arity(id, inputs, static_cast<size_t>(def.num_inputs));
  Device device = Device::cpu();
  bool have_device = false;
  for (const Tensor& t : inputs) {
    if (!t.defined()) op_fail(id, inputs, "an input is undefined");
    if (!have_device) {
      device = t.device();
      have_device = true;
    } else if (t.device() != device) {
      op_fail(id, inputs, "inputs live on different devices (" + device.str() + " and " + t.device().str() + ")");
    }
  }
  std::vector<TensorMeta> metas = def.infer(inputs, attrs);  // validates; throws with op name and shapes
  if (static_cast<int>(metas.size()) != def.num_outputs) op_fail(id, inputs, "shape rule returned wrong output count");

  std::vector<Tensor> outputs;
  if (def.view) {
    outputs = def.view(inputs, attrs);
  } else {
    KernelFn fn = def.forward[static_cast<int>(device.type)];
    if (!fn) op_fail(id, inputs, "no kernel for device " + device.str());
    outputs.reserve(metas.size());
    for (const TensorMeta& m : metas) outputs.push_back(Tensor::empty(m.shape, m.dtype, device));
    fn(inputs, outputs, attrs);
  }
  g_counts[static_cast<int>(id)][static_cast<int>(device.type)].fetch_add(1, std::memory_order_relaxed);
  if (profiling) {
    int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    int phase = grad_enabled() ? 0 : 1;
    profile().ns[static_cast<int>(id)][phase].fetch_add(ns, std::memory_order_relaxed);
    profile().calls[static_cast<int>(id)][phase].fetch_add(1, std::memory_order_relaxed);
  }

  if (def.backward && grad_enabled()) {
    std::vector<bool> needs(inputs.size());
    bool any = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      needs[i] = inputs[i].requires_grad() && is_floating(inputs[i].dtype());
      any = any || needs[i];
    }
    if (any) {
      auto node = std::make_shared<Node>();
      node->op = id;
      node->attrs = attrs;
      node->inputs = inputs;
      node->needs_grad = std::move(needs);
      node->num_diff_outputs = def.num_diff_outputs;
      if (def.saves_outputs)
        for (const Tensor& o : outputs) node->saved_outputs.push_back(o.detach());
      for (int k = 0; k < def.num_diff_outputs; ++k) {
        node->output_meta.push_back({outputs[k].shape(), outputs[k].dtype()});
        TensorImpl& oi = outputs[k].impl();
        oi.requires_grad = true;
        oi.grad_fn = node;
        oi.output_index = k;
      }
    }
  }
  return outputs;
}

}  // namespace larmor
