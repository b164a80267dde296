// tools/bench/gpu_step/cpu_kernel_set.h: CpuKernels, the kernel set that runs gpt2_step.h on the CPU twins
// (kernels/cpu) and gpt2_step_bf16.h on the bf16 CPU twins (kernels/cuda/bf16_cpu_twin.h), with host memory: how
// the steps are checked without a GPU, and the reference the GPU steps are compared against.
#pragma once

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "tools/bench/gpu_step/gpt2_step.h"
#include "tools/bench/gpu_step/gpt2_step_bf16.h"

namespace gpu_step {

struct CpuKernels {
  GPU_STEP_KERNELS(kernels::cpu)
  GPU_STEP_BF16_KERNELS(kernels::cpu)
  static void* alloc(size_t bytes) { return std::calloc(bytes == 0 ? 1 : bytes, 1); }
  static void release(void* p) { std::free(p); }
  static void upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  static void download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
};

}  // namespace gpu_step
