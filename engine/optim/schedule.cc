// engine/optim/schedule.cc: LrSchedule::at.
#include "engine/optim/schedule.h"

#include <cmath>

namespace engine::optim {

float LrSchedule::at(int step) const {
  const double min_lr = static_cast<double>(max_lr) * final_fraction;
  if (step < warmup_steps) return static_cast<float>(static_cast<double>(max_lr) * (step + 1) / warmup_steps);
  if (step >= total_steps) return static_cast<float>(min_lr);
  const int decay_steps = total_steps - warmup_steps;
  if (decay_steps <= 0) return static_cast<float>(min_lr);
  const double ratio = static_cast<double>(step - warmup_steps) / decay_steps;  // 0 .. 1
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));                     // 1 .. 0
  return static_cast<float>(min_lr + coeff * (static_cast<double>(max_lr) - min_lr));
}

}  // namespace engine::optim
