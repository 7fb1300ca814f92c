// The shift training loss (NMRNet++, MODELS.md §1c), per nucleus n with weight w_n:
//
//   L = sum_n w_n * [ mean over assigned predictions of l(s - ŝ)                       (atom level)
//                   + lambda * mean over unassigned predictions of l(sort(s) - sort(ŝ)) ] (set level)
//
// Both terms are the sorted_set_loss op on the batch's segments (ShiftBatch: a size-1 segment is plain
// L1/Huber; a 1H segment of diastereotopic H is matched as a set), with l = L1 or Huber, in standardised
// units. Predictions are gathered from the (B, N, 4) output as one column, flattened to (B*N), and
// index_select'ed at the flat token positions. A nucleus or term with no targets in the batch (or no head
// in the model, or weight 0) is skipped, so an empty batch gives an exact 0 that still backpropagates
// (zero gradients), never NaN.
#pragma once
#include <array>
#include <cstdint>

#include "kernels/ops.h"
#include "layers/shift_batch.h"
#include "layers/shift_model.h"

namespace larmor {

struct ShiftLossOptions {
  SetLossKind kind = SetLossKind::L1;  // L1 or Huber (Squared also works)
  double huber_delta = 1.0;            // in standardised units
  double unassigned_weight = 16.0;     // lambda (paper: 16)
  std::array<double, kShiftNuclei> nucleus_weight{1.0, 1.0, 1.0, 1.0};
};

// Loss parts for logging: mean per-prediction loss of each term (0 when the term is empty) and the number
// of compared predictions behind it.
struct ShiftLossParts {
  double total = 0;
  std::array<double, kShiftNuclei> assigned{};
  std::array<double, kShiftNuclei> unassigned{};
  std::array<int64_t, kShiftNuclei> assigned_count{};
  std::array<int64_t, kShiftNuclei> unassigned_count{};
};

// Scalar loss (model dtype). Throws larmor::Error on inconsistent targets (lengths, offsets, indices).
Tensor shift_loss(const ShiftOutput& out, const ShiftBatch& batch, const ShiftLossOptions& options,
                  ShiftLossParts* parts = nullptr);

// The compared predictions of one target set: out.shifts[..., nucleus] at targets.index -> (T).
Tensor gather_shift_predictions(const ShiftOutput& out, const ShiftTargets& targets, int nucleus);

}  // namespace larmor
