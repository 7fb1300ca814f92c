// Denoising pretraining: the noising of a ShiftBatch and the pretraining loss (see shift_pretrain.h for the
// recipe and why it is built this way). The noising is plain host code over the small (B, N) token and
// (B, N, 3) coordinate arrays; the loss composes existing ops.
#include "layers/shift_pretrain.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/philox.h"
#include "kernels/ops.h"

namespace larmor {

namespace {

constexpr int32_t kPad = 0, kCls = 1, kSep = 2;  // Uni-Mol special tokens (chem/features.h)

// Philox streams of one step: stream = step * kStreamsPerStep + purpose; element index = (row << 32) | position.
enum Purpose : uint64_t { kRounding = 0, kChoice = 1, kDecision = 2, kRandomToken = 3, kNoiseX = 4 };  // 4, 5, 6: axes
constexpr uint64_t kStreamsPerStep = 8;

[[noreturn]] void noise_fail(const std::string& what) { throw Error("noise_shift_batch: " + what); }
[[noreturn]] void loss_fail(const std::string& what) { throw Error("shift_pretrain_loss: " + what); }

std::vector<int32_t> host_ints(const Tensor& t, const char* what) {
  if (!t.defined()) noise_fail(std::string(what) + " is undefined");
  const Tensor h = t.to(Device::cpu());
  if (h.dtype() == DType::I32) return h.to_vector<int32_t>();
  if (h.dtype() == DType::I64) {
    const std::vector<int64_t> v = h.to_vector<int64_t>();
    return std::vector<int32_t>(v.begin(), v.end());
  }
  noise_fail(std::string(what) + " must be i32 or i64, got " + t.str());
}

std::vector<double> host_reals(const Tensor& t) {
  const Tensor h = t.detach().to(Device::cpu());
  if (h.dtype() == DType::F64) return h.to_vector<double>();
  const std::vector<float> v = (h.dtype() == DType::F32 ? h : h.to(DType::F32)).to_vector<float>();
  return std::vector<double>(v.begin(), v.end());
}

bool is_real_atom(int32_t token, int32_t key) { return key != 0 && token != kPad && token != kCls && token != kSep; }

// SmoothL1 with beta 1, composed: m = min(|d|, 1) = |d| - relu(|d| - 1);  0.5 m^2 + relu(|d| - 1).
Tensor smooth_l1(const Tensor& d) {
  Tensor a = abs(d);
  Tensor over = relu(add_scalar(a, -1.0));
  Tensor m = sub(a, over);
  return add(mul_scalar(square(m), 0.5), over);
}

Tensor on(const Tensor& t, Device dev, DType dt) {
  Tensor r = t.device() == dev ? t : t.to(dev);
  return r.dtype() == dt ? r : r.to(dt);
}

}  // namespace

void ShiftNoiseOptions::validate() const {
  auto fail = [](const std::string& w) { throw Error("ShiftNoiseOptions: " + w); };
  auto prob = [&](const char* name, double p) {
    if (!(p >= 0 && p <= 1)) fail(std::string(name) + " must lie in [0, 1], got " + std::to_string(p));
  };
  prob("mask_prob", mask_prob);
  prob("leave_unmasked", leave_unmasked);
  prob("random_token", random_token);
  if (!(leave_unmasked + random_token <= 1))
    fail("leave_unmasked + random_token must be <= 1, got " + std::to_string(leave_unmasked + random_token));
  if (!(coord_noise >= 0) || !std::isfinite(coord_noise))
    fail("coord_noise must be a finite value >= 0, got " + std::to_string(coord_noise));
  if (vocab_size < kFirstElementToken + 2)
    fail("vocab_size must hold the 4 specials, at least one element and [MASK], got " + std::to_string(vocab_size));
}

ShiftNoised noise_shift_batch(const ShiftBatch& clean, const ShiftNoiseOptions& o, uint64_t step) {
  o.validate();
  if (!clean.tokens.defined() || clean.tokens.dim() != 2) noise_fail("tokens must be (B, N)");
  const int64_t B = clean.batch_size(), N = clean.seq_len();
  if (!clean.coords.defined() || clean.coords.shape() != Shape{B, N, 3})
    noise_fail("coords must be " + shape_str({B, N, 3}) + ", got " + (clean.coords.defined() ? clean.coords.str() : "undefined"));
  if (!clean.key_mask.defined() || clean.key_mask.shape() != Shape{B, N})
    noise_fail("key_mask must be " + shape_str({B, N}) + ", got " + (clean.key_mask.defined() ? clean.key_mask.str() : "undefined"));
  const std::vector<int32_t> tok = host_ints(clean.tokens, "tokens");
  const std::vector<int32_t> key = host_ints(clean.key_mask, "key_mask");
  const std::vector<double> xyz = host_reals(clean.coords);  // (B, N, 3)
  const int32_t mask_token = static_cast<int32_t>(o.vocab_size - 1);
  const int64_t num_elements = o.vocab_size - 1 - kFirstElementToken;  // element tokens [4, vocab_size - 1)
  for (int64_t i = 0; i < B * N; ++i)
    if (tok[i] < 0 || tok[i] >= o.vocab_size)
      noise_fail("token " + std::to_string(tok[i]) + " at flat position " + std::to_string(i) +
                 " is outside the vocabulary [0, " + std::to_string(o.vocab_size) + ")");

  const uint64_t base = step * kStreamsPerStep;
  auto uniform = [&](uint64_t purpose, int64_t b, int64_t n) {
    return philox_uniform_f64(o.seed, base + purpose, (static_cast<uint64_t>(b) << 32) | static_cast<uint64_t>(n));
  };

  std::vector<int32_t> noised_tok = tok, selected(static_cast<size_t>(B * N), 0);
  std::vector<float> noised_xyz(xyz.begin(), xyz.end()), clean_xyz(xyz.begin(), xyz.end());
  std::vector<int64_t> sel_index, sel_target;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> atoms;  // token positions of the real atoms of row b
    for (int64_t n = 0; n < N; ++n)
      if (is_real_atom(tok[b * N + n], key[b * N + n])) atoms.push_back(n);
    if (atoms.empty()) continue;
    const double want = o.mask_prob * static_cast<double>(atoms.size()) + uniform(kRounding, b, 0);
    const size_t k = std::min(atoms.size(), static_cast<size_t>(std::floor(want)));
    // the k atoms with the smallest keys (a uniformly random k-subset), ties by position
    std::vector<std::pair<double, int64_t>> keyed;
    for (int64_t n : atoms) keyed.emplace_back(uniform(kChoice, b, n), n);
    std::partial_sort(keyed.begin(), keyed.begin() + static_cast<std::ptrdiff_t>(k), keyed.end());
    std::vector<int64_t> chosen;
    for (size_t i = 0; i < k; ++i) chosen.push_back(keyed[i].second);
    std::sort(chosen.begin(), chosen.end());
    for (int64_t n : chosen) {
      const int64_t p = b * N + n;
      selected[p] = 1;
      sel_index.push_back(p);
      sel_target.push_back(tok[p]);
      const double r = uniform(kDecision, b, n);
      if (r < o.leave_unmasked) {
        // keeps its token
      } else if (r < o.leave_unmasked + o.random_token) {
        const auto j = static_cast<int64_t>(uniform(kRandomToken, b, n) * static_cast<double>(num_elements));
        noised_tok[p] = static_cast<int32_t>(kFirstElementToken + std::min(j, num_elements - 1));
      } else {
        noised_tok[p] = mask_token;
      }
      for (uint64_t axis = 0; axis < 3; ++axis) {
        const double u = uniform(kNoiseX + axis, b, n);
        noised_xyz[p * 3 + axis] = static_cast<float>(xyz[p * 3 + axis] + o.coord_noise * (2.0 * u - 1.0));
      }
    }
  }

  // clean distances between real atoms (f64 on the host, stored as f32) and the distance-loss mask
  std::vector<float> dist(static_cast<size_t>(B * N * N), 0.0f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < N; ++i) {
      if (!is_real_atom(tok[b * N + i], key[b * N + i])) continue;
      for (int64_t j = 0; j < N; ++j) {
        if (j == i || !is_real_atom(tok[b * N + j], key[b * N + j])) continue;
        double d2 = 0;
        for (int a = 0; a < 3; ++a) {
          const double d = xyz[(b * N + i) * 3 + a] - xyz[(b * N + j) * 3 + a];
          d2 += d * d;
        }
        dist[(b * N + i) * N + j] = static_cast<float>(std::sqrt(d2));
      }
    }
  const int64_t M = static_cast<int64_t>(sel_index.size());
  std::vector<float> dmask(static_cast<size_t>(M * N), 0.0f);
  for (int64_t m = 0; m < M; ++m) {
    const int64_t b = sel_index[m] / N, i = sel_index[m] % N;
    for (int64_t j = 0; j < N; ++j)
      if (j != i && is_real_atom(tok[b * N + j], key[b * N + j])) dmask[m * N + j] = 1.0f;
  }

  ShiftNoised out;
  out.batch.tokens = Tensor::from_vector<int32_t>(noised_tok, {B, N});
  out.batch.coords = Tensor::from_vector<float>(noised_xyz, {B, N, 3});
  out.batch.key_mask = clean.key_mask.to(Device::cpu());
  if (clean.solvent.defined()) out.batch.solvent = clean.solvent.to(Device::cpu());
  out.batch.entries = clean.entries;
  out.selected = Tensor::from_vector<int32_t>(selected, {B, N});
  out.selected_index = Tensor::from_vector<int64_t>(sel_index, {M});
  out.target_tokens = Tensor::from_vector<int64_t>(sel_target, {M});
  out.clean_coords = Tensor::from_vector<float>(clean_xyz, {B, N, 3});
  out.clean_distance = Tensor::from_vector<float>(dist, {B, N, N});
  out.distance_mask = Tensor::from_vector<float>(dmask, {M, N});
  return out;
}

Tensor shift_pretrain_loss(const ShiftModel& model, const ShiftOutput& out, const ShiftNoised& nz,
                           const ShiftPretrainLossOptions& o, ShiftPretrainLossParts* parts) {
  const ShiftModelConfig& cfg = model.config();
  const int64_t B = nz.batch.batch_size(), N = nz.batch.seq_len(), D = cfg.dim, H = cfg.heads, V = cfg.vocab_size;
  if (!out.hidden.defined() || out.hidden.shape() != Shape{B, N, D})
    loss_fail("hidden must be " + shape_str({B, N, D}) + " for this batch, got " +
              (out.hidden.defined() ? out.hidden.str() : "undefined"));
  if (!out.delta_pair.defined() || out.delta_pair.shape() != Shape{B, N, N, H})
    loss_fail("delta_pair must be " + shape_str({B, N, N, H}) + " for this batch, got " +
              (out.delta_pair.defined() ? out.delta_pair.str() : "undefined"));
  if (!(o.distance_std > 0)) loss_fail("distance_std must be > 0, got " + std::to_string(o.distance_std));
  const int64_t M = nz.num_selected();
  if (M > 0 && (nz.target_tokens.numel() != M || nz.distance_mask.shape() != Shape{M, N} ||
                nz.clean_coords.shape() != Shape{B, N, 3} || nz.clean_distance.shape() != Shape{B, N, N}))
    loss_fail("targets do not match the batch (" + std::to_string(M) + " selected atoms, B " + std::to_string(B) +
              ", N " + std::to_string(N) + ")");

  ShiftPretrainLossParts local;
  ShiftPretrainLossParts& p = parts ? *parts : local;
  p = ShiftPretrainLossParts{};
  p.selected = M;
  const Device dev = out.hidden.device();
  const DType dt = out.hidden.dtype();
  Tensor total;
  auto add_term = [&](const Tensor& t, double weight) {
    if (weight == 0) return;
    Tensor w = mul_scalar(t, weight);
    total = total.defined() ? add(total, w) : w;
  };

  if (M > 0) {
    const Tensor idx = on(nz.selected_index, dev, DType::I64);  // (M)

    // masked-token cross entropy, the head run on the selected atoms only
    const std::vector<int64_t> target = nz.target_tokens.to(Device::cpu()).to_vector<int64_t>();
    std::vector<int64_t> pick(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) {
      if (target[m] < 0 || target[m] >= V)
        loss_fail("target token " + std::to_string(target[m]) + " outside the vocabulary [0, " + std::to_string(V) + ")");
      pick[m] = m * V + target[m];
    }
    ShiftOutput at_selected;
    at_selected.hidden = reshape(index_select(reshape(out.hidden, {B * N, D}), idx), {1, M, D});  // (1, M, D)
    const Tensor logits = reshape(model.token_head(at_selected), {M, V});                           // (M, V)
    const Tensor logp = index_select(reshape(log_softmax(logits), {M * V}),
                                     Tensor::from_vector<int64_t>(pick, {M}, dev));                 // (M)
    const Tensor token = neg(mean(logp));
    p.token = token.item();
    const std::vector<double> lv = host_reals(logits);
    int64_t correct = 0;
    for (int64_t m = 0; m < M; ++m) {
      const auto row = lv.begin() + m * V;
      if (std::max_element(row, row + V) - row == target[m]) ++correct;
    }
    p.token_accuracy = static_cast<double>(correct) / static_cast<double>(M);
    add_term(token, o.token_weight);

    // coordinates of the selected atoms
    const Tensor pred_xyz = index_select(reshape(model.coordinate_head(out, nz.batch), {B * N, 3}), idx);  // (M, 3)
    const Tensor true_xyz = index_select(reshape(on(nz.clean_coords, dev, dt), {B * N, 3}), idx);         // (M, 3)
    const Tensor coord = mean(smooth_l1(sub(pred_xyz, true_xyz)));
    p.coord = coord.item();
    add_term(coord, o.coord_weight);

    // distance rows of the selected atoms against the other real atoms, normalised as Uni-Mol
    const Tensor pred_d = index_select(reshape(model.distance_head(out), {B * N, N}), idx);  // (M, N)
    const Tensor true_d = mul_scalar(add_scalar(index_select(reshape(on(nz.clean_distance, dev, dt), {B * N, N}), idx),
                                                -o.distance_mean),
                                     1.0 / o.distance_std);  // (M, N)
    const std::vector<double> mask_host = host_reals(nz.distance_mask);
    const double count = std::accumulate(mask_host.begin(), mask_host.end(), 0.0);
    if (count > 0) {
      const Tensor distance =
          mul_scalar(sum(mul(smooth_l1(sub(pred_d, true_d)), on(nz.distance_mask, dev, dt))), 1.0 / count);
      p.distance = distance.item();
      add_term(distance, o.distance_weight);
    }
  }

  // delta-pair norm: per molecule the mean over its non-padding token pairs, then the mean over molecules
  if (o.pair_norm_weight != 0 && B > 0) {
    const std::vector<int32_t> key = host_ints(nz.batch.key_mask, "key_mask");
    std::vector<double> weight(static_cast<size_t>(B * N * N), 0.0);
    for (int64_t b = 0; b < B; ++b) {
      double real = 0;
      for (int64_t i = 0; i < N; ++i) real += key[b * N + i] != 0 ? 1.0 : 0.0;
      if (real == 0) continue;
      const double w = 1.0 / (real * real * static_cast<double>(B));
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j)
          if (key[b * N + i] != 0 && key[b * N + j] != 0) weight[(b * N + i) * N + j] = w;
    }
    const Tensor norm = sqrt(add_scalar(sum(square(out.delta_pair), {3}), 1e-10));                      // (B, N, N)
    const Tensor err = relu(add_scalar(abs(add_scalar(norm, -std::sqrt(static_cast<double>(H)))), -1.0));  // (B, N, N)
    const Tensor pair_norm = sum(mul(err, on(Tensor::from_vector<double>(weight, {B, N, N}), dev, dt)));
    p.pair_norm = pair_norm.item();
    add_term(pair_norm, o.pair_norm_weight);
  }

  if (!total.defined()) total = mul_scalar(sum(out.hidden), 0.0);  // nothing to compare: exact 0, zero gradients
  p.total = total.item();
  return total;
}

}  // namespace larmor
