// engine/optim/muon.cc: Muon's Newton-Schulz iteration (through the gemm kernel) and the optimizer step.
#include "engine/optim/muon.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/device.h"
#include "engine/dispatch.h"

namespace engine::optim {

namespace {

constexpr float kA = 3.4445f, kB = -4.7750f, kC = 2.0315f;

// Buffers inside scratch start on 64-byte boundaries.
size_t padded(size_t floats) { return (floats + 15) / 16 * 16; }

}  // namespace

size_t newton_schulz_scratch_floats(int rows, int cols) {
  const size_t m = static_cast<size_t>(std::min(rows, cols));
  // A, B (m, m); the next iterate (rows, cols); the norm (one float)
  return 2 * padded(m * m) + padded(static_cast<size_t>(rows) * cols) + 16;
}

float* newton_schulz(const kernels::KernelContext& ctx, Device device, float* x, float* scratch, int rows, int cols,
                     int steps) {
  const int m = std::min(rows, cols);
  const size_t n = static_cast<size_t>(rows) * cols;
  float* a = scratch;                                  // (m, m)
  float* b = a + padded(static_cast<size_t>(m) * m);     // (m, m)
  float* next = b + padded(static_cast<size_t>(m) * m);  // (rows, cols)
  float* norm_dev = next + padded(n);                    // (1)
  // x /= ||x||_F + 1e-7
  KERNEL(device, sum_squares, ctx, norm_dev, x, n);
  float sq = 0.0f;
  Tensor norm_t;
  norm_t.data = norm_dev;
  norm_t.ndim = 1;
  norm_t.shape[0] = 1;
  norm_t.device = device;
  copy_to_host(&sq, norm_t);
  KERNEL(device, scale_inplace, ctx, x, 1.0f / (std::sqrt(sq) + 1e-7f), n);
  // Work on the small Gram matrix: X X^T (rows <= cols) or X^T X (tall); X (X^T X)^k = (X X^T)^k X.
  const bool wide = rows <= cols;
  float* cur = x;
  for (int s = 0; s < steps; s++) {
    if (wide) {
      KERNEL(device, gemm, ctx, a, cur, cur, m, m, cols, false, true, 1.0f, 0.0f);  // A = X X^T
    } else {
      KERNEL(device, gemm, ctx, a, cur, cur, m, m, rows, true, false, 1.0f, 0.0f);  // A = X^T X
    }
    KERNEL(device, gemm, ctx, b, a, a, m, m, m, false, false, kC, 0.0f);  // B = c A A + b A
    KERNEL(device, axpy, ctx, b, a, kB, static_cast<size_t>(m) * m);
    if (wide) {
      KERNEL(device, gemm, ctx, next, b, cur, rows, cols, m, false, false, 1.0f, 0.0f);  // B X
    } else {
      KERNEL(device, gemm, ctx, next, cur, b, rows, cols, m, false, false, 1.0f, 0.0f);  // X B
    }
    KERNEL(device, axpy, ctx, next, cur, kA, n);  // + a X
    std::swap(cur, next);
  }
  return cur;
}

Muon::Muon(ParamStore& params, const kernels::KernelContext& ctx, const MuonConfig& config)
    : params_(params),
      ctx_(ctx),
      config_(config),
      state_("muon state", 2 * params.num_elements() * sizeof(float) + 512, params.device()),
      scratch_("muon scratch", [&params] {
        size_t floats = 16;
        for (const Param& p : params.params()) {
          if (p.kind != ParamKind::matrix) continue;
          const int rows = static_cast<int>(p.var.value.dim(0));
          const int cols = static_cast<int>(p.var.value.numel() / rows);
          // the update u (rows, cols), then newton_schulz's scratch
          const size_t need = padded(static_cast<size_t>(rows) * cols) + newton_schulz_scratch_floats(rows, cols);
          floats = std::max(floats, need);
        }
        return floats * sizeof(float) + 512;
      }(), params.device()) {
  // Muon writes only the fp32 values: under the bf16 policy the model's copy would go stale, silently.
  ENGINE_CHECK(params.precision() == Precision::fp32,
               "Muon: the bf16 parameter policy is not supported yet (its update would not reach the bf16 copy); "
               "use AdamW, or the fp32 policy");
  const int64_t n = static_cast<int64_t>(params.num_elements());
  m_ = state_.alloc({n});
  v_ = state_.alloc({n});
  const int64_t scratch_floats = static_cast<int64_t>(scratch_.capacity() / sizeof(float)) - 128;
  ns_scratch_ = scratch_.alloc({scratch_floats});
}

void Muon::step(float matrix_lr, float adamw_lr, float grad_scale) {
  t_ += 1;
  const Device dev = params_.device();
  const float beta = config_.momentum;
  for (size_t i = 0; i < params_.params().size(); i++) {
    Param& p = params_.params()[i];
    const int64_t off = params_.offset(static_cast<int>(i));
    const size_t n = static_cast<size_t>(p.var.value.numel());
    float* w = p.var.value.f32();
    const float* g = p.var.grad.f32();
    if (p.kind != ParamKind::matrix) {
      const float wd = takes_weight_decay(p.kind) ? config_.adamw.weight_decay : 0.0f;
      KERNEL(dev, adamw_update, ctx_, w, g, m_.f32() + off, v_.f32() + off, n, adamw_lr, config_.adamw.beta1,
             config_.adamw.beta2, config_.adamw.eps, wd, grad_scale, t_);
      continue;
    }
    const int rows = static_cast<int>(p.var.value.dim(0));
    const int cols = static_cast<int>(n / rows);
    float* buf = m_.f32() + off;
    float* u = ns_scratch_.f32();   // (rows, cols)
    float* scratch = u + padded(n);
    // buf = beta * buf + (1 - beta) * g;  u = nesterov ? (1 - beta) * g + beta * buf : buf
    KERNEL(dev, scale_inplace, ctx_, buf, beta, n);
    KERNEL(dev, axpy, ctx_, buf, g, (1.0f - beta) * grad_scale, n);
    KERNEL(dev, fill, ctx_, u, 0.0f, n);
    if (config_.nesterov) {
      KERNEL(dev, axpy, ctx_, u, g, (1.0f - beta) * grad_scale, n);
      KERNEL(dev, axpy, ctx_, u, buf, beta, n);
    } else {
      KERNEL(dev, axpy, ctx_, u, buf, 1.0f, n);
    }
    const float* o = newton_schulz(ctx_, dev, u, scratch, rows, cols, config_.ns_steps);
    if (config_.weight_decay != 0.0f) {
      KERNEL(dev, scale_inplace, ctx_, w, 1.0f - matrix_lr * config_.weight_decay, n);
    }
    const float shape_scale = std::sqrt(std::max(1.0f, static_cast<float>(rows) / static_cast<float>(cols)));
    KERNEL(dev, axpy, ctx_, w, o, -matrix_lr * shape_scale, n);
  }
}

}  // namespace engine::optim
