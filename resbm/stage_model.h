// resbm/stage_model.h: StageModel, one pipeline stage of GPT-2: a contiguous slice of blocks with the pieces a
// stage's position requires, implementing engine::pipeline::StageModule.
//
//   first stage : wte, wpe embeddings, blocks [first, last), encoder of boundary 0
//   middle      : decoder of boundary s-1, blocks, encoder of boundary s
//   last stage  : decoder of boundary S-2, blocks, ln_f, and its own copy of wte for the tied LM head
// With S = 1 the one stage has embeddings, all blocks and the head (one wte, nothing tied across stages).
// untie_head: the last stage's head is lm_head.weight (Vp, C), initialised from wte's seed (so it starts equal to
// wte) and trained on its own; tied_param() is -1 on every stage, so nothing is exchanged. Works at S = 1 too
// (the one stage then holds wte and a separate head).
// Token re-injection (BottleneckConfig::reinject): a stage after the first adds E[tokens] to its decoded stream,
// E the last stage's head weight, or a middle stage's own "reinject.<s>.weight" (resbm/bottleneck.h), through the
// embedding op with a fixed all-zero position table (positions are not re-injected: the code carries them).
// --bottleneck ssn (resbm/ssn.h): the first stage embeds through K-wide tables plus the frozen ones, the blocks of
// every stage but the last write through the frozen basis U, a boundary sends z = (x - frozen) U and the next
// stage rebuilds x; the last stage's blocks are dense and its head is always untied.
// Every parameter is initialised from (seed, its name) (resbm/gpt2.h param_seed), so a stage's blocks start exactly
// as the whole model's do and the last stage's wte copy equals the first stage's.
// precision bf16 (docs/bf16_policy.md): every op runs in bf16 on the stores' bf16 copies (trained and fixed), the code
// crossing a boundary included (the wire carries min(code dtype, bf16)); every bottleneck kind but ssn.
#pragma once

#include <memory>
#include <vector>

#include "engine/pipeline/pipeline.h"
#include "resbm/bottleneck.h"
#include "resbm/gpt2.h"
#include "resbm/ssn.h"

namespace resbm {

class StageModel : public engine::pipeline::StageModule {
 public:
  // Declares and allocates on `device`; layers [first_layer, last_layer). Throws std::invalid_argument on bad
  // configs.
  StageModel(const GPT2Config& config, const BottleneckConfig& bottleneck, int stage, int num_stages,
             int first_layer, int last_layer, engine::Device device = engine::Device::cpu, bool untie_head = false,
             engine::Precision precision = engine::Precision::fp32);
  void init(uint64_t seed);

  engine::ParamStore& params() override { return trained_; }
  engine::Var forward(engine::Graph& g, const engine::Tensor& tokens, const engine::Tensor& targets,
                      const engine::Var& input) override;
  // The last stage only: the logits (B,T,Vp) instead of the loss, through the same code as forward() (sampling).
  engine::Var logits(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input);
  // The residual stream (B,T,C) after this stage's blocks, before its encoder (the module layout and ssn; tests and
  // diagnostics: what a boundary compresses).
  engine::Var stream(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input);
  int input_width() const override;
  int output_width() const override;
  int stream_width() const override { return config_.channels; }
  engine::comm::WireDType wire_dtype() const override;
  engine::DType activation_dtype() const override;
  int tied_param() const override;
  size_t activation_bytes(int B, int T) const override;  // fp32 (each arena)
  engine::ArenaBytes arena_bytes(int B, int T) const override;  // for the stores' precision
  void zero_grads() override;

  int stage() const { return stage_; }
  int num_stages() const { return num_stages_; }
  const GPT2Config& config() const { return config_; }
  engine::ParamStore& fixed_params() { return fixed_; }
  // ssn: the hash of the frozen tensors (equal on every stage of a run: the run table checks it); 0 otherwise.
  uint64_t frozen_hash();
  // ssn: the constrained blocks' MLP width (4C, or matched by --ssn-match-params); 0 otherwise.
  int ssn_hidden() const { return ssn_hidden_; }

 private:
  void zero_padding_rows(int table);  // rows V..Vp-1 of a (Vp,C) table in trained_
  size_t boundary_bytes(int B, int T) const;  // activation bytes of the bottleneck halves and ssn's extras
  // Everything but the head: the code (B,T,K) on a non-last stage, the final residual stream (B,T,C) on the last.
  engine::Var body(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input);
  engine::Var body_fused(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input);
  engine::Var stream_ssn(engine::Graph& g, const engine::Tensor& tokens, const engine::Var& input);
  GPT2Config config_;
  BottleneckConfig bottleneck_;
  int stage_, num_stages_, first_layer_, last_layer_;
  bool untie_head_ = false;
  engine::ParamStore trained_;
  engine::ParamStore fixed_;  // fixed tensors that ops take as weights (orthogonal P); never stepped
  EmbeddingParams embed_;     // first stage
  int head_wte_ = -1;         // last stage: wte (its own copy unless S == 1), or lm_head.weight when untied
  FinalNormParams final_norm_;
  std::vector<BlockParams> blocks_;
  bool has_decoder_ = false, has_encoder_ = false;  // module-layout halves
  bool fused_ = false;                               // resbm, layout fused: the halves live in the blocks
  int w_dec_ = -1;                                   // fused decoder's (C,K) matrix
  int reinject_table_ = -1;                          // (Vp,C) token table added to x', or -1
  int zero_positions_ = -1;                          // fixed_: (maxT,C) zeros, the embedding op's position table
  bool ssn_ = false;                                 // --bottleneck ssn
  int ssn_hidden_ = 0;
  SsnFrozen ssn_frozen_;
  SsnEmbeddingParams ssn_embed_;
  BottleneckDecoder decoder_;
  BottleneckEncoder encoder_;
};

// The S stage models of a pipeline (layers split by engine::pipeline::partition_layers), initialised from seed.
std::vector<std::unique_ptr<StageModel>> make_stage_models(const GPT2Config& config,
                                                           const BottleneckConfig& bottleneck,
                                                           const engine::pipeline::PipelineConfig& pipeline,
                                                           uint64_t seed, engine::Device device = engine::Device::cpu);
// Just stage `stage` of them (the distributed executor builds only its own).
std::unique_ptr<StageModel> make_stage_model(const GPT2Config& config, const BottleneckConfig& bottleneck,
                                             const engine::pipeline::PipelineConfig& pipeline, int stage,
                                             uint64_t seed, engine::Device device = engine::Device::cpu);

}  // namespace resbm
