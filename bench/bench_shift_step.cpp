// One full CPU training step of the shift model at ShiftModelConfig::small() (8 layers x 256 wide, 32 heads,
// FFN 512, K 64): zero_grad, forward, shift_loss, backward, gradient clipping, AdamW, on one synthetic batch
// of B = 24 molecules padded to N = 40 tokens (30..38 atoms with H; NMR8K's mean is 34). The batch is
// built by hand, as tests/test_util.h does, so the benchmark needs only larmor_layers: C-heavy random
// tokens, coordinates uniform in a 5 Å box, every carbon an assigned 13C target and the H of each molecule
// one unassigned 1H peak set (both loss terms run). Model, batch and optimizer are built once; each
// iteration is one step, so the numbers are what `larmor train shift --config small` pays per batch.
//
// For a per-op breakdown run it with LARMOR_PROFILE=1 (kernels/dispatch.cpp prints a table at exit).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/optim.h"
#include "layers/shift_loss.h"
#include "layers/shift_model.h"

namespace larmor {
namespace {

constexpr int64_t kMolecules = 24;  // B
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

// [CLS] atoms [SEP] [PAD]... per row; molecule b has 30 + (7 b mod 9) atoms, the first one 38.
ShiftBatch make_step_batch() {
  const int64_t B = kMolecules, N = kSeqLen;
  const int32_t pool[] = {4, 4, 4, 5, 6, 8, 8, 8, 10, 14};  // Uni-Mol tokens: C C C N O H H H F P
  std::vector<int32_t> tok(B * N, 0), km(B * N, 0), solv(B, 0);  // (B, N), (B, N), (B)
  std::vector<float> xyz(B * N * 3, 0.f);                        // (B, N, 3)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = b == 0 ? N - 2 : 30 + (7 * b) % 9;
    Rng rng(200 + static_cast<uint64_t>(b));
    std::vector<int32_t> pick = rng.integers({n}, 0, 10).to_vector<int32_t>();
    std::vector<double> pos = rng.uniform({n, 3}, -2.5, 2.5, DType::F64).to_vector<double>();
    tok[b * N] = 1;  // [CLS]
    km[b * N] = 1;
    for (int64_t i = 0; i < n; ++i) {
      tok[b * N + 1 + i] = pool[pick[i]];
      km[b * N + 1 + i] = 1;
      for (int k = 0; k < 3; ++k) xyz[(b * N + 1 + i) * 3 + k] = static_cast<float>(pos[i * 3 + k]);
    }
    tok[b * N + n + 1] = 2;  // [SEP]
    km[b * N + n + 1] = 1;
    solv[b] = static_cast<int32_t>(b % 4);
  }
  ShiftBatch batch;
  batch.tokens = Tensor::from_vector<int32_t>(tok, {B, N});
  batch.coords = Tensor::from_vector<float>(xyz, {B, N, 3});
  batch.key_mask = Tensor::from_vector<int32_t>(km, {B, N});
  batch.solvent = Tensor::from_vector<int32_t>(solv, {B});
  for (int64_t b = 0; b < B; ++b) batch.entries.push_back(b);

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

void BM_ShiftTrainingStepSmall(benchmark::State& state) {
  ShiftModel model(ShiftModelConfig::small(), 61);
  model.train();
  ShiftBatch batch = make_step_batch();
  AdamW adam(model.named_parameters(), {.lr = 1e-4}, shift_model_decay);
  ShiftLossOptions options;
  for (auto _ : state) {
    adam.zero_grad();
    Tensor loss = shift_loss(model.forward(batch), batch, options);
    loss.backward();
    clip_grad_norm(model.parameters(), 1.0);
    adam.step();
    benchmark::DoNotOptimize(loss.raw_data());
  }
  state.counters["molecules/s"] = benchmark::Counter(static_cast<double>(state.iterations() * kMolecules),
                                                     benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ShiftTrainingStepSmall)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace larmor
