// kernels/cpu/layernorm.cc: layernorm over the last dimension (eps 1e-5), forward and backward.
#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {
constexpr float kEps = 1e-5f;
}

void layernorm_forward(const KernelContext& ctx, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * C)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + static_cast<int64_t>(n) * C;  // (C)
    float* o = out + static_cast<int64_t>(n) * C;        // (C)
    float sum = 0.0f;
    for (int c = 0; c < C; c++) sum += x[c];
    const float m = sum / C;
    float var = 0.0f;
    for (int c = 0; c < C; c++) {
      const float d = x[c] - m;
      var += d * d;
    }
    const float s = 1.0f / std::sqrt(var / C + kEps);
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = s;
  }
}

void layernorm_backward(const KernelContext& ctx, float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C) {
  // dinp, row by row: dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight.
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * C)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float* x = inp + static_cast<int64_t>(n) * C;
    const float* d = dout + static_cast<int64_t>(n) * C;
    float* dx = dinp + static_cast<int64_t>(n) * C;
    const float m = mean[n], s = rstd[n];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int c = 0; c < C; c++) {
      const float dnorm = weight[c] * d[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * (x[c] - m) * s;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    for (int c = 0; c < C; c++) {
      const float norm = (x[c] - m) * s;
      dx[c] += s * (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean);
    }
  }
  // dweight, dbias: sums over rows; each thread owns a block of channels and adds rows in order (deterministic).
  constexpr int kBlock = 64;
  const int num_blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * C)) schedule(static)
  for (int blk = 0; blk < num_blocks; blk++) {
    const int c0 = blk * kBlock;
    const int c1 = c0 + kBlock < C ? c0 + kBlock : C;
    float dw[kBlock] = {0}, db[kBlock] = {0};
    for (int n = 0; n < N; n++) {
      const float* x = inp + static_cast<int64_t>(n) * C;
      const float* d = dout + static_cast<int64_t>(n) * C;
      const float m = mean[n], s = rstd[n];
      for (int c = c0; c < c1; c++) {
        dw[c - c0] += (x[c] - m) * s * d[c];
        db[c - c0] += d[c];
      }
    }
    for (int c = c0; c < c1; c++) {
      dweight[c] += dw[c - c0];
      dbias[c] += db[c - c0];
    }
  }
}

}  // namespace kernels::cpu
