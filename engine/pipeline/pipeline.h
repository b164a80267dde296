// engine/pipeline/pipeline.h: pipeline-parallel training: stage partition, schedules (GPipe, 1F1B), the stage
// interface a model implements, and the executor that runs one training step over M micro-batches.
//
// Two executors share all per-stage code (engine/pipeline/stage_runner.h) and differ only in their transport:
//   (a) make_local_executor:       all S stages in this process, joined by LocalTransport (the reference);
//   (b) make_distributed_executor: this process runs one stage, joined to the others by MpiTransport (optionally
//                                   wrapped in a LinkEmulator).
// They give bitwise the same losses on the CPU because every stage does the same ops in the same order in both:
//   - parameter gradients accumulate over micro-batches in order 0..M-1 under either schedule;
//   - the tied weight (wte, on the first and the last stage) is held twice; after the backward pass both stages
//     add the two gradients as first + last, and both apply the same optimizer update to their copy;
//   - the global grad norm^2 is summed over stages in stage order (the tied weight counted once, on stage 0);
//   - the step's loss is the mean of the M micro-batch losses, summed in order 0..M-1 by the last stage.
// Arenas are sized once: each stage holds one Graph per micro-batch it can have in flight (M under GPipe,
// min(M, S - s) under 1F1B), so steady-state steps allocate nothing.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/comm/codec.h"
#include "engine/comm/transport.h"
#include "engine/params.h"
#include "kernels/context.h"

namespace engine::pipeline {

enum class Schedule : uint8_t { gpipe, one_f_one_b };
Schedule parse_schedule(const std::string& name);  // "gpipe", "1f1b"; std::invalid_argument otherwise
const char* schedule_name(Schedule schedule);

struct PipelineConfig {
  int stages = 1;                       // S
  int micro_batches = 1;                // M per optimizer step
  Schedule schedule = Schedule::gpipe;
  std::vector<int> boundaries;          // empty: even split; else the S-1 layers where stages 1..S-1 begin
  float grad_clip = 1.0f;               // clip the global grad norm to this; <= 0: no clipping
  double comm_timeout_s = 300.0;        // bounded waits of the distributed executor
  // The last stage's LM head is its own weight (lm_head.weight, starting equal to wte) instead of a copy of the
  // tied wte: no tied-gradient exchange between the first and the last stage (it dominates a slow link's bytes).
  bool untie_head = false;
  // An int8 code's gradient (backward wire) is rounded stochastically (unbiased) from hash(code_rounding_seed, step,
  // sending stage, micro-batch), so a run is reproducible and both executors draw the same bits; false: to nearest.
  bool stochastic_code_grads = true;
  uint64_t code_rounding_seed = 0;
  // The parameter policy of every stage's model (docs/bf16_policy.md): bf16 runs the bf16 ops on a bf16 copy of
  // fp32 masters, and the codes between stages are bf16 (resbm::StageModel refuses ssn).
  Precision precision = Precision::fp32;
};

// first (S+1 entries): stage s runs layers [first[s], first[s+1]). Even split: the first L % S stages get one
// more layer. Throws std::invalid_argument for an empty stage, unsorted or out-of-range boundaries, S > L.
std::vector<int> partition_layers(int num_layers, int stages, const std::vector<int>& boundaries);
std::vector<int> parse_boundaries(const std::string& csv);  // "3,6,9" -> {3,6,9}; "" -> {}

// One entry of a stage's schedule.
struct Action {
  enum Kind : uint8_t { forward, backward } kind;
  int micro_batch;
};
// The order in which stage `stage` runs its forwards and backwards. GPipe: F0..F(M-1), then B0..B(M-1).
// 1F1B: min(S-1-s, M) warm-up forwards, then alternate F, B; then the remaining backwards. Backwards run in
// micro-batch order 0..M-1 in both, which is what makes the two schedules give the same gradients.
std::vector<Action> make_schedule(Schedule schedule, int stage, int stages, int micro_batches);
// Most micro-batches stage `stage` holds activations for at once under the schedule (Graphs it needs).
int max_in_flight(Schedule schedule, int stage, int stages, int micro_batches);

// What a model stage provides (resbm::StageModel implements it).
class StageModule {
 public:
  virtual ~StageModule() = default;
  virtual ParamStore& params() = 0;  // trained parameters (the optimizer steps these)
  // One micro-batch. tokens/targets (B,T) i32 (the first stage reads tokens, the last targets). input: the
  // decoded code from the previous stage (B,T,input_width()) with a gradient, undefined on the first stage.
  // Returns the code to send (B,T,output_width()) on a non-last stage, the mean loss (1) on the last.
  virtual Var forward(Graph& g, const Tensor& tokens, const Tensor& targets, const Var& input) = 0;
  virtual int input_width() const = 0;   // K of the incoming code (0 on the first stage)
  virtual int output_width() const = 0;  // K of the outgoing code (0 on the last stage)
  virtual int stream_width() const = 0;  // C: the uncompressed boundary width, for the compression ratio
  virtual comm::WireDType wire_dtype() const = 0;  // dtype of codes and code gradients on the wire
  // dtype of the codes forward() takes and returns, and of their gradients: f32, or bf16 under the bf16 policy.
  virtual DType activation_dtype() const { return DType::f32; }
  virtual int tied_param() const = 0;    // index in params() of the weight tied first<->last (wte), or -1
  virtual size_t activation_bytes(int B, int T) const = 0;  // per Graph arena, an upper bound
  // The two arenas of a Graph apart (the bf16 policy's differ); by default activation_bytes each.
  virtual ArenaBytes arena_bytes(int B, int T) const { return {activation_bytes(B, T), activation_bytes(B, T)}; }
  virtual void zero_grads() { params().zero_grads(); }     // after each optimizer step
};

// Applies one update to one stage's parameters. grad_scale (<= 1) multiplies the gradients first (clipping).
class StageOptimizer {
 public:
  virtual ~StageOptimizer() = default;
  virtual void step(float lr, float grad_scale) = 0;
};
using OptimizerFactory = std::function<std::unique_ptr<StageOptimizer>(ParamStore& params)>;
// engine::optim::AdamW (betas 0.9/0.95, eps 1e-8, weight decay on matrices and embeddings, none on vectors) as a
// StageOptimizer: the executor's default and the tests'. The trainer passes its own factory (train/optimizer.h).
// ctx must outlive the optimizers.
OptimizerFactory default_adamw(const kernels::KernelContext& ctx, float weight_decay = 0.1f);

// Seconds one stage spent computing during a step (wall clock, waits for messages excluded), the input of the
// pipeline simulator (tools/wan_sim).
struct PhaseTimes {
  double forward_s = 0.0;   // its M forwards, from the code's arrival to the outgoing code handed to the transport
  double backward_s = 0.0;  // its M backwards, likewise
  // Its optimizer update, which runs after the stages' summaries are exchanged and so is reported one step late:
  // the update that ended the previous step (0 on the first step of a process), plus this step's grad-norm share.
  double update_s = 0.0;
};

struct StepStats {
  float loss = 0.0f;          // mean over the M micro-batches (every process gets the same value)
  float grad_norm = 0.0f;     // global, before clipping
  comm::WireStats wire;       // all boundaries, summed over stages (sender's counts)
  uint64_t uncompressed_bytes_per_direction = 0;  // (S-1) * M * B*T*C * 4: what `none` at fp32 would send
  double seconds = 0.0;       // wall time of the step in this process
  // Data-parallel sync between replicas (engine/pipeline/replicas.h): each replica's fp32 gradients (every step)
  // or parameter change (a DiLoCo sync) once, summed over replicas and stages; 0 with one replica or between syncs.
  // An all-reduce moves about twice this over the links.
  uint64_t dp_bytes = 0;
  // On a sync step: one replica's payload per stage, stage order (what each stage's data-parallel link carries from
  // one replica); empty otherwise. tools/wan_sim reads it from the log.
  std::vector<uint64_t> dp_stage_bytes;
  std::vector<PhaseTimes> phases;  // per stage, in stage order
  // uncompressed / sent, per direction (0 when nothing was sent).
  double compression_ratio(comm::Direction dir) const;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // One optimizer step. tokens, targets (M*B, T) i32: micro-batch m is rows [m*B, (m+1)*B). Only the first
  // stage's process needs real tokens and only the last's real targets, but every process passes both shapes.
  virtual StepStats step(const Tensor& tokens, const Tensor& targets, float lr) = 0;
  // step() in two halves, for a data-parallel gradient sync between them (engine/pipeline/replicas.h): the forward
  // and backward passes with the tied-weight exchange; then the grad norm, clipping and the update. The local and
  // the distributed executors split; an executor that cannot refuses with an error.
  virtual void forward_backward(const Tensor& tokens, const Tensor& targets);
  virtual StepStats finish_step(float lr);
  // Mean loss over the M micro-batches, forward only (no gradient, no update, nothing counted).
  virtual float evaluate(const Tensor& tokens, const Tensor& targets) = 0;
  // The global index of the next step (0 at construction; a resumed run sets it): it seeds the stochastic
  // rounding of int8 code gradients, so a resumed run draws the same bits as an uninterrupted one.
  virtual void set_step(int64_t step) = 0;
  virtual int num_local_stages() const = 0;          // S for (a), 1 for (b)
  virtual StageModule& local_stage(int i) = 0;       // i-th stage held by this process
  virtual int first_local_stage() const = 0;         // global index of local_stage(0)
  // The transport to the other processes' stages (b), for exchanges beyond a training step (sampling, gathering
  // parameters); nullptr when this process holds every stage (a).
  virtual comm::Transport* transport() { return nullptr; }
};

// (a) All stages here. stages[s] is stage s.
std::unique_ptr<Executor> make_local_executor(const PipelineConfig& config,
                                              std::vector<std::unique_ptr<StageModule>> stages,
                                              const OptimizerFactory& optimizer, const kernels::KernelContext& ctx,
                                              int B, int T);
// (b) This process runs stage transport->stage(); the others run in other processes.
std::unique_ptr<Executor> make_distributed_executor(const PipelineConfig& config,
                                                    std::unique_ptr<StageModule> stage,
                                                    std::unique_ptr<comm::Transport> transport,
                                                    const OptimizerFactory& optimizer,
                                                    const kernels::KernelContext& ctx, int B, int T);

}  // namespace engine::pipeline
