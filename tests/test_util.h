// Small helpers shared by the test files: a self-removing temporary directory, whole-file reads, the message of a thrown Error, tensor
// comparisons and the two halves of a finite-difference gradient check, and a tiny shift-model config and
// hand-built batches of random molecules (the layer tests of the shift model and of its pretraining build
// their batches without the chemistry library; bench/bench_shift_step.cpp builds its batch the same way).
// No doctest here, so a benchmark can include it too: the checks stay in the test files.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "layers/shift_batch.h"
#include "layers/shift_model.h"

namespace larmor::test {

// A fresh directory under the system temp dir, named after `tag` and the process, removed with its contents.
struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& tag) {
    dir = std::filesystem::temp_directory_path() / ("larmor_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (dir / name).string(); }
  // file(name), emptied first (a run's output folder that must not hold an earlier run's files).
  std::string fresh(const std::string& name) const {
    std::filesystem::remove_all(dir / name);
    return file(name);
  }
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The message of the larmor::Error that `fn` throws, or "" when it throws none.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The tensor's values as doubles, whatever its dtype.
inline std::vector<double> to_f64(const Tensor& t) { return t.to(DType::F64).to_vector<double>(); }

// Largest |a[i] - b[i]|; infinity when the lengths differ, so any tolerance check on it fails.
inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline bool all_finite(const Tensor& t) {
  for (double v : to_f64(t))
    if (!std::isfinite(v)) return false;
  return true;
}

// Indices of the (up to) k entries of a gradient with the largest magnitude, largest first: the entries a
// finite-difference check probes, well away from 0.
inline std::vector<size_t> largest_gradient_entries(const std::vector<double>& grad, size_t k) {
  std::vector<size_t> order(grad.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return std::fabs(grad[i]) > std::fabs(grad[j]); });
  order.resize(std::min(k, order.size()));
  return order;
}

// (loss(w + h) - loss(w - h)) / 2h for one parameter entry *w of an f64 model; *w is restored afterwards.
template <typename LossFn>
double central_difference(double* w, LossFn&& loss, double h = 1e-6) {
  const double w0 = *w;
  *w = w0 + h;
  const double lp = loss();
  *w = w0 - h;
  const double lm = loss();
  *w = w0;
  return (lp - lm) / (2 * h);
}

// A 2-layer shift model of width `dim` (4 heads, FFN 2 * dim, dim / 2 distance kernels) that the tests
// train or probe in milliseconds; `dropout` on the embedding and on the residual branches.
inline ShiftModelConfig tiny_shift_config(int64_t dim, double dropout) {
  ShiftModelConfig c;
  c.layers = 2;
  c.dim = dim;
  c.heads = 4;
  c.ffn = 2 * dim;
  c.kernels = dim / 2;
  c.emb_dropout = dropout;
  c.dropout = dropout;
  return c;
}

// A molecule as the shift-model tests build batches from: Uni-Mol tokens (C 4, N 5, O 6, H 8, F 10, P 14).
struct Mol {
  std::vector<int32_t> tokens;  // atoms only
  std::vector<double> xyz;      // (n, 3)
  int32_t solvent = 0;
  // Optional chemistry inputs (layers/shift_batch.h encodings), atoms only: (n, kShiftAtomFeatures) table
  // rows and (n, n) pair types. make_batch fills ShiftBatch::atom_features / pair_types when every
  // molecule has them.
  std::vector<int32_t> feats;
  std::vector<int32_t> pairs;
};

// Random but valid chemistry inputs for m: a value per feature field, symmetric pair types with 1 on the
// diagonal.
inline void add_random_chem(Mol& m, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(m.tokens.size());
  const int field_rows[kShiftAtomFeatures] = {6, 2, 2, 5, 5};  // values per field (row 0 is "not an atom")
  Rng rng(seed);
  std::vector<int32_t> r = rng.integers({n * kShiftAtomFeatures + n * n}, 0, 1000).to_vector<int32_t>();
  m.feats.assign(n * kShiftAtomFeatures, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < kShiftAtomFeatures; ++k)
      m.feats[i * kShiftAtomFeatures + k] = kShiftAtomFeatureOffsets[k] + 1 + r[i * kShiftAtomFeatures + k] % field_rows[k];
  m.pairs.assign(n * n, 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      m.pairs[i * n + j] = m.pairs[j * n + i] = 2 + r[n * kShiftAtomFeatures + i * n + j] % (kShiftPairTypes - 2);
}

// n atoms drawn from a C-heavy pool, coordinates uniform in [-2.5, 2.5) Å, the given solvent class.
inline Mol random_mol(int n, uint64_t seed, int32_t solvent = 0) {
  Rng rng(seed);
  const int32_t pool[] = {4, 4, 4, 5, 6, 8, 8, 8, 10, 14};
  Mol m;
  for (int32_t i : rng.integers({n}, 0, 10).to_vector<int32_t>()) m.tokens.push_back(pool[i]);
  m.xyz = rng.uniform({n, 3}, -2.5, 2.5, DType::F64).to_vector<double>();
  m.solvent = solvent;
  return m;
}

// [CLS] atoms [SEP] [PAD]...; N = max atoms + 2 (or more with min_len).
inline ShiftBatch make_batch(const std::vector<Mol>& mols, int64_t min_len = 0) {
  const int64_t B = static_cast<int64_t>(mols.size());
  int64_t N = min_len;
  for (auto& m : mols) N = std::max<int64_t>(N, static_cast<int64_t>(m.tokens.size()) + 2);
  std::vector<int32_t> tok(B * N, 0), km(B * N, 0), solv(B);  // (B, N), (B, N), (B)
  std::vector<float> xyz(B * N * 3, 0.f);                     // (B, N, 3)
  for (int64_t b = 0; b < B; ++b) {
    const Mol& m = mols[b];
    const int64_t n = static_cast<int64_t>(m.tokens.size());
    tok[b * N] = 1;
    km[b * N] = 1;
    for (int64_t i = 0; i < n; ++i) {
      tok[b * N + 1 + i] = m.tokens[i];
      km[b * N + 1 + i] = 1;
      for (int k = 0; k < 3; ++k) xyz[(b * N + 1 + i) * 3 + k] = static_cast<float>(m.xyz[i * 3 + k]);
    }
    tok[b * N + n + 1] = 2;
    km[b * N + n + 1] = 1;
    solv[b] = m.solvent;
  }
  ShiftBatch batch;
  batch.tokens = Tensor::from_vector<int32_t>(tok, {B, N});
  batch.coords = Tensor::from_vector<float>(xyz, {B, N, 3});
  batch.key_mask = Tensor::from_vector<int32_t>(km, {B, N});
  batch.solvent = Tensor::from_vector<int32_t>(solv, {B});
  for (int64_t b = 0; b < B; ++b) batch.entries.push_back(b);
  bool chem = true;
  for (auto& m : mols) chem = chem && !m.feats.empty() && !m.pairs.empty();
  if (chem) {
    const int64_t F = kShiftAtomFeatures;
    std::vector<int32_t> feats(B * N * F), pairs(B * N * N, 0);  // (B, N, F), (B, N, N)
    for (int64_t t = 0; t < B * N; ++t)
      for (int64_t k = 0; k < F; ++k) feats[t * F + k] = kShiftAtomFeatureOffsets[k];
    for (int64_t b = 0; b < B; ++b) {
      const Mol& m = mols[b];
      const int64_t n = static_cast<int64_t>(m.tokens.size());
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t k = 0; k < F; ++k) feats[(b * N + 1 + i) * F + k] = m.feats[i * F + k];
        for (int64_t j = 0; j < n; ++j) pairs[(b * N + 1 + i) * N + 1 + j] = m.pairs[i * n + j];
      }
    }
    batch.atom_features = Tensor::from_vector<int32_t>(feats, {B, N, F});
    batch.pair_types = Tensor::from_vector<int32_t>(pairs, {B, N, N});
  }
  return batch;
}

}  // namespace larmor::test
