#include "layers/synthetic.h"

#include <cmath>
#include <vector>

#include "engine/rng.h"
#include "kernels/ops.h"

namespace larmor {

SyntheticClouds make_synthetic_clouds(int64_t B, int64_t N, int64_t num_types, uint64_t seed) {
  static const double type_value[] = {-1.0, 0.5, 1.5, 3.0, 0.0, 2.0, -0.5, 1.0};
  if (num_types < 1 || num_types > 8) throw Error("make_synthetic_clouds: num_types must be in [1, 8]");
  if (N < 4) throw Error("make_synthetic_clouds: N must be at least 4");
  Rng rng(seed);
  std::vector<float> xyz = rng.uniform({B, N, 3}, 0, 3).to_vector<float>();
  std::vector<int32_t> counts = rng.integers({B}, 4, N + 1).to_vector<int32_t>();
  std::vector<int32_t> types = rng.integers({B, N}, 0, num_types).to_vector<int32_t>();
  std::vector<float> dist(B * N * N), target(B * N, 0.f), maskf(B * N, 0.f);
  std::vector<int32_t> mask(B * N, 0);
  SyntheticClouds c;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N; ++i) {
      const bool real_i = i < counts[b];
      double num = 0, den = 0;
      mask[b * N + i] = real_i;
      maskf[b * N + i] = real_i ? 1.f : 0.f;
      c.real += real_i;
      if (!real_i) types[b * N + i] = 0;
      for (int64_t j = 0; j < N; ++j) {
        double d2 = 0;
        for (int k = 0; k < 3; ++k) {
          double t = xyz[(b * N + i) * 3 + k] - xyz[(b * N + j) * 3 + k];
          d2 += t * t;
        }
        double d = std::sqrt(d2);
        dist[(b * N + i) * N + j] = static_cast<float>(d);
        if (real_i && j != i && j < counts[b]) {
          num += std::exp(-d) * type_value[types[b * N + j]];
          den += std::exp(-d);
        }
      }
      if (real_i) target[b * N + i] = static_cast<float>(num / den);
    }
  }
  c.types = Tensor::from_vector<int32_t>(types, {B, N});
  c.dist = Tensor::from_vector<float>(dist, {B, N, N});
  c.mask = Tensor::from_vector<int32_t>(mask, {B, N});
  c.maskf = Tensor::from_vector<float>(maskf, {B, N});
  c.target = Tensor::from_vector<float>(target, {B, N});
  return c;
}

Tensor masked_mse(const Tensor& pred, const SyntheticClouds& d) {
  return mul_scalar(sum(mul(square(sub(pred, d.target)), d.maskf)), 1.0 / static_cast<double>(d.real));
}

double target_variance(const SyntheticClouds& d) {
  std::vector<float> t = d.target.to_vector<float>(), m = d.maskf.to_vector<float>();
  double mu = 0, var = 0;
  for (size_t i = 0; i < t.size(); ++i) mu += m[i] * t[i] / static_cast<double>(d.real);
  for (size_t i = 0; i < t.size(); ++i) var += m[i] * (t[i] - mu) * (t[i] - mu) / static_cast<double>(d.real);
  return var;
}

}  // namespace larmor
