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
// What a DiLoCo sync sends (DpCode): each replica's change as fp32, bf16 (round to nearest even) or int8 (blocks of
// kDpCodeBlock values, each with an absmax fp32 scale, rounded stochastically from a seed, so the average stays
// unbiased and a run is reproducible); every replica decodes every replica's payload and averages the decoded
// values, so all hold the same bits. Synchronous steps always send fp32 gradients.
// The data-parallel link (dp_link_mbps): each replica's node of a stage has its own link of that rate to the other
// replicas' nodes of the stage (apart from the pipeline's boundary wires); a sync gathers every replica's payload of
// n bytes on every replica, so each node sends (R - 1) n bytes on its link and the sync ends after
//   transmit_s((R - 1) n, dp_link_mbps) + latency
// (engine/comm/link_model.h). The executor waits that long from the start of the sync (the stages sync in
// parallel, each on its own links), so the saving of a rarer or smaller sync shows in the step time.
// Data: step()'s tokens and targets hold R x M x B rows; replica r trains on rows [r M B, (r+1) M B): disjoint and
// deterministic. The step's loss is the mean over the replicas (replica order); its grad norm replica 0's (under
// `step` every replica's); its wire counts the boundaries of every replica. evaluate() and local_stage() are
// replica 0's (under diloco: its parameters, which equal the synced ones right after a sync).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/comm/codec.h"
#include "engine/comm/replica_group.h"
#include "engine/optim/diloco.h"
#include "engine/pipeline/pipeline.h"

namespace engine::pipeline {

enum class DpSync : uint8_t { step, diloco };
DpSync parse_dp_sync(const std::string& name);  // "step", "diloco"; std::invalid_argument otherwise
const char* dp_sync_name(DpSync sync);

constexpr int kDpCodeBlock = 256;  // values per int8 scale in a DiLoCo payload

struct ReplicaConfig {
  int replicas = 1;            // R
  DpSync sync = DpSync::step;
  int inner_steps = 1;         // H: inner steps between two DiLoCo syncs
  optim::DilocoConfig outer;   // DiLoCo's outer lr and momentum
  comm::WireDType dp_code = comm::WireDType::f32;  // what a DiLoCo sync sends per parameter
  uint64_t dp_code_seed = 0;   // seeds the int8 payload's stochastic rounding (with the sync, replica and stage)
  double dp_link_mbps = 0.0;   // the data-parallel link's rate (<= 0: no delay)
  double dp_link_latency_ms = 0.0;
};

// Bytes one replica sends for one stage of n parameters in a sync.
size_t dp_payload_bytes(const ReplicaConfig& replicas, size_t n);
// Seconds a sync of `payload_bytes` per replica holds the data-parallel link (the model above); 0 without a link.
double dp_sync_seconds(const ReplicaConfig& replicas, size_t payload_bytes);

class ReplicatedExecutor : public Executor {
 public:
  virtual int num_replicas() const = 0;
  virtual int first_local_replica() const = 0;  // 0 here; this process's replica with one process per stage
  // The group of this process's stage and its replicas (one process per stage only: a logic error otherwise).
  virtual comm::ReplicaGroup& replica_group();
  // DiLoCo's outer state at stage s (theta_sync, momentum: a checkpoint holds them); nullptr under DpSync::step
  // and for a stage this process does not hold. Every process of stage s holds the same state.
  virtual optim::DilocoOuter* outer(int stage) = 0;
};

// stages[r][s] is stage s of replica r; every replica must start from the same parameters (the same seed).
std::unique_ptr<ReplicatedExecutor> make_replicated_local_executor(const PipelineConfig& config, const ReplicaConfig& replicas,
                                                         std::vector<std::vector<std::unique_ptr<StageModule>>> stages,
                                                         const OptimizerFactory& optimizer,
                                                         const kernels::KernelContext& ctx, int B, int T);

// The same in R x S processes: this process runs one stage of one replica (`pipeline`, a distributed executor over
// the replica's MpiTransport) and syncs with the other replicas of its stage over `group` (rank w = r S + s). Its
// losses, parameters and counts are bitwise those of the local executor above. It frees the group before the
// pipeline (whose transport may finalize MPI).
std::unique_ptr<ReplicatedExecutor> make_replicated_distributed_executor(const PipelineConfig& config,
                                                                         const ReplicaConfig& replicas,
                                                                         std::unique_ptr<Executor> pipeline,
                                                                         std::unique_ptr<comm::ReplicaGroup> group,
                                                                         const kernels::KernelContext& ctx, int B,
                                                                         int T);

}  // namespace engine::pipeline
