// engine/memory.cc: Arena, a bump allocator over one block allocated (and zeroed) once, on the CPU or a GPU.
#include "engine/memory.h"

#include <cstdlib>
#include <cstring>

#include "engine/check.h"

#ifdef RESBM_HAVE_CUDA
#include <cuda_runtime.h>
#define ARENA_CUDA_CHECK(call)                                                                        \
  do {                                                                                                \
    cudaError_t err_ = (call);                                                                        \
    if (err_ != cudaSuccess) ENGINE_FATAL("CUDA error %s in %s", cudaGetErrorString(err_), #call);    \
  } while (0)
#endif

namespace engine {

namespace {

size_t alignment(Device device) { return device == Device::cuda ? 256 : 64; }
size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

#ifndef RESBM_HAVE_CUDA
[[noreturn]] void no_cuda(const std::string& name) {
  ENGINE_FATAL("arena '%s' asks for CUDA memory, but this binary was built without CUDA (RESBM_HAVE_CUDA unset; "
               "build on a machine with the CUDA toolkit, without --config=nocuda)",
               name.c_str());
}
#endif

}  // namespace

Arena::Arena(std::string name, size_t capacity_bytes, Device device)
    : name_(std::move(name)), device_(device), capacity_(capacity_bytes) {
  const size_t bytes = round_up(capacity_bytes > 0 ? capacity_bytes : 1, alignment(device));
  if (device == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    ARENA_CUDA_CHECK(cudaMalloc(&base_, bytes));
    ARENA_CUDA_CHECK(cudaMemset(base_, 0, bytes));
#else
    no_cuda(name_);
#endif
  } else {
    base_ = std::aligned_alloc(alignment(device), bytes);
    ENGINE_CHECK(base_ != nullptr, "arena '%s': cannot allocate %zu bytes of host memory", name_.c_str(), bytes);
    std::memset(base_, 0, bytes);
  }
}

Arena::~Arena() {
  if (base_ == nullptr) return;
  if (device_ == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    cudaFree(base_);
#endif
  } else {
    std::free(base_);
  }
}

Tensor Arena::alloc(std::initializer_list<int64_t> shape, DType dtype) {
  ENGINE_CHECK(shape.size() >= 1 && shape.size() <= static_cast<size_t>(kMaxDims),
               "arena '%s': a tensor needs 1..%d dims, got %zu", name_.c_str(), kMaxDims, shape.size());
  int64_t dims[kMaxDims];
  int i = 0;
  for (int64_t d : shape) dims[i++] = d;
  return alloc_shape(dims, static_cast<int>(shape.size()), dtype);
}

Tensor Arena::alloc_shape(const int64_t* shape, int ndim, DType dtype) {
  ENGINE_CHECK(ndim >= 1 && ndim <= kMaxDims, "arena '%s': a tensor needs 1..%d dims, got %d", name_.c_str(),
               kMaxDims, ndim);
  Tensor t;
  t.ndim = ndim;
  t.dtype = dtype;
  t.device = device_;
  for (int i = 0; i < ndim; i++) {
    ENGINE_CHECK(shape[i] >= 0, "arena '%s': negative dimension %lld", name_.c_str(),
                 static_cast<long long>(shape[i]));
    t.shape[i] = shape[i];
  }
  const size_t bytes = t.nbytes();
  const size_t start = round_up(used_, alignment(device_));
  if (start > capacity_ || bytes > capacity_ - start) {
    ENGINE_FATAL("arena '%s' is out of memory: capacity %zu bytes, %zu in use, request of %zu bytes for %s. "
                 "Raise this arena's size (peak() after a dry run tells what a step needs).",
                 name_.c_str(), capacity_, used_, bytes, t.describe().c_str());
  }
  t.data = static_cast<char*>(base_) + start;
  used_ = start + bytes;
  if (used_ > peak_) peak_ = used_;
  return t;
}

void Arena::zero_used() {
  if (used_ == 0) return;
  if (device_ == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    ARENA_CUDA_CHECK(cudaMemset(base_, 0, used_));
#else
    no_cuda(name_);
#endif
  } else {
    std::memset(base_, 0, used_);
  }
}

}  // namespace engine
