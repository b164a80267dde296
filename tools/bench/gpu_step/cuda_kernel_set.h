// tools/bench/gpu_step/cuda_kernel_set.h: CudaKernels, the kernel set that runs gpt2_step.h and gpt2_step_bf16.h on
// the GPU (the kernels of kernels/cuda, fp32 and bf16, plus cudaMalloc'd memory). Only meaningful with
// RESBM_HAVE_CUDA; empty otherwise.
#pragma once

#ifdef RESBM_HAVE_CUDA
#include <cstddef>

#include "kernels/context.h"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/kernels.cuh"
#include "tools/bench/gpu_step/gpt2_step.h"
#include "tools/bench/gpu_step/gpt2_step_bf16.h"

namespace gpu_step {

struct CudaKernels {
  GPU_STEP_KERNELS(kernels::cuda)
  GPU_STEP_BF16_KERNELS(kernels::cuda)
  static void* alloc(size_t bytes) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes));
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
  }
  static void release(void* p) { cudaFree(p); }
  static void upload(void* dst, const void* src, size_t bytes) {
    CUDA_CHECK(cudaDeviceSynchronize());  // the stream may still read dst (e.g. parameters perturbed by a test)
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  }
  static void download(void* dst, const void* src, size_t bytes) {
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  }
};

}  // namespace gpu_step

#endif  // RESBM_HAVE_CUDA
