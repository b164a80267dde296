// engine/optim/adamw.h: AdamW over a ParamStore (decoupled weight decay on matrices and embeddings only).
//
// Under the bf16 policy (ParamStore Precision::bf16, docs/bf16_policy.md) each step updates the fp32 masters with
// exactly the fp32 arithmetic and writes the model's bf16 copy with stochastic rounding (adamw_update_bf16). The
// rounding bits are a function of (rounding_seed, step, parameter index) only, so a rerun is bitwise and no two
// parameters or steps share bits.
#pragma once

#include "engine/memory.h"
#include "engine/params.h"
#include "kernels/context.h"

namespace engine::optim {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled; applied to ParamKind::matrix and ::embedding, never to ::vector
  uint64_t rounding_seed = 0;  // bf16 policy: seeds the stochastic rounding of the bf16 copy (the run's seed)
};

// The stochastic-rounding seed of parameter `index` at step t (1-based): hash64(hash64(seed, t), index).
uint64_t bf16_rounding_seed(uint64_t seed, int t, size_t index);

// Whether a parameter of this kind takes weight decay (GPT-2/llm.c decay every 2-D tensor: matrices, embeddings).
inline bool takes_weight_decay(ParamKind kind) { return kind != ParamKind::vector; }

class AdamW {
 public:
  // The state (m, v) lives in its own arena on the parameters' device, zeroed, laid out like params.all_values().
  AdamW(ParamStore& params, const kernels::KernelContext& ctx, const AdamWConfig& config);

  // One update of every parameter: t += 1, g = grad * grad_scale (clipping), then AdamW with bias correction.
  void step(float lr, float grad_scale = 1.0f);

  // Checkpointing: the state tensors (flat, num_elements of the ParamStore) and the step count.
  Tensor m() const { return m_; }
  Tensor v() const { return v_; }
  int step_count() const { return t_; }
  void set_step_count(int t) { t_ = t; }
  // Under the bf16 policy, after the masters and the step count are loaded from a checkpoint: the bf16 copy exactly
  // as step t's write-back left it (the same stochastic rounding of the same masters with the same seed), so that a
  // resumed run continues bit for bit; at t = 0 the masters rounded to nearest, as init leaves them. No-op under
  // fp32.
  void restore_model_copy();
  const AdamWConfig& config() const { return config_; }

 private:
  ParamStore& params_;
  const kernels::KernelContext& ctx_;
  AdamWConfig config_;
  Arena state_;
  Tensor m_, v_;
  int t_ = 0;
};

}  // namespace engine::optim
