// engine/optim/adamw.cc: AdamW over a ParamStore, one kernel call per parameter.
#include "engine/optim/adamw.h"

#include "engine/dispatch.h"
#include "kernels/counter_hash.h"

namespace engine::optim {

uint64_t bf16_rounding_seed(uint64_t seed, int t, size_t index) {
  return kernels::hash64(kernels::hash64(seed, static_cast<uint64_t>(t)), static_cast<uint64_t>(index));
}

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
    const size_t n = static_cast<size_t>(p.var.value.numel());
    if (params_.precision() == Precision::bf16) {
      KERNEL(dev, adamw_update_bf16, ctx_, p.model.value.u16(), p.var.value.f32(), p.var.grad.f32(),
             m_.f32() + off, v_.f32() + off, n, lr, config_.beta1, config_.beta2, config_.eps, wd, grad_scale, t_,
             bf16_rounding_seed(config_.rounding_seed, t_, i));
    } else {
      KERNEL(dev, adamw_update, ctx_, p.var.value.f32(), p.var.grad.f32(), m_.f32() + off, v_.f32() + off, n, lr,
             config_.beta1, config_.beta2, config_.eps, wd, grad_scale, t_);
    }
  }
}

void AdamW::restore_model_copy() {
  if (params_.precision() != Precision::bf16) return;
  if (t_ == 0) {
    params_.sync_model_copy();
    return;
  }
  for (size_t i = 0; i < params_.params().size(); i++) {
    Param& p = params_.params()[i];
    KERNEL(params_.device(), float_to_bf16_stochastic, ctx_, p.model.value.u16(), p.var.value.f32(),
           static_cast<size_t>(p.var.value.numel()), bf16_rounding_seed(config_.rounding_seed, t_, i));
  }
}

}  // namespace engine::optim
