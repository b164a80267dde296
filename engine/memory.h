// engine/memory.h: Arena, one up-front block of memory handing out tensors by bumping a pointer.
//
// The engine allocates in four arenas: parameters, gradients, optimizer state (each sized once at start-up) and
// per-step activations (reset every step, so steady-state steps allocate nothing). Running out of an arena is a
// clear fatal error naming the arena, its capacity and the request, never a silent fallback to malloc.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

#include "engine/tensor.h"

namespace engine {

class Arena {
 public:
  // name appears in error messages ("activations", "params", ...). capacity in bytes; memory is 64-byte aligned
  // (256 on CUDA) and zeroed at creation.
  Arena(std::string name, size_t capacity_bytes, Device device = Device::cpu);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A new tensor of this shape, uninitialised after the first reset (zeroed only at creation).
  Tensor alloc(std::initializer_list<int64_t> shape, DType dtype = DType::f32);
  Tensor alloc_shape(const int64_t* shape, int ndim, DType dtype = DType::f32);

  void reset() { used_ = 0; }        // forget every tensor handed out; the memory is reused
  void zero_used();                  // memset(0) the part handed out so far (activation gradients, once a step)
  size_t used() const { return used_; }
  size_t capacity() const { return capacity_; }
  size_t peak() const { return peak_; }  // the most ever used: size arenas from a dry run
  Device device() const { return device_; }
  void* base() const { return base_; }

 private:
  std::string name_;
  Device device_;
  void* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  size_t peak_ = 0;
};

}  // namespace engine
