// engine/pipeline/stage_runner.cc: one stage's forward/backward of a micro-batch, wire encode/decode, the tied
// gradient sum, its grad-norm share and its optimizer step.
#include "engine/pipeline/stage_runner.h"

#include <algorithm>
#include <chrono>

#include "engine/check.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/pipeline/wire_layout.h"
#include "kernels/counter_hash.h"

namespace engine::pipeline {

using comm::Direction;

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Rows [m*B, (m+1)*B) of a (M*B, T) i32 tensor, as a (B,T) view.
Tensor micro_rows(const Tensor& all, int m, int B, int T) {
  Tensor t = all;
  t.data = all.i32() + static_cast<int64_t>(m) * B * T;
  t.ndim = 2;
  t.shape[0] = B;
  t.shape[1] = T;
  return t;
}
}  // namespace

StageRunner::StageRunner(const PipelineConfig& config, StageModule& module, comm::Transport& transport,
                         const OptimizerFactory& optimizer, const kernels::KernelContext& ctx, int B, int T)
    : config_(config), module_(module), transport_(transport), ctx_(ctx), B_(B), T_(T) {
  const int S = config.stages, M = config.micro_batches, s = transport.stage();
  ENGINE_CHECK(transport.num_stages() == S, "StageRunner: transport has %d stages, config %d",
               transport.num_stages(), S);
  ENGINE_CHECK(M >= 1 && M < comm::kMaxMicroBatches, "--micro-batches must be in [1, %d), got %d",
               comm::kMaxMicroBatches, M);
  ENGINE_CHECK((s == 0) == (module.input_width() == 0) && (s == S - 1) == (module.output_width() == 0),
               "StageRunner: stage %d of %d has input width %d, output width %d", s, S, module.input_width(),
               module.output_width());
  actions_ = make_schedule(config.schedule, s, S, M);
  const ArenaBytes bytes = module.arena_bytes(B, T);
  slots_.resize(max_in_flight(config.schedule, s, S, M));
  device_ = module.params().device();
  for (Slot& sl : slots_) sl.graph = std::make_unique<Graph>(ctx, device_, bytes);
  const int64_t rows = static_cast<int64_t>(B) * T;
  const int widest = std::max(module.input_width(), module.output_width());
  const size_t wire_bytes = comm::encoded_bytes(module.wire_dtype(), rows, widest);
  const size_t tied_count =
      has_tied() ? static_cast<size_t>(module.params().var(module.tied_param()).grad.numel()) : 0;
  device_wire_ = on_gpu() && transport.carries_device_memory();
  if (device_wire_) {
    // fp32 codes are sent from, and received into, the graph's own tensors: no code buffers then.
    const bool in_place = module.wire_dtype() == comm::WireDType::f32;
    const int64_t wire_floats = in_place ? 0 : static_cast<int64_t>((wire_bytes + 3) / 4);
    const size_t slack = 3 * 256;  // the arena aligns each of its three buffers to 256 bytes
    wire_arena_ = std::make_unique<Arena>("stage wire", 2 * wire_floats * 4 + tied_count * 4 + slack, device_);
    send_buffer_ = wire_arena_->alloc({wire_floats}).data;
    recv_buffer_ = wire_arena_->alloc({wire_floats}).data;
    tied_other_ = wire_arena_->alloc({static_cast<int64_t>(tied_count)}).f32();
  } else {
    host_send_.resize(wire_bytes);
    host_recv_.resize(wire_bytes);
    host_tied_other_.resize(tied_count);
    send_buffer_ = host_send_.data();
    recv_buffer_ = host_recv_.data();
    tied_other_ = host_tied_other_.data();
    if (on_gpu()) {
      host_code_.resize(static_cast<size_t>(rows) * widest);
      tied_mine_.resize(tied_count);
    }
  }
  if (module.activation_dtype() == DType::bf16 && module.wire_dtype() != comm::WireDType::bf16) {
    // bf16 codes on a wire of another dtype (int8): widened into fp32 here, encoded and decoded as fp32 codes are.
    wide_arena_ = std::make_unique<Arena>("stage wide code", static_cast<size_t>(rows) * widest * 4 + 256, device_);
    wide_code_ = wide_arena_->alloc({rows * widest});
  }
  // One float per parameter tensor, then one per micro-batch's loss: on the GPU every partial sum and every loss is
  // written on the device, and all of them cross to the host at once (the step's one sync).
  const size_t count = module_.params().params().size();
  norm_parts_host_.resize(count + M);
  if (on_gpu()) {
    scalar_ = std::make_unique<Arena>("stage grad norm", (count + M) * sizeof(float) + 256, device_);
    norm_parts_ = scalar_->alloc({static_cast<int64_t>(count + M)});
  }
  losses_.assign(M, 0.0f);
  optimizer_ = optimizer(module.params());
}

bool StageRunner::can_run(const Action& action) {
  if (action.kind == Action::forward) {
    return transport_.is_first() || transport_.ready(Direction::forward, action.micro_batch);
  }
  return transport_.is_last() || transport_.ready(Direction::backward, action.micro_batch);
}

void StageRunner::run(const Action& action, const Tensor& tokens, const Tensor& targets, bool train) {
  if (action.kind == Action::forward) {
    forward(action.micro_batch, tokens, targets, train);
  } else {
    ENGINE_CHECK(train, "StageRunner: a backward action in an evaluation pass");
    backward(action.micro_batch);
  }
}

void StageRunner::forward(int m, const Tensor& tokens, const Tensor& targets, bool train) {
  ENGINE_CHECK(tokens.dtype == DType::i32 && tokens.ndim == 2 && tokens.dim(0) == int64_t{config_.micro_batches} * B_ &&
                   tokens.dim(1) == T_ && targets.dtype == DType::i32 && targets.ndim == 2 &&
                   targets.dim(0) == tokens.dim(0) && targets.dim(1) == T_,
               "pipeline step: tokens and targets must be i32 (M*B, T) = (%d, %d), got %s and %s",
               config_.micro_batches * B_, T_, tokens.describe().c_str(), targets.describe().c_str());
  Slot& sl = slot(m);
  Graph& g = *sl.graph;
  g.reset();
  const int64_t rows = static_cast<int64_t>(B_) * T_;
  sl.input = Var{};
  if (!transport_.is_first()) {
    const int K = module_.input_width();
    sl.input = g.new_var({B_, T_, K}, module_.activation_dtype(), /*requires_grad=*/train);  // (B,T,K)
    receive_code(Direction::forward, m, sl.input.value, rows, K);
  }
  const double t0 = now_s();  // compute starts once the input is here (a distributed stage blocks in the receive)
  sl.output = module_.forward(g, micro_rows(tokens, m, B_, T_), micro_rows(targets, m, B_, T_), sl.input);
  if (transport_.is_last()) {
    if (on_gpu()) {
      copy_tensor(device_loss(m), sl.output.value);  // (1), device to device: fetched with the grad norm's parts
      losses_fetched_ = false;
    } else {
      losses_[m] = sl.output.value.f32()[0];
    }
  } else {
    const int K = module_.output_width();
    ENGINE_CHECK(sl.output.value.numel() == rows * K, "stage %d: forward returned %s, expected (%d,%d,%d)",
                 stage(), sl.output.value.describe().c_str(), B_, T_, K);
    send_code(Direction::forward, m, sl.output.value, rows, K);
  }
  if (!train) g.reset();
  phases_.forward_s += now_s() - t0;
}

void StageRunner::backward(int m) {
  Slot& sl = slot(m);
  Graph& g = *sl.graph;
  const int64_t rows = static_cast<int64_t>(B_) * T_;
  double t0 = now_s();
  if (transport_.is_last()) {
    // Each micro-batch's loss enters as loss/M, so the accumulated gradients are those of the step's mean loss.
    g.backward(sl.output, 1.0f / static_cast<float>(config_.micro_batches));
  } else {
    const int K = module_.output_width();
    // (B,T,K) dL/dz, decoded: straight-through the wire codec
    Tensor dout = g.new_scratch({B_, T_, K}, module_.activation_dtype());
    receive_code(Direction::backward, m, dout, rows, K);
    t0 = now_s();  // the wait for the gradient is not compute
    g.backward_from(sl.output, dout);
  }
  if (!transport_.is_first()) send_code(Direction::backward, m, sl.input.grad, rows, module_.input_width());
  g.reset();
  sl.input = Var{};
  sl.output = Var{};
  phases_.backward_s += now_s() - t0;
}

void StageRunner::send_code(Direction dir, int m, const Tensor& x, int64_t rows, int K) {
  const comm::WireDType dtype = module_.wire_dtype();
  const size_t n = comm::encoded_bytes(dtype, rows, K);
  // Gradients round stochastically (unbiased), with bits that depend only on (seed, step, stage, micro-batch).
  comm::CodeRounding rounding;
  if (dir == Direction::backward && config_.stochastic_code_grads) {
    rounding.stochastic = true;
    const uint64_t message = static_cast<uint64_t>(stage()) * comm::kMaxMicroBatches + static_cast<uint64_t>(m);
    rounding.seed = kernels::hash64(kernels::hash64(config_.code_rounding_seed, static_cast<uint64_t>(step_)), message);
  }
  if (x.dtype == DType::bf16 && dtype != comm::WireDType::bf16) {
    // An int8 code of a bf16 tensor is quantized from its widened (exact) values, as from an fp32 code.
    const Tensor wide = wide_view(x);
    KERNEL(device_, bf16_to_float, ctx_, wide.f32(), x.u16(), static_cast<size_t>(x.numel()));
    send_code(dir, m, wide, rows, K);
    return;
  }
  if (x.dtype == DType::bf16) {
    // The bf16 bits as they are: the same bytes comm::encode writes for bf16 from the widened values. The
    // transport copies the message before send returns, so x itself goes unless it must be staged on the host.
    if (!on_gpu() || device_wire_) {
      transport_.send(dir, m, x.data, n);
      return;
    }
    copy_to_host(send_buffer_, x);
    transport_.send(dir, m, send_buffer_, n);
    return;
  }
  if (device_wire_) {
    // Encoded by kernels queued on the compute stream; the transport's copy of the message is ordered after them.
    transport_.send(dir, m, encode_for_wire(device_, ctx_, dtype, send_buffer_, x.f32(), rows, K, rounding), n);
    return;
  }
  const float* host_x = x.f32();
  if (on_gpu()) {
    copy_to_host(host_code_.data(), x);
    host_x = host_code_.data();
  }
  comm::encode(ctx_, dtype, send_buffer_, host_x, rows, K, rounding);
  transport_.send(dir, m, send_buffer_, n);
}

void StageRunner::receive_code(Direction dir, int m, const Tensor& x, int64_t rows, int K) {
  const comm::WireDType dtype = module_.wire_dtype();
  const size_t n = comm::encoded_bytes(dtype, rows, K);
  if (x.dtype == DType::bf16 && dtype != comm::WireDType::bf16) {
    // Decoded as an fp32 code, then rounded to nearest even once into the bf16 tensor.
    const Tensor wide = wide_view(x);
    receive_code(dir, m, wide, rows, K);
    KERNEL(device_, float_to_bf16, ctx_, x.u16(), wide.f32(), static_cast<size_t>(x.numel()));
    return;
  }
  if (x.dtype == DType::bf16) {  // the bits as they are (see send_code)
    if (!on_gpu() || device_wire_) {
      transport_.recv(dir, m, x.data, n);
      return;
    }
    transport_.recv(dir, m, recv_buffer_, n);
    copy_from_host(x, recv_buffer_);
    return;
  }
  if (device_wire_) {
    // The transport orders the compute stream after the message's arrival, so the decode reads it whole.
    void* target = wire_receive_target(dtype, recv_buffer_, x.f32());
    transport_.recv(dir, m, target, n);
    decode_from_wire(device_, ctx_, dtype, x.f32(), target, rows, K);
    return;
  }
  transport_.recv(dir, m, recv_buffer_, n);
  if (!on_gpu()) {
    comm::decode(ctx_, dtype, x.f32(), recv_buffer_, rows, K);
    return;
  }
  comm::decode(ctx_, dtype, host_code_.data(), recv_buffer_, rows, K);
  copy_from_host(x, host_code_.data());
}

Tensor StageRunner::wide_view(const Tensor& x) const {
  ENGINE_CHECK(wide_code_.defined() && x.numel() <= wide_code_.numel(), "stage %d: no fp32 staging for %s", stage(),
               x.describe().c_str());
  Tensor wide = wide_code_;  // x's shape over the front of the staging buffer
  wide.ndim = x.ndim;
  for (int i = 0; i < x.ndim; ++i) wide.shape[i] = x.shape[i];
  return wide;
}

void StageRunner::begin_step(int64_t step) {
  step_ = step;
  phases_ = PhaseTimes{};
  phases_.update_s = last_update_s_;
  std::fill(losses_.begin(), losses_.end(), 0.0f);
  transport_.clear_stats();
}

Tensor StageRunner::device_loss(int m) const {
  Tensor t = norm_parts_;  // (1) at count + m
  t.data = norm_parts_.f32() + module_.params().params().size() + m;
  t.ndim = 1;
  t.shape[0] = 1;
  return t;
}

void StageRunner::fetch_losses_from(const float* host) {
  if (!transport_.is_last()) return;
  std::copy(host, host + losses_.size(), losses_.begin());
  losses_fetched_ = true;
}

float StageRunner::mean_loss() {
  if (!transport_.is_last()) return 0.0f;
  if (on_gpu() && !losses_fetched_) {
    // Not fetched with the grad norm (an evaluation pass): the M losses in one copy.
    Tensor all = device_loss(0);
    all.shape[0] = static_cast<int64_t>(losses_.size());
    copy_to_host(losses_.data(), all);
    losses_fetched_ = true;
  }
  float sum = 0.0f;
  for (float l : losses_) sum += l;  // in micro-batch order: the same bits in every executor
  return sum / static_cast<float>(losses_.size());
}

bool StageRunner::has_tied() const {
  return config_.stages > 1 && (transport_.is_first() || transport_.is_last()) && module_.tied_param() >= 0;
}

void StageRunner::send_tied() {
  if (!has_tied()) return;
  const Tensor& grad = module_.params().var(module_.tied_param()).grad;
  if (on_gpu() && !device_wire_) {
    copy_to_host(tied_mine_.data(), grad);  // the transport moves host memory
    transport_.send_tied(tied_mine_.data(), tied_mine_.size());
    return;
  }
  // Host memory on the CPU; device memory on the device wire (the transport copies it in stream order).
  transport_.send_tied(grad.f32(), static_cast<size_t>(grad.numel()));
}

void StageRunner::receive_tied() {
  if (!has_tied()) return;
  const Tensor& grad = module_.params().var(module_.tied_param()).grad;
  const size_t n = static_cast<size_t>(grad.numel());
  transport_.recv_tied(tied_other_, n);
  if (device_wire_) {
    // The same IEEE addition as the host loop below, elementwise on the GPU: the same bits.
    KERNEL(device_, add_forward, ctx_, grad.f32(), grad.f32(), tied_other_, n);
    return;
  }
  // first + last on both stages (IEEE addition is commutative, so each side may hold either operand). On the GPU
  // the sum is made on the host (tied_mine_ holds this stage's gradient since send_tied) and copied back.
  float* g = on_gpu() ? tied_mine_.data() : grad.f32();
  for (size_t i = 0; i < n; ++i) g[i] = g[i] + tied_other_[i];
  if (on_gpu()) copy_from_host(grad, tied_mine_.data());
}

double StageRunner::grad_norm_squared() {
  const double t0 = now_s();
  ParamStore& params = module_.params();
  const int tied = module_.tied_param();
  const int count = static_cast<int>(params.params().size());
  auto skipped = [&](int i) { return i == tied && has_tied() && transport_.is_last(); };  // counted on stage 0
  // Each tensor's sum of squares as a float, then their sum in double in parameter order: the same numbers on
  // either device. On the GPU every partial lands in norm_parts_ and crosses to the host once (one sync per step,
  // not one per tensor).
  for (int i = 0; i < count; ++i) {
    if (skipped(i)) continue;
    const Tensor& g = params.var(i).grad;
    if (on_gpu()) {
      KERNEL(device_, sum_squares, ctx_, norm_parts_.f32() + i, g.f32(), static_cast<size_t>(g.numel()));
    } else {
      kernels::cpu::sum_squares(ctx_, &norm_parts_host_[i], g.f32(), static_cast<size_t>(g.numel()));
    }
  }
  if (on_gpu()) {
    copy_to_host(norm_parts_host_.data(), norm_parts_);  // the parts and the M losses: one copy
    fetch_losses_from(norm_parts_host_.data() + count);
  }
  double sum = 0.0;
  for (int i = 0; i < count; ++i) {
    if (!skipped(i)) sum += norm_parts_host_[i];
  }
  phases_.update_s += now_s() - t0;
  return sum;
}

void StageRunner::apply_update(float lr, float grad_scale) {
  const double t0 = now_s();
  optimizer_->step(lr, grad_scale);
  module_.zero_grads();
  last_update_s_ = now_s() - t0;
}

}  // namespace engine::pipeline
