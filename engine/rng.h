// Host-side random tensors built on the counter-based Philox generator: same (seed, stream) gives the
// same tensor on every machine and thread count. Used for parameter init and test inputs.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace larmor {

// Uniform in [lo, hi).
Tensor rand_uniform(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t stream = 0,
                    DType dtype = DType::F32, Device device = Device::cpu());
// Standard normal times std plus mean (Box-Muller on pairs of Philox uniforms).
Tensor rand_normal(const Shape& shape, double mean, double std, uint64_t seed, uint64_t stream = 0,
                   DType dtype = DType::F32, Device device = Device::cpu());
// Integers uniform in [lo, hi).
Tensor rand_int(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed, uint64_t stream = 0,
                DType dtype = DType::I32, Device device = Device::cpu());

// A small convenience generator for code that draws many tensors: each call uses a fresh stream.
class Rng {
 public:
  explicit Rng(uint64_t seed) : seed_(seed) {}
  Tensor uniform(const Shape& s, double lo = -1, double hi = 1, DType dt = DType::F32) {
    return rand_uniform(s, lo, hi, seed_, next_++, dt);
  }
  Tensor normal(const Shape& s, double mean = 0, double std = 1, DType dt = DType::F32) {
    return rand_normal(s, mean, std, seed_, next_++, dt);
  }
  Tensor integers(const Shape& s, int64_t lo, int64_t hi, DType dt = DType::I32) {
    return rand_int(s, lo, hi, seed_, next_++, dt);
  }
  double uniform_scalar(double lo = 0, double hi = 1);
  uint64_t seed() const { return seed_; }
  uint64_t next_stream() { return next_++; }

 private:
  uint64_t seed_;
  uint64_t next_ = 1;
};

}  // namespace larmor
