// kernels/cuda/token_sort.cuh: the grouping step of the atomic-free embedding backward (embedding.cu and
// bf16_embedding.cu): a stable CUB radix sort of (token, position) pairs, after which each token's positions are
// contiguous and in ascending order, so that one block per group can add the rows in the CPU's order.
// Device code: include only from .cu files.
#pragma once

#include <cub/device/device_radix_sort.cuh>

#include <cstddef>
#include <cstdint>

#include "kernels/context.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

// Internal linkage: each .cu file is compiled as a whole program (tools/cuda.bzl), so each gets its own copy of the
// kernel and the host code that launches it, and no device symbol is shared between objects.
namespace {

__global__ void token_positions_kernel(int32_t* x, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) x[i] = i;
}

// The n = B*T tokens sorted by value, each with its position b*T + t; ties keep ascending positions.
struct SortedTokens {
  const int32_t* tokens;     // (n)
  const int32_t* positions;  // (n)
};

// Sorts in the workspace: positions, sorted tokens, sorted positions (256-byte aligned slices of n int32), then
// CUB's temporary storage; aborts naming `who` when the workspace is too small. Queued on ctx's stream.
SortedTokens sort_tokens_stably(const KernelContext& ctx, const int32_t* tokens, int n, const char* who) {
  cudaStream_t stream = stream_of(ctx);
  size_t cub_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, cub_bytes, tokens, static_cast<int32_t*>(nullptr),
                                             static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n,
                                             0, 32, stream));
  const size_t slice = (static_cast<size_t>(n) + 63) / 64 * 64;
  char* ws = static_cast<char*>(workspace_or_die(ctx, 3 * slice * sizeof(int32_t) + cub_bytes, who));
  int32_t* positions = reinterpret_cast<int32_t*>(ws);
  int32_t* sorted_tokens = positions + slice;
  int32_t* sorted_pos = sorted_tokens + slice;
  void* cub_tmp = sorted_pos + slice;
  token_positions_kernel<<<grid_for(n), 256, 0, stream>>>(positions, n);
  CUDA_CHECK_LAUNCH();
  // Stable LSD radix sort over all 32 bits (the vocabulary size is not a parameter here): ties keep position order.
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(cub_tmp, cub_bytes, tokens, sorted_tokens, positions, sorted_pos, n, 0,
                                             32, stream));
  return {sorted_tokens, sorted_pos};
}

}  // namespace

}  // namespace kernels::cuda
