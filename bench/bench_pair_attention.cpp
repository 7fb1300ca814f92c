// CPU benchmarks for pair-biased attention (Uni-Mol block sizes, f32) and GIN message passing.
// Forward runs with grad mode off; forward+backward seeds both differentiable attention outputs (out and
// logits) so the full backward, pair gradient included, is timed. Inputs are built once per benchmark.
#include <benchmark/benchmark.h>

#include <cmath>

#include "autograd/autograd.h"
#include "engine/rng.h"
#include "kernels/ops.h"

namespace larmor {
namespace {

struct AttnInputs {
  Tensor q, k, v, bias, mask;  // (B, H, N, d) x3, (B, H, N, N), (B, N)
};

AttnInputs make_attn(int64_t B, int64_t H, int64_t N, int64_t d) {
  Rng rng(1);
  AttnInputs a{rng.uniform({B, H, N, d}), rng.uniform({B, H, N, d}), rng.uniform({B, H, N, d}),
               rng.uniform({B, H, N, N}), Tensor::ones({B, N}, DType::I32)};
  // Pad the last quarter of the atoms of every other molecule (realistic batches are ragged).
  int32_t* m = a.mask.data<int32_t>();
  for (int64_t b = 0; b < B; b += 2)
    for (int64_t i = N - N / 4; i < N; ++i) m[b * N + i] = 0;
  return a;
}

void BM_PairAttentionForward(benchmark::State& state) {
  const int64_t B = state.range(0), H = state.range(1), N = state.range(2), d = state.range(3);
  AttnInputs a = make_attn(B, H, N, d);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  NoGradGuard ng;
  for (auto _ : state) {
    PairAttentionOut o = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, scale);
    benchmark::DoNotOptimize(o.out.raw_data());
  }
  // bytes moved: q, k, v, out (B,H,N,d) + bias, logits, probs (B,H,N,N), f32
  state.SetBytesProcessed(state.iterations() * B * H * N * (4 * d + 3 * N) * 4);
}

void BM_PairAttentionForwardBackward(benchmark::State& state) {
  const int64_t B = state.range(0), H = state.range(1), N = state.range(2), d = state.range(3);
  AttnInputs a = make_attn(B, H, N, d);
  for (Tensor* t : {&a.q, &a.k, &a.v, &a.bias}) t->set_requires_grad(true);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Rng rng(2);
  Tensor w_out = rng.uniform({B, H, N, d}), w_logits = rng.uniform({B, H, N, N});
  for (auto _ : state) {
    PairAttentionOut o = pair_bias_attention(a.q, a.k, a.v, a.bias, a.mask, scale);
    std::vector<Tensor> g = grad({o.out, o.logits}, {w_out, w_logits}, {a.q, a.k, a.v, a.bias});
    benchmark::DoNotOptimize(g[3].raw_data());
  }
}

void BM_MessagePassing(benchmark::State& state, bool backward) {
  const int64_t V = state.range(0), E = state.range(1), D = state.range(2);
  Tensor src = rand_int({E}, 0, V, 3), dst = rand_int({E}, 0, V, 4);
  Graph g = build_graph(src, dst, V);
  Tensor x = rand_uniform({V, D}, -1, 1, 5), emb = rand_uniform({E, D}, -1, 1, 6);
  if (backward) {
    x.set_requires_grad(true);
    emb.set_requires_grad(true);
  }
  Tensor w = rand_uniform({V, D}, -1, 1, 7);
  for (auto _ : state) {
    if (backward) {
      Tensor out = message_passing(x, emb, g);
      std::vector<Tensor> gr = grad({out}, {w}, {x, emb});
      benchmark::DoNotOptimize(gr[0].raw_data());
    } else {
      NoGradGuard ng;
      Tensor out = message_passing(x, emb, g);
      benchmark::DoNotOptimize(out.raw_data());
    }
  }
  // forward bytes: read x[src] and emb per edge, write out (f32)
  state.SetBytesProcessed(state.iterations() * (2 * E + V) * D * 4);
}
void BM_MessagePassingForward(benchmark::State& state) { BM_MessagePassing(state, false); }
void BM_MessagePassingForwardBackward(benchmark::State& state) { BM_MessagePassing(state, true); }

BENCHMARK(BM_PairAttentionForward)->Args({16, 8, 64, 16})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_PairAttentionForwardBackward)->Args({16, 8, 64, 16})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MessagePassingForward)->Args({20000, 44000, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MessagePassingForwardBackward)->Args({20000, 44000, 128})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace larmor
