// engine/optim/muon.h: Muon (momentum + Newton-Schulz orthogonalisation) for 2-D hidden weights, AdamW for the rest.
//
// After Keller Jordan's Muon (github.com/KellerJordan/Muon): for each ParamKind::matrix parameter W (rows, cols),
//   buf = momentum * buf + (1 - momentum) * g                       (g = grad * grad_scale)
//   u   = nesterov ? (1 - momentum) * g + momentum * buf : buf
//   O   = NewtonSchulz5(u / ||u||_F)                                (quintic, 5 steps, fp32 GEMMs)
//   W  *= 1 - lr_matrix * weight_decay;   W -= lr_matrix * max(1, rows/cols)^0.5 * O
// Every other parameter (embeddings, gains, biases) takes AdamW with lr_adamw.
#pragma once

#include <cstddef>

#include "engine/memory.h"
#include "engine/optim/adamw.h"
#include "engine/params.h"
#include "kernels/context.h"

namespace engine::optim {

struct MuonConfig {
  float momentum = 0.95f;
  bool nesterov = true;
  int ns_steps = 5;
  float weight_decay = 0.0f;  // decoupled, on the matrices
  AdamWConfig adamw;          // for the non-matrix parameters
};

// Floats of scratch newton_schulz needs for a (rows, cols) matrix.
size_t newton_schulz_scratch_floats(int rows, int cols);

// The quintic Newton-Schulz iteration (a, b, c) = (3.4445, -4.7750, 2.0315) on x / ||x||_F, x (rows, cols) on
// `device`; x is overwritten. Returns where the result is: x itself or a pointer into scratch (rows * cols floats).
// Its singular values land in roughly [0.68, 1.13], not exactly at 1: that is the point of this quintic.
float* newton_schulz(const kernels::KernelContext& ctx, Device device, float* x, float* scratch, int rows, int cols,
                     int steps);

class Muon {
 public:
  Muon(ParamStore& params, const kernels::KernelContext& ctx, const MuonConfig& config);

  void step(float matrix_lr, float adamw_lr, float grad_scale = 1.0f);

  // Checkpointing. Flat, laid out like params.all_values(): m() is the momentum buffer for matrix parameters and
  // AdamW's first moment for the others; v() is AdamW's second moment (unused, zero, for matrix parameters).
  Tensor m() const { return m_; }
  Tensor v() const { return v_; }
  int step_count() const { return t_; }
  void set_step_count(int t) { t_ = t; }
  const MuonConfig& config() const { return config_; }

 private:
  ParamStore& params_;
  const kernels::KernelContext& ctx_;
  MuonConfig config_;
  Arena state_;
  Arena scratch_;
  Tensor m_, v_, update_, ns_scratch_;
  int t_ = 0;
};

}  // namespace engine::optim
