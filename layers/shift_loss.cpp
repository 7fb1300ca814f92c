// The shift training loss (see shift_loss.h). A thin composition: slice -> reshape -> index_select ->
// sorted_set_loss, all existing differentiable ops.
#include "layers/shift_loss.h"

#include <string>

namespace larmor {

namespace {

void check_targets(const ShiftTargets& t, const char* kind, int nucleus) {
  auto fail = [&](const std::string& what) {
    throw Error(std::string("shift_loss: ") + kind + " targets of nucleus " + std::to_string(nucleus) + ": " + what);
  };
  if (!t.index.defined() || !t.target.defined() || !t.offsets.defined())
    fail("index, target and offsets must all be defined");
  if (t.index.dim() != 1 || t.target.dim() != 1 || t.offsets.dim() != 1)
    fail("index " + t.index.str() + ", target " + t.target.str() + " and offsets " + t.offsets.str() + " must be 1-D");
  if (t.index.numel() != t.target.numel())
    fail("index " + t.index.str() + " and target " + t.target.str() + " differ in length");
  if (t.offsets.numel() < 1) fail("offsets must have at least one entry");
}

}  // namespace

Tensor gather_shift_predictions(const ShiftOutput& out, const ShiftTargets& targets, int nucleus) {
  if (!out.shifts.defined() || out.shifts.dim() != 3 || out.shifts.size(2) != kShiftNuclei)
    throw Error("shift_loss: shifts must be (B, N, 4), got " + (out.shifts.defined() ? out.shifts.str() : "undefined"));
  if (nucleus < 0 || nucleus >= kShiftNuclei) throw Error("shift_loss: nucleus " + std::to_string(nucleus) + " out of range");
  const int64_t BN = out.shifts.size(0) * out.shifts.size(1);
  Tensor col = reshape(slice(out.shifts, 2, nucleus, nucleus + 1), {BN});  // (B*N)
  Tensor idx = targets.index.device() == col.device() ? targets.index : targets.index.to(col.device());
  return index_select(col, idx);  // (T)
}

Tensor shift_loss(const ShiftOutput& out, const ShiftBatch& batch, const ShiftLossOptions& options, ShiftLossParts* parts) {
  if (!out.shifts.defined()) throw Error("shift_loss: the output has no shifts");
  if (options.kind == SetLossKind::Huber && !(options.huber_delta > 0))
    throw Error("shift_loss: huber_delta must be > 0, got " + std::to_string(options.huber_delta));
  if (!(options.unassigned_weight >= 0))
    throw Error("shift_loss: unassigned_weight must be >= 0, got " + std::to_string(options.unassigned_weight));
  ShiftLossParts local;
  ShiftLossParts& p = parts ? *parts : local;
  p = ShiftLossParts{};
  const Device dev = out.shifts.device();
  const DType dt = out.shifts.dtype();
  Tensor total;

  auto term = [&](const ShiftTargets& t, int n, const char* kind, double weight, double* value, int64_t* count) {
    if (t.size() == 0) return;
    check_targets(t, kind, n);
    *count = t.size();
    if (!out.has_head[n] || weight == 0) return;
    Tensor pred = gather_shift_predictions(out, t, n);  // (T)
    Tensor target = t.target.to(dev);
    if (target.dtype() != dt) target = target.to(dt);
    Tensor offsets = t.offsets.to(dev);
    Tensor l = sorted_set_loss(pred, target, offsets, options.kind, options.huber_delta, Reduction::Mean);  // ()
    *value = l.item();
    Tensor wl = mul_scalar(l, weight);
    total = total.defined() ? add(total, wl) : wl;
  };

  for (int n = 0; n < kShiftNuclei; ++n) {
    double w = options.nucleus_weight[n];
    term(batch.assigned[n], n, "assigned", w, &p.assigned[n], &p.assigned_count[n]);
    term(batch.unassigned[n], n, "unassigned", w * options.unassigned_weight, &p.unassigned[n], &p.unassigned_count[n]);
  }
  if (!total.defined()) total = mul_scalar(sum(out.shifts), 0.0);  // exact 0 that still backpropagates
  p.total = total.item();
  return total;
}

}  // namespace larmor
