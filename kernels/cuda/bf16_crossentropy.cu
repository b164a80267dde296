// kernels/cuda/bf16_crossentropy.cu: llm.c's fused classifier in bf16 (bf16.cuh): softmax + cross-entropy + dlogits
// in place. logits (N,Vp) bf16 come in; losses (N) fp32 are written and the same buffer is overwritten with
// dlogits = round(dloss_scale * p - [j == target] dloss_scale) for j < V, 0 in the padded columns j >= V. The (N,Vp)
// fp32 probabilities of the fp32 path are never stored: at GPT-2's 65536 x 50304 that saves 13 GB of traffic.
//
// One block of 1024 threads per row, three passes over the row (max, sum of exponentials, write), in packs of P
// (P = 8: 128-bit loads and stores, when Vp is a multiple of 8 and the buffer is 16-byte aligned). The first pass
// streams the row (100 KB at Vp = 50304) from DRAM; the next two find it in L2. Max and sum are fp32 block
// reductions in a fixed tree order (deterministic); the CPU twin sums sequentially in fp32, so losses and dlogits
// agree with it to rounding (and expf vs the CPU's vexp).
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_vector.cuh"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 1024;

template <int P>
__global__ void softmax_crossentropy_fused_kernel(float* losses, uint16_t* logits_dlogits, const int32_t* targets,
                                                  float dloss_scale, int V, int Vp) {
  __shared__ float shared[32];
  const size_t row = blockIdx.x;
  uint16_t* x = logits_dlogits + row * Vp;  // (Vp): logits in, dlogits out
  const int target = targets[row];

  float maxval = -INFINITY;
  for (int j = threadIdx.x * P; j < V; j += kThreads * P) {
    float v[P];
    load_pack<P>(v, x + j);
#pragma unroll
    for (int k = 0; k < P; k++) {
      if (j + k < V) maxval = fmaxf(maxval, v[k]);
    }
  }
  maxval = block_max(maxval, shared);

  // Read before anything is overwritten: block_sum below synchronises the block, and the writes come after it.
  const float x_target = kernels::bf16::widen(x[target]);
  float sum = 0.0f;
  for (int j = threadIdx.x * P; j < V; j += kThreads * P) {
    float v[P];
    load_pack<P>(v, x + j);
#pragma unroll
    for (int k = 0; k < P; k++) {
      if (j + k < V) sum += expf(v[k] - maxval);
    }
  }
  sum = block_sum(sum, shared);
  const float inv = 1.0f / sum;

  // Each thread overwrites only the packs it reads itself.
  for (int j = threadIdx.x * P; j < Vp; j += kThreads * P) {
    float v[P];
    load_pack<P>(v, x + j);
#pragma unroll
    for (int k = 0; k < P; k++) {
      const int col = j + k;
      float d = 0.0f;  // padded columns
      if (col < V) {
        d = dloss_scale * (expf(v[k] - maxval) * inv);  // the CPU: p = e * inv, then 0 + scale * p
        if (col == target) d -= dloss_scale;
      }
      v[k] = d;
    }
    store_pack<P>(x + j, v);
  }
  // -log softmax[target] = log(sum) - (x[target] - max): exact even where the probability underflows.
  if (threadIdx.x == 0) losses[row] = logf(sum) - (x_target - maxval);
}

}  // namespace

void softmax_crossentropy_fused_bf16(const KernelContext& ctx, float* losses, uint16_t* logits_dlogits,
                                     const int32_t* targets, float dloss_scale, int N, int V, int Vp) {
  if (N == 0) return;
  if (pack_width(Vp, {logits_dlogits}) == kPack) {
    softmax_crossentropy_fused_kernel<kPack><<<N, kThreads, 0, stream_of(ctx)>>>(losses, logits_dlogits, targets,
                                                                                 dloss_scale, V, Vp);
  } else {
    softmax_crossentropy_fused_kernel<1><<<N, kThreads, 0, stream_of(ctx)>>>(losses, logits_dlogits, targets,
                                                                             dloss_scale, V, Vp);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
