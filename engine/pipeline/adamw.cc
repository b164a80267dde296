// engine/pipeline/adamw.cc: default_adamw, the executor's default StageOptimizer: engine::optim::AdamW as a
// StageOptimizer (betas 0.9/0.95, eps 1e-8, weight decay on matrices and embeddings only).
#include <memory>

#include "engine/optim/adamw.h"
#include "engine/pipeline/pipeline.h"

namespace engine::pipeline {

namespace {

class AdamWAdapter : public StageOptimizer {
 public:
  AdamWAdapter(ParamStore& params, const kernels::KernelContext& ctx, const optim::AdamWConfig& config)
      : adamw_(params, ctx, config) {}
  void step(float lr, float grad_scale) override { adamw_.step(lr, grad_scale); }

 private:
  optim::AdamW adamw_;
};

}  // namespace

OptimizerFactory default_adamw(const kernels::KernelContext& ctx, float weight_decay) {
  optim::AdamWConfig config;
  config.beta1 = 0.9f;
  config.beta2 = 0.95f;
  config.eps = 1e-8f;
  config.weight_decay = weight_decay;
  return [&ctx, config](ParamStore& params) -> std::unique_ptr<StageOptimizer> {
    return std::make_unique<AdamWAdapter>(params, ctx, config);
  };
}

}  // namespace engine::pipeline
