// engine/pipeline/executor.cc: the two executors: all stages in one thread (the reference), or this process's
// one stage among others over a Transport. Both finish a step the same way (finish_step).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "engine/check.h"
#include "engine/comm/local_transport.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/stage_runner.h"

namespace engine::pipeline {

void Executor::forward_backward(const Tensor&, const Tensor&) {
  ENGINE_CHECK(false, "this executor cannot split a step for a data-parallel sync");
}

StepStats Executor::finish_step(float) {
  ENGINE_CHECK(false, "this executor cannot split a step for a data-parallel sync");
  return StepStats();
}

double StepStats::compression_ratio(comm::Direction dir) const {
  const uint64_t sent = wire.total_bytes(dir);
  return sent == 0 ? 0.0 : static_cast<double>(uncompressed_bytes_per_direction) / static_cast<double>(sent);
}

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Per stage, what the end of a step needs from every stage: [grad norm^2, mean loss, forward s, backward s,
// update s, wire stats...].
constexpr int kSummaryHead = 5;
int summary_width(int stages) { return kSummaryHead + comm::WireStats(stages - 1).num_doubles(); }

void write_summary(StageRunner& runner, bool train, double* out) {
  out[0] = train ? runner.grad_norm_squared() : 0.0;  // first: its time counts in the phases below
  out[1] = runner.mean_loss();
  const PhaseTimes& phases = runner.phase_times();
  out[2] = phases.forward_s;
  out[3] = phases.backward_s;
  out[4] = phases.update_s;
  runner.transport().stats().to_doubles(out + kSummaryHead);
}

// The executor-independent end of a step: combine the stages' summaries (in stage order), clip, update.
StepStats combine(const PipelineConfig& config, const std::vector<double>& all, int B, int T, int C) {
  const int S = config.stages, width = summary_width(S);
  StepStats stats;
  stats.wire.resize(S - 1);
  double norm_sq = 0.0;
  for (int s = 0; s < S; ++s) {
    const double* mine = &all[s * width];
    norm_sq += mine[0];
    stats.phases.push_back({mine[2], mine[3], mine[4]});
    stats.wire.add_doubles(mine + kSummaryHead);
  }
  stats.grad_norm = static_cast<float>(std::sqrt(norm_sq));
  stats.loss = static_cast<float>(all[(S - 1) * width + 1]);
  stats.uncompressed_bytes_per_direction = static_cast<uint64_t>(S - 1) * config.micro_batches * B * T * C * 4;
  return stats;
}

float clip_scale(const PipelineConfig& config, float grad_norm) {
  if (config.grad_clip > 0.0f && grad_norm > config.grad_clip) return config.grad_clip / grad_norm;
  return 1.0f;
}

class LocalExecutor : public Executor {
 public:
  LocalExecutor(const PipelineConfig& config, std::vector<std::unique_ptr<StageModule>> stages,
                const OptimizerFactory& optimizer, const kernels::KernelContext& ctx, int B, int T)
      : config_(config), stages_(std::move(stages)), B_(B), T_(T) {
    ENGINE_CHECK(static_cast<int>(stages_.size()) == config.stages, "local executor: %zu stage models for %d stages",
                 stages_.size(), config.stages);
    transports_ = comm::make_local_transports(config.stages);
    for (int s = 0; s < config.stages; ++s) {
      runners_.push_back(std::make_unique<StageRunner>(config, *stages_[s], *transports_[s], optimizer, ctx, B, T));
    }
    summary_.resize(static_cast<size_t>(config.stages) * summary_width(config.stages));
    for (int m = 0; m < config.micro_batches; ++m) forward_only_.push_back({Action::forward, m});
    next_.resize(config.stages);
  }

  StepStats step(const Tensor& tokens, const Tensor& targets, float lr) override {
    forward_backward(tokens, targets);
    return finish_step(lr);
  }

  void forward_backward(const Tensor& tokens, const Tensor& targets) override {
    step_start_ = now_s();
    run_actions(tokens, targets, /*train=*/true);
    // Tied weight: both halves sent before either is received (one thread).
    for (auto& r : runners_) r->send_tied();
    for (auto& r : runners_) r->receive_tied();
  }

  StepStats finish_step(float lr) override {
    StepStats stats = summarise(/*train=*/true);
    const float scale = clip_scale(config_, stats.grad_norm);
    for (auto& r : runners_) r->apply_update(lr, scale);
    ++step_;
    stats.seconds = now_s() - step_start_;
    return stats;
  }

  float evaluate(const Tensor& tokens, const Tensor& targets) override {
    run_actions(tokens, targets, /*train=*/false);
    const float loss = summarise(/*train=*/false).loss;
    for (auto& r : runners_) r->transport().clear_stats();
    return loss;
  }

  void set_step(int64_t step) override { step_ = step; }
  int num_local_stages() const override { return config_.stages; }
  StageModule& local_stage(int i) override { return *stages_[i]; }
  int first_local_stage() const override { return 0; }

 private:
  // Runs every stage's schedule in one thread: repeatedly sweep the stages in order, each running as many of its
  // next actions as have their inputs. The per-stage order of actions is the schedule's, exactly as in the
  // distributed executor; only the interleaving across stages differs, which no stage can observe.
  void run_actions(const Tensor& tokens, const Tensor& targets, bool train) {
    const int S = config_.stages;
    std::vector<size_t>& next = next_;
    std::fill(next.begin(), next.end(), 0);
    for (auto& r : runners_) r->begin_step(step_);
    for (;;) {
      bool done = true, progress = false;
      for (int s = 0; s < S; ++s) {
        const std::vector<Action>& actions = train ? runners_[s]->actions() : forward_only_;
        while (next[s] < actions.size() && runners_[s]->can_run(actions[next[s]])) {
          runners_[s]->run(actions[next[s]], tokens, targets, train);
          ++next[s];
          progress = true;
        }
        if (next[s] < actions.size()) done = false;
      }
      if (done) return;
      ENGINE_CHECK(progress, "local executor: no stage can run its next action (schedule deadlock)");
    }
  }

  StepStats summarise(bool train) {
    const int width = summary_width(config_.stages);
    for (int s = 0; s < config_.stages; ++s) write_summary(*runners_[s], train, &summary_[s * width]);
    return combine(config_, summary_, B_, T_, stages_[0]->stream_width());
  }

  PipelineConfig config_;
  std::vector<std::unique_ptr<StageModule>> stages_;
  std::vector<std::unique_ptr<comm::Transport>> transports_;
  std::vector<std::unique_ptr<StageRunner>> runners_;
  std::vector<double> summary_;
  std::vector<Action> forward_only_;  // the evaluation schedule: forwards 0..M-1
  std::vector<size_t> next_;          // per stage, the index of its next action in this step
  int64_t step_ = 0;                  // global index of the next training step
  double step_start_ = 0.0;
  int B_, T_;
};

class DistributedExecutor : public Executor {
 public:
  DistributedExecutor(const PipelineConfig& config, std::unique_ptr<StageModule> stage,
                      std::unique_ptr<comm::Transport> transport, const OptimizerFactory& optimizer,
                      const kernels::KernelContext& ctx, int B, int T)
      : config_(config), stage_(std::move(stage)), transport_(std::move(transport)), B_(B), T_(T) {
    ENGINE_CHECK(transport_->num_stages() == config.stages, "distributed executor: transport has %d stages, config %d",
                 transport_->num_stages(), config.stages);
    runner_ = std::make_unique<StageRunner>(config, *stage_, *transport_, optimizer, ctx, B, T);
    const int width = summary_width(config.stages);
    mine_.resize(width);
    summary_.resize(static_cast<size_t>(config.stages) * width);
  }

  StepStats step(const Tensor& tokens, const Tensor& targets, float lr) override {
    forward_backward(tokens, targets);
    return finish_step(lr);
  }

  void forward_backward(const Tensor& tokens, const Tensor& targets) override {
    step_start_ = now_s();
    runner_->begin_step(step_);
    for (const Action& a : runner_->actions()) runner_->run(a, tokens, targets, /*train=*/true);
    runner_->send_tied();
    runner_->receive_tied();
  }

  StepStats finish_step(float lr) override {
    StepStats stats = summarise(/*train=*/true);
    runner_->apply_update(lr, clip_scale(config_, stats.grad_norm));
    ++step_;
    stats.seconds = now_s() - step_start_;
    return stats;
  }

  float evaluate(const Tensor& tokens, const Tensor& targets) override {
    runner_->begin_step(step_);
    for (int m = 0; m < config_.micro_batches; ++m) {
      runner_->run({Action::forward, m}, tokens, targets, /*train=*/false);
    }
    const float loss = summarise(/*train=*/false).loss;
    transport_->clear_stats();
    return loss;
  }

  void set_step(int64_t step) override { step_ = step; }
  int num_local_stages() const override { return 1; }
  StageModule& local_stage(int) override { return *stage_; }
  int first_local_stage() const override { return transport_->stage(); }
  comm::Transport* transport() override { return transport_.get(); }

 private:
  StepStats summarise(bool train) {
    write_summary(*runner_, train, mine_.data());
    transport_->allgather(mine_.data(), static_cast<int>(mine_.size()), summary_.data());
    return combine(config_, summary_, B_, T_, stage_->stream_width());
  }

  PipelineConfig config_;
  std::unique_ptr<StageModule> stage_;
  std::unique_ptr<comm::Transport> transport_;
  std::unique_ptr<StageRunner> runner_;
  std::vector<double> mine_, summary_;
  int64_t step_ = 0;  // global index of the next training step
  double step_start_ = 0.0;
  int B_, T_;
};

}  // namespace

std::unique_ptr<Executor> make_local_executor(const PipelineConfig& config,
                                              std::vector<std::unique_ptr<StageModule>> stages,
                                              const OptimizerFactory& optimizer, const kernels::KernelContext& ctx,
                                              int B, int T) {
  return std::make_unique<LocalExecutor>(config, std::move(stages), optimizer, ctx, B, T);
}

std::unique_ptr<Executor> make_distributed_executor(const PipelineConfig& config,
                                                    std::unique_ptr<StageModule> stage,
                                                    std::unique_ptr<comm::Transport> transport,
                                                    const OptimizerFactory& optimizer,
                                                    const kernels::KernelContext& ctx, int B, int T) {
  return std::make_unique<DistributedExecutor>(config, std::move(stage), std::move(transport), optimizer, ctx, B,
                                               T);
}

}  // namespace engine::pipeline
