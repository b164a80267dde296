// tests/kernels/cuda/cuda_emulation.cc: the state of cuda_emulation.h's one running block, and each OS thread's
// threadIdx / blockIdx and where its next __shared__ array goes.
#include "tests/kernels/cuda/cuda_emulation.h"

namespace cuda_emulation {

BlockState& block_state() {
  static BlockState* state = new BlockState;  // 256 KiB of shared memory: on the heap, never freed
  return *state;
}

dim3& thread_idx() {
  thread_local dim3 idx;
  return idx;
}

dim3& block_idx() {
  thread_local dim3 idx;
  return idx;
}

size_t& static_shared_top() {
  thread_local size_t top = kSharedBytes;
  return top;
}

}  // namespace cuda_emulation
