// train/optimizer.h: the trainer's optimizers (AdamW, Muon) as pipeline StageOptimizers whose state can be saved
// in and restored from a training checkpoint, built from the flags.
//
// The executor owns the optimizers it creates through the factory; make_optimizer_factory also records each one
// in an OptimizerRegistry by the ParamStore it steps, so that the checkpoint code can reach their state.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/params.h"
#include "engine/pipeline/pipeline.h"
#include "train/checkpoint.h"
#include "train/flags.h"

namespace train {

class TrainOptimizer : public engine::pipeline::StageOptimizer {
 public:
  // The learning-rate schedule gives lr for AdamW's peak --lr; Muon scales its own --muon-lr by the same factor.
  // grad_scale (<= 1) multiplies the gradients first (clipping).
  void step(float lr, float grad_scale) override = 0;
  // Optimizer state (moments, momentum, step count) as checkpoint sections named prefix + "...".
  virtual void save_state(CheckpointWriter& out, const std::string& prefix) const = 0;
  virtual void load_state(const Checkpoint& in, const std::string& prefix) = 0;
  virtual size_t state_bytes() const = 0;  // for the run table's memory line
};

// Which optimizer stepped which store, in creation order.
struct OptimizerRegistry {
  std::vector<std::pair<const engine::ParamStore*, TrainOptimizer*>> entries;
  TrainOptimizer* find(const engine::ParamStore* store) const;  // nullptr if absent
};

// Builds the optimizer of flags.optimizer for a store: AdamW(lr, beta1, beta2, eps, weight decay on matrices and
// embeddings) or Muon (muon-lr, momentum, Newton-Schulz steps, Nesterov on matrices; AdamW on the rest). Each
// created optimizer is recorded in *registry, which must outlive the executor.
engine::pipeline::OptimizerFactory make_optimizer_factory(const TrainFlags& flags,
                                                          const kernels::KernelContext& ctx,
                                                          OptimizerRegistry* registry);

}  // namespace train

namespace train {
// A device tensor as a checkpoint section and back (sizes must match).
void save_state_tensor(CheckpointWriter& out, const std::string& name, const engine::Tensor& t);
void load_state_tensor(const Checkpoint& in, const std::string& name, const engine::Tensor& t);

// Muon for the store's 2-D hidden weights (ParamKind::matrix), AdamW for the rest (train/muon_optimizer.cc).
std::unique_ptr<TrainOptimizer> make_muon_optimizer(engine::ParamStore& params, const kernels::KernelContext& ctx,
                                                    const TrainFlags& flags);
}  // namespace train
