// Denoising pretraining of the shift model's backbone (Uni-Mol's recipe, MODELS.md §3 "Pretraining
// recipe"), on unlabelled molecules: corrupt some atoms of a clean ShiftBatch, then ask the model to
// restore their element (masked-token head), their coordinates (coordinate head) and the distances from
// them to every other atom (distance head).
//
//   noising, per molecule with n real atoms (never [CLS]/[SEP]/padding):
//     select floor(mask_prob * n + u) atoms, u ~ U[0, 1)  (Uni-Mol's stochastic rounding: 15 % on average)
//     each selected atom: with prob. leave_unmasked keeps its token, with prob. random_token gets a random
//     atom token (uniform over the element tokens, specials and [MASK] excluded), otherwise [MASK];
//     every selected atom's coordinates get uniform noise in [-coord_noise, +coord_noise] Å per axis.
//   loss = token_weight    * CE(token logits at selected atoms, original tokens)
//        + coord_weight    * SmoothL1(coordinate head at selected atoms, clean coordinates)
//        + distance_weight * SmoothL1(distance head rows of selected atoms, (d_clean - 6.3126) / 3.3899)
//                            over the columns of the other real atoms of the molecule
//        + pair_norm_weight * mean_molecules masked_mean_pairs relu(| ||delta_pair_ij|| - sqrt(H) | - 1)
//   SmoothL1 is beta = 1 (0.5 d^2 below 1, |d| - 0.5 above), averaged over the compared elements.
//
// Why it is built this way:
//   - Only the data changes between pretraining and fine-tuning: the same ShiftModel and ShiftBatch are
//     used, the noising is a pure function of (batch, seed, step) on the host (Philox counters keyed by
//     (row, token position), so the noise of a molecule does not depend on how much its batch is padded),
//     and the loss is a composition of existing differentiable ops (log_softmax, index_select, abs, relu),
//     so both backends and autograd come for free and a resumed run re-draws identical noise.
//   - Uni-Mol's second auxiliary loss, x_norm (the norm of the hidden states before the final LayerNorm),
//     is not included: ShiftOutput exposes the hidden states only after that LayerNorm. The delta-pair
//     norm loss is included (weight 0.01 as Uni-Mol).
//   - A batch in which no atom was selected (possible for tiny molecules: floor(0.15 n + u) can be 0) gives
//     an exact-zero reconstruction loss that still backpropagates, never NaN.
#pragma once
#include <cstdint>

#include "engine/tensor.h"
#include "layers/shift_batch.h"
#include "layers/shift_model.h"

namespace larmor {

struct ShiftNoiseOptions {
  double mask_prob = 0.15;       // fraction of real atoms selected (in expectation)
  double leave_unmasked = 0.05;  // of the selected: keep their token
  double random_token = 0.05;    // of the selected: a random element token
  double coord_noise = 1.0;      // Å, uniform in [-coord_noise, +coord_noise] per axis, selected atoms only
  uint64_t seed = 1;
  int64_t vocab_size = 31;       // Uni-Mol dict + [MASK]; [MASK] = vocab_size - 1, element tokens 4 .. vocab_size - 2
  void validate() const;         // throws larmor::Error naming the bad field
};

inline constexpr int32_t kFirstElementToken = 4;  // after [PAD] [CLS] [SEP] [UNK] (chem/features.h)

// A noised batch and what the model must restore. All tensors on the CPU.
struct ShiftNoised {
  ShiftBatch batch;        // noised tokens and coordinates; key_mask, solvent, entries copied; no shift targets
  Tensor selected;         // (B, N) i32: 1 at the selected atoms
  Tensor selected_index;   // (M) i64: flat positions b * N + n of the selected atoms, ascending
  Tensor target_tokens;    // (M) i64: their original tokens
  Tensor clean_coords;     // (B, N, 3) f32: the input coordinates
  Tensor clean_distance;   // (B, N, N) f32: distances between real atoms of the input; 0 for every other pair
  Tensor distance_mask;    // (M, N) f32: 1 where column j is another real atom of the selected atom's molecule
  int64_t num_selected() const { return selected_index.defined() ? selected_index.numel() : 0; }
};

// Pure function of (clean batch, options, step). Throws larmor::Error on a malformed batch (shapes, a token
// outside the vocabulary).
ShiftNoised noise_shift_batch(const ShiftBatch& clean, const ShiftNoiseOptions& options, uint64_t step);

struct ShiftPretrainLossOptions {
  double token_weight = 1.0;
  double coord_weight = 5.0;
  double distance_weight = 10.0;
  double pair_norm_weight = 0.01;
  double distance_mean = 6.312581655;  // Uni-Mol losses/unimol.py
  double distance_std = 3.389926466;
};

// Parts for logging: each term unweighted (mean per compared element), 0 when it has nothing to compare.
struct ShiftPretrainLossParts {
  double total = 0;
  double token = 0;           // cross entropy (nats)
  double token_accuracy = 0;  // fraction of selected atoms whose argmax logit is the original token
  double coord = 0;           // SmoothL1, Å
  double distance = 0;        // SmoothL1, normalised units
  double pair_norm = 0;
  int64_t selected = 0;       // M
};

// Scalar loss (model dtype) of the pretraining heads on a forward of noised.batch.
Tensor shift_pretrain_loss(const ShiftModel& model, const ShiftOutput& out, const ShiftNoised& noised,
                           const ShiftPretrainLossOptions& options = {}, ShiftPretrainLossParts* parts = nullptr);

}  // namespace larmor
