// tools/bench/gpu_step/cpu_kernel_set.h: CpuKernels, the kernel set that runs gpt2_step.h on the CPU twins
// (kernels/cpu) with host memory: how the step is checked without a GPU, and the reference the GPU step is
// compared against.
#pragma once

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "tools/bench/gpu_step/gpt2_step.h"

namespace gpu_step {

struct CpuKernels {
  GPU_STEP_KERNELS(kernels::cpu)
  static void* alloc(size_t bytes) { return std::calloc(bytes == 0 ? 1 : bytes, 1); }
  static void release(void* p) { std::free(p); }
  static void upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  static void download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
};

}  // namespace gpu_step
