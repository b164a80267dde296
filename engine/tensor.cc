// engine/tensor.cc: Tensor views (typed access, reshaping views, descriptions) and the dtype/device names.
#include "engine/tensor.h"

#include "engine/check.h"

namespace engine {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::u16: return 2;
    case DType::i8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::u16: return "u16";
    case DType::i8: return "i8";
  }
  return "?";
}

const char* device_name(Device device) { return device == Device::cuda ? "cuda" : "cpu"; }

int64_t Tensor::numel() const {
  if (ndim == 0) return data != nullptr ? 1 : 0;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

namespace {
void* typed(const Tensor& t, DType want) {
  ENGINE_CHECK(t.dtype == want, "tensor %s accessed as %s", t.describe().c_str(), dtype_name(want));
  return t.data;
}
}  // namespace

float* Tensor::f32() const { return static_cast<float*>(typed(*this, DType::f32)); }
int32_t* Tensor::i32() const { return static_cast<int32_t*>(typed(*this, DType::i32)); }
uint16_t* Tensor::u16() const {
  ENGINE_CHECK(dtype == DType::u16 || dtype == DType::bf16, "tensor %s accessed as u16", describe().c_str());
  return static_cast<uint16_t*>(data);
}
int8_t* Tensor::i8() const { return static_cast<int8_t*>(typed(*this, DType::i8)); }

Tensor Tensor::view(std::initializer_list<int64_t> new_shape) const {
  ENGINE_CHECK(new_shape.size() >= 1 && new_shape.size() <= static_cast<size_t>(kMaxDims),
               "view of %s: %zu dims (1..%d allowed)", describe().c_str(), new_shape.size(), kMaxDims);
  Tensor out = *this;
  out.ndim = static_cast<int>(new_shape.size());
  int64_t n = 1;
  int i = 0;
  for (int64_t d : new_shape) {
    out.shape[i++] = d;
    n *= d;
  }
  for (; i < kMaxDims; i++) out.shape[i] = 0;
  ENGINE_CHECK(n == numel(), "view of %s as %s: element counts differ (%lld vs %lld)", describe().c_str(),
               out.describe().c_str(), static_cast<long long>(n), static_cast<long long>(numel()));
  return out;
}

std::string Tensor::describe() const {
  std::string s = dtype_name(dtype);
  s += "[";
  for (int i = 0; i < ndim; i++) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  s += "]@";
  s += device_name(device);
  return s;
}

}  // namespace engine
