// kernels/cuda/column_sum.cuh: dbias-style column sums, deterministic without atomics: pass 1 sums fixed chunks of
// rows per column (one thread each, rows in order), pass 2 adds the chunks' partials in order into the output (+=).
// Templated on the element type (fp32 or bf16 stored as uint16_t; sums in fp32). Device code: .cu files only.
#pragma once

#include <cstdint>

#include "kernels/cuda/bf16_rounding.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

// An unnamed namespace: each .cu file (compiled on its own, no relocatable device code) gets its own kernels.
namespace {

constexpr int kColumnSumRows = 256;  // fixed: the summation order depends on N only

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const uint16_t* p) { return kernels::bf16::widen(*p); }

template <typename T>
__global__ void column_sum_partials_kernel(float* partial, const T* x, int N, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  const int r0 = blockIdx.y * kColumnSumRows;
  const int r1 = min(N, r0 + kColumnSumRows);
  float acc = 0.0f;
  for (int r = r0; r < r1; r++) acc += load(x + static_cast<size_t>(r) * cols + j);
  partial[static_cast<size_t>(blockIdx.y) * cols + j] = acc;
}

__global__ void column_sum_finish_kernel(float* out, const float* partial, int chunks, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  float acc = 0.0f;
  for (int k = 0; k < chunks; k++) acc += partial[static_cast<size_t>(k) * cols + j];
  out[j] += acc;
}

}  // namespace

// out (cols) += column sums of x (N, cols); scratch from the workspace.
template <typename T>
void column_sum_accumulate(const KernelContext& ctx, float* out, const T* x, int N, int cols, const char* who) {
  if (N == 0 || cols == 0) return;
  const int chunks = static_cast<int>(ceil_div(N, kColumnSumRows));
  float* partial =
      static_cast<float*>(workspace_or_die(ctx, static_cast<size_t>(chunks) * cols * sizeof(float), who));
  cudaStream_t stream = stream_of(ctx);
  column_sum_partials_kernel<T><<<dim3(ceil_div(cols, 128), chunks), 128, 0, stream>>>(partial, x, N, cols);
  CUDA_CHECK_LAUNCH();
  column_sum_finish_kernel<<<ceil_div(cols, 128), 128, 0, stream>>>(out, partial, chunks, cols);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
