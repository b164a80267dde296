// engine/pipeline/adamw.cc: default_adamw, the executor's default StageOptimizer (AdamW on the CPU kernel).
#include <vector>

#include "engine/pipeline/pipeline.h"
#include "kernels/cpu/kernels.h"

namespace engine::pipeline {

namespace {

class AdamW : public StageOptimizer {
 public:
  AdamW(ParamStore& params, const kernels::KernelContext& ctx, float weight_decay)
      : params_(params), ctx_(ctx), weight_decay_(weight_decay) {
    size_t total = 0;
    for (const Param& p : params.params()) total += static_cast<size_t>(p.var.value.numel());
    m_.assign(total, 0.0f);  // moment buffers allocated once, here
    v_.assign(total, 0.0f);
  }

  void step(float lr, float grad_scale) override {
    ++t_;
    size_t offset = 0;
    for (Param& p : params_.params()) {
      const size_t n = static_cast<size_t>(p.var.value.numel());
      const float wd = p.kind == ParamKind::vector ? 0.0f : weight_decay_;
      kernels::cpu::adamw_update(ctx_, p.var.value.f32(), p.var.grad.f32(), &m_[offset], &v_[offset], n, lr, 0.9f,
                                 0.95f, 1e-8f, wd, grad_scale, t_);
      offset += n;
    }
  }

 private:
  ParamStore& params_;
  const kernels::KernelContext& ctx_;
  float weight_decay_;
  std::vector<float> m_, v_;
  int t_ = 0;
};

}  // namespace

OptimizerFactory default_adamw(const kernels::KernelContext& ctx, float weight_decay) {
  return [&ctx, weight_decay](ParamStore& params) -> std::unique_ptr<StageOptimizer> {
    return std::make_unique<AdamW>(params, ctx, weight_decay);
  };
}

}  // namespace engine::pipeline
