// engine/optim/schedule.h: learning-rate schedule, linear warmup then cosine decay to a final fraction.
#pragma once

namespace engine::optim {

struct LrSchedule {
  float max_lr = 6e-4f;
  int warmup_steps = 0;
  int total_steps = 1;
  float final_fraction = 0.0f;  // the lr at total_steps (and after) is max_lr * final_fraction

  // step counts from 0. Warmup: max_lr * (step + 1) / warmup_steps; then cosine from max_lr to the final lr.
  float at(int step) const;
};

}  // namespace engine::optim
