// train/stage_logits.cc: next-token logits through the stage models (see the header).
#include "train/stage_logits.h"

#include <cstring>
#include <stdexcept>

#include "engine/comm/codec.h"
#include "engine/device.h"
#include "engine/pipeline/pipeline.h"

namespace train {

StageLogits::StageLogits(std::vector<resbm::StageModel*> stages, const resbm::GPT2Config& model,
                         const resbm::BottleneckConfig& /*bottleneck*/, const kernels::KernelContext& ctx, int T)
    : stages_(std::move(stages)), model_(model), ctx_(ctx), T_(T), device_(stages_.back()->params().device()) {
  size_t bytes = 0;
  for (auto* s : stages_) bytes += s->activation_bytes(1, T);
  graph_ = std::make_unique<engine::Graph>(ctx, device_, bytes);
  tokens_.resize(static_cast<size_t>(T));
  if (device_ != engine::Device::cpu) {
    token_arena_ = std::make_unique<engine::Arena>("sampling tokens", sizeof(int32_t) * T + 4096, device_);
    device_tokens_ = token_arena_->alloc({1, T}, engine::DType::i32);
  }
  logits_.resize(static_cast<size_t>(model.padded_vocab_size));
}

StageLogits::~StageLogits() = default;

engine::Var StageLogits::wire_round_trip(const engine::Var& z, engine::comm::WireDType dtype, int len) {
  engine::Graph& g = *graph_;
  const int64_t K = z.value.dim(-1);
  wire_.resize(engine::comm::encoded_bytes(dtype, len, K));
  engine::Var input = g.new_var({1, len, K});
  if (device_ == engine::Device::cpu) {
    engine::comm::encode(ctx_, dtype, wire_.data(), z.value.f32(), len, K);
    engine::comm::decode(ctx_, dtype, input.value.f32(), wire_.data(), len, K);
    return input;
  }
  // The codec runs on host memory.
  host_code_.resize(static_cast<size_t>(len) * K);
  engine::copy_to_host(host_code_.data(), z.value);
  engine::comm::encode(ctx_, dtype, wire_.data(), host_code_.data(), len, K);
  engine::comm::decode(ctx_, dtype, host_code_.data(), wire_.data(), len, K);
  engine::copy_from_host(input.value, host_code_.data());
  return input;
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

  // Every stage but the last sends its code over the simulated wire; the last turns it into logits (1,t,Vp). Every
  // stage sees the tokens (re-injection adds their embedding after the decoder).
  engine::Var input;
  const int S = static_cast<int>(stages_.size());
  for (int s = 0; s + 1 < S; ++s) {
    const engine::Var z = stages_[s]->forward(g, tokens, tokens, input);  // (1,t,K); targets unused here
    input = wire_round_trip(z, stages_[s]->wire_dtype(), len);
  }
  const engine::Var x = stages_.back()->logits(g, tokens, input);  // (1,t,Vp)
  const int Vp = model_.padded_vocab_size;
  if (device_ == engine::Device::cpu) {
    std::memcpy(logits_.data(), x.value.f32() + static_cast<size_t>(len - 1) * Vp, sizeof(float) * Vp);
  } else {
    engine::Tensor row = x.value;  // (Vp) the last position's logits
    row.data = x.value.f32() + static_cast<size_t>(len - 1) * Vp;
    row.ndim = 1;
    row.shape[0] = Vp;
    engine::copy_to_host(logits_.data(), row);
  }
  return logits_.data();
}

}  // namespace train
