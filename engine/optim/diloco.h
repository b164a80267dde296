// engine/optim/diloco.h: DiLoCo's outer optimizer for one stage's parameters (Douillard et al. 2023, "DiLoCo:
// Distributed Low-Communication Training of Language Models", arXiv 2311.08105), the data-parallel sync between R
// replicas of a pipeline stage that talks once every H inner steps instead of every step.
//
// Between syncs every replica runs its own inner optimizer (AdamW or Muon) from the last synced parameters
// theta_sync. At a sync each replica's change delta_r = theta_sync - theta_r (an "outer gradient": it points
// downhill reversed, like a gradient) is averaged over the R replicas, in replica order 0..R-1 so that every
// process gets the same bits, and the outer step applies Nesterov momentum to it (PyTorch's SGD(nesterov=True)
// form, as the paper's outer optimizer):
//   m = mu m + delta_avg;   theta_sync -= lr (delta_avg + mu m)      (without Nesterov: theta_sync -= lr m)
// Every replica then continues from the new theta_sync. With H = 1, lr = 1 and mu = 0 this is parameter averaging
// after every step. The paper's defaults: lr 0.7, mu 0.9, H in the hundreds.
//
// State (theta_sync and m) lives in an arena on the parameters' device, laid out like ParamStore::all_values();
// both are checkpointed (a resumed run must continue from the same theta_sync and momentum).
#pragma once

#include <vector>

#include "engine/memory.h"
#include "engine/params.h"
#include "kernels/context.h"

namespace engine::optim {

struct DilocoConfig {
  float outer_lr = 0.7f;
  float outer_momentum = 0.9f;
  bool nesterov = true;
};

class DilocoOuter {
 public:
  // Shaped like `params` (one replica's stage); theta_sync starts as its current values (call after init/resume).
  DilocoOuter(ParamStore& params, const kernels::KernelContext& ctx, const DilocoConfig& config);

  // delta (flat, params.num_elements()) = theta_sync - this replica's current parameters.
  void replica_delta(const ParamStore& replica, const Tensor& delta) const;
  // The outer step from the replicas' averaged delta; theta_sync moves, and is copied into `replica`'s values.
  void outer_step(const Tensor& delta_avg);
  // Copies theta_sync into a replica's parameters (every replica after the outer step).
  void load_synced(ParamStore& replica) const;

  // Checkpointing: theta_sync and the momentum (flat), and how many outer steps were taken.
  Tensor synced() const { return synced_; }
  Tensor momentum() const { return momentum_; }
  int outer_steps() const { return outer_steps_; }
  void set_outer_steps(int n) { outer_steps_ = n; }
  const DilocoConfig& config() const { return config_; }

 private:
  const kernels::KernelContext& ctx_;
  DilocoConfig config_;
  Device device_;
  size_t n_;
  Arena state_;
  Tensor synced_, momentum_;
  int outer_steps_ = 0;
};

// out = (deltas[0] + deltas[1] + ... + deltas[R-1]) / R, summed in that order (the same bits on every process that
// sums the same tensors). All flat, the same size, on one device.
void average_in_order(const kernels::KernelContext& ctx, Device device, const std::vector<Tensor>& deltas,
                      const Tensor& out);

}  // namespace engine::optim
