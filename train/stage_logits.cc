// train/stage_logits.cc: next-token logits through the stage models (see the header for why the last stage is
// rebuilt from named parameters).
#include "train/stage_logits.h"

#include <cstring>
#include <stdexcept>

#include "engine/comm/codec.h"
#include "engine/device.h"
#include "engine/pipeline/pipeline.h"

namespace train {
namespace {

int require_param(const engine::ParamStore& store, const std::string& name) {
  const int index = store.find(name);
  if (index < 0) throw std::runtime_error("sampling: the last stage has no parameter '" + name + "'");
  return index;
}

// Copies every parameter of `dst` from the parameter of the same name in `src` (same shape).
void copy_by_name(engine::ParamStore& dst, const engine::ParamStore& src) {
  for (auto& p : dst.params()) {
    const int i = require_param(src, p.name);
    const engine::Tensor& from = src.params()[i].var.value;
    if (from.numel() != p.var.value.numel()) {
      throw std::runtime_error("sampling: parameter '" + p.name + "' changed shape");
    }
    engine::copy_tensor(p.var.value, from);
  }
}

}  // namespace

StageLogits::StageLogits(std::vector<resbm::StageModel*> stages, const resbm::GPT2Config& model,
                         const resbm::BottleneckConfig& bottleneck, const kernels::KernelContext& ctx, int T)
    : stages_(std::move(stages)),
      model_(model),
      ctx_(ctx),
      T_(T),
      shadow_trained_(stages_.back()->params().device()),
      shadow_fixed_(stages_.back()->params().device()),
      device_(stages_.back()->params().device()) {
  const int S = static_cast<int>(stages_.size());
  resbm::StageModel& last = *stages_.back();
  engine::ParamStore& store = last.params();
  if (S > 1) {
    decoder_ = std::make_unique<resbm::BottleneckDecoder>(shadow_trained_, shadow_fixed_, bottleneck, S - 2,
                                                          model.channels);
  } else {
    embed_.wte = require_param(store, "wte");
    embed_.wpe = require_param(store, "wpe");
  }
  shadow_trained_.allocate();
  shadow_fixed_.allocate();
  const std::vector<int> first = engine::pipeline::partition_layers(model.num_layers, S, {});
  for (int l = first[S - 1]; l < first[S]; ++l) {
    // Rebuild BlockParams by name: declare_block's names are the contract (resbm/gpt2.h).
    const std::string p = resbm::block_prefix(l);
    resbm::BlockParams b;
    b.ln1_w = require_param(store, p + "ln_1.weight");
    b.ln1_b = require_param(store, p + "ln_1.bias");
    b.qkv_w = require_param(store, p + "attn.c_attn.weight");
    b.qkv_b = require_param(store, p + "attn.c_attn.bias");
    b.attn_proj_w = require_param(store, p + "attn.c_proj.weight");
    b.attn_proj_b = require_param(store, p + "attn.c_proj.bias");
    b.ln2_w = require_param(store, p + "ln_2.weight");
    b.ln2_b = require_param(store, p + "ln_2.bias");
    b.fc_w = require_param(store, p + "mlp.c_fc.weight");
    b.fc_b = require_param(store, p + "mlp.c_fc.bias");
    b.fc_proj_w = require_param(store, p + "mlp.c_proj.weight");
    b.fc_proj_b = require_param(store, p + "mlp.c_proj.bias");
    blocks_.push_back(b);
  }
  final_norm_.lnf_w = require_param(store, "ln_f.weight");
  final_norm_.lnf_b = require_param(store, "ln_f.bias");
  // The head: an untied last stage (PipelineConfig::untie_head) has lm_head.weight and no wte copy.
  wte_ = store.find("lm_head.weight") >= 0 ? store.find("lm_head.weight") : require_param(store, "wte");

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

void StageLogits::refresh_shadow() {
  resbm::StageModel& last = *stages_.back();
  copy_by_name(shadow_trained_, last.params());
  copy_by_name(shadow_fixed_, last.fixed_params());
}

engine::Var StageLogits::last_stage_logits(const engine::Var& input) {
  engine::Graph& g = *graph_;
  engine::ParamStore& store = stages_.back()->params();
  engine::Var x = input;
  if (decoder_) x = decoder_->forward(g, shadow_trained_, shadow_fixed_, x);  // (1,t,K) -> (1,t,C)
  for (const auto& b : blocks_) x = resbm::block_forward(g, store, b, x, model_);
  return resbm::head_logits(g, store, final_norm_, wte_, x);  // (1,t,Vp)
}

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
  if (decoder_) refresh_shadow();
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

  engine::Var x;  // (1,t,C) on S == 1; the decoded code (1,t,K) otherwise
  const int S = static_cast<int>(stages_.size());
  if (S == 1) {
    x = resbm::embed_forward(g, stages_[0]->params(), embed_, tokens);
    for (const auto& b : blocks_) x = resbm::block_forward(g, stages_[0]->params(), b, x, model_);
    x = resbm::head_logits(g, stages_[0]->params(), final_norm_, wte_, x);
  } else {
    engine::Var input;
    for (int s = 0; s + 1 < S; ++s) {
      const engine::Var z = stages_[s]->forward(g, tokens, tokens, input);  // (1,t,K); targets unused here
      input = wire_round_trip(z, stages_[s]->wire_dtype(), len);
    }
    x = last_stage_logits(input);
  }
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
