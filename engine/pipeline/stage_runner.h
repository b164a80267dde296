// engine/pipeline/stage_runner.h: StageRunner, one stage's share of a training step, the code both executors run.
//
// A runner owns its stage's Graphs (one per micro-batch it can have in flight), its wire buffers (sized once) and
// its optimizer, and talks to the other stages only through its Transport. The executors differ only in how
// they interleave runners (engine/pipeline/executor.cc): the single-process executor polls can_run() to run
// every stage's actions in one thread; the distributed one runs its single stage's actions in order, blocking in
// the transport.
// On the GPU with a transport that carries device memory (NCCL), codes and the tied gradient cross in device memory,
// encoded and decoded there (wire_layout.h: the same bytes as the host codec); with any other transport they go
// through host memory and the host codec.
#pragma once

#include <memory>
#include <vector>

#include "engine/autograd.h"
#include "engine/memory.h"
#include "engine/comm/transport.h"
#include "engine/pipeline/pipeline.h"

namespace engine::pipeline {

class StageRunner {
 public:
  StageRunner(const PipelineConfig& config, StageModule& module, comm::Transport& transport,
              const OptimizerFactory& optimizer, const kernels::KernelContext& ctx, int B, int T);

  int stage() const { return transport_.stage(); }
  const std::vector<Action>& actions() const { return actions_; }
  // Whether the action's input (the code from stage-1, or its gradient from stage+1) has arrived.
  bool can_run(const Action& action);
  // tokens, targets: the step's (M*B, T) i32. train=false: forward only, the graph is freed at once.
  void run(const Action& action, const Tensor& tokens, const Tensor& targets, bool train);

  void begin_step(int64_t step);      // clears the loss sum and the wire counters; step: the global step index
  float mean_loss();                  // last stage: the M losses summed in order 0..M-1, over M; else 0
  // Tied weight (first and last of >= 2 stages): send this stage's gradient; then receive the other's and add:
  // both stages end with first + last.
  bool has_tied() const;
  void send_tied();
  void receive_tied();
  double grad_norm_squared();         // this stage's share, the tied weight counted on the first stage only
  void apply_update(float lr, float grad_scale);  // optimizer step, then zero the gradients
  // This step's compute so far (see PhaseTimes; begin_step clears forward and backward, and update_s keeps the
  // previous step's apply_update until grad_norm_squared adds its own time).
  const PhaseTimes& phase_times() const { return phases_; }

  comm::Transport& transport() { return transport_; }
  StageModule& module() { return module_; }

 private:
  struct Slot {  // one micro-batch in flight
    std::unique_ptr<Graph> graph;
    Var input;   // decoded code from stage-1 (B,T,K_in), with its gradient; undefined on the first stage
    Var output;  // code to stage+1 (B,T,K_out), or the loss (1) on the last stage
  };
  Slot& slot(int micro_batch) { return slots_[micro_batch % slots_.size()]; }
  void forward(int m, const Tensor& tokens, const Tensor& targets, bool train);
  void backward(int m);
  // A code (or its gradient) x (rows, K) to / from the neighbour in direction dir, micro-batch m (the tag), in the
  // wire dtype. Device wire: encoded and decoded on the GPU, the transport moves device memory. Host wire: the host
  // codec, x staged through host_code_ when it lives on the GPU.
  void send_code(comm::Direction dir, int m, const Tensor& x, int64_t rows, int K);
  void receive_code(comm::Direction dir, int m, const Tensor& x, int64_t rows, int K);
  bool on_gpu() const { return device_ == Device::cuda; }
  Tensor wide_view(const Tensor& x) const;  // x's shape, f32, over wide_code_
  Tensor device_loss(int m) const;           // GPU: micro-batch m's loss (1), in norm_parts_ after the parts
  void fetch_losses_from(const float* host);  // GPU: losses_ = the M losses copied to the host

  PipelineConfig config_;
  StageModule& module_;
  comm::Transport& transport_;
  const kernels::KernelContext& ctx_;
  int B_, T_;
  std::vector<Action> actions_;
  std::vector<Slot> slots_;
  std::unique_ptr<StageOptimizer> optimizer_;
  PhaseTimes phases_;                            // this step's compute, per phase
  double last_update_s_ = 0.0;                   // how long the previous apply_update took
  std::vector<float> losses_;                    // last stage: loss of each micro-batch of the step
  bool losses_fetched_ = true;                   // GPU: losses_ holds the device losses of this step
  int64_t step_ = 0;                             // global index of the current step (seeds code-gradient rounding)
  Device device_ = Device::cpu;                  // where the module's parameters and activations live
  // Device wire: the stage is on the GPU and its transport carries device memory (NcclTransport). The buffers below
  // then live in wire_arena_ on the GPU; otherwise in host memory (the vectors). Sized once, for the wider of the two
  // boundaries' encoded codes.
  bool device_wire_ = false;
  void* send_buffer_ = nullptr;                  // encoded code to send (fp32 on the device wire: x itself goes)
  void* recv_buffer_ = nullptr;                  // encoded code received (fp32 on the device wire: into x itself)
  float* tied_other_ = nullptr;                  // the other stage's tied-weight gradient
  std::unique_ptr<Arena> wire_arena_;            // device wire only
  std::vector<char> host_send_, host_recv_;      // host wire only
  std::vector<float> host_tied_other_;           // host wire only
  std::vector<float> host_code_;                 // GPU, host wire: a code or its gradient on its way to/from the wire
  std::vector<float> tied_mine_;                 // GPU, host wire: this stage's tied-weight gradient, on the host
  // bf16 codes on an int8 wire: the code widened to fp32 on its way to or from the codec (rows * widest, on the
  // stage's device); undefined otherwise (fp32 codes, and bf16 codes on a bf16 wire, which go as they are).
  std::unique_ptr<Arena> wide_arena_;
  Tensor wide_code_;
  std::unique_ptr<Arena> scalar_;                // GPU only: holds norm_parts_
  Tensor norm_parts_;                            // GPU only: (P + M) each parameter tensor's sum of squares, losses
  std::vector<float> norm_parts_host_;           // (P + M) the same on the host
};

}  // namespace engine::pipeline
