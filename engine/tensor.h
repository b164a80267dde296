// engine/tensor.h: Tensor, a non-owning view of contiguous memory in an arena: shape (<= 4 dims), dtype, device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace engine {

enum class DType : uint8_t { f32, bf16, i32, u16, i8 };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType dtype);          // bytes per element
const char* dtype_name(DType dtype);     // "f32", "bf16", ...
const char* device_name(Device device);  // "cpu", "cuda"

constexpr int kMaxDims = 4;

// A view: pointer, shape, dtype, device. Contiguous row-major always (no strides). Owns nothing: the memory
// belongs to an Arena (engine/memory.h). Copying a Tensor copies the view, never the data.
struct Tensor {
  void* data = nullptr;
  int ndim = 0;
  int64_t shape[kMaxDims] = {0, 0, 0, 0};
  DType dtype = DType::f32;
  Device device = Device::cpu;

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  bool defined() const { return data != nullptr; }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }

  // Typed access; checks the dtype (aborts with a message on a mismatch).
  float* f32() const;
  int32_t* i32() const;
  uint16_t* u16() const;
  int8_t* i8() const;

  // The same memory seen with another shape of the same element count.
  Tensor view(std::initializer_list<int64_t> new_shape) const;
  std::string describe() const;  // e.g. "f32[4,64,768]@cpu"
};

}  // namespace engine
