// kernels/cpu/adamw.cc: one AdamW step over a contiguous parameter block (decoupled weight decay).
#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

void adamw_update(const KernelContext& ctx, float* params, const float* grads, float* m, float* v, size_t N,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t) {
  const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));  // bias corrections
  const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float g = grads[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / bc1;
    const float vhat = vi / bc2;
    params[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + weight_decay * params[i]);
  }
}

}  // namespace kernels::cpu
