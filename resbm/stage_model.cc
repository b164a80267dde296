// resbm/stage_model.cc: StageModel, a contiguous slice of GPT-2 with the bottleneck halves at its ends.
#include "resbm/stage_model.h"

#include "engine/device.h"
#include "engine/ops.h"
#include "resbm/bottleneck_fused.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace resbm {

StageModel::StageModel(const GPT2Config& config, const BottleneckConfig& bottleneck, int stage, int num_stages,
                       int first_layer, int last_layer, engine::Device device, bool untie_head,
                       engine::Precision precision)
    : config_(config),
      bottleneck_(bottleneck),
      stage_(stage),
      num_stages_(num_stages),
      first_layer_(first_layer),
      last_layer_(last_layer),
      untie_head_(untie_head),
      trained_(device, precision),
      fixed_(device, precision) {  // the fixed tensors are op weights too: a bf16 copy under the bf16 policy
  validate_config(config);
  if (precision == engine::Precision::bf16 && bottleneck.kind == BottleneckKind::ssn) {
    throw std::invalid_argument("--bottleneck ssn does not run on the bf16 policy yet (its frozen-stream "
                                "subtraction is an fp32 op): use --dtype fp32 or --dtype bf16-autocast");
  }
  validate_bottleneck(bottleneck, config.channels);
  if (stage < 0 || stage >= num_stages || first_layer < 0 || first_layer >= last_layer ||
      last_layer > config.num_layers) {
    throw std::invalid_argument("StageModel: stage " + std::to_string(stage) + " of " + std::to_string(num_stages) +
                                " with layers [" + std::to_string(first_layer) + ", " + std::to_string(last_layer) +
                                ") of " + std::to_string(config.num_layers) + " is not a valid slice");
  }
  const int C = config.channels, K = code_width(bottleneck, C);
  const bool first = stage == 0, last = stage == num_stages - 1;
  fused_ = bottleneck.kind == BottleneckKind::resbm && bottleneck.layout == ResbmLayout::fused;
  ssn_ = bottleneck.kind == BottleneckKind::ssn;
  if (ssn_) {
    if (num_stages < 2) {
      throw std::invalid_argument("--bottleneck ssn needs --stages >= 2: its subspace constrains the blocks before a "
                                  "boundary, and one stage has no boundary");
    }
    untie_head_ = true;  // the first stage has no C-wide wte to tie the head to
    ssn_frozen_ = declare_ssn_frozen(fixed_, config, K);
    ssn_hidden_ = ssn_mlp_hidden(config, K, bottleneck.ssn_blocks, bottleneck.ssn_match_params);
  }
  if (first && ssn_) ssn_embed_ = declare_ssn_embeddings(trained_, config, K);
  if (first && !ssn_) embed_ = declare_embeddings(trained_, config);
  if (!first && fused_) w_dec_ = declare_fused_decoder(trained_, stage - 1, config, K);
  if (!first && !fused_ && !ssn_) {
    decoder_ = BottleneckDecoder(trained_, fixed_, bottleneck, stage - 1, C);
    has_decoder_ = true;
  }
  for (int l = first_layer; l < last_layer; ++l) {
    const bool encoder_block = fused_ && !last && l == last_layer - 1;
    if (ssn_ && !last) {
      blocks_.push_back(declare_ssn_block(trained_, block_prefix(l), config, K, ssn_hidden_));
      continue;
    }
    blocks_.push_back(encoder_block ? declare_fused_encoder_block(trained_, block_prefix(l), config, K)
                                    : declare_block(trained_, block_prefix(l), config));
  }
  if (!last && !fused_ && !ssn_) {
    encoder_ = BottleneckEncoder(trained_, fixed_, bottleneck, stage, C);
    has_encoder_ = true;
  }
  if (last) {
    final_norm_ = declare_final_norm(trained_, config);
    // The tied head: the first stage's wte when it is this stage, else this stage's own copy, named "wte" too so
    // that it is initialised to the same values (param_seed(seed, "wte")).
    // Untied: a head of its own, lm_head.weight, initialised under wte's seed in init().
    if (untie_head_) {
      head_wte_ = trained_.declare("lm_head.weight", {config.padded_vocab_size, C}, engine::ParamKind::embedding);
    } else {
      head_wte_ = first ? embed_.wte
                        : trained_.declare("wte", {config.padded_vocab_size, C}, engine::ParamKind::embedding);
    }
  }
  if (!first && bottleneck.reinject != Reinjection::off) {
    // The last stage re-uses the head's weight (no new parameters); a middle stage declares its own table.
    reinject_table_ = last ? head_wte_
                           : trained_.declare("reinject." + std::to_string(stage) + ".weight",
                                              {config.padded_vocab_size, C}, engine::ParamKind::embedding);
    zero_positions_ = fixed_.declare("reinject." + std::to_string(stage) + ".zero_positions", {config.max_seq_len, C},
                                     engine::ParamKind::vector);
  }
  trained_.allocate();
  if (!fixed_.params().empty()) fixed_.allocate();
}

void StageModel::init(uint64_t seed) {
  const bool first = stage_ == 0, last = stage_ == num_stages_ - 1;
  if (ssn_) init_ssn_frozen(fixed_, ssn_frozen_, config_, seed);  // from the seed alone: equal on every stage
  if (first && ssn_) init_ssn_embeddings(trained_, ssn_embed_);
  if (first && !ssn_) init_embeddings(trained_, embed_, config_, seed);
  if (has_decoder_) decoder_.init(trained_, fixed_, seed);
  if (w_dec_ >= 0) init_normal(trained_, w_dec_, 0.02f, seed);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (fused_ && stage_ < num_stages_ - 1 && i + 1 == blocks_.size()) {
      init_fused_encoder_block(trained_, blocks_[i], config_, seed);
    } else {
      init_block(trained_, blocks_[i], config_, seed);  // ssn's K-wide blocks too: GPT-2's stds, by name
    }
  }
  if (has_encoder_) encoder_.init(trained_, fixed_, seed);
  if (zero_positions_ >= 0) init_constant(fixed_, zero_positions_, 0.0f);
  if (reinject_table_ >= 0 && !last) {
    if (bottleneck_.reinject == Reinjection::copy) {
      init_normal_as(trained_, reinject_table_, 0.02f, seed, "wte");  // wte's initial values (padding rows below)
      zero_padding_rows(reinject_table_);
    } else {
      init_constant(trained_, reinject_table_, 0.0f);
    }
  }
  if (last) {
    init_final_norm(trained_, final_norm_);
    if (!first || untie_head_) {
      // As init_embeddings does for the first stage's wte: N(0, 0.02) from wte's seed (an untied head's name is
      // lm_head.weight, but it starts equal to wte), padding rows V..Vp-1 zero.
      init_normal_as(trained_, head_wte_, 0.02f, seed, "wte");
      zero_padding_rows(head_wte_);
    }
  }
  // bf16 policy: the copies = the masters rounded to nearest (no-op under fp32).
  trained_.sync_model_copy();
  if (!fixed_.params().empty()) fixed_.sync_model_copy();
}

void StageModel::zero_padding_rows(int table) {
  // Rows V..Vp-1 of a (Vp, C) token table, as init_embeddings leaves wte's. Through host memory, so that a store on
  // the GPU gets the same values.
  const engine::Tensor& wte = trained_.var(table).value;
  std::vector<float> w(static_cast<size_t>(wte.numel()));
  engine::copy_to_host(w.data(), wte);
  std::fill(w.begin() + int64_t{config_.vocab_size} * config_.channels,
            w.begin() + int64_t{config_.padded_vocab_size} * config_.channels, 0.0f);
  engine::copy_from_host(wte, w.data());
}

engine::Var StageModel::forward(engine::Graph& g, const engine::Tensor& tokens, const engine::Tensor& targets,
                                const engine::Var& input) {
  const engine::Var x = body(g, tokens, input);  // (B,T,C) on the last stage, else the code (B,T,K)
  if (stage_ != num_stages_ - 1) return x;
  return head_loss(g, trained_, final_norm_, head_wte_, x, targets, config_);  // (1)
}

engine::Var StageModel::logits(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input) {
  if (stage_ != num_stages_ - 1) throw std::logic_error("StageModel::logits: only the last stage has the head");
  return head_logits(g, trained_, final_norm_, head_wte_, body(g, tokens, input));  // (B,T,Vp)
}

engine::Var StageModel::body(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input) {
  if (fused_) return body_fused(g, tokens, input);
  const engine::Var x = stream(g, tokens, input);  // (B,T,C)
  if (stage_ == num_stages_ - 1) return x;         // for the head
  return ssn_ ? ssn_encode(g, fixed_, ssn_frozen_, tokens, x)  // (B,T,K)
              : encoder_.forward(g, trained_, fixed_, x);      // (B,T,K)
}

engine::Var StageModel::stream(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input) {
  if (fused_) throw std::logic_error("StageModel::stream: the fused layout never forms the stream at a boundary");
  if (ssn_) return stream_ssn(g, tokens, input);
  engine::Var x;  // (B,T,C) residual stream
  if (stage_ == 0) {
    x = embed_forward(g, trained_, embed_, tokens);
  } else {
    x = decoder_.forward(g, trained_, fixed_, input);  // (B,T,K) -> (B,T,C)
    if (reinject_table_ >= 0) {
      const engine::Var no_positions{fixed_.model_var(zero_positions_).value, engine::Tensor{}};  // no gradient
      x = engine::add(g, x, engine::embedding(g, tokens, trained_.model_var(reinject_table_), no_positions));
    }
  }
  for (const BlockParams& b : blocks_) x = block_forward(g, trained_, b, x, config_);
  return x;
}

engine::Var StageModel::body_fused(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input) {
  const bool first = stage_ == 0, last = stage_ == num_stages_ - 1;
  const int K = code_width(bottleneck_, config_.channels);
  engine::Var x = first ? embed_forward(g, trained_, embed_, tokens) : engine::Var{};  // (B,T,C)
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const BlockParams& b = blocks_[i];
    // Attention half: the first block of a non-first stage enters through the code (the decoder).
    const engine::Var h = (!first && i == 0) ? fused_decoder_attention(g, trained_, b, w_dec_, input, config_)
                                             : block_attention_forward(g, trained_, b, x, config_);  // (B,T,C)
    // MLP half: the last block of a non-last stage leaves through the code (the encoder).
    if (!last && i + 1 == blocks_.size()) return fused_encoder_mlp(g, trained_, b, h, K);  // (B,T,K)
    x = engine::add(g, h, block_mlp_branch(g, trained_, b, h));
  }
  return x;  // (B,T,C), for the head
}

engine::Var StageModel::stream_ssn(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input) {
  const bool first = stage_ == 0, last = stage_ == num_stages_ - 1;
  engine::Var x = first ? ssn_embed_forward(g, trained_, fixed_, ssn_embed_, ssn_frozen_, tokens)  // (B,T,C)
                        : ssn_decode(g, fixed_, ssn_frozen_, tokens, input);  // (B,T,K) -> (B,T,C)
  for (const BlockParams& b : blocks_) {
    x = last ? block_forward(g, trained_, b, x, config_)  // after the last boundary: dense
             : ssn_block_forward(g, trained_, fixed_, b, ssn_frozen_, x, config_);
  }
  return x;  // (B,T,C)
}

uint64_t StageModel::frozen_hash() { return ssn_ ? ssn_frozen_hash(fixed_, ssn_frozen_) : 0; }

int StageModel::input_width() const { return stage_ == 0 ? 0 : code_width(bottleneck_, config_.channels); }

int StageModel::output_width() const {
  return stage_ == num_stages_ - 1 ? 0 : code_width(bottleneck_, config_.channels);
}

engine::comm::WireDType StageModel::wire_dtype() const {
  // Under the bf16 policy the code is a bf16 tensor already: an fp32 wire would only widen it (2 bytes of zeros per
  // value), so the wire carries min(code dtype, bf16), the bf16 bits as they are (docs/bf16_policy.md).
  const engine::comm::WireDType configured = resbm::wire_dtype(bottleneck_);
  if (trained_.precision() == engine::Precision::bf16 && configured == engine::comm::WireDType::f32) {
    return engine::comm::WireDType::bf16;
  }
  return configured;
}

engine::DType StageModel::activation_dtype() const {
  return trained_.precision() == engine::Precision::bf16 ? engine::DType::bf16 : engine::DType::f32;
}

int StageModel::tied_param() const {
  if (num_stages_ == 1 || untie_head_) return -1;
  if (stage_ == 0) return embed_.wte;
  if (stage_ == num_stages_ - 1) return head_wte_;
  return -1;
}

size_t StageModel::activation_bytes(int B, int T) const {
  return gpt2_activation_bytes(config_, B, T, last_layer_ - first_layer_, stage_ == 0, stage_ == num_stages_ - 1) +
         boundary_bytes(B, T);
}

engine::ArenaBytes StageModel::arena_bytes(int B, int T) const {
  engine::ArenaBytes b = gpt2_arena_bytes(config_, B, T, last_layer_ - first_layer_, stage_ == 0,
                                          stage_ == num_stages_ - 1, trained_.precision());
  // The boundary's share, counted in fp32 for either precision (an over-count under bf16: it is small).
  b.values += boundary_bytes(B, T);
  b.gradients += boundary_bytes(B, T);
  return b;
}

size_t StageModel::boundary_bytes(int B, int T) const {
  // The bottleneck halves: per row at most the input (C), its layernorm (C + 2), the hidden layer twice (H),
  // the identity path, the branch and their sum (3 C), for each of the encoder and the decoder; doubled for
  // alignment slack, plus 1 MiB.
  const size_t rows = static_cast<size_t>(B) * T;
  const size_t C = config_.channels, H = hidden_width(bottleneck_, config_.channels);
  size_t per_row = 2 * (5 * C + 2 * H + 2) + (reinject_table_ >= 0 ? 2 * C : 0);  // + E[tok] and the sum
  if (ssn_) {
    // Per constrained block: the two K-wide projections and their C-wide maps, and the MLP's extra width (fc and
    // gelu) over the 4C counted in `blocks`; the embedding's K-wide lookup, frozen lookup and map.
    const size_t K = code_width(bottleneck_, config_.channels), Hs = ssn_hidden_;
    const size_t extra_mlp = Hs > 4 * C ? Hs - 4 * C : 0;
    if (stage_ != num_stages_ - 1) per_row += (last_layer_ - first_layer_) * (2 * (K + C) + 2 * extra_mlp);
    per_row += 3 * C + K;
  }
  return 2 * rows * per_row * sizeof(float) + (size_t{1} << 20);
}

void StageModel::zero_grads() { trained_.zero_grads(); }

std::unique_ptr<StageModel> make_stage_model(const GPT2Config& config, const BottleneckConfig& bottleneck,
                                             const engine::pipeline::PipelineConfig& pipeline, int stage,
                                             uint64_t seed, engine::Device device) {
  const std::vector<int> first =
      engine::pipeline::partition_layers(config.num_layers, pipeline.stages, pipeline.boundaries);
  BottleneckConfig b = bottleneck;
  if (b.kind == BottleneckKind::ssn) b.ssn_blocks = first[pipeline.stages - 1];  // the blocks before the last stage
  auto model = std::make_unique<StageModel>(config, b, stage, pipeline.stages, first[stage], first[stage + 1],
                                            device, pipeline.untie_head, pipeline.precision);
  model->init(seed);
  return model;
}

std::vector<std::unique_ptr<StageModel>> make_stage_models(const GPT2Config& config,
                                                           const BottleneckConfig& bottleneck,
                                                           const engine::pipeline::PipelineConfig& pipeline,
                                                           uint64_t seed, engine::Device device) {
  std::vector<std::unique_ptr<StageModel>> out;
  for (int s = 0; s < pipeline.stages; ++s) {
    out.push_back(make_stage_model(config, bottleneck, pipeline, s, seed, device));
  }
  return out;
}

}  // namespace resbm
