// engine/params.cc: ParamStore, parameters and gradients declared by name, then allocated in two flat arenas.
#include "engine/params.h"

#include "engine/check.h"

namespace engine {

namespace {
constexpr int64_t kAlignFloats = 16;  // 64 bytes: every parameter starts aligned inside the flat block

// The tensor of this shape starting `offset` floats into the flat f32 tensor `all`.
Tensor view_at(const Tensor& all, int64_t offset, const std::vector<int64_t>& shape) {
  Tensor t = all;
  t.data = static_cast<float*>(all.data) + offset;
  t.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < kMaxDims; d++) t.shape[d] = d < t.ndim ? shape[d] : 0;
  return t;
}

}  // namespace

ParamStore::ParamStore(Device device) : device_(device) {}

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
  Tensor t;
  t.data = values_->base();
  t.ndim = 1;
  t.shape[0] = static_cast<int64_t>(num_elements_);
  t.device = device_;
  return t;
}

Tensor ParamStore::all_grads() const {
  ENGINE_CHECK(grads_ != nullptr, "ParamStore: all_grads() before allocate()");
  Tensor t;
  t.data = grads_->base();
  t.ndim = 1;
  t.shape[0] = static_cast<int64_t>(num_elements_);
  t.device = device_;
  return t;
}

}  // namespace engine
