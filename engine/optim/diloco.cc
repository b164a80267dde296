// engine/optim/diloco.cc: DiLoCo's outer Nesterov step over flat parameter tensors (see diloco.h).
#include "engine/optim/diloco.h"

#include "engine/check.h"
#include "engine/dispatch.h"

namespace engine::optim {

DilocoOuter::DilocoOuter(ParamStore& params, const kernels::KernelContext& ctx, const DilocoConfig& config)
    : ctx_(ctx),
      config_(config),
      device_(params.device()),
      n_(params.num_elements()),
      state_("diloco state", 2 * params.num_elements() * sizeof(float) + 512, params.device()) {
  const int64_t n = static_cast<int64_t>(n_);
  synced_ = state_.alloc({n});
  momentum_ = state_.alloc({n});  // zeroed at creation
  const Tensor values = params.all_values();
  KERNEL(device_, fill, ctx_, synced_.f32(), 0.0f, n_);
  KERNEL(device_, axpy, ctx_, synced_.f32(), values.f32(), 1.0f, n_);
}

void DilocoOuter::replica_delta(const ParamStore& replica, const Tensor& delta) const {
  ENGINE_CHECK(replica.num_elements() == n_ && static_cast<size_t>(delta.numel()) == n_,
               "diloco: a replica of %zu elements and a delta of %lld for a stage of %zu", replica.num_elements(),
               static_cast<long long>(delta.numel()), n_);
  const Tensor values = replica.all_values();
  KERNEL(device_, fill, ctx_, delta.f32(), 0.0f, n_);
  KERNEL(device_, axpy, ctx_, delta.f32(), synced_.f32(), 1.0f, n_);
  KERNEL(device_, axpy, ctx_, delta.f32(), values.f32(), -1.0f, n_);
}

void DilocoOuter::outer_step(const Tensor& delta_avg) {
  ENGINE_CHECK(static_cast<size_t>(delta_avg.numel()) == n_, "diloco: an averaged delta of %lld for %zu elements",
               static_cast<long long>(delta_avg.numel()), n_);
  const float mu = config_.outer_momentum, lr = config_.outer_lr;
  KERNEL(device_, scale_inplace, ctx_, momentum_.f32(), mu, n_);             // m = mu m
  KERNEL(device_, axpy, ctx_, momentum_.f32(), delta_avg.f32(), 1.0f, n_);  //   + delta
  if (config_.nesterov) {
    KERNEL(device_, axpy, ctx_, synced_.f32(), delta_avg.f32(), -lr, n_);     // theta -= lr delta
    KERNEL(device_, axpy, ctx_, synced_.f32(), momentum_.f32(), -lr * mu, n_);  //        + lr mu m
  } else {
    KERNEL(device_, axpy, ctx_, synced_.f32(), momentum_.f32(), -lr, n_);
  }
  ++outer_steps_;
}

void DilocoOuter::load_synced(ParamStore& replica) const {
  ENGINE_CHECK(replica.num_elements() == n_, "diloco: a replica of %zu elements for a stage of %zu",
               replica.num_elements(), n_);
  const Tensor values = replica.all_values();
  KERNEL(device_, fill, ctx_, values.f32(), 0.0f, n_);
  KERNEL(device_, axpy, ctx_, values.f32(), synced_.f32(), 1.0f, n_);
}

void average_in_order(const kernels::KernelContext& ctx, Device device, const std::vector<Tensor>& deltas,
                      const Tensor& out) {
  ENGINE_CHECK(!deltas.empty(), "diloco: nothing to average");
  const size_t n = static_cast<size_t>(out.numel());
  KERNEL(device, fill, ctx, out.f32(), 0.0f, n);
  for (const Tensor& d : deltas) {
    ENGINE_CHECK(static_cast<size_t>(d.numel()) == n, "diloco: deltas of %lld and %zu elements",
                 static_cast<long long>(d.numel()), n);
    KERNEL(device, axpy, ctx, out.f32(), d.f32(), 1.0f, n);
  }
  KERNEL(device, scale_inplace, ctx, out.f32(), 1.0f / static_cast<float>(deltas.size()), n);
}

}  // namespace engine::optim
