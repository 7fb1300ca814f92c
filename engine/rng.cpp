#include "engine/rng.h"

#include <cmath>

#include "engine/philox.h"

namespace larmor {

Tensor rand_uniform(const Shape& shape, double lo, double hi, uint64_t seed, uint64_t stream, DType dtype,
                    Device device) {
  Tensor t = Tensor::empty(shape, dtype, Device::cpu());
  LARMOR_DISPATCH_FLOAT(dtype, "rand_uniform", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < t.numel(); ++i)
      p[i] = static_cast<scalar_t>(lo + (hi - lo) * philox_uniform_f64(seed, stream, static_cast<uint64_t>(i)));
  });
  return t.to(device);
}

Tensor rand_normal(const Shape& shape, double mean, double std, uint64_t seed, uint64_t stream, DType dtype,
                   Device device) {
  Tensor t = Tensor::empty(shape, dtype, Device::cpu());
  LARMOR_DISPATCH_FLOAT(dtype, "rand_normal", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      Philox4 r = philox4x32_10(seed, static_cast<uint32_t>(i), static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32),
                                static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32) ^ 0x5bd1e995u);
      double u1 = (static_cast<double>(r.v[0]) + 1.0) / 4294967297.0;  // (0, 1]
      double u2 = static_cast<double>(r.v[1]) / 4294967296.0;
      double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
      p[i] = static_cast<scalar_t>(mean + std * z);
    }
  });
  return t.to(device);
}

Tensor rand_int(const Shape& shape, int64_t lo, int64_t hi, uint64_t seed, uint64_t stream, DType dtype,
                Device device) {
  if (hi <= lo) throw Error("rand_int: empty range [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
  Tensor t = Tensor::empty(shape, dtype, Device::cpu());
  LARMOR_DISPATCH_INDEX(dtype, "rand_int", [&] {
    index_t* p = t.data<index_t>();
    uint64_t span = static_cast<uint64_t>(hi - lo);
    for (int64_t i = 0; i < t.numel(); ++i) {
      Philox4 r = philox4x32_10(seed, static_cast<uint32_t>(i), static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32),
                                static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32) ^ 0x1b873593u);
      uint64_t x = (static_cast<uint64_t>(r.v[0]) << 32) | r.v[1];
      p[i] = static_cast<index_t>(lo + static_cast<int64_t>(x % span));
    }
  });
  return t.to(device);
}

double Rng::uniform_scalar(double lo, double hi) {
  return lo + (hi - lo) * philox_uniform_f64(seed_, next_++, 0);
}

}  // namespace larmor
