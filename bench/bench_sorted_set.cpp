// CPU benchmarks for the two loss ops, f32, at training sizes: the sorted-set loss over 20,000 segments
// of 10..120 elements (a batch of molecules x nuclei; sizes drawn once from a fixed seed) and InfoNCE on
// a B x B logit matrix (B = 4096; the logits are given, the GEMM that makes them is not timed).
// Each iteration runs forward + backward through autograd (grad() w.r.t. the differentiable input), the
// way a training step uses them; a forward-only variant isolates the sort / log-sum-exp cost.
#include <benchmark/benchmark.h>

#include <random>

#include "autograd/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"

namespace larmor {
namespace {

struct SetInputs {
  Tensor pred, target, offsets;  // (P), (P), (S+1) i32
};

SetInputs make_sets(int64_t segments, int lo, int hi) {
  std::mt19937 gen(42);
  std::uniform_int_distribution<int> size(lo, hi);
  std::vector<int32_t> off = {0};
  for (int64_t s = 0; s < segments; ++s) off.push_back(off.back() + size(gen));
  int64_t p = off.back();
  return {rand_normal({p}, 100, 50, 1), rand_normal({p}, 100, 50, 2),
          Tensor::from_vector(off, {segments + 1})};
}

void BM_SortedSetLoss(benchmark::State& state, bool backward) {
  SetInputs in = make_sets(state.range(0), 10, 120);
  in.pred.set_requires_grad(backward);
  for (auto _ : state) {
    if (backward) {
      Tensor loss = sorted_set_loss(in.pred, in.target, in.offsets, SetLossKind::L1);
      std::vector<Tensor> g = grad({loss}, {Tensor::ones({}, loss.dtype())}, {in.pred});
      benchmark::DoNotOptimize(g[0].raw_data());
    } else {
      NoGradGuard ng;
      Tensor loss = sorted_set_loss(in.pred, in.target, in.offsets, SetLossKind::L1);
      benchmark::DoNotOptimize(loss.raw_data());
    }
  }
  state.SetItemsProcessed(state.iterations() * in.pred.numel());
  state.counters["elements"] = static_cast<double>(in.pred.numel());
}

void BM_InfoNce(benchmark::State& state, bool backward) {
  const int64_t B = state.range(0);
  Tensor logits = rand_normal({B, B}, 0, 1, 3);
  logits.set_requires_grad(backward);
  for (auto _ : state) {
    if (backward) {
      Tensor loss = info_nce(logits, Tensor(), 1.0, 1.0, 1.0);
      std::vector<Tensor> g = grad({loss}, {Tensor::ones({}, loss.dtype())}, {logits});
      benchmark::DoNotOptimize(g[0].raw_data());
    } else {
      NoGradGuard ng;
      Tensor loss = info_nce(logits, Tensor(), 1.0, 1.0, 1.0);
      benchmark::DoNotOptimize(loss.raw_data());
    }
  }
  state.SetItemsProcessed(state.iterations() * B * B);
}

BENCHMARK_CAPTURE(BM_SortedSetLoss, forward, false)->Arg(20000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_SortedSetLoss, forward_backward, true)->Arg(20000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_InfoNce, forward, false)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_InfoNce, forward_backward, true)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace larmor
