// engine/optim/grad_clip.cc: global gradient norm (sum_squares kernel) and the clipping scale.
#include "engine/optim/grad_clip.h"

#include <cmath>

#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/memory.h"

namespace engine::optim {

float grad_norm_squared(const ParamStore& params, const kernels::KernelContext& ctx) {
  const Tensor grads = params.all_grads();
  float result = 0.0f;
  if (params.device() == Device::cpu) {
    kernels::cpu::sum_squares(ctx, &result, grads.f32(), static_cast<size_t>(grads.numel()));
  } else {
    Arena scalar("grad norm", 256, params.device());
    Tensor out = scalar.alloc({1});
    KERNEL(params.device(), sum_squares, ctx, out.f32(), grads.f32(), static_cast<size_t>(grads.numel()));
    copy_to_host(&result, out);
  }
  return result;
}

float clip_scale(float norm_squared, float max_norm) {
  if (max_norm <= 0.0f || norm_squared <= 0.0f) return 1.0f;
  const float norm = std::sqrt(norm_squared);
  return norm > max_norm ? max_norm / norm : 1.0f;
}

}  // namespace engine::optim
