// layers/shift_pretrain: the noising of a ShiftBatch (only real atoms are selected, the Uni-Mol fractions
// on a large batch, unselected atoms untouched, noise bounded, deterministic per (seed, step) and
// independent of padding) and the pretraining loss (equal to an independent host computation from the
// three heads' outputs, an exact 0 with nothing selected, and analytic gradients equal to finite
// differences on a tiny f64 model). Batches are built by hand, so nothing here needs the chemistry library.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/rng.h"
#include "kernels/ops.h"
#include "layers/shift_pretrain.h"
#include "tests/test_util.h"

using namespace larmor;

namespace {

constexpr int32_t kMask = 30;

using test::make_batch;  // tests/test_util.h: hand-built batches of random molecules
using test::Mol;
using test::random_mol;

std::vector<Mol> random_mols(int count, int min_atoms, int max_atoms, uint64_t seed) {
  std::vector<Mol> mols;
  for (int i = 0; i < count; ++i) {
    const uint64_t mol_seed = seed * 1000 + i;
    mols.push_back(random_mol(min_atoms + static_cast<int>((seed + 7 * i) % (max_atoms - min_atoms + 1)), mol_seed,
                              static_cast<int32_t>(mol_seed % 3)));
  }
  return mols;
}

ShiftModelConfig tiny_config() { return test::tiny_shift_config(16, 0.0); }  // no dropout

std::vector<double> f64(const Tensor& t) { return t.detach().to(Device::cpu()).to(DType::F64).to_vector<double>(); }

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  return std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

double smooth_l1(double d) { return std::fabs(d) < 1 ? 0.5 * d * d : std::fabs(d) - 0.5; }

}  // namespace

TEST_CASE("noise_shift_batch: selects only real atoms, Uni-Mol fractions, bounded noise, untouched rest") {
  const std::vector<Mol> mols = random_mols(1000, 20, 40, 3);
  const ShiftBatch clean = make_batch(mols);
  const int64_t B = clean.batch_size(), N = clean.seq_len();
  ShiftNoiseOptions o;
  o.seed = 11;
  const ShiftNoised nz = noise_shift_batch(clean, o, 5);

  const std::vector<int32_t> tok = clean.tokens.to_vector<int32_t>(), km = clean.key_mask.to_vector<int32_t>();
  const std::vector<int32_t> ntok = nz.batch.tokens.to_vector<int32_t>(), sel = nz.selected.to_vector<int32_t>();
  const std::vector<float> xyz = clean.coords.to_vector<float>(), nxyz = nz.batch.coords.to_vector<float>();
  const std::vector<int64_t> index = nz.selected_index.to_vector<int64_t>(), target = nz.target_tokens.to_vector<int64_t>();
  CHECK(same_bytes(nz.batch.key_mask, clean.key_mask));
  CHECK(same_bytes(nz.batch.solvent, clean.solvent));
  CHECK(same_bytes(nz.clean_coords, clean.coords));
  CHECK(nz.batch.entries == clean.entries);

  int64_t atoms = 0, masked = 0, kept = 0, random = 0;
  double noise_sum = 0, noise_sq = 0, noise_max = 0;
  std::vector<int64_t> expect_index;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(mols[b].tokens.size());
    int64_t chosen = 0;
    for (int64_t i = 0; i < N; ++i) {
      const int64_t p = b * N + i;
      const bool real = i >= 1 && i <= n;
      atoms += real;
      if (!real) {
        CHECK(sel[p] == 0);
        CHECK(ntok[p] == tok[p]);
      }
      if (sel[p] == 0) {
        CHECK(ntok[p] == tok[p]);
        for (int k = 0; k < 3; ++k) CHECK(nxyz[p * 3 + k] == xyz[p * 3 + k]);  // bit-identical
        continue;
      }
      ++chosen;
      expect_index.push_back(p);
      if (ntok[p] == kMask) ++masked;
      else if (ntok[p] == tok[p]) ++kept;
      else {
        ++random;
        CHECK(ntok[p] >= 4);
        CHECK(ntok[p] < kMask);
      }
      for (int k = 0; k < 3; ++k) {
        const double d = static_cast<double>(nxyz[p * 3 + k]) - xyz[p * 3 + k];
        noise_sum += d;
        noise_sq += d * d;
        noise_max = std::max(noise_max, std::fabs(d));
      }
    }
    // Uni-Mol's count: floor(0.15 n + u), u in [0, 1)
    CHECK(chosen >= static_cast<int64_t>(std::floor(0.15 * n)));
    CHECK(chosen <= static_cast<int64_t>(std::floor(0.15 * n)) + 1);
  }
  REQUIRE(index == expect_index);
  for (size_t m = 0; m < index.size(); ++m) CHECK(target[m] == tok[index[m]]);
  const double M = static_cast<double>(index.size());
  CHECK(std::fabs(M / static_cast<double>(atoms) - 0.15) < 0.005);
  CHECK(std::fabs(masked / M - 0.90) < 0.02);
  // a random token equal to the original counts as kept: expected 0.05 + 0.05 / 26 and 0.05 * 25 / 26
  CHECK(std::fabs(kept / M - (0.05 + 0.05 / 26)) < 0.015);
  CHECK(std::fabs(random / M - 0.05 * 25 / 26) < 0.015);
  // uniform in [-1, 1]: mean 0, variance 1/3
  CHECK(noise_max <= 1.0 + 1e-6);
  CHECK(std::fabs(noise_sum / (3 * M)) < 0.03);
  CHECK(std::fabs(noise_sq / (3 * M) - 1.0 / 3) < 0.02);

  // targets: clean distances between real atoms and the mask of the distance rows, against a direct computation
  const std::vector<float> dist = nz.clean_distance.to_vector<float>(), dmask = nz.distance_mask.to_vector<float>();
  REQUIRE(nz.distance_mask.shape() == Shape{static_cast<int64_t>(M), N});
  for (int64_t b : {int64_t{0}, int64_t{17}, B - 1}) {
    const int64_t n = static_cast<int64_t>(mols[b].tokens.size());
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double want = 0;
        if (i >= 1 && i <= n && j >= 1 && j <= n) {
          for (int k = 0; k < 3; ++k) want += std::pow(mols[b].xyz[(i - 1) * 3 + k] - mols[b].xyz[(j - 1) * 3 + k], 2);
          want = std::sqrt(want);
        }
        CHECK(dist[(b * N + i) * N + j] == doctest::Approx(want).epsilon(1e-5));
      }
  }
  for (size_t m = 0; m < index.size(); m += 97) {
    const int64_t b = index[m] / N, i = index[m] % N, n = static_cast<int64_t>(mols[b].tokens.size());
    for (int64_t j = 0; j < N; ++j) CHECK(dmask[m * N + j] == ((j != i && j >= 1 && j <= n) ? 1.0f : 0.0f));
  }
}

TEST_CASE("noise_shift_batch: deterministic per (seed, step), independent of padding, options respected") {
  const std::vector<Mol> mols = random_mols(40, 5, 25, 8);
  const ShiftBatch clean = make_batch(mols);
  ShiftNoiseOptions o;
  o.seed = 3;
  const ShiftNoised a = noise_shift_batch(clean, o, 7), b = noise_shift_batch(clean, o, 7);
  CHECK(same_bytes(a.batch.tokens, b.batch.tokens));
  CHECK(same_bytes(a.batch.coords, b.batch.coords));
  CHECK(same_bytes(a.selected_index, b.selected_index));
  const ShiftNoised c = noise_shift_batch(clean, o, 8);
  CHECK_FALSE(same_bytes(a.selected, c.selected));
  o.seed = 4;
  const ShiftNoised d = noise_shift_batch(clean, o, 7);
  CHECK_FALSE(same_bytes(a.selected, d.selected));

  // the same molecules padded to a longer N get the same noise
  o.seed = 3;
  const ShiftBatch padded = make_batch(mols, clean.seq_len() + 6);
  const ShiftNoised e = noise_shift_batch(padded, o, 7);
  const int64_t N = clean.seq_len(), N2 = padded.seq_len();
  const std::vector<int32_t> ta = a.batch.tokens.to_vector<int32_t>(), te = e.batch.tokens.to_vector<int32_t>();
  const std::vector<float> xa = a.batch.coords.to_vector<float>(), xe = e.batch.coords.to_vector<float>();
  for (int64_t r = 0; r < clean.batch_size(); ++r)
    for (int64_t i = 0; i < N; ++i) {
      CHECK(ta[r * N + i] == te[r * N2 + i]);
      for (int k = 0; k < 3; ++k) CHECK(xa[(r * N + i) * 3 + k] == xe[(r * N2 + i) * 3 + k]);
    }

  // mask_prob 1, no leave/random, 0.25 Å: every real atom masked, noise within 0.25
  ShiftNoiseOptions all;
  all.mask_prob = 1.0;
  all.leave_unmasked = all.random_token = 0;
  all.coord_noise = 0.25;
  const ShiftNoised f = noise_shift_batch(clean, all, 0);
  int64_t atoms = 0;
  for (const Mol& m : mols) atoms += static_cast<int64_t>(m.tokens.size());
  CHECK(f.num_selected() == atoms);
  for (int32_t t : f.batch.tokens.to_vector<int32_t>()) CHECK((t == kMask || t <= 2));
  const std::vector<float> xc = clean.coords.to_vector<float>(), xf = f.batch.coords.to_vector<float>();
  for (size_t i = 0; i < xc.size(); ++i) CHECK(std::fabs(xf[i] - xc[i]) <= 0.25 + 1e-6);

  ShiftNoiseOptions bad;
  bad.leave_unmasked = 0.7;
  bad.random_token = 0.5;
  CHECK_THROWS_WITH_AS(noise_shift_batch(clean, bad, 0), doctest::Contains("leave_unmasked + random_token"), Error);
  bad = ShiftNoiseOptions{};
  bad.mask_prob = 1.5;
  CHECK_THROWS_WITH_AS(noise_shift_batch(clean, bad, 0), doctest::Contains("mask_prob"), Error);
  bad = ShiftNoiseOptions{};
  bad.vocab_size = 10;  // token 14 (P) is outside
  CHECK_THROWS_WITH_AS(noise_shift_batch(clean, bad, 0), doctest::Contains("outside the vocabulary"), Error);
}

TEST_CASE("shift_pretrain_loss: equals a host computation from the heads; nothing selected gives exact 0") {
  ShiftModelConfig cfg = tiny_config();
  ShiftModel model(cfg, 21);
  model.eval();
  const ShiftBatch clean = make_batch(random_mols(6, 6, 14, 5));
  ShiftNoiseOptions no;
  no.mask_prob = 0.3;
  const ShiftNoised nz = noise_shift_batch(clean, no, 1);
  const int64_t B = clean.batch_size(), N = clean.seq_len(), V = cfg.vocab_size, H = cfg.heads;
  const int64_t M = nz.num_selected();
  REQUIRE(M >= 5);
  ShiftPretrainLossOptions lo;
  ShiftPretrainLossParts parts;
  const ShiftOutput out = model.forward(nz.batch);
  const double loss = shift_pretrain_loss(model, out, nz, lo, &parts).item();

  // reference: the heads on the full output, then plain loops in f64
  const std::vector<double> logits = f64(model.token_head(out)), xyz = f64(model.coordinate_head(out, nz.batch)),
                            dist = f64(model.distance_head(out)), dp = f64(out.delta_pair);
  const std::vector<double> clean_xyz = f64(clean.coords), clean_d = f64(nz.clean_distance);
  const std::vector<int64_t> index = nz.selected_index.to_vector<int64_t>(), target = nz.target_tokens.to_vector<int64_t>();
  const std::vector<int32_t> tok = clean.tokens.to_vector<int32_t>(), km = clean.key_mask.to_vector<int32_t>();
  double ce = 0, coord = 0, d_sum = 0, d_n = 0;
  int64_t correct = 0;
  for (int64_t m = 0; m < M; ++m) {
    const int64_t p = index[m], b = p / N, i = p % N;
    const double* row = &logits[p * V];
    const double mx = *std::max_element(row, row + V);
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(row[v] - mx);
    ce += -(row[target[m]] - mx - std::log(z));
    correct += (std::max_element(row, row + V) - row) == target[m];
    for (int k = 0; k < 3; ++k) coord += smooth_l1(xyz[p * 3 + k] - clean_xyz[p * 3 + k]);
    for (int64_t j = 0; j < N; ++j) {
      const int32_t t = tok[b * N + j];
      if (j == i || km[b * N + j] == 0 || t <= 2) continue;
      d_sum += smooth_l1(dist[p * N + j] - (clean_d[p * N + j] - lo.distance_mean) / lo.distance_std);
      d_n += 1;
    }
  }
  ce /= static_cast<double>(M);
  coord /= static_cast<double>(3 * M);
  const double distance = d_sum / d_n;
  double pair_norm = 0;
  for (int64_t b = 0; b < B; ++b) {
    double acc = 0, cnt = 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < N; ++j) {
        if (km[b * N + i] == 0 || km[b * N + j] == 0) continue;
        double s = 0;
        for (int64_t h = 0; h < H; ++h) s += std::pow(dp[((b * N + i) * N + j) * H + h], 2);
        acc += std::max(0.0, std::fabs(std::sqrt(s + 1e-10) - std::sqrt(static_cast<double>(H))) - 1.0);
        cnt += 1;
      }
    pair_norm += acc / cnt / static_cast<double>(B);
  }
  CHECK(parts.selected == M);
  CHECK(parts.token == doctest::Approx(ce).epsilon(1e-4));
  CHECK(parts.token_accuracy == doctest::Approx(static_cast<double>(correct) / static_cast<double>(M)));
  CHECK(parts.coord == doctest::Approx(coord).epsilon(1e-4));
  CHECK(parts.distance == doctest::Approx(distance).epsilon(1e-4));
  CHECK(parts.pair_norm == doctest::Approx(pair_norm).epsilon(1e-4));
  CHECK(loss == doctest::Approx(ce + 5 * coord + 10 * distance + 0.01 * pair_norm).epsilon(1e-4));
  CHECK(parts.total == doctest::Approx(loss));
  CHECK(std::isfinite(loss));
  CHECK(ce > 0);

  // nothing selected and no norm term: an exact 0 that backpropagates zero gradients
  ShiftNoiseOptions none;
  none.mask_prob = 0;
  const ShiftNoised z = noise_shift_batch(clean, none, 1);
  CHECK(z.num_selected() == 0);
  CHECK(same_bytes(z.batch.tokens, clean.tokens));
  lo.pair_norm_weight = 0;
  model.train();
  Tensor zl = shift_pretrain_loss(model, model.forward(z.batch), z, lo, &parts);
  CHECK(zl.item() == 0.0);
  zl.backward();
  for (auto& [name, p] : model.named_parameters())
    if (p.grad().defined())
      for (double g : f64(p.grad())) REQUIRE_MESSAGE(g == 0.0, name);
}

TEST_CASE("shift_pretrain_loss: analytic gradients match finite differences (f64)") {
  ShiftModelConfig cfg = tiny_config();
  ShiftModel model(cfg, 33, DType::F64);
  ShiftNoiseOptions no;
  no.mask_prob = 0.4;
  const ShiftNoised nz = noise_shift_batch(make_batch({random_mol(7, 41, 2), random_mol(5, 42, 0)}), no, 2);
  REQUIRE(nz.num_selected() >= 2);
  auto loss_value = [&] {
    NoGradGuard ng;
    return shift_pretrain_loss(model, model.forward(nz.batch), nz).item();
  };
  shift_pretrain_loss(model, model.forward(nz.batch), nz).backward();
  auto st = model.state_dict();
  int checked = 0;
  for (const char* name : {"tokens.weight", "edge_mul.weight", "gbf_mean", "gbf_fc1.weight", "layers.0.qkv.weight",
                           "layers.1.fc2.bias", "final_ln.weight", "coord_fc1.weight", "coord_fc2.weight",
                           "dist_fc1.weight", "dist_ln.weight", "dist_fc2.bias", "mlm_fc.weight", "mlm_ln.bias",
                           "mlm_bias"}) {
    Tensor p = st.at(name);
    REQUIRE_MESSAGE(p.grad().defined(), name);
    std::vector<double> g = p.grad().to_vector<double>();
    for (size_t e : test::largest_gradient_entries(g, 3)) {
      const double fd = test::central_difference(p.data<double>() + e, loss_value);
      CHECK_MESSAGE(std::fabs(fd - g[e]) <= 1e-5 + 1e-4 * std::fabs(g[e]),
                    name << "[" << e << "]: analytic " << g[e] << " vs numeric " << fd);
      ++checked;
    }
  }
  CHECK(checked >= 40);
}
