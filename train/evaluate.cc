// train/evaluate.cc: batch buffers and the validation loss.
#include "train/evaluate.h"

#include <cstring>

#include "engine/device.h"

namespace train {
namespace {

engine::Tensor i32_view(std::vector<int32_t>& data, int rows, int cols) {
  engine::Tensor t;
  t.data = data.data();
  t.ndim = 2;
  t.shape[0] = rows;
  t.shape[1] = cols;
  t.dtype = engine::DType::i32;
  return t;
}

}  // namespace

BatchBuffer::BatchBuffer(int M, int B, int T, engine::Device device)
    : M_(M), B_(B), T_(T),
      token_data_(static_cast<size_t>(M) * B * T),
      target_data_(static_cast<size_t>(M) * B * T),
      tokens_(i32_view(token_data_, M * B, T)),
      targets_(i32_view(target_data_, M * B, T)) {
  if (device == engine::Device::cpu) return;
  // Two (M*B, T) i32 tensors, each padded for the arena's alignment.
  const size_t bytes = 2 * (token_data_.size() * sizeof(int32_t) + 4096);
  device_ = std::make_unique<engine::Arena>("batch", bytes, device);
  device_tokens_ = device_->alloc({int64_t{M} * B, T}, engine::DType::i32);
  device_targets_ = device_->alloc({int64_t{M} * B, T}, engine::DType::i32);
}

BatchBuffer::~BatchBuffer() = default;

void BatchBuffer::upload() {
  if (!device_) return;
  engine::copy_from_host(device_tokens_, token_data_.data());
  engine::copy_from_host(device_targets_, target_data_.data());
}

void BatchBuffer::set_micro_batch(int m, const int32_t* inputs, const int32_t* targets) {
  const size_t n = static_cast<size_t>(B_) * T_;
  std::memcpy(token_data_.data() + m * n, inputs, n * sizeof(int32_t));
  std::memcpy(target_data_.data() + m * n, targets, n * sizeof(int32_t));
}

int eval_batches_rounded(int num_batches, int M) { return (num_batches + M - 1) / M * M; }

double validation_loss(Backend& backend, data::ValidationLoader& val, BatchBuffer& buffer, int M, int num_batches) {
  val.start();
  const int groups = eval_batches_rounded(num_batches, M) / M;
  double sum = 0.0;
  for (int g = 0; g < groups; ++g) {
    for (int m = 0; m < M; ++m) {
      val.next_batch();
      buffer.set_micro_batch(m, val.inputs(), val.targets());
    }
    buffer.upload();
    // evaluate() returns the mean of its M micro-batches; equal group sizes make the mean of means the mean.
    sum += backend.evaluate(buffer.tokens(), buffer.targets());
  }
  return sum / groups;
}

}  // namespace train
