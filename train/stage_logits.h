// train/stage_logits.h: StageLogits, next-token logits through the pipeline's stage models, for sampling.
//
// The first S-1 stages run their own forward() (their output is the code), the code crosses a simulated wire
// (encode + decode in the stage's wire dtype, as in training), and the last stage runs StageModel::logits(): the
// same code as its training forward, ending in the logits instead of the loss. Forward only, batch 1, its own Graph.
#pragma once

#include <memory>
#include <vector>

#include "engine/autograd.h"
#include "engine/comm/codec.h"
#include "engine/memory.h"
#include "resbm/stage_model.h"

namespace train {

class StageLogits {
 public:
  // stages: the pipeline's stage models in order (not owned; must outlive this). T: the longest context.
  StageLogits(std::vector<resbm::StageModel*> stages, const resbm::GPT2Config& model,
              const resbm::BottleneckConfig& bottleneck, const kernels::KernelContext& ctx, int T);
  ~StageLogits();

  // Logits (Vp floats, valid until the next call) of the token after context[0..len), 1 <= len <= T.
  const float* next_token_logits(const int32_t* context, int len);

 private:
  // The simulated wire: encode z (1,len,K) and decode into a new (1,len,K) var, through host memory on the GPU.
  engine::Var wire_round_trip(const engine::Var& z, engine::comm::WireDType dtype, int len);

  std::vector<resbm::StageModel*> stages_;
  resbm::GPT2Config model_;
  const kernels::KernelContext& ctx_;
  int T_;
  std::unique_ptr<engine::Graph> graph_;
  std::vector<int32_t> tokens_;                // (1, len) scratch
  std::vector<uint8_t> wire_;                  // encoded code scratch
  std::vector<float> logits_;                  // (Vp) result
  engine::Device device_;                      // the stages' device
  std::vector<float> host_code_;               // GPU only: the code on the host, for the codec
  std::unique_ptr<engine::Arena> token_arena_;  // GPU only: holds device_tokens_
  engine::Tensor device_tokens_;               // GPU only: (1, T) i32
};

}  // namespace train
