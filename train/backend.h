// train/backend.h: Backend, what the training loop drives: one optimizer step over M micro-batches, a forward-only
// loss, next-token logits for sampling, and the parameters and optimizers a checkpoint holds.
//
// The implementation (train/pipeline_backend.cc) runs the S pipeline stages in this process through the
// pipeline's single-process executor; S = 1 with --bottleneck none is plain GPT-2.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/params.h"
#include "engine/tensor.h"
#include "train/optimizer.h"
#include "train/run_config.h"

namespace train {

struct StepOutput {
  float loss = 0.0f;         // mean over the M micro-batches
  float grad_norm = 0.0f;    // global, before clipping
  uint64_t bytes_fwd = 0;    // codes sent across all boundaries this step
  uint64_t bytes_bwd = 0;    // code gradients sent back
  double compression_fwd = 1.0;  // uncompressed fp32 boundary bytes / bytes sent (1 when S = 1)
  double compression_bwd = 1.0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // tokens, targets (M*B, T) i32: micro-batch m is rows [m*B, (m+1)*B).
  virtual StepOutput step(const engine::Tensor& tokens, const engine::Tensor& targets, float lr) = 0;
  // The global index of the next step (a resumed run's checkpoint step): it seeds what a step draws at random (the
  // stochastic rounding of int8 code gradients), so a resumed run equals an uninterrupted one bit for bit.
  virtual void set_step(int64_t step) = 0;
  // Mean loss of the M micro-batches in (M*B, T), no update.
  virtual float evaluate(const engine::Tensor& tokens, const engine::Tensor& targets) = 0;
  // Logits (Vp floats, valid until the next call) of the token following context[0..len), 1 <= len <= T.
  virtual const float* next_token_logits(const int32_t* context, int len) = 0;

  // Every trained parameter store, stage order; and the optimizer stepping each (same order).
  virtual std::vector<engine::ParamStore*> param_stores() = 0;
  virtual std::vector<TrainOptimizer*> optimizers() = 0;
  virtual int64_t num_parameters() const = 0;       // trained elements, the tied wte counted once
  virtual size_t activation_bytes() const = 0;     // activation arenas, all stages
};

// Builds the stages (initialised from --seed, then --init-from if given) and the executor.
std::unique_ptr<Backend> make_backend(const RunConfig& config, const kernels::KernelContext& ctx);

}  // namespace train
