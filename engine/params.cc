// engine/params.cc: ParamStore, parameters and gradients declared by name, then allocated in flat arenas (values,
// gradients, and under the bf16 policy the model's bf16 copy).
#include "engine/params.h"

#include "engine/check.h"
#include <vector>

#include "engine/device.h"
#include "kernels/cuda/bf16_rounding.h"

namespace engine {

namespace {
constexpr int64_t kAlignFloats = 16;  // 64 bytes: every parameter starts aligned inside the flat block

// The tensor of this shape starting `offset` elements into the flat tensor `all` (f32, or the bf16 copy).
Tensor view_at(const Tensor& all, int64_t offset, const std::vector<int64_t>& shape) {
  Tensor t = all;
  t.data = static_cast<char*>(all.data) + offset * static_cast<int64_t>(dtype_size(all.dtype));
  t.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < kMaxDims; d++) t.shape[d] = d < t.ndim ? shape[d] : 0;
  return t;
}

// The flat tensor of one arena's num_elements_, of this dtype.
Tensor flat(const Arena& arena, size_t n, DType dtype, Device device) {
  Tensor t;
  t.data = arena.base();
  t.ndim = 1;
  t.shape[0] = static_cast<int64_t>(n);
  t.dtype = dtype;
  t.device = device;
  return t;
}

}  // namespace

ParamStore::ParamStore(Device device, Precision precision) : device_(device), precision_(precision) {}

int ParamStore::declare(const std::string& name, std::initializer_list<int64_t> shape, ParamKind kind) {
  ENGINE_CHECK(values_ == nullptr, "ParamStore: '%s' declared after allocate()", name.c_str());
  ENGINE_CHECK(find(name) < 0, "ParamStore: '%s' declared twice", name.c_str());
  ENGINE_CHECK(shape.size() >= 1 && shape.size() <= static_cast<size_t>(kMaxDims),
               "ParamStore: '%s' needs 1..%d dims", name.c_str(), kMaxDims);
  Param p;
  p.name = name;
  p.kind = kind;
  params_.push_back(p);
  shapes_.emplace_back(shape);
  return static_cast<int>(params_.size()) - 1;
}

void ParamStore::allocate() {
  ENGINE_CHECK(values_ == nullptr, "ParamStore: allocate() called twice");
  offsets_.clear();
  int64_t total = 0;
  num_parameters_ = 0;
  for (const auto& shape : shapes_) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    offsets_.push_back(total);
    total += (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
    num_parameters_ += static_cast<size_t>(n);
  }
  num_elements_ = static_cast<size_t>(total);
  const size_t bytes = num_elements_ * sizeof(float) + 256;
  values_ = std::make_unique<Arena>("params", bytes, device_);
  grads_ = std::make_unique<Arena>("grads", bytes, device_);
  Tensor all_v = values_->alloc({total > 0 ? total : 1});
  Tensor all_g = grads_->alloc({total > 0 ? total : 1});
  for (size_t i = 0; i < params_.size(); i++) {
    params_[i].var.value = view_at(all_v, offsets_[i], shapes_[i]);
    params_[i].var.grad = view_at(all_g, offsets_[i], shapes_[i]);
  }
  if (precision_ == Precision::bf16) {
    model_values_ = std::make_unique<Arena>("bf16 params", num_elements_ * sizeof(uint16_t) + 256, device_);
    Tensor all_m = model_values_->alloc({total > 0 ? total : 1}, DType::bf16);
    for (size_t i = 0; i < params_.size(); i++) {
      params_[i].model.value = view_at(all_m, offsets_[i], shapes_[i]);
      params_[i].model.grad = params_[i].var.grad;  // fp32 gradients under both policies
    }
  }
}

void ParamStore::sync_model_copy() {
  ENGINE_CHECK(values_ != nullptr, "ParamStore: sync_model_copy() before allocate()");
  if (precision_ != Precision::bf16) return;
  // The flat block at once: the zero padding between parameters rounds to zero.
  std::vector<float> master(num_elements_);
  std::vector<uint16_t> copy(num_elements_);
  copy_to_host(master.data(), all_values());
  for (size_t i = 0; i < num_elements_; i++) copy[i] = kernels::bf16::round_nearest(master[i]);
  copy_from_host(all_model_values(), copy.data());
}

int ParamStore::find(const std::string& name) const {
  for (size_t i = 0; i < params_.size(); i++) {
    if (params_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

void ParamStore::zero_grads() {
  ENGINE_CHECK(grads_ != nullptr, "ParamStore: zero_grads() before allocate()");
  grads_->zero_used();
}

Tensor ParamStore::all_values() const {
  ENGINE_CHECK(values_ != nullptr, "ParamStore: all_values() before allocate()");
  return flat(*values_, num_elements_, DType::f32, device_);
}

Tensor ParamStore::all_grads() const {
  ENGINE_CHECK(grads_ != nullptr, "ParamStore: all_grads() before allocate()");
  return flat(*grads_, num_elements_, DType::f32, device_);
}

Tensor ParamStore::all_model_values() const {
  ENGINE_CHECK(model_values_ != nullptr, "ParamStore: all_model_values() without the bf16 policy, or before "
               "allocate()");
  return flat(*model_values_, num_elements_, DType::bf16, device_);
}

}  // namespace engine
