// kernels/cpu/gelu.cc: GELU, tanh approximation (GPT-2's), forward and backward.
//
// 0.5 x (1 + tanh(u)) = x s with s = 1 / (1 + e^{-2u}), u = sqrt(2/pi) (x + 0.044715 x^3); tanh(u) = 2s - 1 and
// 1 - tanh(u)^2 = 4 s (1 - s). Written with vexp so the loops vectorise.
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vecmath.h"

namespace kernels::cpu {

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kCubic = 0.044715f;
}  // namespace

void gelu_forward(const KernelContext& ctx, float* out, const float* inp, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    out[i] = x / (1.0f + vexp(-2.0f * u));
  }
}

void gelu_backward(const KernelContext& ctx, float* dinp, const float* inp, const float* dout, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float s = 1.0f / (1.0f + vexp(-2.0f * u));  // (1 + tanh(u)) / 2
    // d/dx [x s] = s + x * ds/du * du/dx, ds/du = 2 s (1 - s)
    const float grad = s + 2.0f * x * s * (1.0f - s) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    dinp[i] += grad * dout[i];
  }
}

}  // namespace kernels::cpu
