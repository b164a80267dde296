// train/stage_logits.cc: next-token logits through the stage models, across processes when they are elsewhere.
#include "train/stage_logits.h"

#include <cstring>
#include <stdexcept>

#include "engine/device.h"
#include "kernels/cpu/kernels.h"

namespace train {

StageLogits::StageLogits(std::vector<resbm::StageModel*> stages, int first_stage, int num_stages,
                         engine::comm::Transport* transport, const kernels::KernelContext& ctx, int padded_vocab_size,
                         int T)
    : stages_(std::move(stages)),
      first_stage_(first_stage),
      num_stages_(num_stages),
      transport_(transport),
      ctx_(ctx),
      Vp_(padded_vocab_size),
      T_(T),
      device_(stages_.back()->params().device()) {
  engine::ArenaBytes bytes;
  for (auto* s : stages_) {
    const engine::ArenaBytes b = s->arena_bytes(1, T);
    bytes.values += b.values;
    bytes.gradients += b.gradients;
  }
  bytes.values += static_cast<size_t>(T) * Vp_ * sizeof(float);
  graph_ = std::make_unique<engine::Graph>(ctx, device_, bytes);
  tokens_.resize(static_cast<size_t>(T));
  if (device_ != engine::Device::cpu) {
    token_arena_ = std::make_unique<engine::Arena>("sampling tokens", sizeof(int32_t) * T + 4096, device_);
    device_tokens_ = token_arena_->alloc({1, T}, engine::DType::i32);
  }
  logits_.resize(static_cast<size_t>(Vp_));
}

StageLogits::~StageLogits() = default;

namespace {

// t's values as floats in host memory: the stages' activations are fp32, or bf16 under the bf16 policy (widened,
// exactly). bits: host scratch for the bf16 case.
void values_to_host(const kernels::KernelContext& ctx, const engine::Tensor& t, float* out,
                    std::vector<uint16_t>* bits) {
  if (t.dtype != engine::DType::bf16) {
    engine::copy_to_host(out, t);
    return;
  }
  bits->resize(static_cast<size_t>(t.numel()));
  engine::copy_to_host(bits->data(), t);
  kernels::cpu::bf16_to_float(ctx, out, bits->data(), bits->size());
}

// The reverse: t = values (rounded to nearest even when t is bf16).
void values_from_host(const kernels::KernelContext& ctx, const engine::Tensor& t, const float* values,
                      std::vector<uint16_t>* bits) {
  if (t.dtype != engine::DType::bf16) {
    engine::copy_from_host(t, values);
    return;
  }
  bits->resize(static_cast<size_t>(t.numel()));
  kernels::cpu::float_to_bf16(ctx, bits->data(), values, bits->size());
  engine::copy_from_host(t, bits->data());
}

}  // namespace

// The codec runs on fp32 values in host memory (sampling is one row at a time: the copies cost nothing that
// matters), so a bf16 code is widened first; comm::encode then writes the same bytes the training wire carries.
void StageLogits::encode(const engine::Tensor& z, engine::comm::WireDType dtype, int len) {
  const int64_t K = z.dim(-1);
  wire_.resize(engine::comm::encoded_bytes(dtype, len, K));
  host_code_.resize(static_cast<size_t>(len) * K);
  values_to_host(ctx_, z, host_code_.data(), &host_bits_);
  engine::comm::encode(ctx_, dtype, wire_.data(), host_code_.data(), len, K);
}

void StageLogits::decode(const engine::Tensor& into, engine::comm::WireDType dtype, int len) {
  const int64_t K = into.dim(-1);
  host_code_.resize(static_cast<size_t>(len) * K);
  engine::comm::decode(ctx_, dtype, host_code_.data(), wire_.data(), len, K);
  values_from_host(ctx_, into, host_code_.data(), &host_bits_);
}

const float* StageLogits::next_token_logits(const int32_t* context, int len) {
  if (len < 1 || len > T_) throw std::invalid_argument("sampling: context length must be in [1, T]");
  engine::Graph& g = *graph_;
  g.reset();
  engine::Tensor tokens;
  tokens.data = tokens_.data();
  tokens.ndim = 2;
  tokens.shape[0] = 1;
  tokens.shape[1] = len;
  tokens.dtype = engine::DType::i32;
  std::memcpy(tokens_.data(), context, sizeof(int32_t) * static_cast<size_t>(len));
  if (device_ != engine::Device::cpu) {
    tokens.data = device_tokens_.data;  // (1, len) prefix of the (1, T) device tensor
    tokens.device = device_;
    engine::copy_from_host(tokens, tokens_.data());
  }

  const engine::comm::WireDType dtype = stages_.front()->wire_dtype();
  engine::Var input;  // the decoded code (1,len,K) from the previous stage; undefined on stage 0
  if (first_stage_ > 0) {
    input = g.new_var({1, len, stages_.front()->input_width()}, stages_.front()->activation_dtype());
    wire_.resize(engine::comm::encoded_bytes(dtype, len, stages_.front()->input_width()));
    transport_->recv_raw(first_stage_ - 1, engine::comm::kTagSampleCode, wire_.data(), wire_.size());
    decode(input.value, dtype, len);
  }
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (first_stage_ + static_cast<int>(i) == num_stages_ - 1) {
      const engine::Var logits = stages_[i]->logits(g, tokens, input);  // (1,len,Vp)
      engine::Tensor row = logits.value;  // the last position's (Vp), fp32 or bf16
      row.data = static_cast<char*>(logits.value.data) +
                 static_cast<size_t>(len - 1) * Vp_ * engine::dtype_size(logits.value.dtype);
      row.ndim = 1;
      row.shape[0] = Vp_;
      values_to_host(ctx_, row, logits_.data(), &host_bits_);
      return logits_.data();
    }
    const engine::Var z = stages_[i]->forward(g, tokens, tokens, input);  // (1,len,K); targets unused
    encode(z.value, dtype, len);
    if (i + 1 == stages_.size()) {  // the next stage is another process's
      transport_->send_raw(first_stage_ + static_cast<int>(i) + 1, engine::comm::kTagSampleCode, wire_.data(),
                           wire_.size());
      return nullptr;
    }
    input = g.new_var({1, len, z.value.dim(-1)}, z.value.dtype);
    decode(input.value, dtype, len);
  }
  return nullptr;  // not reached: the loop ends at the last stage or at this process's last
}

}  // namespace train
