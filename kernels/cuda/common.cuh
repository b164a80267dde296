// kernels/cuda/common.cuh: device helpers shared by the .cu files (stream from the context, fixed-order warp and
// block reductions, launch sizes, workspace checks). Device code: include only from .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/context.h"
#include "kernels/cuda/cuda_check.h"

namespace kernels::cuda {

inline cudaStream_t stream_of(const KernelContext& ctx) { return static_cast<cudaStream_t>(ctx.cuda_stream); }

inline unsigned int ceil_div(size_t a, size_t b) { return static_cast<unsigned int>((a + b - 1) / b); }

// Blocks for a grid-stride loop over n elements: enough to fill an H100/H200 (132 SMs x 16 blocks of 256), capped
// so that tiny tensors launch few blocks.
inline unsigned int grid_for(size_t n, int block = 256) {
  const size_t want = (n + block - 1) / block;
  return static_cast<unsigned int>(want < 2048 ? (want == 0 ? 1 : want) : 2048);
}

// Scratch from the context's workspace. Kernels run in stream order, so a kernel's scratch never overlaps a GEMM
// that still reads the workspace. Aborts with the size needed when the workspace is too small.
inline void* workspace_or_die(const KernelContext& ctx, size_t bytes, const char* who) {
  if (bytes > ctx.cuda_workspace_bytes || (bytes > 0 && ctx.cuda_workspace == nullptr)) {
    std::fprintf(stderr,
                 "%s: needs %zu bytes of CUDA workspace, the KernelContext has %zu.\n"
                 "  hint: create the context with engine::make_cuda_context(workspace_bytes) and a larger size.\n",
                 who, bytes, ctx.cuda_workspace_bytes);
    std::abort();
  }
  return ctx.cuda_workspace;
}

// Warp reductions with butterfly shuffles: every lane ends with the same value, computed in a fixed order, so the
// result depends only on the inputs (deterministic).
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Block-wide sum (blockDim.x a multiple of 32, <= 1024); every thread gets the result. `shared` holds 32 values.
// Uses the shared array twice, so it synchronises before returning to make back-to-back calls safe.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = lane < num_warps ? shared[lane] : T(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

__device__ inline float block_max(float v, float* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  v = warp_max(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float total = lane < num_warps ? shared[lane] : -INFINITY;
  total = warp_max(total);
  __syncthreads();
  return total;
}

}  // namespace kernels::cuda
