// Matmul: a (..., M, K) @ b (..., K, N) -> (..., M, N), with identical leading batch dims, or b 2-D (K, N)
// shared over a's batch (a Linear layer). attrs.ints = [trans_a, trans_b]: use the transpose of the last
// two axes of that operand (so a is stored (..., K, M) when trans_a, b stored (..., N, K) when trans_b).
//
// The CPU kernel wraps the row-major operands in Eigen::Map (no copies; a transposed operand is just a
// transposed map, Eigen's GEMM packs either layout) and lets Eigen's blocked GEMM do the arithmetic.
// With a shared 2-D b and no trans_a, a's batch is one (batch*M, K) matrix: one big GEMM is much faster
// than many small ones. Work is split into (batch entry, block of kRowBlock output rows) items run by
// parallel_for; the blocks are fixed, not derived from the thread count, so every output row gets the
// same GEMM call (and the same rounding) however many threads there are.
//
// Backward uses Matmul itself with the trans flags (no extra transposes in the common cases):
//   dA = dC op(B)^T, dB = op(A)^T dC, transposed back when the operand itself was transposed.
// For a shared 2-D b the batch sum of dB is folded into one GEMM over the flattened (batch*M) rows.
#include <Eigen/Dense>
#include <algorithm>

#include "autograd/node.h"
#include "kernels/cpu/cpu_utils.h"
#include "kernels/ops.h"

namespace larmor {
namespace {
using namespace cpu;

constexpr int64_t kRowBlock = 128;        // output rows per work item
constexpr int64_t kFlopGrain = 1 << 17;   // multiply-adds per parallel chunk, at least

struct MatmulPlan {
  Shape batch_shape;  // a's leading dims
  int64_t batch = 1, M = 0, K = 0, N = 0;
  bool ta = false, tb = false, shared_b = false;
};

MatmulPlan plan_matmul(const std::vector<Tensor>& in, const Attrs& at) {
  const OpId id = OpId::Matmul;
  op_expect_float(id, in, 0);
  op_expect_same_dtype(id, in, 0, 1);
  const Shape &sa = in[0].shape(), &sb = in[1].shape();
  if (sa.size() < 2 || sb.size() < 2) op_fail(id, in, "a and b must be at least 2-D");
  MatmulPlan p;
  p.ta = at.i(0) != 0;
  p.tb = at.i(1) != 0;
  p.batch_shape.assign(sa.begin(), sa.end() - 2);
  p.shared_b = sb.size() == 2 && sa.size() > 2;
  if (!p.shared_b) {
    Shape bb(sb.begin(), sb.end() - 2);
    if (bb != p.batch_shape)
      op_fail(id, in, "batch dims " + shape_str(p.batch_shape) + " of a and " + shape_str(bb) +
                          " of b differ (b must have a's batch dims or be 2-D)");
  }
  p.batch = shape_numel(p.batch_shape);
  size_t na = sa.size(), nb = sb.size();
  p.M = p.ta ? sa[na - 1] : sa[na - 2];
  p.K = p.ta ? sa[na - 2] : sa[na - 1];
  int64_t kb = p.tb ? sb[nb - 1] : sb[nb - 2];
  p.N = p.tb ? sb[nb - 2] : sb[nb - 1];
  if (kb != p.K)
    op_fail(id, in, std::string("inner dimensions differ: a") + (p.ta ? "^T" : "") + " is (M=" + std::to_string(p.M) +
                        ", K=" + std::to_string(p.K) + "), b" + (p.tb ? "^T" : "") + " is (K=" + std::to_string(kb) +
                        ", N=" + std::to_string(p.N) + ")");
  return p;
}

std::vector<TensorMeta> infer_Matmul(const std::vector<Tensor>& in, const Attrs& a) {
  MatmulPlan p = plan_matmul(in, a);
  Shape out = p.batch_shape;
  out.push_back(p.M);
  out.push_back(p.N);
  return {{out, in[0].dtype()}};
}

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using OutMap = Eigen::Map<RowMat<T>>;

// C = A op(B) for one block; A is an Eigen expression (rows, K); b points at the stored (K, N) or (N, K).
template <typename T, typename AExpr>
void gemm_block(OutMap<T>& c, const AExpr& a, const T* b, int64_t k, int64_t n, bool tb) {
  if (!tb) {
    ConstMap<T> bm(b, k, n, Eigen::OuterStride<>(n));
    c.noalias() = a * bm;
  } else {
    ConstMap<T> bm(b, n, k, Eigen::OuterStride<>(k));
    c.noalias() = a * bm.transpose();
  }
}

template <typename T>
void matmul_cpu(const T* a, const T* b, T* c, const MatmulPlan& p) {
  const int64_t K = p.K, N = p.N;
  const int64_t a_step = p.M * K, b_step = p.shared_b ? 0 : K * N, c_step = p.M * N;
  int64_t batch = p.batch, M = p.M;
  if (p.shared_b && !p.ta) {  // (batch, M, K) is one (batch*M, K) matrix
    M *= batch;
    batch = 1;
  }
  if (batch * M * N == 0) return;
  if (K == 0) {
    std::fill(c, c + batch * M * N, T(0));
    return;
  }
  const int64_t rb = std::min(kRowBlock, M), nblk = (M + rb - 1) / rb;
  const int64_t grain = std::max<int64_t>(1, kFlopGrain / std::max<int64_t>(1, rb * K * N));
  const int64_t m_stored = p.M;  // row stride of a stored (K, M) when trans_a
  parallel_for(0, batch * nblk, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t it = lo; it < hi; ++it) {
      const int64_t bi = it / nblk, r0 = (it % nblk) * rb, rows = std::min(rb, M - r0);
      const T* ab = a + bi * a_step;
      const T* bb = b + bi * b_step;
      OutMap<T> cm(c + bi * c_step + r0 * N, rows, N);
      if (!p.ta) {
        ConstMap<T> am(ab + r0 * K, rows, K, Eigen::OuterStride<>(K));
        gemm_block<T>(cm, am, bb, K, N, p.tb);
      } else {  // columns r0..r0+rows of the stored (K, M)
        ConstMap<T> am(ab + r0, K, rows, Eigen::OuterStride<>(m_stored));
        gemm_block<T>(cm, am.transpose(), bb, K, N, p.tb);
      }
    }
  });
}

void fwd_Matmul(const std::vector<Tensor>& in, std::vector<Tensor>& out, const Attrs& a) {
  MatmulPlan p = plan_matmul(in, a);
  LARMOR_DISPATCH_FLOAT(in[0].dtype(), "Matmul", [&] {
    matmul_cpu<scalar_t>(cptr<scalar_t>(in[0]), cptr<scalar_t>(in[1]), mptr<scalar_t>(out[0]), p);
  });
}

std::vector<Tensor> bwd_Matmul(const Node& n, const std::vector<Tensor>& g) {
  MatmulPlan p = plan_matmul(n.inputs, n.attrs);
  std::vector<Tensor> r(2);
  if (!g[0].defined()) return r;
  const Tensor& dc = g[0];                   // (..., M, N)
  const Tensor a = n.inputs[0].detach();     // (..., M, K) or (..., K, M)
  const Tensor b = n.inputs[1].detach();     // (..., K, N) or (..., N, K), maybe 2-D shared
  const bool ta = p.ta, tb = p.tb;
  if (n.needs_grad[0]) {
    // d op(A) = dC op(B)^T (M, K); stored dA is its transpose when trans_a.
    if (!ta) r[0] = matmul(dc, b, false, !tb);
    else if (!p.shared_b) r[0] = matmul(b, dc, tb, true);        // op(B) dC^T (K, M)
    else r[0] = transpose(matmul(dc, b, false, !tb), -1, -2);    // a 2-D b cannot lead a batched product
  }
  if (n.needs_grad[1]) {
    if (!p.shared_b) {
      // d op(B) = op(A)^T dC (K, N); stored dB is its transpose when trans_b: dC^T op(A) (N, K).
      r[1] = !tb ? matmul(a, dc, !ta, false) : matmul(dc, a, true, ta);
    } else {
      // Sum over the batch in one GEMM: rows of op(A) and dC flattened to (batch*M, .).
      Tensor a2 = reshape(ta ? transpose(a, -1, -2) : a, {p.batch * p.M, p.K});  // (batch*M, K)
      Tensor dc2 = reshape(dc, {p.batch * p.M, p.N});                           // (batch*M, N)
      r[1] = !tb ? matmul(a2, dc2, true, false) : matmul(dc2, a2, true, false);
    }
  }
  return r;
}

}  // namespace

void register_matmul_ops() {
  OpDef& d = mutable_op_def(OpId::Matmul);
  d.num_inputs = 2;
  d.infer = infer_Matmul;
  d.forward[0] = fwd_Matmul;
  d.backward = bwd_Matmul;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  return call_op1(OpId::Matmul, {a, b}, {{trans_a ? 1 : 0, trans_b ? 1 : 0}, {}});
}

}  // namespace larmor
