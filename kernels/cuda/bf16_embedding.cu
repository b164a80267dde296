// kernels/cuda/bf16_embedding.cu: token + position embedding in bf16 (bf16.cuh): forward out = round(wte + wpe),
// and the backward into fp32 dwte / dwpe from a bf16 dout, deterministic without atomics.
//
// Backward, as embedding.cu: a stable radix sort (CUB) of (token, position) groups each token's positions in
// ascending order, and one block per group adds the widened dout rows into dwte in that order, from dwte's current
// value. The CPU twin walks positions in the same order, so dwte and dwpe match it bit for bit.
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_vector.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/token_sort.cuh"

namespace kernels::cuda {

namespace {

// One thread per pack of P channels of one (b, t) row.
template <int P>
__global__ void embedding_forward_kernel(uint16_t* out, const int32_t* tokens, const uint16_t* wte,
                                         const uint16_t* wpe, int B, int T, int C) {
  const size_t packs = static_cast<size_t>(B) * T * (C / P);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t bt = i / (C / P), c = (i % (C / P)) * P;
    const size_t t = bt % T;
    float e[P], p[P];
    load_pack<P>(e, wte + static_cast<size_t>(tokens[bt]) * C + c);
    load_pack<P>(p, wpe + t * C + c);
#pragma unroll
    for (int k = 0; k < P; k++) e[k] += p[k];
    store_pack<P>(out + bt * C + c, e);
  }
}

// dwpe[t, c] += dout[b, t, c] for b in order: one thread per (t, c).
__global__ void embedding_backward_wpe_kernel(float* dwpe, const uint16_t* dout, int B, int T, int C) {
  const size_t n = static_cast<size_t>(T) * C;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float acc = dwpe[i];
    for (int b = 0; b < B; b++) acc += kernels::bf16::widen(dout[static_cast<size_t>(b) * T * C + i]);
    dwpe[i] = acc;
  }
}

// One block per sorted slot; only the block at the start of a token's group works: it walks the group (positions
// ascending) and adds each row into dwte[token], packs of P channels spread over the block's threads.
template <int P>
__global__ void embedding_backward_wte_kernel(float* dwte, const uint16_t* dout, const int32_t* sorted_tokens,
                                              const int32_t* sorted_pos, int n, int C) {
  for (int i = blockIdx.x; i < n; i += gridDim.x) {
    const int32_t tok = sorted_tokens[i];
    if (i > 0 && sorted_tokens[i - 1] == tok) continue;  // not the start of a group
    int end = i;
    while (end < n && sorted_tokens[end] == tok) end++;
    float* w = dwte + static_cast<size_t>(tok) * C;
    for (int c = threadIdx.x * P; c < C; c += blockDim.x * P) {
      float acc[P];
      load_pack<P>(acc, w + c);
      for (int j = i; j < end; j++) {
        float d[P];
        load_pack<P>(d, dout + static_cast<size_t>(sorted_pos[j]) * C + c);
#pragma unroll
        for (int k = 0; k < P; k++) acc[k] += d[k];
      }
      store_pack<P>(w + c, acc);
    }
  }
}

}  // namespace

void embedding_forward_bf16(const KernelContext& ctx, uint16_t* out, const int32_t* tokens, const uint16_t* wte,
                            const uint16_t* wpe, int B, int T, int C) {
  const size_t n = static_cast<size_t>(B) * T * C;
  if (n == 0) return;
  if (pack_width(C, {out, wte, wpe}) == kPack) {
    embedding_forward_kernel<kPack><<<grid_for(n / kPack), 256, 0, stream_of(ctx)>>>(out, tokens, wte, wpe, B, T, C);
  } else {
    embedding_forward_kernel<1><<<grid_for(n), 256, 0, stream_of(ctx)>>>(out, tokens, wte, wpe, B, T, C);
  }
  CUDA_CHECK_LAUNCH();
}

void embedding_backward_bf16(const KernelContext& ctx, float* dwte, float* dwpe, const uint16_t* dout,
                             const int32_t* tokens, int B, int T, int C) {
  const int n = B * T;
  if (n == 0 || C == 0) return;
  cudaStream_t stream = stream_of(ctx);
  embedding_backward_wpe_kernel<<<grid_for(static_cast<size_t>(T) * C), 256, 0, stream>>>(dwpe, dout, B, T, C);
  CUDA_CHECK_LAUNCH();

  // Each token's positions, grouped and ascending (token_sort.cuh; scratch in the workspace).
  const SortedTokens sorted = sort_tokens_stably(ctx, tokens, n, "cuda::embedding_backward_bf16");
  const int P = pack_width(C, {dwte, dout});
  const int lanes = (C / P + 31) / 32 * 32;  // threads to cover one row's packs, a whole number of warps
  const int threads = lanes < 256 ? lanes : 256;
  const unsigned int blocks = n < 65535 ? n : 65535;
  if (P == kPack) {
    embedding_backward_wte_kernel<kPack><<<blocks, threads, 0, stream>>>(dwte, dout, sorted.tokens, sorted.positions,
                                                                         n, C);
  } else {
    embedding_backward_wte_kernel<1><<<blocks, threads, 0, stream>>>(dwte, dout, sorted.tokens, sorted.positions, n,
                                                                     C);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
