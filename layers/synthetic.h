// A synthetic per-atom regression task on random padded 3-D point clouds, used by the demo and the
// end-to-end tests to show the pair-attention stack learning geometry before real molecules arrive.
//
// Clouds of 4..N atoms in a 3 Å box with random types; per-atom target: a distance-weighted average of
// a per-type value over the other atoms, sum_j exp(-d_ij) c[t_j] / sum_j exp(-d_ij) (j != i, real).
// It depends on geometry and types together and is exactly expressible by one pair-biased attention
// head (bias = -d, value = c[type]), so a working encoder must also generalise to unseen clouds.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace larmor {

struct SyntheticClouds {
  Tensor types;   // (B, N) i32
  Tensor dist;    // (B, N, N) f32
  Tensor mask;    // (B, N) i32, 1 = real atom
  Tensor maskf;   // (B, N) f32
  Tensor target;  // (B, N) f32, 0 on padding
  int64_t real = 0;  // number of real atoms
};

SyntheticClouds make_synthetic_clouds(int64_t B, int64_t N, int64_t num_types, uint64_t seed);  // num_types <= 8

// Mean squared error over real atoms: pred (B, N).
Tensor masked_mse(const Tensor& pred, const SyntheticClouds& d);
// Variance of the target over real atoms (the loss of predicting the mean).
double target_variance(const SyntheticClouds& d);

}  // namespace larmor
