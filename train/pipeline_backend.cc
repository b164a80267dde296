// train/pipeline_backend.cc: the Backend over the pipeline's executors: all S stages here (--executor local), or
// this rank's stage among the ranks of an mpirun job (--executor mpi).
#include <cstdio>
#include <stdexcept>

#include "engine/comm/link_emulator.h"
#include "engine/comm/nccl_transport/stage_transport.h"
#include "engine/device.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/replicas.h"
#include "resbm/llmc_checkpoint.h"
#include "resbm/stage_model.h"
#include "train/backend.h"
#include "train/stage_logits.h"

namespace train {
namespace {

// Bytes of memory the kernel says this machine can still give (MemAvailable), or 0 when unknown.
double available_host_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0.0;
  char line[256];
  double kib = 0.0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %lf kB", &kib) == 1) break;
  }
  std::fclose(f);
  return kib * 1024.0;
}

// The activation arenas of the stages held here must fit in host memory: a batch too large for this machine is a
// flag to lower, not an abort when the arena's allocation fails.
void require_activation_memory(const RunConfig& config, const std::vector<std::unique_ptr<resbm::StageModel>>& models,
                               int first_stage) {
  if (config.device != engine::Device::cpu) return;
  double needed = 0.0;
  const int replicas = config.mpi ? 1 : config.replicas.replicas;  // every local replica holds the same arenas
  for (size_t i = 0; i < models.size(); ++i) {
    const int s = first_stage + static_cast<int>(i);
    needed += static_cast<double>(models[i]->arena_bytes(config.B, config.T).total()) * replicas *
              engine::pipeline::max_in_flight(config.pipeline.schedule, s, config.pipeline.stages, config.M);
  }
  const double available = available_host_bytes();
  if (available > 0.0 && needed > available) {
    char message[320];
    std::snprintf(message, sizeof(message),
                  "--batch-size %d x --seq-len %d needs %.1f GiB of activations in this process, more than the %.1f "
                  "GiB of memory available; lower --batch-size (and raise --micro-batches to keep the tokens per step)",
                  config.B, config.T, needed / (1 << 30), available / (1 << 30));
    throw FlagError(message);
  }
}

class PipelineBackend : public Backend {
 public:
  PipelineBackend(const RunConfig& config, const kernels::KernelContext& ctx) : config_(config) {
    const int S = config.pipeline.stages;
    std::unique_ptr<engine::comm::Transport> transport;
    std::vector<std::unique_ptr<resbm::StageModel>> models;
    const int R = config.replicas.replicas;
    if (config.mpi) {
      // The transport's refusals (world size != R x S; with nccl, two ranks on one GPU) end the rank with a
      // message; mpirun then stops the others.
      transport = engine::comm::open_stage_transport(config.transport, S, config.pipeline.comm_timeout_s, ctx, R,
                                                     &replica_group_);
      if (config.link.mbps > 0.0 || config.link.latency_ms > 0.0) {
        transport = std::make_unique<engine::comm::LinkEmulator>(std::move(transport), config.link);
      }
      models.push_back(make_model(transport->stage()));
    } else {
      models = resbm::make_stage_models(config.model, config.bottleneck, config.pipeline, config.flags.seed,
                                        config.device);
    }
    require_activation_memory(config, models, config.mpi ? models.front()->stage() : 0);
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
    all_stages_ = stages_;
    const auto factory = make_optimizer_factory(config.flags, ctx, &registry_);
    if (R > 1 && config.mpi) {
      // This rank's stage of its replica; the replicas of the stage sync over the group.
      auto pipeline = engine::pipeline::make_distributed_executor(config.pipeline, std::move(modules.front()),
                                                                  std::move(transport), factory, ctx, config.B,
                                                                  config.T);
      auto replicated = engine::pipeline::make_replicated_distributed_executor(
          config.pipeline, config.replicas, std::move(pipeline), std::move(replica_group_), ctx, config.B, config.T);
      replicated_ = replicated.get();
      executor_ = std::move(replicated);
    } else if (R > 1) {
      // R copies of the pipeline from the same seed (and --init-from): replica 0 is `modules`, built above.
      std::vector<std::vector<std::unique_ptr<engine::pipeline::StageModule>>> replicas;
      replicas.push_back(std::move(modules));
      for (int r = 1; r < R; ++r) {
        replicas.emplace_back();
        for (auto& m : resbm::make_stage_models(config.model, config.bottleneck, config.pipeline, config.flags.seed,
                                                config.device)) {
          if (!config.init_from.empty()) {
            resbm::load_llmc_checkpoint(config.init_from, m->params(), config.model, /*allow_missing=*/true);
          }
          all_stages_.push_back(m.get());
          replicas.back().push_back(std::move(m));
        }
      }
      auto replicated = engine::pipeline::make_replicated_local_executor(config.pipeline, config.replicas,
                                                                         std::move(replicas), factory, ctx, config.B,
                                                                         config.T);
      replicated_ = replicated.get();
      executor_ = std::move(replicated);
    } else if (config.mpi) {
      executor_ = engine::pipeline::make_distributed_executor(config.pipeline, std::move(modules.front()),
                                                              std::move(transport), factory, ctx, config.B, config.T);
    } else {
      executor_ = engine::pipeline::make_local_executor(config.pipeline, std::move(modules), factory, ctx, config.B,
                                                        config.T);
    }
    for (auto* s : all_stages_) {
      TrainOptimizer* opt = registry_.find(&s->params());
      if (opt == nullptr) throw std::logic_error("pipeline executor created no optimizer for a stage");
      optimizers_.push_back(opt);
    }
    logits_ = std::make_unique<StageLogits>(stages_, first_stage(), S, executor_->transport(), ctx,
                                            config.model.padded_vocab_size, config.T);
  }

  StepOutput step(const engine::Tensor& tokens, const engine::Tensor& targets, float lr) override {
    const engine::pipeline::StepStats stats = executor_->step(tokens, targets, lr);
    StepOutput out;
    out.loss = stats.loss;
    out.grad_norm = stats.grad_norm;
    out.bytes_fwd = stats.wire.total_bytes(engine::comm::Direction::forward);
    out.bytes_bwd = stats.wire.total_bytes(engine::comm::Direction::backward);
    out.bytes_tied = stats.wire.tied_bytes;
    out.compression_fwd = out.bytes_fwd ? stats.compression_ratio(engine::comm::Direction::forward) : 1.0;
    out.compression_bwd = out.bytes_bwd ? stats.compression_ratio(engine::comm::Direction::backward) : 1.0;
    out.bytes_dp = stats.dp_bytes;
    out.dp_stage_bytes.assign(stats.dp_stage_bytes.begin(), stats.dp_stage_bytes.end());
    for (const engine::pipeline::PhaseTimes& p : stats.phases) {
      out.forward_ms.push_back(p.forward_s * 1e3);
      out.backward_ms.push_back(p.backward_s * 1e3);
      out.update_ms.push_back(p.update_s * 1e3);
    }
    return out;
  }

  void set_step(int64_t step) override { executor_->set_step(step); }

  float evaluate(const engine::Tensor& tokens, const engine::Tensor& targets) override {
    return executor_->evaluate(tokens, targets);
  }

  const float* next_token_logits(const int32_t* context, int len) override {
    return logits_->next_token_logits(context, len);
  }

  int64_t from_last_stage(int64_t value) override {
    // Token ids and small counts: exact as doubles.
    const std::vector<double> all = gather_stages(std::vector<double>(stages_.size(), static_cast<double>(value)), 1);
    return static_cast<int64_t>(all.back());
  }

  std::vector<double> gather_stages(const std::vector<double>& mine, int count) override {
    engine::comm::Transport* transport = executor_->transport();
    if (transport == nullptr) return mine;  // every stage is here
    std::vector<double> all(static_cast<size_t>(count) * num_stages());
    transport->allgather(mine.data(), count, all.data());
    return all;
  }

  std::vector<double> gather_slots(const std::vector<double>& mine, int count) override {
    if (executor_->transport() == nullptr) return mine;  // every slot is here
    const std::vector<double> pipeline = gather_stages(mine, count);  // this replica's stages
    if (replicated_ == nullptr) return pipeline;
    std::vector<double> all(pipeline.size() * static_cast<size_t>(config_.replicas.replicas));
    replicated_->replica_group().allgather(pipeline.data(), pipeline.size(), all.data());
    return all;
  }

  std::vector<engine::ParamStore*> gather_params_to_rank0() override {
    engine::comm::Transport* transport = executor_->transport();
    if (transport == nullptr) {  // every stage is here: replica 0's (the replicas share one model)
      std::vector<engine::ParamStore*> out;
      for (auto* s : stages_) out.push_back(&s->params());
      return out;
    }
    const engine::Tensor mine = stages_.front()->params().all_values();
    std::vector<uint8_t> host(mine.nbytes());
    engine::copy_to_host(host.data(), mine);
    if (first_stage() != 0) {  // to stage 0 of this replica
      transport->send_raw(0, engine::comm::kTagGather, host.data(), host.size());
      return {};
    }
    // Stage 0 builds the other stages' models (their layout: names and shapes) and receives their values.
    std::vector<engine::ParamStore*> out = {&stages_.front()->params()};
    gathered_.clear();
    for (int s = 1; s < num_stages(); ++s) {
      gathered_.push_back(make_model(s));
      const engine::Tensor values = gathered_.back()->params().all_values();
      host.resize(values.nbytes());
      transport->recv_raw(s, engine::comm::kTagGather, host.data(), host.size());
      engine::copy_from_host(values, host.data());
      out.push_back(&gathered_.back()->params());
    }
    return out;
  }

  int first_stage() const override { return executor_->first_local_stage(); }
  int first_replica() const override { return replicated_ == nullptr ? 0 : replicated_->first_local_replica(); }
  int num_stages() const override { return config_.pipeline.stages; }
  std::vector<engine::ParamStore*> param_stores() override {
    std::vector<engine::ParamStore*> out;
    for (auto* s : all_stages_) out.push_back(&s->params());
    return out;
  }
  std::vector<TrainOptimizer*> optimizers() override { return optimizers_; }
  engine::optim::DilocoOuter* diloco_outer(int stage) override {
    return replicated_ == nullptr ? nullptr : replicated_->outer(stage);
  }

  int64_t num_parameters() override {
    std::vector<double> mine;
    for (size_t i = 0; i < stages_.size(); ++i) {
      const resbm::StageModel& stage = *stages_[i];
      double n = static_cast<double>(stages_[i]->params().num_parameters());
      // The last stage's wte is a copy of the first stage's (tied head): count it once.
      const bool last = first_stage() + static_cast<int>(i) == num_stages() - 1;
      if (last && num_stages() > 1 && stage.tied_param() >= 0) {
        n -= static_cast<double>(stages_[i]->params().param(stage.tied_param()).var.value.numel());
      }
      mine.push_back(n);
    }
    double total = 0.0;
    for (double n : gather_stages(mine, 1)) total += n;
    return static_cast<int64_t>(total);
  }

  std::vector<uint64_t> frozen_hashes() override {
    // 48 bits travel exactly as doubles (53-bit mantissa) through the stage gather.
    std::vector<double> mine;
    for (resbm::StageModel* s : stages_) mine.push_back(static_cast<double>(s->frozen_hash() & 0xFFFFFFFFFFFFull));
    std::vector<uint64_t> out;
    for (double h : gather_stages(mine, 1)) out.push_back(static_cast<uint64_t>(h));
    return out;
  }

  size_t activation_bytes() override {
    std::vector<double> mine;
    for (size_t i = 0; i < stages_.size(); ++i) {
      const int s = first_stage() + static_cast<int>(i);
      mine.push_back(static_cast<double>(stages_[i]->arena_bytes(config_.B, config_.T).total()) *
                     config_.replicas.replicas *  // every replica holds the same: all replicas counted
                     engine::pipeline::max_in_flight(config_.pipeline.schedule, s, num_stages(), config_.M));
    }
    double total = 0.0;
    for (double n : gather_stages(mine, 1)) total += n;
    return static_cast<size_t>(total);
  }

 private:
  std::unique_ptr<resbm::StageModel> make_model(int stage) const {
    return resbm::make_stage_model(config_.model, config_.bottleneck, config_.pipeline, stage, config_.flags.seed,
                                   config_.device);
  }

  RunConfig config_;
  // --executor mpi with replicas: the group of this stage's replicas, until the executor takes it.
  std::unique_ptr<engine::comm::ReplicaGroup> replica_group_;
  OptimizerRegistry registry_;  // before executor_: the executor's optimizers are registered here
  std::vector<resbm::StageModel*> stages_;      // owned by the executor; replica 0's with --replicas
  std::vector<resbm::StageModel*> all_stages_;  // every replica's, replica-major (= stages_ with one replica)
  engine::pipeline::ReplicatedExecutor* replicated_ = nullptr;  // executor_, when R > 1
  std::vector<TrainOptimizer*> optimizers_;
  std::unique_ptr<engine::pipeline::Executor> executor_;
  std::unique_ptr<StageLogits> logits_;
  std::vector<std::unique_ptr<resbm::StageModel>> gathered_;  // rank 0, --export-llmc: the other stages' copies
};

}  // namespace

std::unique_ptr<Backend> make_backend(const RunConfig& config, const kernels::KernelContext& ctx) {
  return std::make_unique<PipelineBackend>(config, ctx);
}

}  // namespace train
