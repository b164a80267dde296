// engine/pipeline/replicas.cc: R local pipelines with a data-parallel sync between them (see replicas.h).
#include "engine/pipeline/replicas.h"

#include <algorithm>
#include <stdexcept>

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/memory.h"

namespace engine::pipeline {

DpSync parse_dp_sync(const std::string& name) {
  if (name == "step") return DpSync::step;
  if (name == "diloco") return DpSync::diloco;
  throw std::invalid_argument("unknown --dp-sync '" + name + "': expected step or diloco");
}

const char* dp_sync_name(DpSync sync) { return sync == DpSync::step ? "step" : "diloco"; }

namespace {

// Rows [first, first + count) of a (rows, T) tensor, as a view of the same memory.
Tensor rows_of(const Tensor& t, int64_t first, int64_t count) {
  Tensor v = t;
  v.data = static_cast<char*>(t.data) + first * t.dim(1) * static_cast<int64_t>(dtype_size(t.dtype));
  v.shape[0] = count;
  return v;
}

// The first n elements of a flat scratch tensor.
Tensor prefix(const Tensor& t, int64_t n) {
  Tensor v = t;
  v.shape[0] = n;
  return v;
}

class ReplicatedLocalExecutor : public ReplicatedExecutor {
 public:
  ReplicatedLocalExecutor(const PipelineConfig& config, const ReplicaConfig& replicas,
                          std::vector<std::vector<std::unique_ptr<StageModule>>> stages,
                          const OptimizerFactory& optimizer, const kernels::KernelContext& ctx, int B, int T)
      : replicas_(replicas), ctx_(ctx), rows_(static_cast<int64_t>(config.micro_batches) * B) {
    ENGINE_CHECK(replicas.replicas >= 1 && static_cast<int>(stages.size()) == replicas.replicas,
                 "replicas: %zu pipelines for R=%d", stages.size(), replicas.replicas);
    ENGINE_CHECK(replicas.inner_steps >= 1, "replicas: inner steps H=%d must be >= 1", replicas.inner_steps);
    for (auto& pipeline : stages) {
      execs_.push_back(make_local_executor(config, std::move(pipeline), optimizer, ctx, B, T));
    }
    const int S = config.stages;
    size_t largest = 0;
    for (int s = 0; s < S; ++s) largest = std::max(largest, stage_params(0, s).num_elements());
    device_ = stage_params(0, 0).device();
    // Scratch: one flat tensor per replica (its delta under diloco) and one for the average.
    const int64_t n = static_cast<int64_t>(largest);
    scratch_ = std::make_unique<Arena>("replica sync", (replicas.replicas + 1) * (n * sizeof(float) + 256), device_);
    for (int r = 0; r < replicas.replicas; ++r) per_replica_.push_back(scratch_->alloc({n}));
    average_ = scratch_->alloc({n});
    if (replicas.sync == DpSync::diloco) {
      for (int s = 0; s < S; ++s) {
        outer_.push_back(std::make_unique<optim::DilocoOuter>(stage_params(0, s), ctx, replicas.outer));
      }
    }
  }

  StepStats step(const Tensor& tokens, const Tensor& targets, float lr) override {
    const int R = replicas_.replicas;
    ENGINE_CHECK(tokens.dim(0) == R * rows_ && targets.dim(0) == R * rows_,
                 "replicas: a step of %d replicas takes %lld rows (R x M x B), got %lld", R,
                 static_cast<long long>(R * rows_), static_cast<long long>(tokens.dim(0)));
    std::vector<StepStats> stats(R);
    bool synced = false;
    if (replicas_.sync == DpSync::step) {
      synced = true;
      for (int r = 0; r < R; ++r) {
        execs_[r]->forward_backward(rows_of(tokens, r * rows_, rows_), rows_of(targets, r * rows_, rows_));
      }
      for (int s = 0; s < execs_[0]->num_local_stages(); ++s) average_gradients(s);
      for (int r = 0; r < R; ++r) stats[r] = execs_[r]->finish_step(lr);
    } else {
      for (int r = 0; r < R; ++r) {
        stats[r] = execs_[r]->step(rows_of(tokens, r * rows_, rows_), rows_of(targets, r * rows_, rows_), lr);
      }
      if (++inner_ == replicas_.inner_steps) {
        inner_ = 0;
        synced = true;
        for (int s = 0; s < execs_[0]->num_local_stages(); ++s) outer_sync(s);
      }
    }
    StepStats out = stats[0];
    double loss = 0.0;
    for (int r = 0; r < R; ++r) loss += stats[r].loss;  // replica order
    out.loss = static_cast<float>(loss / R);
    for (int r = 1; r < R; ++r) out.wire.add(stats[r].wire);
    out.uncompressed_bytes_per_direction *= static_cast<uint64_t>(R);
    if (synced && R > 1) {
      // Each replica's fp32 gradients (step) or parameter change (diloco) once, summed over replicas and stages.
      for (int s = 0; s < execs_[0]->num_local_stages(); ++s) {
        out.dp_bytes += static_cast<uint64_t>(R) * stage_params(0, s).num_parameters() * sizeof(float);
      }
    }
    return out;
  }

  float evaluate(const Tensor& tokens, const Tensor& targets) override { return execs_[0]->evaluate(tokens, targets); }
  void set_step(int64_t step) override {
    for (auto& e : execs_) e->set_step(step);
    inner_ = static_cast<int>(step % replicas_.inner_steps);  // the syncs fall on the same steps after a resume
  }
  int num_local_stages() const override { return execs_[0]->num_local_stages(); }
  StageModule& local_stage(int i) override { return execs_[0]->local_stage(i); }
  int first_local_stage() const override { return 0; }
  int num_replicas() const override { return static_cast<int>(execs_.size()); }
  Executor& replica(int r) override { return *execs_[r]; }
  optim::DilocoOuter* outer(int stage) override { return outer_.empty() ? nullptr : outer_[stage].get(); }

 private:
  ParamStore& stage_params(int replica, int stage) { return execs_[replica]->local_stage(stage).params(); }

  // Stage s's gradients <- their mean over the replicas, in every replica.
  void average_gradients(int s) {
    std::vector<Tensor> grads;
    for (size_t r = 0; r < execs_.size(); ++r) grads.push_back(stage_params(static_cast<int>(r), s).all_grads());
    const size_t n = static_cast<size_t>(grads[0].numel());
    const Tensor avg = prefix(average_, static_cast<int64_t>(n));
    optim::average_in_order(ctx_, device_, grads, avg);
    for (const Tensor& g : grads) {
      KERNEL(device_, fill, ctx_, g.f32(), 0.0f, n);
      KERNEL(device_, axpy, ctx_, g.f32(), avg.f32(), 1.0f, n);
    }
  }

  // DiLoCo at stage s: every replica's change since the last sync, averaged; the outer step; everyone reloads.
  void outer_sync(int s) {
    const int64_t n = static_cast<int64_t>(stage_params(0, s).num_elements());
    std::vector<Tensor> deltas;
    for (size_t r = 0; r < execs_.size(); ++r) {
      deltas.push_back(prefix(per_replica_[r], n));
      outer_[s]->replica_delta(stage_params(static_cast<int>(r), s), deltas.back());
    }
    const Tensor avg = prefix(average_, n);
    optim::average_in_order(ctx_, device_, deltas, avg);
    outer_[s]->outer_step(avg);
    for (size_t r = 0; r < execs_.size(); ++r) outer_[s]->load_synced(stage_params(static_cast<int>(r), s));
  }

  ReplicaConfig replicas_;
  const kernels::KernelContext& ctx_;
  int64_t rows_;  // M x B: one replica's rows per step
  Device device_ = Device::cpu;
  std::vector<std::unique_ptr<Executor>> execs_;
  std::vector<std::unique_ptr<optim::DilocoOuter>> outer_;  // per stage (diloco)
  std::unique_ptr<Arena> scratch_;
  std::vector<Tensor> per_replica_;
  Tensor average_;
  int inner_ = 0;  // inner steps since the last DiLoCo sync
};

}  // namespace

std::unique_ptr<ReplicatedExecutor> make_replicated_local_executor(const PipelineConfig& config, const ReplicaConfig& replicas,
                                                         std::vector<std::vector<std::unique_ptr<StageModule>>> stages,
                                                         const OptimizerFactory& optimizer,
                                                         const kernels::KernelContext& ctx, int B, int T) {
  return std::make_unique<ReplicatedLocalExecutor>(config, replicas, std::move(stages), optimizer, ctx, B, T);
}

}  // namespace engine::pipeline
