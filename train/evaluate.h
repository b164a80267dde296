// train/evaluate.h: validation loss, the mean over the first N validation batches (the split read from its start
// every time, so evaluations at different steps compare the same tokens).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/loader.h"
#include "engine/memory.h"
#include "train/backend.h"

namespace train {

// A (M*B, T) token/target pair with its backing memory, filled from a loader micro-batch by micro-batch. On the
// GPU the batch is gathered on the host and copied into device tensors allocated once, by upload().
class BatchBuffer {
 public:
  BatchBuffer(int M, int B, int T, engine::Device device = engine::Device::cpu);
  ~BatchBuffer();
  // Copies the loader's current (B, T) batch into micro-batch slot m.
  void set_micro_batch(int m, const int32_t* inputs, const int32_t* targets);
  // After the M set_micro_batch calls: copies the batch to the device (nothing to do on the CPU).
  void upload();
  const engine::Tensor& tokens() const { return device_ ? device_tokens_ : tokens_; }
  const engine::Tensor& targets() const { return device_ ? device_targets_ : targets_; }

 private:
  int M_, B_, T_;
  std::vector<int32_t> token_data_, target_data_;
  engine::Tensor tokens_, targets_;                 // (M*B, T) i32 views of the host vectors
  std::unique_ptr<engine::Arena> device_;           // GPU only: holds device_tokens_, device_targets_
  engine::Tensor device_tokens_, device_targets_;  // (M*B, T) i32 on the GPU
};

// Mean loss of the first `num_batches` (B, T) validation batches, evaluated M at a time (num_batches is rounded
// up to a multiple of M; the caller reports the rounded count). Sums in double in batch order.
double validation_loss(Backend& backend, data::ValidationLoader& val, BatchBuffer& buffer, int M, int num_batches);

// num_batches rounded up to a multiple of M.
int eval_batches_rounded(int num_batches, int M);

}  // namespace train
