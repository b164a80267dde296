// train/pipeline_backend.cc: the Backend over the pipeline's single-process executor (all S stages here).
#include <stdexcept>

#include "engine/pipeline/pipeline.h"
#include "resbm/llmc_checkpoint.h"
#include "resbm/stage_model.h"
#include "train/backend.h"
#include "train/stage_logits.h"

namespace train {
namespace {

class PipelineBackend : public Backend {
 public:
  PipelineBackend(const RunConfig& config, const kernels::KernelContext& ctx) {
    auto models = resbm::make_stage_models(config.model, config.bottleneck, config.pipeline, config.flags.seed,
                                             config.device);
    if (!config.init_from.empty()) {
      // Each stage loads the GPT-2 tensors it holds (the last stage's wte copy too); bottleneck modules keep
      // their initialisation, as the llm.c file has none.
      for (auto& m : models) {
        resbm::load_llmc_checkpoint(config.init_from, m->params(), config.model, /*allow_missing=*/true);
      }
    }
    std::vector<std::unique_ptr<engine::pipeline::StageModule>> modules;
    for (auto& m : models) {
      stages_.push_back(m.get());
      modules.push_back(std::move(m));
    }
    for (int s = 0; s < config.pipeline.stages; ++s) {
      activation_bytes_ += 2 * stages_[s]->activation_bytes(config.B, config.T) *
                           static_cast<size_t>(engine::pipeline::max_in_flight(
                               config.pipeline.schedule, s, config.pipeline.stages, config.M));
    }
    executor_ = engine::pipeline::make_local_executor(config.pipeline, std::move(modules),
                                                      make_optimizer_factory(config.flags, ctx, &registry_), ctx,
                                                      config.B, config.T);
    for (auto* s : stages_) {
      TrainOptimizer* opt = registry_.find(&s->params());
      if (opt == nullptr) throw std::logic_error("pipeline executor created no optimizer for a stage");
      optimizers_.push_back(opt);
    }
    logits_ = std::make_unique<StageLogits>(stages_, config.model, config.bottleneck, ctx, config.T);
  }

  StepOutput step(const engine::Tensor& tokens, const engine::Tensor& targets, float lr) override {
    const engine::pipeline::StepStats stats = executor_->step(tokens, targets, lr);
    StepOutput out;
    out.loss = stats.loss;
    out.grad_norm = stats.grad_norm;
    out.bytes_fwd = stats.wire.total_bytes(engine::comm::Direction::forward);
    out.bytes_bwd = stats.wire.total_bytes(engine::comm::Direction::backward);
    out.compression_fwd = out.bytes_fwd ? stats.compression_ratio(engine::comm::Direction::forward) : 1.0;
    out.compression_bwd = out.bytes_bwd ? stats.compression_ratio(engine::comm::Direction::backward) : 1.0;
    return out;
  }

  void set_step(int64_t step) override { executor_->set_step(step); }

  float evaluate(const engine::Tensor& tokens, const engine::Tensor& targets) override {
    return executor_->evaluate(tokens, targets);
  }

  const float* next_token_logits(const int32_t* context, int len) override {
    return logits_->next_token_logits(context, len);
  }

  std::vector<engine::ParamStore*> param_stores() override {
    std::vector<engine::ParamStore*> out;
    for (auto* s : stages_) out.push_back(&s->params());
    return out;
  }
  std::vector<TrainOptimizer*> optimizers() override { return optimizers_; }

  int64_t num_parameters() const override {
    int64_t n = 0;
    for (auto* s : stages_) n += static_cast<int64_t>(s->params().num_parameters());
    // The last stage's wte is a copy of the first stage's (tied head): count it once.
    if (stages_.size() > 1 && stages_.back()->tied_param() >= 0) {
      n -= stages_.back()->params().param(stages_.back()->tied_param()).var.value.numel();
    }
    return n;
  }
  size_t activation_bytes() const override { return activation_bytes_; }

 private:
  OptimizerRegistry registry_;  // before executor_: the executor's optimizers are registered here
  std::vector<resbm::StageModel*> stages_;  // owned by the executor
  std::vector<TrainOptimizer*> optimizers_;
  std::unique_ptr<engine::pipeline::Executor> executor_;
  std::unique_ptr<StageLogits> logits_;
  size_t activation_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const RunConfig& config, const kernels::KernelContext& ctx) {
  return std::make_unique<PipelineBackend>(config, ctx);
}

}  // namespace train
