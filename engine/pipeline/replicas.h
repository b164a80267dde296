// engine/pipeline/replicas.h: R replicas of a pipeline in this process, kept in sync between them (data parallelism
// across the replicas of each stage). The reference that a multi-process version (R x S ranks) must equal bitwise.
//
//   DpSync::step   : after every backward pass each stage's gradients are averaged over the R replicas (summed in
//                    replica order 0..R-1, then times 1/R), then every replica takes the same clipped update from
//                    the same gradients: the replicas stay bitwise identical, and R replicas at batch B equal one
//                    pipeline at batch R*B up to summation order.
//   DpSync::diloco : every replica runs its own inner optimizer (its own AdamW or Muon state) for H steps; then,
//                    per stage, DiLoCo's outer step (engine/optim/diloco.h) moves the synced parameters by Nesterov
//                    momentum on the replicas' averaged change, and every replica continues from them.
// Data: step()'s tokens and targets hold R x M x B rows; replica r trains on rows [r M B, (r+1) M B): disjoint and
// deterministic. The step's loss is the mean over the replicas (replica order); its grad norm replica 0's (under
// `step` every replica's); its wire counts the boundaries of every replica. evaluate() and local_stage() are
// replica 0's (under diloco: its parameters, which equal the synced ones right after a sync).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/optim/diloco.h"
#include "engine/pipeline/pipeline.h"

namespace engine::pipeline {

enum class DpSync : uint8_t { step, diloco };
DpSync parse_dp_sync(const std::string& name);  // "step", "diloco"; std::invalid_argument otherwise
const char* dp_sync_name(DpSync sync);

struct ReplicaConfig {
  int replicas = 1;            // R
  DpSync sync = DpSync::step;
  int inner_steps = 1;         // H: inner steps between two DiLoCo syncs
  optim::DilocoConfig outer;   // DiLoCo's outer lr and momentum
};

class ReplicatedExecutor : public Executor {
 public:
  virtual int num_replicas() const = 0;
  virtual Executor& replica(int r) = 0;
  // DiLoCo's outer state at stage s (theta_sync, momentum: a checkpoint holds them); nullptr under DpSync::step.
  virtual optim::DilocoOuter* outer(int stage) = 0;
};

// stages[r][s] is stage s of replica r; every replica must start from the same parameters (the same seed).
std::unique_ptr<ReplicatedExecutor> make_replicated_local_executor(const PipelineConfig& config, const ReplicaConfig& replicas,
                                                         std::vector<std::vector<std::unique_ptr<StageModule>>> stages,
                                                         const OptimizerFactory& optimizer,
                                                         const kernels::KernelContext& ctx, int B, int T);

}  // namespace engine::pipeline
