// kernels/cpu/crossentropy.cc: fused softmax + cross-entropy over the first V of Vp (padded) columns.
#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vecmath.h"

namespace kernels::cpu {

void softmax_crossentropy_forward(const KernelContext& ctx, float* losses, float* probs, const float* logits,
                                  const int32_t* targets, int N, int V, int Vp) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * V)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = logits + static_cast<int64_t>(n) * Vp;  // (Vp)
    float* p = probs + static_cast<int64_t>(n) * Vp;         // (Vp)
    float maxval = -INFINITY;
#pragma omp simd reduction(max : maxval)
    for (int j = 0; j < V; j++) maxval = x[j] > maxval ? x[j] : maxval;
    float sum = 0.0f;  // V partial sums, one per SIMD lane, in a fixed order: deterministic
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) {
      const float e = vexp(x[j] - maxval);
      p[j] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < V; j++) p[j] *= inv;
    for (int j = V; j < Vp; j++) p[j] = 0.0f;
    // -log softmax[target] = log(sum) - (x[target] - max): exact even where the probability underflows.
    losses[n] = std::log(sum) - (x[targets[n]] - maxval);
  }
}

void softmax_crossentropy_backward(const KernelContext& ctx, float* dlogits, const float* probs,
                                   const int32_t* targets, float dloss_scale, int N, int V, int Vp) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * V)) schedule(static)
  for (int n = 0; n < N; n++) {
    float* d = dlogits + static_cast<int64_t>(n) * Vp;
    const float* p = probs + static_cast<int64_t>(n) * Vp;
#pragma omp simd
    for (int j = 0; j < V; j++) d[j] += dloss_scale * p[j];
    d[targets[n]] -= dloss_scale;
  }
}

}  // namespace kernels::cpu
