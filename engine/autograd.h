// engine/autograd.h: Var (a value and its gradient) and Graph, the define-by-run tape of one forward pass.
//
// An op (engine/ops.h) computes its output, then appends a TapeNode holding its inputs, output, saved tensors and
// scalar arguments. Graph::backward replays the nodes in reverse; each node's backward kernels ACCUMULATE (+=)
// into its inputs' gradients (kernels/cpu/kernels.h), so a value used twice (the residual stream) needs no special
// case. Activation gradients are zeroed once, at the start of backward. Parameter gradients live in the
// ParamStore (engine/params.h) and accumulate across micro-batches until the optimizer step zeroes them.
//
// A Graph owns two arenas, values and gradients of activations, sized once; reset() empties them and the tape,
// so a steady-state step allocates nothing. One Graph per micro-batch in flight (the pipeline keeps several).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "engine/memory.h"
#include "engine/tensor.h"
#include "kernels/context.h"

namespace engine {

// A value and its gradient. grad is undefined when no gradient flows there (token ids, frozen tensors).
struct Var {
  Tensor value;
  Tensor grad;
  bool requires_grad() const { return grad.defined(); }
};

enum class OpKind : uint8_t {
  embedding,
  layernorm,
  matmul,
  gelu,
  add,
  attention,
  softmax_crossentropy,
  slice_columns,   // out = in[:, offset:offset+K]
  pad_columns,     // out (N,C) = 0 except out[:, offset:offset+K] = in
  scale,           // out = in * s
  quantize_roundtrip,  // out = dequant(quant(in)) in the forward pass; straight-through gradient
  // Ops added later append here; each needs a case in engine/ops.cc's backward dispatch.
};

// One recorded op. Fixed size, no heap: the tape is a vector reserved once.
struct TapeNode {
  OpKind kind;
  Var inputs[4];
  Var output;
  Tensor saved[3];     // what the backward pass needs beyond inputs and output (layernorm mean/rstd, softmax probs)
  int64_t ints[6];     // shape and op arguments (B, T, C, NH, offset, K ...)
  float floats[2];     // scalar arguments (scale, ...)
  DType precision;     // f32, or bf16 when the op ran the bf16 kernels (docs/bf16_policy.md); backward follows it
};

class Graph;

// The backward pass of one recorded node (defined in engine/ops.cc, next to the forward passes).
void backward_node(Graph& g, const TapeNode& node);

// The sizes of a Graph's two arenas: values (activations, what forward saves, every scratch) and gradients (the
// activations' gradients). Apart because they differ: under fp32 attention's (B,NH,T,T) scratch and the softmax's
// probabilities are values only; under bf16 the values also hold the cross-entropy's scratch logits.
struct ArenaBytes {
  size_t values = 0, gradients = 0;
  size_t total() const { return values + gradients; }
};

class Graph {
 public:
  // bytes sizes the two arenas; max_nodes the tape. The size_t form gives both arenas the same size.
  Graph(const kernels::KernelContext& ctx, Device device, ArenaBytes bytes, size_t max_nodes = 4096);
  Graph(const kernels::KernelContext& ctx, Device device, size_t activation_bytes, size_t max_nodes = 4096)
      : Graph(ctx, device, ArenaBytes{activation_bytes, activation_bytes}, max_nodes) {}

  // A new activation: value in the value arena; gradient in the gradient arena when requires_grad.
  Var new_var(std::initializer_list<int64_t> shape, DType dtype = DType::f32, bool requires_grad = true);
  Var new_var_shape(const int64_t* shape, int ndim, DType dtype = DType::f32, bool requires_grad = true);
  // A tensor for the forward pass to save for backward (no gradient).
  Tensor new_saved(std::initializer_list<int64_t> shape, DType dtype = DType::f32);
  // Scratch for a backward kernel (e.g. attention's datt); freed with the graph at reset().
  Tensor new_scratch(std::initializer_list<int64_t> shape, DType dtype = DType::f32);
  Tensor new_scratch_shape(const int64_t* shape, int ndim, DType dtype = DType::f32);

  void record(const TapeNode& node);

  // Backward from a scalar loss: loss.grad = dloss, then every node in reverse.
  void backward(const Var& loss, float dloss = 1.0f);
  // Backward from a non-scalar output whose gradient arrived from elsewhere (the next pipeline stage):
  // output.grad = doutput (of output's gradient dtype: f32, or bf16 under the bf16 policy), then every node in
  // reverse.
  void backward_from(const Var& output, const Tensor& doutput);

  void reset();  // empty the tape and both arenas for the next micro-batch

  // During backward: the gradient of a scalar node output as a host float. For the loss backward() started from
  // (the last node's output) that is the dloss it was given, with no device round trip: the one host sync per step
  // this saves is the cross-entropy's. Any other scalar is copied from its device gradient.
  float scalar_grad(const Var& output) const;

  const kernels::KernelContext& ctx() const { return ctx_; }
  Device device() const { return device_; }
  size_t num_nodes() const { return tape_.size(); }
  size_t peak_activation_bytes() const { return values_.peak(); }
  size_t peak_gradient_bytes() const { return grads_.peak(); }

 private:
  void run_backward();
  const kernels::KernelContext& ctx_;
  Device device_;
  Arena values_;
  Arena grads_;
  std::vector<TapeNode> tape_;
  size_t max_nodes_;
  const void* seed_grad_ = nullptr;  // backward(): the loss's gradient buffer while its value is seed_value_
  float seed_value_ = 0.0f;
};

}  // namespace engine
