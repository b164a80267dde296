// train/evaluate.h: validation loss, the mean over the first N validation batches (the split read from its start
// every time, so evaluations at different steps compare the same tokens).
#pragma once

#include <cstdint>
#include <vector>

#include "data/loader.h"
#include "train/backend.h"

namespace train {

// A (M*B, T) token/target pair with its backing memory, filled from a loader micro-batch by micro-batch.
class BatchBuffer {
 public:
  BatchBuffer(int M, int B, int T);
  // Copies the loader's current (B, T) batch into micro-batch slot m.
  void set_micro_batch(int m, const int32_t* inputs, const int32_t* targets);
  const engine::Tensor& tokens() const { return tokens_; }
  const engine::Tensor& targets() const { return targets_; }

 private:
  int M_, B_, T_;
  std::vector<int32_t> token_data_, target_data_;
  engine::Tensor tokens_, targets_;
};

// Mean loss of the first `num_batches` (B, T) validation batches, evaluated M at a time (num_batches is rounded
// up to a multiple of M; the caller reports the rounded count). Sums in double in batch order.
double validation_loss(Backend& backend, data::ValidationLoader& val, BatchBuffer& buffer, int M, int num_batches);

// num_batches rounded up to a multiple of M.
int eval_batches_rounded(int num_batches, int M);

}  // namespace train
