// SplitMix64 with unbiased bounded draws and a Fisher-Yates shuffle, for the samplers whose batch order must be
// a pure function of (seed, epoch) on every platform (chem/shift_data.cpp, chem/shift_pretrain.cpp):
// std::shuffle and the std distributions are library-defined, so they could change a resumed run's batches.
// Header-only and tiny; its stream is part of the exact-resume contract, so it must never change.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace larmor::chem {

struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}

  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), n > 0, by rejection (no modulo bias).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = next();
    while (r >= limit);
    return r % n;
  }

  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
};

}  // namespace larmor::chem
