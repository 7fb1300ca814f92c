// Shift-model training steps and inference forwards at ShiftModelConfig::small() (8 layers x 256 wide, 32
// heads, FFN 512, K 64) and large(). A step is zero_grad, forward, shift_loss, backward, gradient clipping,
// AdamW, on one synthetic batch of B molecules padded to N = 40 tokens (30..38 atoms with H; NMR8K's mean is
// 34). The batch comes from tests/test_util.h (random_mol, make_batch: header-only, no doctest), so the
// benchmark needs only larmor_layers: C-heavy random tokens, coordinates uniform in a 5 Å box, every carbon
// an assigned 13C target and the H of each molecule one unassigned 1H peak set (both loss terms run). Model,
// batch and optimizer are built once; each iteration is one step, so BM_ShiftTrainingStep/large:0/B:24 is
// what `larmor train shift --config small` pays per batch.
//
// For a per-op breakdown run it with LARMOR_PROFILE=1 (kernels/dispatch.cpp prints a table at exit).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/storage.h"
#include "kernels/ops.h"
#include "layers/optim.h"
#include "layers/shift_loss.h"
#include "layers/shift_model.h"
#include "tests/test_util.h"

namespace larmor {
namespace {

constexpr int64_t kMolecules = 24;  // B of the step benchmark
constexpr int64_t kSeqLen = 40;     // N = most atoms (38) + [CLS] + [SEP]
constexpr int32_t kCarbon = 4, kHydrogen = 8;

ShiftTargets make_targets(const std::vector<int64_t>& index, const std::vector<float>& target,
                          const std::vector<int32_t>& offsets) {
  ShiftTargets t;
  t.index = Tensor::from_vector<int64_t>(index, {static_cast<int64_t>(index.size())});      // (T)
  t.target = Tensor::from_vector<float>(target, {static_cast<int64_t>(target.size())});     // (T)
  t.offsets = Tensor::from_vector<int32_t>(offsets, {static_cast<int64_t>(offsets.size())});  // (S+1)
  return t;
}

// [CLS] atoms [SEP] [PAD]... per row (tests/test_util.h's make_batch); molecule b has 30 + (7 b mod 9) atoms,
// the first one 38, drawn by random_mol with seed 200 + b and solvent class b mod 4.
ShiftBatch make_step_batch(int64_t B = kMolecules) {
  const int64_t N = kSeqLen;
  std::vector<test::Mol> mols;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = b == 0 ? N - 2 : 30 + (7 * b) % 9;
    mols.push_back(test::random_mol(static_cast<int>(n), 200 + static_cast<uint64_t>(b), static_cast<int32_t>(b % 4)));
  }
  ShiftBatch batch = test::make_batch(mols, N);
  const std::vector<int32_t> tok = batch.tokens.to_vector<int32_t>();  // (B, N)

  // Assigned 13C: one size-1 segment per carbon. Unassigned 1H: one set per molecule.
  std::vector<int64_t> ci, hi;
  std::vector<float> ct, ht;
  std::vector<int32_t> coff = {0}, hoff = {0};
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N; ++i) {
      const int64_t p = b * N + i;
      if (tok[p] == kCarbon) {
        ci.push_back(p);
        ct.push_back(0.1f * static_cast<float>(p % 13) - 0.6f);
        coff.push_back(static_cast<int32_t>(ci.size()));
      } else if (tok[p] == kHydrogen) {
        hi.push_back(p);
        ht.push_back(0.05f * static_cast<float>(p % 17) - 0.4f);
      }
    }
    if (static_cast<int32_t>(hi.size()) != hoff.back()) hoff.push_back(static_cast<int32_t>(hi.size()));
  }
  batch.assigned[1] = make_targets(ci, ct, coff);
  batch.unassigned[0] = make_targets(hi, ht, hoff);
  return batch;
}

// The end-to-end cases of the performance issue: one training step and one inference forward (eval mode,
// no tape, shifts only) at B = 16, 64, 256 synthetic molecules, for `small` and `large`; peak CPU memory of
// the cached large blocks (engine/storage.h) as a counter. bench/compare.sh times the same model against
// PyTorch on real batches.
ShiftModelConfig config_of(int64_t which) { return which == 0 ? ShiftModelConfig::small() : ShiftModelConfig::large(); }

void BM_ShiftTrainingStep(benchmark::State& state) {
  const int64_t B = state.range(1);
  ShiftModel model(config_of(state.range(0)), 61);
  model.train();
  ShiftBatch batch = make_step_batch(B);
  AdamW adam(model.named_parameters(), {.lr = 1e-4}, shift_model_decay);
  ShiftLossOptions options;
  cpu_memory_reset_peak();
  for (auto _ : state) {
    adam.zero_grad();
    Tensor loss = shift_loss(model.forward(batch, /*with_delta_pair=*/false), batch, options);
    loss.backward();
    clip_grad_norm(model.parameters(), 1.0);
    adam.step();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.counters["molecules/s"] = benchmark::Counter(static_cast<double>(state.iterations() * B), benchmark::Counter::kIsRate);
  state.counters["peak_MiB"] = static_cast<double>(cpu_memory_stats().peak) / (1 << 20);
}
BENCHMARK(BM_ShiftTrainingStep)
    ->ArgNames({"large", "B"})
    ->Args({0, kMolecules})->Args({0, 16})->Args({0, 64})->Args({0, 256})->Args({1, 16})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ShiftInference(benchmark::State& state) {
  const int64_t B = state.range(1);
  ShiftModel model(config_of(state.range(0)), 61);
  model.eval();
  ShiftBatch batch = make_step_batch(B);
  cpu_memory_reset_peak();
  for (auto _ : state) {
    NoGradGuard ng;
    Tensor s = model.forward(batch, /*with_delta_pair=*/false).shifts;
    benchmark::DoNotOptimize(s.raw_data());
  }
  state.counters["molecules/s"] = benchmark::Counter(static_cast<double>(state.iterations() * B), benchmark::Counter::kIsRate);
  state.counters["peak_MiB"] = static_cast<double>(cpu_memory_stats().peak) / (1 << 20);
}
BENCHMARK(BM_ShiftInference)
    ->ArgNames({"large", "B"})
    ->Args({0, 16})->Args({0, 64})->Args({0, 256})->Args({1, 16})->Args({1, 64})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace larmor
