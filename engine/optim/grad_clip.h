// engine/optim/grad_clip.h: the global gradient norm of a ParamStore and the clipping scale it implies.
#pragma once

#include "engine/params.h"
#include "kernels/context.h"

namespace engine::optim {

// Sum of squares of every gradient (accumulated in double, fixed order). Squared, so that pipeline stages can add
// theirs before taking the root. On CUDA it waits for the result.
float grad_norm_squared(const ParamStore& params, const kernels::KernelContext& ctx);

// min(1, max_norm / sqrt(norm_squared)): the grad_scale to pass to the optimizer. 1 when max_norm <= 0 (no
// clipping) or the norm is 0.
float clip_scale(float norm_squared, float max_norm);

}  // namespace engine::optim
