// CPU f32 matmul throughput: square GEMMs and the Linear-layer shape (a batch of B*N = 4096 rows
// through a 512 -> 512 weight stored (out, in), i.e. x @ W^T with a shared 2-D b). Reports FLOP/s
// (2*M*N*K per product) so the numbers compare directly with a BLAS.
#include <benchmark/benchmark.h>

#include "engine/rng.h"
#include "kernels/ops.h"

namespace {
using namespace larmor;

void report(benchmark::State& state, double flops_per_iter) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops_per_iter * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// Square (M, K) @ (K, N) with M = K = N = range(0).
void BM_matmul_square(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = rand_uniform({n, n}, -1, 1, 1, 0, DType::F32);
  Tensor b = rand_uniform({n, n}, -1, 1, 2, 0, DType::F32);
  NoGradGuard ng;
  for (auto _ : state) {
    Tensor c = matmul(a, b);
    benchmark::DoNotOptimize(c.raw_data());
  }
  report(state, 2.0 * n * n * n);
}
BENCHMARK(BM_matmul_square)->Arg(64)->Arg(256)->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Linear: x (B, N, in) @ W^T with W (out, in) shared; B*N = 4096, in = out = 512.
void BM_matmul_linear(benchmark::State& state) {
  const int64_t rows = 4096, in = 512, out = 512;
  Tensor x = rand_uniform({16, rows / 16, in}, -1, 1, 3, 0, DType::F32);  // (B, N, in)
  Tensor w = rand_uniform({out, in}, -1, 1, 4, 0, DType::F32);            // (out, in)
  NoGradGuard ng;
  for (auto _ : state) {
    Tensor y = matmul(x, w, false, true);  // (B, N, out)
    benchmark::DoNotOptimize(y.raw_data());
  }
  report(state, 2.0 * rows * in * out);
}
BENCHMARK(BM_matmul_linear)->Unit(benchmark::kMillisecond)->UseRealTime();

// Batched attention-like products: (B*H, N, d) @ (B*H, N, d)^T, many small GEMMs in parallel.
void BM_matmul_batched_qk(benchmark::State& state) {
  const int64_t bh = 64, n = 64, d = 32;
  Tensor q = rand_uniform({bh, n, d}, -1, 1, 5, 0, DType::F32);
  Tensor k = rand_uniform({bh, n, d}, -1, 1, 6, 0, DType::F32);
  NoGradGuard ng;
  for (auto _ : state) {
    Tensor s = matmul(q, k, false, true);  // (B*H, N, N)
    benchmark::DoNotOptimize(s.raw_data());
  }
  report(state, 2.0 * bh * n * n * d);
}
BENCHMARK(BM_matmul_batched_qk)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
