// Optimizers: AdamW and Muon against naive loops, Newton-Schulz singular values, the lr schedule, grad clipping.
#include <cmath>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/optim/adamw.h"
#include "engine/optim/grad_clip.h"
#include "engine/optim/muon.h"
#include "engine/optim/schedule.h"
#include "engine/params.h"
#include "gtest/gtest.h"
#include "tests/engine/linalg.h"

namespace engine::optim {
namespace {

// A small store: a matrix, an embedding and a vector, with odd sizes (padding between them in the flat block).
struct Store {
  ParamStore params;
  int mat, emb, vec;
  Store() {
    mat = params.declare("w", {7, 13}, ParamKind::matrix);
    emb = params.declare("wte", {5, 3}, ParamKind::embedding);
    vec = params.declare("b", {9}, ParamKind::vector);
    params.allocate();
  }
  void randomize(std::mt19937& rng, bool values, bool grads) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (Param& p : params.params()) {
      for (int64_t i = 0; i < p.var.value.numel(); i++) {
        if (values) p.var.value.f32()[i] = normal(rng);
        if (grads) p.var.grad.f32()[i] = normal(rng);
      }
    }
  }
};

TEST(AdamW, MatchesNaiveLoopWithDecayOnMatricesAndEmbeddingsOnly) {
  DeviceContext dc(Device::cpu, 2);
  Store s;
  std::mt19937 rng(1);
  s.randomize(rng, true, false);
  AdamWConfig cfg;
  cfg.beta1 = 0.8f;
  cfg.beta2 = 0.9f;
  cfg.eps = 1e-6f;
  cfg.weight_decay = 0.1f;
  AdamW opt(s.params, dc.ctx(), cfg);
  // The naive reference, per parameter, in double.
  std::vector<std::vector<double>> w, m, v;
  for (const Param& p : s.params.params()) {
    w.emplace_back(p.var.value.f32(), p.var.value.f32() + p.var.value.numel());
    m.emplace_back(p.var.value.numel(), 0.0);
    v.emplace_back(p.var.value.numel(), 0.0);
  }
  const float lrs[3] = {1e-2f, 5e-3f, 2e-2f};
  const float scales[3] = {1.0f, 0.5f, 0.25f};
  for (int step = 1; step <= 3; step++) {
    s.randomize(rng, false, true);
    for (size_t k = 0; k < s.params.params().size(); k++) {
      const Param& p = s.params.params()[k];
      const double wd = p.kind == ParamKind::vector ? 0.0 : cfg.weight_decay;
      for (int64_t i = 0; i < p.var.value.numel(); i++) {
        const double g = static_cast<double>(p.var.grad.f32()[i]) * scales[step - 1];
        m[k][i] = cfg.beta1 * m[k][i] + (1 - cfg.beta1) * g;
        v[k][i] = cfg.beta2 * v[k][i] + (1 - cfg.beta2) * g * g;
        const double mhat = m[k][i] / (1 - std::pow(static_cast<double>(cfg.beta1), step));
        const double vhat = v[k][i] / (1 - std::pow(static_cast<double>(cfg.beta2), step));
        w[k][i] -= lrs[step - 1] * (mhat / (std::sqrt(vhat) + cfg.eps) + wd * w[k][i]);
      }
    }
    opt.step(lrs[step - 1], scales[step - 1]);
  }
  EXPECT_EQ(opt.step_count(), 3);
  for (size_t k = 0; k < s.params.params().size(); k++) {
    const Param& p = s.params.params()[k];
    for (int64_t i = 0; i < p.var.value.numel(); i++) {
      EXPECT_NEAR(p.var.value.f32()[i], w[k][i], 1e-5) << p.name << "[" << i << "]";
      EXPECT_NEAR(opt.m().f32()[s.params.offset(static_cast<int>(k)) + i], m[k][i], 1e-6);
    }
  }
  // The vector parameter took no decay: with a zero gradient and zero state it would not move at all.
  EXPECT_FALSE(takes_weight_decay(ParamKind::vector));
  EXPECT_TRUE(takes_weight_decay(ParamKind::matrix));
  EXPECT_TRUE(takes_weight_decay(ParamKind::embedding));
}

TEST(Linalg, JacobiSingularValuesOfAKnownMatrix) {
  // Rows scaled 3, 2, 0.5 of a 3x5 matrix with orthonormal rows (a permutation): singular values 0.5, 2, 3.
  std::vector<float> x(15, 0.0f);
  x[0 * 5 + 4] = 3.0f;
  x[1 * 5 + 1] = -2.0f;
  x[2 * 5 + 2] = 0.5f;
  std::vector<double> sv = testing::singular_values(x.data(), 3, 5);
  EXPECT_NEAR(sv[0], 0.5, 1e-9);
  EXPECT_NEAR(sv[1], 2.0, 1e-9);
  EXPECT_NEAR(sv[2], 3.0, 1e-9);
  // A rotated, non-diagonal case: [[1,1],[1,-1]] has both singular values sqrt(2); its transpose too.
  std::vector<float> y = {1.0f, 1.0f, 1.0f, -1.0f, 0.0f, 0.0f};  // (3, 2)
  for (double s : testing::singular_values(y.data(), 3, 2)) EXPECT_NEAR(s, std::sqrt(2.0), 1e-9);
}

// Singular values of the Newton-Schulz output: all in the quintic's band, whatever the input's spectrum.
void check_newton_schulz(int rows, int cols, uint32_t seed) {
  DeviceContext dc(Device::cpu, 2);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(rows) * cols);
  for (float& e : x) e = normal(rng);
  std::vector<float> scratch(newton_schulz_scratch_floats(rows, cols));
  const float* out = newton_schulz(dc.ctx(), Device::cpu, x.data(), scratch.data(), rows, cols, 5);
  const std::vector<double> sv = testing::singular_values(out, rows, cols);
  ASSERT_EQ(static_cast<int>(sv.size()), std::min(rows, cols));
  for (double s : sv) {
    EXPECT_GT(s, 0.6) << rows << "x" << cols;
    EXPECT_LT(s, 1.2) << rows << "x" << cols;
  }
}

TEST(Muon, NewtonSchulzSingularValuesNearOneWide) { check_newton_schulz(16, 48, 1); }
TEST(Muon, NewtonSchulzSingularValuesNearOneTall) { check_newton_schulz(53, 13, 2); }
TEST(Muon, NewtonSchulzSingularValuesNearOneOdd) { check_newton_schulz(13, 29, 3); }

TEST(Muon, NewtonSchulzOrthogonalisesAnIllConditionedMatrix) {
  // Singular values spread over two orders of magnitude all come out in the band.
  const int rows = 8, cols = 20;
  std::vector<float> x(rows * cols, 0.0f);
  for (int i = 0; i < rows; i++) x[i * cols + i] = std::pow(10.0f, -2.0f * i / (rows - 1)) * 50.0f;
  DeviceContext dc(Device::cpu, 2);
  std::vector<float> scratch(newton_schulz_scratch_floats(rows, cols));
  const float* out = newton_schulz(dc.ctx(), Device::cpu, x.data(), scratch.data(), rows, cols, 5);
  for (double s : testing::singular_values(out, rows, cols)) {
    EXPECT_GT(s, 0.6);
    EXPECT_LT(s, 1.2);
  }
}

// Naive double-precision Newton-Schulz (X X^T form for any shape) for the Muon step reference.
std::vector<double> naive_newton_schulz(std::vector<double> x, int rows, int cols, int steps) {
  double norm = 0.0;
  for (double e : x) norm += e * e;
  norm = std::sqrt(norm) + 1e-7;
  for (double& e : x) e /= norm;
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  for (int s = 0; s < steps; s++) {
    std::vector<double> A(rows * rows, 0.0), B(rows * rows, 0.0), next(rows * cols, 0.0);
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < rows; j++)
        for (int k = 0; k < cols; k++) A[i * rows + j] += x[i * cols + k] * x[j * cols + k];
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < rows; j++) {
        double aa = 0.0;
        for (int k = 0; k < rows; k++) aa += A[i * rows + k] * A[k * rows + j];
        B[i * rows + j] = b * A[i * rows + j] + c * aa;
      }
    for (int i = 0; i < rows; i++)
      for (int j = 0; j < cols; j++) {
        double bx = 0.0;
        for (int k = 0; k < rows; k++) bx += B[i * rows + k] * x[k * cols + j];
        next[i * cols + j] = a * x[i * cols + j] + bx;
      }
    x = next;
  }
  return x;
}

TEST(Muon, StepMatchesNaiveReference) {
  DeviceContext dc(Device::cpu, 2);
  Store s;
  std::mt19937 rng(4);
  s.randomize(rng, true, false);
  MuonConfig cfg;
  cfg.momentum = 0.9f;
  cfg.nesterov = true;
  cfg.weight_decay = 0.05f;
  cfg.adamw.weight_decay = 0.1f;
  Muon opt(s.params, dc.ctx(), cfg);
  Tensor w = s.params.var(s.mat).value;
  const int rows = 7, cols = 13;
  std::vector<double> ref_w(w.f32(), w.f32() + w.numel()), buf(rows * cols, 0.0);
  const float lr = 0.02f, scale = 0.5f;
  for (int step = 1; step <= 2; step++) {
    s.randomize(rng, false, true);
    Tensor g = s.params.var(s.mat).grad;
    std::vector<double> u(rows * cols);
    for (int i = 0; i < rows * cols; i++) {
      const double gi = static_cast<double>(g.f32()[i]) * scale;
      buf[i] = cfg.momentum * buf[i] + (1 - cfg.momentum) * gi;
      u[i] = (1 - cfg.momentum) * gi + cfg.momentum * buf[i];
    }
    const std::vector<double> o = naive_newton_schulz(u, rows, cols, 5);
    for (int i = 0; i < rows * cols; i++) ref_w[i] = ref_w[i] * (1 - lr * cfg.weight_decay) - lr * 1.0 * o[i];
    opt.step(lr, 1e-3f, scale);
  }
  for (int i = 0; i < rows * cols; i++) EXPECT_NEAR(w.f32()[i], ref_w[i], 2e-5) << i;
}

TEST(Muon, TallMatrixUpdateIsScaledBySqrtAspect) {
  // One step from zero momentum on a tall (12, 3) matrix, no decay: W moves by lr * sqrt(12/3) * NS(g).
  DeviceContext dc(Device::cpu, 2);
  ParamStore params;
  const int w_idx = params.declare("w", {12, 3}, ParamKind::matrix);
  params.allocate();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Var& w = params.var(w_idx);
  std::vector<double> g(36);
  for (int i = 0; i < 36; i++) {
    w.grad.f32()[i] = normal(rng);
    g[i] = w.grad.f32()[i];
  }
  MuonConfig cfg;
  cfg.nesterov = false;
  Muon opt(params, dc.ctx(), cfg);
  opt.step(0.1f, 0.0f);
  // NS of a tall matrix is the transpose of NS of its transpose.
  std::vector<double> gt(36);
  for (int i = 0; i < 12; i++)
    for (int j = 0; j < 3; j++) gt[j * 12 + i] = g[i * 3 + j];
  const std::vector<double> ot = naive_newton_schulz(gt, 3, 12, 5);
  for (int i = 0; i < 12; i++)
    for (int j = 0; j < 3; j++) EXPECT_NEAR(w.value.f32()[i * 3 + j], -0.1 * 2.0 * ot[j * 12 + i], 1e-5);
}

TEST(Schedule, WarmupThenCosineToFinalFraction) {
  LrSchedule s;
  s.max_lr = 1.0f;
  s.warmup_steps = 4;
  s.total_steps = 14;
  s.final_fraction = 0.1f;
  EXPECT_FLOAT_EQ(s.at(0), 0.25f);
  EXPECT_FLOAT_EQ(s.at(1), 0.5f);
  EXPECT_FLOAT_EQ(s.at(3), 1.0f);
  EXPECT_FLOAT_EQ(s.at(4), 1.0f);                                   // cosine starts at the top
  EXPECT_NEAR(s.at(9), 0.1 + 0.9 * 0.5, 1e-6);                      // halfway: cos(pi/2) = 0
  EXPECT_NEAR(s.at(6), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.2)), 1e-6);
  EXPECT_NEAR(s.at(14), 0.1, 1e-7);
  EXPECT_NEAR(s.at(100), 0.1, 1e-7);
  for (int t = 4; t < 14; t++) EXPECT_GE(s.at(t), s.at(t + 1));  // monotone decay
  LrSchedule flat;
  flat.max_lr = 3e-4f;
  flat.total_steps = 10;
  flat.final_fraction = 1.0f;
  for (int t = 0; t < 12; t++) EXPECT_FLOAT_EQ(flat.at(t), 3e-4f);
}

TEST(GradClip, NormSquaredAndScale) {
  DeviceContext dc(Device::cpu, 2);
  Store s;
  std::mt19937 rng(6);
  s.randomize(rng, false, true);
  double naive = 0.0;
  for (const Param& p : s.params.params()) {
    const float* g = p.var.grad.f32();
    for (int64_t i = 0; i < p.var.grad.numel(); i++) naive += static_cast<double>(g[i]) * g[i];
  }
  const float sq = grad_norm_squared(s.params, dc.ctx());
  EXPECT_NEAR(sq, naive, 1e-5 * naive);
  EXPECT_FLOAT_EQ(clip_scale(sq, 1.0f), static_cast<float>(1.0 / std::sqrt(sq)));
  EXPECT_FLOAT_EQ(clip_scale(sq, 1e6f), 1.0f);
  EXPECT_FLOAT_EQ(clip_scale(sq, 0.0f), 1.0f);   // clipping off
  EXPECT_FLOAT_EQ(clip_scale(0.0f, 1.0f), 1.0f);
  EXPECT_FLOAT_EQ(clip_scale(16.0f, 2.0f), 0.5f);
  s.params.zero_grads();
  EXPECT_EQ(grad_norm_squared(s.params, dc.ctx()), 0.0f);
}

}  // namespace
}  // namespace engine::optim
