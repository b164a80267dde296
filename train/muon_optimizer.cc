// train/muon_optimizer.cc: Muon (engine/optim/muon.h) as a TrainOptimizer. The schedule's lr is for --lr (AdamW's
// part); Muon's matrices follow the same warmup/cosine shape scaled to --muon-lr.
#include "engine/device.h"
#include "engine/optim/muon.h"
#include "train/optimizer.h"

namespace train {
namespace {

class MuonOptimizer : public TrainOptimizer {
 public:
  MuonOptimizer(engine::ParamStore& params, const kernels::KernelContext& ctx, const TrainFlags& flags)
      : muon_(params, ctx, config(flags)), peak_lr_(flags.lr), muon_lr_(flags.muon_lr) {}

  void step(float lr, float grad_scale) override { muon_.step(muon_lr_ * (lr / peak_lr_), lr, grad_scale); }
  void save_state(CheckpointWriter& out, const std::string& prefix) const override {
    save_state_tensor(out, prefix + "muon.m", muon_.m());
    save_state_tensor(out, prefix + "muon.v", muon_.v());
    out.add_u64(prefix + "muon.t", static_cast<uint64_t>(muon_.step_count()));
  }
  void load_state(const Checkpoint& in, const std::string& prefix) override {
    load_state_tensor(in, prefix + "muon.m", muon_.m());
    load_state_tensor(in, prefix + "muon.v", muon_.v());
    muon_.set_step_count(static_cast<int>(in.get_u64(prefix + "muon.t")));
  }
  size_t state_bytes() const override { return muon_.m().nbytes() + muon_.v().nbytes(); }

 private:
  static engine::optim::MuonConfig config(const TrainFlags& f) {
    engine::optim::MuonConfig c;
    c.momentum = f.muon_momentum;
    c.nesterov = f.muon_nesterov;
    c.ns_steps = f.muon_ns_steps;
    c.weight_decay = f.weight_decay;
    c.adamw.beta1 = f.beta1;
    c.adamw.beta2 = f.beta2;
    c.adamw.eps = f.eps;
    c.adamw.weight_decay = f.weight_decay;
    return c;
  }
  engine::optim::Muon muon_;
  float peak_lr_, muon_lr_;
};

}  // namespace

std::unique_ptr<TrainOptimizer> make_muon_optimizer(engine::ParamStore& params, const kernels::KernelContext& ctx,
                                                    const TrainFlags& flags) {
  return std::make_unique<MuonOptimizer>(params, ctx, flags);
}

}  // namespace train
