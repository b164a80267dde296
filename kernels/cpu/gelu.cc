// kernels/cpu/gelu.cc: GELU, tanh approximation (GPT-2's), forward and backward.
#include <cmath>

#include "kernels/cpu/kernels.h"

namespace kernels::cpu {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kCubic = 0.044715f;
}  // namespace

void gelu_forward(const KernelContext& ctx, float* out, const float* inp, size_t N) {
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    out[i] = 0.5f * x * (1.0f + std::tanh(u));
  }
}

void gelu_backward(const KernelContext& ctx, float* dinp, const float* inp, const float* dout, size_t N) {
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float th = std::tanh(u);
    const float sech2 = 1.0f - th * th;
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    dinp[i] += grad * dout[i];
  }
}

}  // namespace kernels::cpu
