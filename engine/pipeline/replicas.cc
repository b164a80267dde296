// engine/pipeline/replicas.cc: R local pipelines with a data-parallel sync between them (see replicas.h).
#include "engine/pipeline/replicas.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "engine/check.h"
#include "engine/dispatch.h"
#include "engine/comm/link_model.h"
#include "engine/device.h"
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

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The first n elements of a flat scratch tensor.
Tensor prefix(const Tensor& t, int64_t n) {
  Tensor v = t;
  v.shape[0] = n;
  return v;
}

// What a stage sends in a DiLoCo sync, encoded and decoded on the host (the codec's kernels are the CPU's):
// blocks of kDpCodeBlock values, then the tail block.
class DpPayload {
 public:
  DpPayload(const ReplicaConfig& replicas, const kernels::KernelContext& ctx, size_t n)
      : code_(replicas.dp_code), seed_(replicas.dp_code_seed), ctx_(ctx), n_(n), host_(n),
        bytes_(dp_payload_bytes(replicas, n)) {}

  size_t bytes() const { return bytes_; }
  // out (bytes()) <- the code of `delta` (n floats on its device). sync/replica/stage pick the rounding bits.
  void encode(const Tensor& delta, int64_t sync, int replica, int stage, uint8_t* out) {
    copy_to_host(host_.data(), prefix(delta, static_cast<int64_t>(n_)));
    comm::CodeRounding rounding;
    rounding.stochastic = true;
    // A different stream of bits for every (sync, replica, stage); comm::encode hashes it with each element.
    rounding.seed = seed_ ^ (static_cast<uint64_t>(sync) * 0x9E3779B97F4A7C15ull) ^
                    (static_cast<uint64_t>(replica) << 40) ^ (static_cast<uint64_t>(stage) << 52);
    const int64_t full = static_cast<int64_t>(n_) / kDpCodeBlock, tail = static_cast<int64_t>(n_) % kDpCodeBlock;
    comm::encode(ctx_, code_, out, host_.data(), full, kDpCodeBlock, rounding);
    if (tail > 0) {
      rounding.seed ^= 0xA5A5A5A5ull;  // the tail's own stream
      comm::encode(ctx_, code_, out + comm::encoded_bytes(code_, full, kDpCodeBlock), host_.data() + full * kDpCodeBlock,
                   1, tail, rounding);
    }
  }
  // out (n floats on its device) <- the values `in` (bytes()) encodes.
  void decode(const uint8_t* in, const Tensor& out) {
    const int64_t full = static_cast<int64_t>(n_) / kDpCodeBlock, tail = static_cast<int64_t>(n_) % kDpCodeBlock;
    comm::decode(ctx_, code_, host_.data(), in, full, kDpCodeBlock);
    if (tail > 0) {
      comm::decode(ctx_, code_, host_.data() + full * kDpCodeBlock, in + comm::encoded_bytes(code_, full, kDpCodeBlock),
                   1, tail);
    }
    copy_from_host(prefix(out, static_cast<int64_t>(n_)), host_.data());
  }

 private:
  comm::WireDType code_;
  uint64_t seed_;
  const kernels::KernelContext& ctx_;
  size_t n_;
  std::vector<float> host_;
  size_t bytes_;
};

// Waits out the emulated data-parallel link: until `start` + the sync's time on it.
void hold_dp_link(const ReplicaConfig& replicas, double start, size_t payload_bytes) {
  const double until = start + dp_sync_seconds(replicas, payload_bytes);
  const double left = until - now_s();
  if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
}

// dst <- src (flat, n floats, one device), with the kernels (the parameters may live on the GPU).
void assign(const kernels::KernelContext& ctx, Device device, const Tensor& dst, const Tensor& src, size_t n) {
  KERNEL(device, fill, ctx, dst.f32(), 0.0f, n);
  KERNEL(device, axpy, ctx, dst.f32(), src.f32(), 1.0f, n);
}

// Replica order, summed in double: the step's loss as every replica count reports it.
float mean_loss(const std::vector<float>& losses) {
  double sum = 0.0;
  for (float l : losses) sum += l;
  return static_cast<float>(sum / static_cast<double>(losses.size()));
}

}  // namespace

comm::ReplicaGroup& ReplicatedExecutor::replica_group() {
  ENGINE_CHECK(false, "replicas: the replicas of a stage in one process have no process group");
  throw std::logic_error("unreachable");
}

namespace {

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
        payloads_.push_back(std::make_unique<DpPayload>(replicas, ctx, stage_params(0, s).num_elements()));
      }
      wire_.resize(payloads_.front()->bytes());
      for (auto& p : payloads_) wire_.resize(std::max(wire_.size(), p->bytes()));
    }
  }

  StepStats step(const Tensor& tokens, const Tensor& targets, float lr) override {
    const int R = replicas_.replicas;
    ENGINE_CHECK(tokens.dim(0) == R * rows_ && targets.dim(0) == R * rows_,
                 "replicas: a step of %d replicas takes %lld rows (R x M x B), got %lld", R,
                 static_cast<long long>(R * rows_), static_cast<long long>(tokens.dim(0)));
    const double t0 = now_s();
    std::vector<StepStats> stats(R);
    bool synced = false;
    size_t longest_payload = 0;  // the stages sync in parallel, each on its own link: the largest one sets the wait
    if (replicas_.sync == DpSync::step) {
      synced = true;
      for (int r = 0; r < R; ++r) {
        execs_[r]->forward_backward(rows_of(tokens, r * rows_, rows_), rows_of(targets, r * rows_, rows_));
      }
      const double start = now_s();
      for (int s = 0; s < execs_[0]->num_local_stages(); ++s) {
        average_gradients(s);
        longest_payload = std::max(longest_payload, stage_params(0, s).num_parameters() * sizeof(float));
      }
      if (R > 1) hold_dp_link(replicas_, start, longest_payload);
      for (int r = 0; r < R; ++r) stats[r] = execs_[r]->finish_step(lr);
    } else {
      for (int r = 0; r < R; ++r) {
        stats[r] = execs_[r]->step(rows_of(tokens, r * rows_, rows_), rows_of(targets, r * rows_, rows_), lr);
      }
      if (++inner_ == replicas_.inner_steps) {
        inner_ = 0;
        synced = true;
        const double start = now_s();
        for (int s = 0; s < execs_[0]->num_local_stages(); ++s) {
          outer_sync(s);
          longest_payload = std::max(longest_payload, payloads_[s]->bytes());
        }
        if (R > 1) hold_dp_link(replicas_, start, longest_payload);
      }
    }
    StepStats out = stats[0];
    std::vector<float> losses;
    for (int r = 0; r < R; ++r) losses.push_back(stats[r].loss);
    out.loss = mean_loss(losses);
    for (int r = 1; r < R; ++r) out.wire.add(stats[r].wire);
    out.uncompressed_bytes_per_direction *= static_cast<uint64_t>(R);
    if (synced && R > 1) {
      // Each replica's payload once, summed over replicas and stages.
      for (int s = 0; s < execs_[0]->num_local_stages(); ++s) {
        out.dp_bytes += static_cast<uint64_t>(R) * sync_payload_bytes(s);
        out.dp_stage_bytes.push_back(sync_payload_bytes(s));
      }
    }
    out.seconds = now_s() - t0;
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
  int first_local_replica() const override { return 0; }
  optim::DilocoOuter* outer(int stage) override { return outer_.empty() ? nullptr : outer_[stage].get(); }

 private:
  ParamStore& stage_params(int replica, int stage) { return execs_[replica]->local_stage(stage).params(); }

  size_t sync_payload_bytes(int s) {
    return replicas_.sync == DpSync::step ? stage_params(0, s).num_parameters() * sizeof(float)
                                          : payloads_[s]->bytes();
  }

  // Stage s's gradients <- their mean over the replicas, in every replica.
  void average_gradients(int s) {
    std::vector<Tensor> grads;
    for (size_t r = 0; r < execs_.size(); ++r) grads.push_back(stage_params(static_cast<int>(r), s).all_grads());
    const size_t n = static_cast<size_t>(grads[0].numel());
    const Tensor avg = prefix(average_, static_cast<int64_t>(n));
    optim::average_in_order(ctx_, device_, grads, avg);
    for (const Tensor& g : grads) assign(ctx_, device_, g, avg, n);
  }

  // DiLoCo at stage s: every replica's change since the last sync, through the wire code and back, averaged; the
  // outer step; everyone reloads.
  void outer_sync(int s) {
    const int64_t n = static_cast<int64_t>(stage_params(0, s).num_elements());
    const int64_t sync = outer_[s]->outer_steps();
    std::vector<Tensor> deltas;
    for (size_t r = 0; r < execs_.size(); ++r) {
      deltas.push_back(prefix(per_replica_[r], n));
      outer_[s]->replica_delta(stage_params(static_cast<int>(r), s), deltas.back());
      if (replicas_.dp_code != comm::WireDType::f32) {
        payloads_[s]->encode(deltas.back(), sync, static_cast<int>(r), s, wire_.data());
        payloads_[s]->decode(wire_.data(), deltas.back());
      }
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
  std::vector<std::unique_ptr<DpPayload>> payloads_;        // per stage (diloco)
  std::vector<uint8_t> wire_;                               // one encoded payload
  std::unique_ptr<Arena> scratch_;
  std::vector<Tensor> per_replica_;
  Tensor average_;
  int inner_ = 0;  // inner steps since the last DiLoCo sync
};

// One process per (replica, stage): `pipeline` runs this replica's stage, `group` joins the replicas of the stage.
class ReplicatedDistributedExecutor : public ReplicatedExecutor {
 public:
  ReplicatedDistributedExecutor(const PipelineConfig& config, const ReplicaConfig& replicas,
                                std::unique_ptr<Executor> pipeline, std::unique_ptr<comm::ReplicaGroup> group,
                                const kernels::KernelContext& ctx, int B, int T)
      : replicas_(replicas), ctx_(ctx), pipeline_(std::move(pipeline)), group_owned_(std::move(group)),
        group_(*group_owned_),
        rows_(static_cast<int64_t>(config.micro_batches) * B) {
    (void)T;
    ENGINE_CHECK(group_.num_replicas() == replicas.replicas, "replicas: the group has %d replicas, the config %d",
                 group_.num_replicas(), replicas.replicas);
    ENGINE_CHECK(replicas.inner_steps >= 1, "replicas: inner steps H=%d must be >= 1", replicas.inner_steps);
    ParamStore& params = pipeline_->local_stage(0).params();
    device_ = params.device();
    const int R = replicas.replicas;
    const int64_t n = static_cast<int64_t>(params.num_elements());
    scratch_ = std::make_unique<Arena>("replica sync", (R + 2) * (n * sizeof(float) + 256), device_);
    for (int r = 0; r < R; ++r) per_replica_.push_back(scratch_->alloc({n}));
    average_ = scratch_->alloc({n});
    mine_ = scratch_->alloc({n});
    if (replicas.sync == DpSync::diloco) {
      outer_ = std::make_unique<optim::DilocoOuter>(params, ctx, replicas.outer);
      payload_ = std::make_unique<DpPayload>(replicas, ctx, params.num_elements());
    }
    // Every stage's sync payload, to count the bytes of a sync over all stages (the stages' collective, once).
    const double bytes = static_cast<double>(sync_payload_bytes());
    std::vector<double> all(config.stages);
    pipeline_->transport()->allgather(&bytes, 1, all.data());
    for (double b : all) {
      stage_payloads_.push_back(static_cast<uint64_t>(b));
      all_stages_payload_ += stage_payloads_.back();
    }
    // Host buffers of one sync, sized once: the fp32 gradients (alignment padding included) or the encoded change.
    const size_t wire = std::max(sync_payload_bytes(), static_cast<size_t>(n) * sizeof(float));
    send_.resize(wire);
    gathered_.resize(wire * R);
    summary_mine_.resize(summary_width());
    summary_all_.resize(summary_width() * R);
    losses_.resize(R);
    evaluated_.resize(R);
  }

  StepStats step(const Tensor& tokens, const Tensor& targets, float lr) override {
    const int R = replicas_.replicas, r = group_.replica();
    ENGINE_CHECK(tokens.dim(0) == R * rows_ && targets.dim(0) == R * rows_,
                 "replicas: a step of %d replicas takes %lld rows (R x M x B), got %lld", R,
                 static_cast<long long>(R * rows_), static_cast<long long>(tokens.dim(0)));
    const double t0 = now_s();
    const Tensor my_tokens = rows_of(tokens, r * rows_, rows_), my_targets = rows_of(targets, r * rows_, rows_);
    StepStats stats;
    bool synced = false;
    if (replicas_.sync == DpSync::step) {
      synced = true;
      pipeline_->forward_backward(my_tokens, my_targets);
      const double start = now_s();
      average_gradients();
      hold_dp_link(replicas_, start, sync_payload_bytes());
      stats = pipeline_->finish_step(lr);
    } else {
      stats = pipeline_->step(my_tokens, my_targets, lr);
      if (++inner_ == replicas_.inner_steps) {
        inner_ = 0;
        synced = true;
        const double start = now_s();
        outer_sync();
        hold_dp_link(replicas_, start, sync_payload_bytes());
      }
    }
    // What the step reports, as the local executor does: the mean loss over the replicas (replica order), every
    // replica's boundary counts, replica 0's grad norm and phase times.
    summary_mine_[0] = stats.loss;
    summary_mine_[1] = stats.grad_norm;
    stats.wire.to_doubles(summary_mine_.data() + 2);
    group_.allgather(summary_mine_.data(), summary_mine_.size(), summary_all_.data());
    for (int q = 0; q < R; ++q) losses_[q] = static_cast<float>(summary_all_[q * summary_width()]);
    stats.loss = mean_loss(losses_);
    stats.grad_norm = static_cast<float>(summary_all_[1]);
    stats.wire.clear();
    for (int q = 0; q < R; ++q) stats.wire.add_doubles(summary_all_.data() + q * summary_width() + 2);
    stats.uncompressed_bytes_per_direction *= static_cast<uint64_t>(R);
    stats.dp_bytes = synced ? static_cast<uint64_t>(R) * all_stages_payload_ : 0;
    if (synced) stats.dp_stage_bytes = stage_payloads_;
    stats.seconds = now_s() - t0;
    return stats;
  }

  // Replica 0's loss (every replica evaluates its own parameters; under diloco they differ between syncs).
  float evaluate(const Tensor& tokens, const Tensor& targets) override {
    const double mine = pipeline_->evaluate(tokens, targets);
    group_.allgather(&mine, 1, evaluated_.data());
    return static_cast<float>(evaluated_[0]);
  }
  void set_step(int64_t step) override {
    pipeline_->set_step(step);
    inner_ = static_cast<int>(step % replicas_.inner_steps);
  }
  int num_local_stages() const override { return 1; }
  StageModule& local_stage(int i) override { return pipeline_->local_stage(i); }
  int first_local_stage() const override { return pipeline_->first_local_stage(); }
  comm::Transport* transport() override { return pipeline_->transport(); }
  int num_replicas() const override { return replicas_.replicas; }
  int first_local_replica() const override { return group_.replica(); }
  comm::ReplicaGroup& replica_group() override { return group_; }
  optim::DilocoOuter* outer(int stage) override { return stage == first_local_stage() ? outer_.get() : nullptr; }

 private:
  ParamStore& params() { return pipeline_->local_stage(0).params(); }
  int summary_width() const {
    return 2 + comm::WireStats(pipeline_->transport()->num_stages() - 1).num_doubles();
  }
  size_t sync_payload_bytes() {
    return replicas_.sync == DpSync::step ? params().num_parameters() * sizeof(float) : payload_->bytes();
  }

  // Every replica's fp32 gradients, gathered; their mean in replica order, as the local executor computes it.
  void average_gradients() {
    const Tensor grads = params().all_grads();
    const size_t n = static_cast<size_t>(grads.numel());
    copy_to_host(send_.data(), grads);
    group_.allgather(reinterpret_cast<const float*>(send_.data()), n, reinterpret_cast<float*>(gathered_.data()));
    for (int q = 0; q < replicas_.replicas; ++q) copy_from_host(per_replica_[q], gathered_.data() + q * n * sizeof(float));
    optim::average_in_order(ctx_, device_, per_replica_, average_);
    assign(ctx_, device_, grads, average_, n);
  }

  // DiLoCo: this replica's change, encoded; every replica's, gathered and decoded; their mean; the outer step.
  void outer_sync() {
    const int64_t n = static_cast<int64_t>(params().num_elements());
    const size_t bytes = payload_->bytes();
    const Tensor delta = prefix(mine_, n);
    outer_->replica_delta(params(), delta);
    payload_->encode(delta, outer_->outer_steps(), group_.replica(), first_local_stage(), send_.data());
    gather_bytes(send_.data(), bytes, gathered_.data());
    for (int q = 0; q < replicas_.replicas; ++q) payload_->decode(gathered_.data() + q * bytes, per_replica_[q]);
    optim::average_in_order(ctx_, device_, per_replica_, average_);
    outer_->outer_step(average_);
    outer_->load_synced(params());
  }

  // Bytes through the group's float gather: payloads are padded to whole floats (int8's is not always).
  void gather_bytes(const uint8_t* mine, size_t bytes, uint8_t* all) {
    const size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
    padded_send_.assign(floats, 0.0f);
    std::memcpy(padded_send_.data(), mine, bytes);
    padded_all_.resize(floats * replicas_.replicas);
    group_.allgather(padded_send_.data(), floats, padded_all_.data());
    for (int q = 0; q < replicas_.replicas; ++q) {
      std::memcpy(all + q * bytes, padded_all_.data() + q * floats, bytes);
    }
  }

  ReplicaConfig replicas_;
  const kernels::KernelContext& ctx_;
  std::unique_ptr<Executor> pipeline_;
  std::unique_ptr<comm::ReplicaGroup> group_owned_;  // after pipeline_: freed first
  comm::ReplicaGroup& group_;
  int64_t rows_;
  Device device_ = Device::cpu;
  std::unique_ptr<optim::DilocoOuter> outer_;
  std::unique_ptr<DpPayload> payload_;
  std::unique_ptr<Arena> scratch_;
  std::vector<Tensor> per_replica_;
  Tensor average_, mine_;
  std::vector<uint8_t> send_, gathered_;
  std::vector<float> padded_send_, padded_all_;
  std::vector<double> summary_mine_, summary_all_, evaluated_;
  std::vector<float> losses_;
  std::vector<uint64_t> stage_payloads_;  // one replica's sync payload per stage, stage order
  uint64_t all_stages_payload_ = 0;       // their sum
  int inner_ = 0;
};

}  // namespace

std::unique_ptr<ReplicatedExecutor> make_replicated_local_executor(const PipelineConfig& config, const ReplicaConfig& replicas,
                                                         std::vector<std::vector<std::unique_ptr<StageModule>>> stages,
                                                         const OptimizerFactory& optimizer,
                                                         const kernels::KernelContext& ctx, int B, int T) {
  return std::make_unique<ReplicatedLocalExecutor>(config, replicas, std::move(stages), optimizer, ctx, B, T);
}

std::unique_ptr<ReplicatedExecutor> make_replicated_distributed_executor(const PipelineConfig& config,
                                                                         const ReplicaConfig& replicas,
                                                                         std::unique_ptr<Executor> pipeline,
                                                                         std::unique_ptr<comm::ReplicaGroup> group,
                                                                         const kernels::KernelContext& ctx, int B,
                                                                         int T) {
  return std::make_unique<ReplicatedDistributedExecutor>(config, replicas, std::move(pipeline), std::move(group), ctx,
                                                         B, T);
}

size_t dp_payload_bytes(const ReplicaConfig& replicas, size_t n) {
  const int64_t full = static_cast<int64_t>(n) / kDpCodeBlock, tail = static_cast<int64_t>(n) % kDpCodeBlock;
  return comm::encoded_bytes(replicas.dp_code, full, kDpCodeBlock) +
         (tail > 0 ? comm::encoded_bytes(replicas.dp_code, 1, tail) : 0);
}

double dp_sync_seconds(const ReplicaConfig& replicas, size_t payload_bytes) {
  if (replicas.replicas <= 1 || (replicas.dp_link_mbps <= 0.0 && replicas.dp_link_latency_ms <= 0.0)) return 0.0;
  return comm::transmit_s(static_cast<size_t>(replicas.replicas - 1) * payload_bytes, replicas.dp_link_mbps) +
         replicas.dp_link_latency_ms * 1e-3;
}

}  // namespace engine::pipeline
