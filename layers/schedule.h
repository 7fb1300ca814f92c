// Learning-rate schedules as pure functions of the step number: linear warmup, then constant,
// polynomial decay (fairseq/Uni-Core's polynomial_decay: power 1 = linear) or cosine decay to end_lr.
//
// `step` is the 1-based number of the update about to be taken (AdamW's step count after increment):
//   step <= warmup:             peak * step / warmup
//   warmup < step < total:      end + (peak - end) * f(progress), progress = (step - warmup) / (total - warmup)
//                               f = (1 - progress)^power (polynomial) or (1 + cos(pi progress)) / 2 (cosine)
//   step >= total:              end (constant: peak)
#pragma once
#include <cstdint>

namespace larmor {

struct LrSchedule {
  enum class Kind { Constant, Polynomial, Cosine };
  Kind kind = Kind::Polynomial;
  double peak_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // decay ends here (ignored by Constant)
  double end_lr = 0.0;
  double power = 1.0;  // polynomial only
};

// Throws a larmor::Error for an inconsistent schedule (negative values, total <= warmup for decays).
void validate(const LrSchedule& s);
double lr_at(const LrSchedule& s, int64_t step);  // step >= 1

}  // namespace larmor
