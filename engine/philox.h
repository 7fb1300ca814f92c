// Counter-based RNG: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11). A random number is a pure function of (seed, counter), so element i of a dropout mask or
// an init tensor is the same on CPU and GPU whatever the thread layout: no generator state to share.
// Header-only and usable from CUDA device code (LARMOR_HD).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define LARMOR_HD __host__ __device__ __forceinline__
#else
#define LARMOR_HD inline
#endif

namespace larmor {

struct Philox4 {
  uint32_t v[4];
};

LARMOR_HD uint32_t philox_mulhi(uint32_t a, uint32_t b, uint32_t* lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *lo = static_cast<uint32_t>(p);
  return static_cast<uint32_t>(p >> 32);
}

// One block of four 32-bit random words for (seed, counter), counter = (c0, c1, c2, c3).
LARMOR_HD Philox4 philox4x32_10(uint64_t seed, uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
  for (int r = 0; r < 10; ++r) {
    uint32_t lo0, lo1;
    uint32_t hi0 = philox_mulhi(0xD2511F53u, x0, &lo0);
    uint32_t hi1 = philox_mulhi(0xCD9E8D57u, x2, &lo1);
    uint32_t n0 = hi1 ^ x1 ^ k0, n1 = lo1, n2 = hi0 ^ x3 ^ k1, n3 = lo0;
    x0 = n0; x1 = n1; x2 = n2; x3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{x0, x1, x2, x3}};
}

// Uniform float in [0, 1) for element `index` of stream `stream` under `seed` (24 random bits).
LARMOR_HD float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  Philox4 r = philox4x32_10(seed, static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                            static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32));
  return static_cast<float>(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

// Uniform double in [0, 1) (53 random bits), for initialisation in f64.
LARMOR_HD double philox_uniform_f64(uint64_t seed, uint64_t stream, uint64_t index) {
  Philox4 r = philox4x32_10(seed, static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                            static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32));
  uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 21) ^ (r.v[1] >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

}  // namespace larmor
