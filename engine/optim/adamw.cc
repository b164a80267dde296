// engine/optim/adamw.cc: AdamW over a ParamStore, one kernel call per parameter.
#include "engine/optim/adamw.h"

#include "engine/dispatch.h"

namespace engine::optim {

AdamW::AdamW(ParamStore& params, const kernels::KernelContext& ctx, const AdamWConfig& config)
    : params_(params),
      ctx_(ctx),
      config_(config),
      state_("adamw state", 2 * params.num_elements() * sizeof(float) + 512, params.device()) {
  const int64_t n = static_cast<int64_t>(params.num_elements());
  m_ = state_.alloc({n});
  v_ = state_.alloc({n});
}

void AdamW::step(float lr, float grad_scale) {
  t_ += 1;
  const Device dev = params_.device();
  for (size_t i = 0; i < params_.params().size(); i++) {
    Param& p = params_.params()[i];
    const int64_t off = params_.offset(static_cast<int>(i));
    const float wd = takes_weight_decay(p.kind) ? config_.weight_decay : 0.0f;
    KERNEL(dev, adamw_update, ctx_, p.var.value.f32(), p.var.grad.f32(), m_.f32() + off, v_.f32() + off,
           static_cast<size_t>(p.var.value.numel()), lr, config_.beta1, config_.beta2, config_.eps, wd, grad_scale,
           t_);
  }
}

}  // namespace engine::optim
