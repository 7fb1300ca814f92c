#include "layers/schedule.h"

#include <cmath>
#include <string>

#include "engine/error.h"

namespace larmor {

void validate(const LrSchedule& s) {
  if (!(s.peak_lr >= 0) || !(s.end_lr >= 0)) throw Error("LrSchedule: peak_lr and end_lr must be >= 0");
  if (s.warmup_steps < 0) throw Error("LrSchedule: warmup_steps must be >= 0, got " + std::to_string(s.warmup_steps));
  if (s.kind != LrSchedule::Kind::Constant && s.total_steps <= s.warmup_steps)
    throw Error("LrSchedule: total_steps (" + std::to_string(s.total_steps) + ") must exceed warmup_steps (" +
                std::to_string(s.warmup_steps) + ")");
  if (s.kind == LrSchedule::Kind::Polynomial && !(s.power > 0))
    throw Error("LrSchedule: power must be > 0, got " + std::to_string(s.power));
}

double lr_at(const LrSchedule& s, int64_t step) {
  validate(s);
  if (step < 1) throw Error("lr_at: step must be >= 1 (the 1-based update number), got " + std::to_string(step));
  if (step <= s.warmup_steps) return s.peak_lr * static_cast<double>(step) / static_cast<double>(s.warmup_steps);
  if (s.kind == LrSchedule::Kind::Constant) return s.peak_lr;
  if (step >= s.total_steps) return s.end_lr;
  double progress = static_cast<double>(step - s.warmup_steps) / static_cast<double>(s.total_steps - s.warmup_steps);
  double f = s.kind == LrSchedule::Kind::Polynomial ? std::pow(1.0 - progress, s.power)
                                                    : 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress));
  return s.end_lr + (s.peak_lr - s.end_lr) * f;
}

}  // namespace larmor
