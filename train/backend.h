// train/backend.h: Backend, what the training loop drives: one optimizer step over M micro-batches, a forward-only
// loss, next-token logits for sampling, the parameters and optimizers a checkpoint holds, and the few exchanges
// between the processes of a run.
//
// One implementation (train/pipeline_backend.cc) over the pipeline's two executors: --executor local holds all S
// stages (of every replica) in this process; --executor mpi holds stage = rank % S of replica rank / S, the other
// stages and replicas being other processes of the same mpirun job. Every process runs the same training loop and makes the same calls in the same order: the exchanges
// (gather_stages, from_last_stage, gather_params_to_rank0, and step/evaluate themselves) are collectives there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/optim/diloco.h"
#include "engine/params.h"
#include "engine/tensor.h"
#include "train/optimizer.h"
#include "train/run_config.h"

namespace train {

struct StepOutput {
  float loss = 0.0f;         // mean over the M micro-batches (the same on every process)
  float grad_norm = 0.0f;    // global, before clipping
  uint64_t bytes_fwd = 0;    // codes sent across all boundaries this step
  uint64_t bytes_bwd = 0;    // code gradients sent back
  uint64_t bytes_tied = 0;   // tied wte gradient, first <-> last stage, both ways
  uint64_t bytes_dp = 0;     // data-parallel sync between replicas (engine/pipeline/pipeline.h StepStats::dp_bytes)
  std::vector<double> dp_stage_bytes;  // on a sync step: one replica's payload per stage (StepStats::dp_stage_bytes)
  double compression_fwd = 1.0;  // uncompressed fp32 boundary bytes / bytes sent (1 when S = 1)
  double compression_bwd = 1.0;
  // Per stage (stage order): compute ms of its forwards, its backwards, its update (engine::pipeline::PhaseTimes).
  std::vector<double> forward_ms, backward_ms, update_ms;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // tokens, targets (M*B, T) i32: micro-batch m is rows [m*B, (m+1)*B).
  virtual StepOutput step(const engine::Tensor& tokens, const engine::Tensor& targets, float lr) = 0;
  // The global index of the next step (a resumed run's checkpoint step): it seeds what a step draws at random (the
  // stochastic rounding of int8 code gradients), so a resumed run equals an uninterrupted one bit for bit.
  virtual void set_step(int64_t step) = 0;
  // Mean loss of the M micro-batches in (M*B, T), no update (the same on every process).
  virtual float evaluate(const engine::Tensor& tokens, const engine::Tensor& targets) = 0;
  // Logits (Vp floats, valid until the next call) of the token following context[0..len), 1 <= len <= T, in the
  // process holding the last stage; nullptr in the others. Every process calls it with the same context.
  virtual const float* next_token_logits(const int32_t* context, int len) = 0;
  // The last stage's `value`, returned on every process (a sampled token going round to stage 0).
  virtual int64_t from_last_stage(int64_t value) = 0;
  // `count` doubles per stage this process holds (stage order) -> every stage's, stage order (S * count values).
  virtual std::vector<double> gather_stages(const std::vector<double>& mine, int count) = 0;
  // Every stage's trained parameters on the process of stage 0 (of every replica), gathered from the others (which
  // get an empty list).
  virtual std::vector<engine::ParamStore*> gather_params_to_rank0() = 0;

  // The stages this process holds: first_stage(), first_stage() + 1, ...; their stores and optimizers, in order.
  virtual int first_stage() const = 0;
  virtual int num_stages() const = 0;  // S
  // The replica of the stages held here (0 under --executor local, which holds every replica).
  virtual int first_replica() const { return 0; }
  // With R replicas every (replica, stage) is a slot g = r S + s. The slots held here are first_slot(), +1, ...:
  // their stores and optimizers, in order (every slot under --executor local, one under mpi).
  int first_slot() const { return first_replica() * num_stages() + first_stage(); }
  virtual std::vector<engine::ParamStore*> param_stores() = 0;
  virtual std::vector<TrainOptimizer*> optimizers() = 0;
  // DiLoCo's outer state of stage s (--dp-sync diloco), checkpointed with replica 0's stage; nullptr otherwise.
  virtual engine::optim::DilocoOuter* diloco_outer(int stage) { return nullptr; }
  // Whether this process reports: it prints the run table, steps and samples, writes the log and the manifest.
  bool is_rank0() const { return first_slot() == 0; }
  // `count` doubles per slot held here (slot order) -> every slot's, slot order (R S count values).
  virtual std::vector<double> gather_slots(const std::vector<double>& mine, int count) = 0;

  // Over all stages (collectives under mpi).
  virtual int64_t num_parameters() = 0;       // trained elements, the tied wte counted once
  // Every stage's hash of its frozen tensors (ssn's basis and tables; 0 for other kinds), 48 bits, stage order.
  virtual std::vector<uint64_t> frozen_hashes() = 0;
  virtual size_t activation_bytes() = 0;      // activation arenas
};

// Builds this process's stages (initialised from --seed, then --init-from if given) and the executor: all stages
// under --executor local; under --executor mpi, stage = rank, joined to the other ranks by --transport (wrapped in
// the link emulator with --link-mbps).
std::unique_ptr<Backend> make_backend(const RunConfig& config, const kernels::KernelContext& ctx);

}  // namespace train
