// kernels/cuda/crossentropy.cu: fused softmax + cross-entropy over the first V of Vp (padded) columns, forward
// (probabilities kept for the backward pass) and backward (dlogits += scale * (probs - onehot)).
//
// Forward: one block per row; max and the sum of exponentials are block reductions in a fixed tree order, the sum in
// double like the CPU twin, so results agree with it to rounding (expf vs std::exp, tree vs sequential order).
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 512;

__global__ void softmax_crossentropy_forward_kernel(float* losses, float* probs, const float* logits,
                                                    const int32_t* targets, int V, int Vp) {
  __shared__ float shared_f[32];
  __shared__ double shared_d[32];
  const size_t row = blockIdx.x;
  const float* x = logits + row * Vp;  // (Vp)
  float* p = probs + row * Vp;         // (Vp)
  float maxval = -INFINITY;
  for (int j = threadIdx.x; j < V; j += blockDim.x) maxval = fmaxf(maxval, x[j]);
  maxval = block_max(maxval, shared_f);
  double sum = 0.0;
  for (int j = threadIdx.x; j < V; j += blockDim.x) sum += static_cast<double>(expf(x[j] - maxval));
  sum = block_sum(sum, shared_d);
  const float inv = static_cast<float>(1.0 / sum);
  for (int j = threadIdx.x; j < Vp; j += blockDim.x) p[j] = j < V ? expf(x[j] - maxval) * inv : 0.0f;
  if (threadIdx.x == 0) {
    // -log softmax[target] = log(sum) - (x[target] - max): exact even where the probability underflows.
    losses[row] = static_cast<float>(log(sum) - static_cast<double>(x[targets[row]] - maxval));
  }
}

// One thread per element; the target column subtracts scale after adding scale * p, as the CPU twin does.
__global__ void softmax_crossentropy_backward_kernel(float* dlogits, const float* probs, const int32_t* targets,
                                                     float scale, int N, int V, int Vp) {
  const size_t n = static_cast<size_t>(N) * Vp;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t row = i / Vp;
    const int j = static_cast<int>(i % Vp);
    if (j >= V) continue;  // padded columns get nothing
    float d = dlogits[i] + scale * probs[i];
    if (j == targets[row]) d -= scale;
    dlogits[i] = d;
  }
}

}  // namespace

void softmax_crossentropy_forward(const KernelContext& ctx, float* losses, float* probs, const float* logits,
                                  const int32_t* targets, int N, int V, int Vp) {
  if (N == 0) return;
  softmax_crossentropy_forward_kernel<<<N, kThreads, 0, stream_of(ctx)>>>(losses, probs, logits, targets, V, Vp);
  CUDA_CHECK_LAUNCH();
}

void softmax_crossentropy_backward(const KernelContext& ctx, float* dlogits, const float* probs,
                                   const int32_t* targets, float dloss_scale, int N, int V, int Vp) {
  const size_t n = static_cast<size_t>(N) * Vp;
  if (n == 0) return;
  softmax_crossentropy_backward_kernel<<<grid_for(n), 256, 0, stream_of(ctx)>>>(dlogits, probs, targets, dloss_scale,
                                                                              N, V, Vp);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
