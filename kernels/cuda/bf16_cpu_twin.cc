// kernels/cuda/bf16_cpu_twin.cc: CPU twins of the bf16 kernels: widen to fp32, the fp32 CPU kernels, one rounding.
#include "kernels/cuda/bf16_cpu_twin.h"

#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16_rounding.h"

namespace kernels::cpu {

namespace {

std::vector<float> widen_all(const uint16_t* x, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; i++) out[i] = kernels::bf16::widen(x[i]);
  return out;
}

}  // namespace

void float_to_bf16_stochastic(const KernelContext& ctx, uint16_t* out, const float* inp, size_t N, uint64_t seed) {
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (size_t i = 0; i < N; i++) out[i] = kernels::bf16::round_stochastic(inp[i], seed, i);
}

void adamw_update_bf16(const KernelContext& ctx, uint16_t* params, float* master, const float* grads, float* m,
                       float* v, size_t N, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int t, uint64_t seed) {
  adamw_update(ctx, master, grads, m, v, N, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
  float_to_bf16_stochastic(ctx, params, master, N, seed);
}

void matmul_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, const uint16_t* weight,
                         const uint16_t* bias, int N, int C, int OC) {
  const std::vector<float> x = widen_all(inp, static_cast<size_t>(N) * C);
  const std::vector<float> w = widen_all(weight, static_cast<size_t>(OC) * C);
  const std::vector<float> b = bias ? widen_all(bias, OC) : std::vector<float>();
  std::vector<float> y(static_cast<size_t>(N) * OC);
  matmul_forward(ctx, y.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
  for (size_t i = 0; i < y.size(); i++) out[i] = kernels::bf16::round_nearest(y[i]);
}

void matmul_backward_bf16(const KernelContext& ctx, uint16_t* dinp, float* dweight, float* dbias,
                          const uint16_t* dout, const uint16_t* inp, const uint16_t* weight, int N, int C, int OC) {
  const std::vector<float> d = widen_all(dout, static_cast<size_t>(N) * OC);
  const std::vector<float> x = widen_all(inp, static_cast<size_t>(N) * C);
  const std::vector<float> w = widen_all(weight, static_cast<size_t>(OC) * C);
  std::vector<float> dx;
  if (dinp != nullptr) dx = widen_all(dinp, static_cast<size_t>(N) * C);
  matmul_backward(ctx, dinp ? dx.data() : nullptr, dweight, dbias, d.data(), x.data(), w.data(), N, C, OC);
  if (dinp != nullptr) {
    for (size_t i = 0; i < dx.size(); i++) dinp[i] = kernels::bf16::round_nearest(dx[i]);
  }
}

}  // namespace kernels::cpu
