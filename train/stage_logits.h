// train/stage_logits.h: StageLogits, next-token logits through the pipeline's stage models, for sampling.
//
// Batch 1, forward only, on a Graph of its own. Each stage runs its own forward() (the last stage its logits(): the
// same ops, the head's logits in place of the loss), and the code crosses every boundary as in training, encoded
// and decoded in the wire dtype: between two stages of this process through a buffer, between processes through
// the transport's raw messages (stage s sends to s+1), the same bytes either way. So a prompt enters stage 0, and
// the process holding the last stage gets the logits.
#pragma once

#include <memory>
#include <vector>

#include "engine/autograd.h"
#include "engine/comm/codec.h"
#include "engine/comm/transport.h"
#include "engine/memory.h"
#include "resbm/stage_model.h"

namespace train {

class StageLogits {
 public:
  // stages: the stage models this process holds, stages first_stage, first_stage + 1, ... of num_stages (not
  // owned; must outlive this). transport: to the other processes' stages (null when this process holds all).
  // T: the longest context.
  StageLogits(std::vector<resbm::StageModel*> stages, int first_stage, int num_stages,
              engine::comm::Transport* transport, const kernels::KernelContext& ctx, int padded_vocab_size, int T);
  ~StageLogits();

  // Logits (Vp floats, valid until the next call) of the token after context[0..len), 1 <= len <= T, in the
  // process that holds the last stage; nullptr in the others (which sent their code on). Every process calls it
  // with the same context.
  const float* next_token_logits(const int32_t* context, int len);

 private:
  void encode(const engine::Tensor& z, engine::comm::WireDType dtype, int len);     // z (1,len,K) -> wire_
  void decode(const engine::Tensor& into, engine::comm::WireDType dtype, int len);  // wire_ -> into (1,len,K)

  std::vector<resbm::StageModel*> stages_;
  int first_stage_ = 0, num_stages_ = 1;
  engine::comm::Transport* transport_ = nullptr;
  const kernels::KernelContext& ctx_;
  int Vp_, T_;
  std::unique_ptr<engine::Graph> graph_;
  std::vector<int32_t> tokens_;                // (1, len) scratch
  std::vector<uint8_t> wire_;                  // encoded code scratch
  std::vector<float> logits_;                  // (Vp) result
  engine::Device device_;                      // the stages' device
  std::vector<float> host_code_;               // the code's values on the host, for the codec
  std::vector<uint16_t> host_bits_;            // bf16 policy: a code or the logits row as bf16 bits on the host
  std::unique_ptr<engine::Arena> token_arena_;  // GPU only: holds device_tokens_
  engine::Tensor device_tokens_;               // GPU only: (1, T) i32
};

}  // namespace train
