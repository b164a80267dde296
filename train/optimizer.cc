// train/optimizer.cc: AdamW and Muon adapters over engine/optim, with checkpointable state.
#include "train/optimizer.h"

#include "engine/device.h"
#include "engine/optim/adamw.h"

namespace train {
namespace {

engine::optim::AdamWConfig adamw_config(const TrainFlags& f) {
  engine::optim::AdamWConfig c;
  c.beta1 = f.beta1;
  c.beta2 = f.beta2;
  c.eps = f.eps;
  c.weight_decay = f.weight_decay;
  c.rounding_seed = f.seed;  // bf16 policy: the copy's stochastic rounding, reproducible from --seed
  return c;
}

class AdamWOptimizer : public TrainOptimizer {
 public:
  AdamWOptimizer(engine::ParamStore& params, const kernels::KernelContext& ctx, const TrainFlags& flags)
      : adamw_(params, ctx, adamw_config(flags)) {}
  void step(float lr, float grad_scale) override { adamw_.step(lr, grad_scale); }
  void save_state(CheckpointWriter& out, const std::string& prefix) const override {
    save_state_tensor(out, prefix + "adamw.m", adamw_.m());
    save_state_tensor(out, prefix + "adamw.v", adamw_.v());
    out.add_u64(prefix + "adamw.t", static_cast<uint64_t>(adamw_.step_count()));
  }
  void load_state(const Checkpoint& in, const std::string& prefix) override {
    load_state_tensor(in, prefix + "adamw.m", adamw_.m());
    load_state_tensor(in, prefix + "adamw.v", adamw_.v());
    adamw_.set_step_count(static_cast<int>(in.get_u64(prefix + "adamw.t")));
    adamw_.restore_model_copy();  // bf16 policy: the copy as the last step left it (resume is bitwise)
  }
  size_t state_bytes() const override { return adamw_.m().nbytes() + adamw_.v().nbytes(); }

 private:
  engine::optim::AdamW adamw_;
};

}  // namespace

void save_state_tensor(CheckpointWriter& out, const std::string& name, const engine::Tensor& t) {
  std::vector<uint8_t> host(t.nbytes());
  engine::copy_to_host(host.data(), t);
  out.add(name, host.data(), host.size());
}

void load_state_tensor(const Checkpoint& in, const std::string& name, const engine::Tensor& t) {
  std::vector<uint8_t> host(t.nbytes());
  in.read_into(name, host.data(), host.size());
  engine::copy_from_host(t, host.data());
}

TrainOptimizer* OptimizerRegistry::find(const engine::ParamStore* store) const {
  for (const auto& e : entries) {
    if (e.first == store) return e.second;
  }
  return nullptr;
}

engine::pipeline::OptimizerFactory make_optimizer_factory(const TrainFlags& flags,
                                                          const kernels::KernelContext& ctx,
                                                          OptimizerRegistry* registry) {
  return [flags, &ctx, registry](engine::ParamStore& params) -> std::unique_ptr<engine::pipeline::StageOptimizer> {
    std::unique_ptr<TrainOptimizer> opt;
    if (flags.optimizer == "muon") {
      opt = make_muon_optimizer(params, ctx, flags);
    } else {
      opt = std::make_unique<AdamWOptimizer>(params, ctx, flags);
    }
    registry->entries.emplace_back(&params, opt.get());
    return opt;
  };
}

}  // namespace train
