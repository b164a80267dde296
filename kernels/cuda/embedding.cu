// kernels/cuda/embedding.cu: token + position embedding, forward and a deterministic backward without atomics.
//
// Backward: tokens repeat, so rows of dwte collide. A stable radix sort (CUB) of (token, position) pairs groups the
// positions of each token in ascending order; one block per group then adds its rows to dwte in that order, starting
// from dwte's current value. That is exactly the CPU twin's order of additions (it walks positions in order), so the
// result matches the CPU bit for bit and never depends on scheduling.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/token_sort.cuh"

namespace kernels::cuda {

namespace {

// One thread per (b, t, c).
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe,
                                         int B, int T, int C) {
  const size_t n = static_cast<size_t>(B) * T * C;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t bt = i / C, c = i % C;
    const size_t t = bt % T;
    out[i] = wte[static_cast<size_t>(tokens[bt]) * C + c] + wpe[t * C + c];
  }
}

// dwpe[t, c] += dout[b, t, c] for b in order: one thread per (t, c).
__global__ void embedding_backward_wpe_kernel(float* dwpe, const float* dout, int B, int T, int C) {
  const size_t n = static_cast<size_t>(T) * C;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float acc = dwpe[i];
    for (int b = 0; b < B; b++) acc += dout[static_cast<size_t>(b) * T * C + i];
    dwpe[i] = acc;
  }
}

// One block per sorted slot; only the block at the start of a token's group works: it walks the group (positions
// ascending) and adds each row into dwte[token], columns spread over the block's threads.
__global__ void embedding_backward_wte_kernel(float* dwte, const float* dout, const int32_t* sorted_tokens,
                                              const int32_t* sorted_pos, int n, int C) {
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t tok = sorted_tokens[i];
    if (i > 0 && sorted_tokens[i - 1] == tok) continue;  // not the start of a group
    int end = i;
    while (end < n && sorted_tokens[end] == tok) end++;
    float* w = dwte + static_cast<size_t>(tok) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      float acc = w[c];
      for (int j = i; j < end; j++) acc += dout[static_cast<size_t>(sorted_pos[j]) * C + c];
      w[c] = acc;
    }
  }
}

}  // namespace

void embedding_forward(const KernelContext& ctx, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C) {
  const size_t n = static_cast<size_t>(B) * T * C;
  if (n == 0) return;
  embedding_forward_kernel<<<grid_for(n), 256, 0, stream_of(ctx)>>>(out, tokens, wte, wpe, B, T, C);
  CUDA_CHECK_LAUNCH();
}

void embedding_backward(const KernelContext& ctx, float* dwte, float* dwpe, const float* dout, const int32_t* tokens,
                        int B, int T, int C) {
  const int n = B * T;
  if (n == 0 || C == 0) return;
  cudaStream_t stream = stream_of(ctx);
  embedding_backward_wpe_kernel<<<grid_for(static_cast<size_t>(T) * C), 256, 0, stream>>>(dwpe, dout, B, T, C);
  CUDA_CHECK_LAUNCH();

  // Each token's positions, grouped and ascending (token_sort.cuh; scratch in the workspace).
  const SortedTokens sorted = sort_tokens_stably(ctx, tokens, n, "cuda::embedding_backward");
  const unsigned int blocks = n < 65535 ? n : 65535;
  const int threads = C < 256 ? ((C + 31) / 32) * 32 : 256;
  embedding_backward_wte_kernel<<<blocks, threads, 0, stream>>>(dwte, dout, sorted.tokens, sorted.positions, n, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
