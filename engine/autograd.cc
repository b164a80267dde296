// engine/autograd.cc: Graph, the tape of one forward pass, its two activation arenas and the backward replay.
#include "engine/autograd.h"

#include "engine/check.h"
#include "engine/device.h"
#include "engine/dispatch.h"

namespace engine {

Graph::Graph(const kernels::KernelContext& ctx, Device device, ArenaBytes bytes, size_t max_nodes)
    : ctx_(ctx),
      device_(device),
      values_("activations", bytes.values, device),
      grads_("activation gradients", bytes.gradients, device),
      max_nodes_(max_nodes) {
  tape_.reserve(max_nodes);
}

Var Graph::new_var(std::initializer_list<int64_t> shape, DType dtype, bool requires_grad) {
  Var v;
  v.value = values_.alloc(shape, dtype);
  if (requires_grad) v.grad = grads_.alloc(shape, dtype);
  return v;
}

Var Graph::new_var_shape(const int64_t* shape, int ndim, DType dtype, bool requires_grad) {
  Var v;
  v.value = values_.alloc_shape(shape, ndim, dtype);
  if (requires_grad) v.grad = grads_.alloc_shape(shape, ndim, dtype);
  return v;
}

Tensor Graph::new_saved(std::initializer_list<int64_t> shape, DType dtype) { return values_.alloc(shape, dtype); }

Tensor Graph::new_scratch(std::initializer_list<int64_t> shape, DType dtype) { return values_.alloc(shape, dtype); }

Tensor Graph::new_scratch_shape(const int64_t* shape, int ndim, DType dtype) {
  return values_.alloc_shape(shape, ndim, dtype);
}

void Graph::record(const TapeNode& node) {
  ENGINE_CHECK(tape_.size() < max_nodes_, "the tape is full (%zu nodes): raise Graph's max_nodes", max_nodes_);
  tape_.push_back(node);
}

void Graph::backward(const Var& loss, float dloss) {
  ENGINE_CHECK(loss.requires_grad(), "backward from a loss that needs no gradient (%s)",
               loss.value.describe().c_str());
  grads_.zero_used();
  KERNEL(device_, fill, ctx_, loss.grad.f32(), dloss, static_cast<size_t>(loss.grad.numel()));
  // Nothing but the last node can add to the loss's gradient when the loss is the last node's output.
  const bool last = !tape_.empty() && tape_.back().output.grad.data == loss.grad.data;
  seed_grad_ = last ? loss.grad.data : nullptr;
  seed_value_ = dloss;
  run_backward();
  seed_grad_ = nullptr;
}

float Graph::scalar_grad(const Var& output) const {
  ENGINE_CHECK(output.grad.defined() && output.grad.numel() == 1 && output.grad.dtype == DType::f32,
               "scalar_grad: %s is not a scalar f32 gradient", output.grad.describe().c_str());
  if (seed_grad_ != nullptr && output.grad.data == seed_grad_) return seed_value_;
  float g = 0.0f;
  copy_to_host(&g, output.grad);
  return g;
}

void Graph::backward_from(const Var& output, const Tensor& doutput) {
  ENGINE_CHECK(output.requires_grad(), "backward_from an output that needs no gradient (%s)",
               output.value.describe().c_str());
  ENGINE_CHECK(doutput.numel() == output.grad.numel() && doutput.dtype == output.grad.dtype,
               "backward_from: gradient %s does not match output %s", doutput.describe().c_str(),
               output.value.describe().c_str());
  grads_.zero_used();
  copy_tensor(output.grad, doutput);
  run_backward();
}

void Graph::run_backward() {
  for (size_t i = tape_.size(); i-- > 0;) {
    const TapeNode& node = tape_[i];
    if (!node.output.requires_grad()) continue;
    backward_node(*this, node);
  }
}

void Graph::reset() {
  tape_.clear();
  values_.reset();
  grads_.reset();
}

}  // namespace engine
