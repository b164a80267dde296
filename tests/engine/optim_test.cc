// Optimizers: AdamW, Muon and DiLoCo's outer step against naive loops, Newton-Schulz singular values, the lr schedule, grad clipping.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/optim/adamw.h"
#include "engine/optim/diloco.h"
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


// R replicas that started from one synced point and then each moved differently (as R inner runs would).
struct Replicas {
  std::vector<std::unique_ptr<Store>> stores;
  Replicas(int R, std::mt19937& rng) {
    Store start;
    start.randomize(rng, true, false);
    for (int r = 0; r < R; ++r) {
      stores.push_back(std::make_unique<Store>());
      copy_values(start, *stores.back());
    }
  }
  static void copy_values(Store& from, Store& to) {
    const Tensor a = from.params.all_values(), b = to.params.all_values();
    std::copy(a.f32(), a.f32() + a.numel(), b.f32());
  }
  void move(std::mt19937& rng, float size) {
    std::normal_distribution<float> normal(0.0f, size);
    for (auto& s : stores) {
      for (Param& p : s->params.params()) {
        for (int64_t i = 0; i < p.var.value.numel(); i++) p.var.value.f32()[i] += normal(rng);
      }
    }
  }
  // One DiLoCo sync through the outer optimizer: deltas, their ordered average, the step, everyone reloads.
  void sync(DilocoOuter& outer, const kernels::KernelContext& ctx) {
    const int64_t n = static_cast<int64_t>(stores[0]->params.num_elements());
    Arena scratch("deltas", (stores.size() + 1) * n * sizeof(float) + 4096);
    std::vector<Tensor> deltas;
    for (auto& s : stores) {
      deltas.push_back(scratch.alloc({n}));
      outer.replica_delta(s->params, deltas.back());
    }
    const Tensor avg = scratch.alloc({n});
    average_in_order(ctx, Device::cpu, deltas, avg);
    outer.outer_step(avg);
    for (auto& s : stores) outer.load_synced(s->params);
  }
};

TEST(Diloco, OneStepLrOneNoMomentumIsParameterAveraging) {
  DeviceContext device(Device::cpu, 1);
  std::mt19937 rng(11);
  Replicas reps(3, rng);
  DilocoConfig config;
  config.outer_lr = 1.0f;
  config.outer_momentum = 0.0f;
  DilocoOuter outer(reps.stores[0]->params, device.ctx(), config);
  for (int sync = 0; sync < 3; ++sync) {
    reps.move(rng, 0.1f);
    // The plain average of the replicas' parameters, in double.
    const size_t n = reps.stores[0]->params.num_elements();
    std::vector<double> mean(n, 0.0);
    for (auto& s : reps.stores) {
      const Tensor v = s->params.all_values();
      for (size_t i = 0; i < n; ++i) mean[i] += v.f32()[i] / 3.0;
    }
    reps.sync(outer, device.ctx());
    for (auto& s : reps.stores) {
      const Tensor v = s->params.all_values();
      // theta - (theta - mean) in fp32 rounds twice at |theta| ~ 3: a few ulps of 3, about 1e-6.
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(v.f32()[i], mean[i], 2e-6) << "sync " << sync << " element " << i;
    }
  }
  EXPECT_EQ(outer.outer_steps(), 3);
}

TEST(Diloco, NesterovOuterStepsMatchANaiveLoop) {
  DeviceContext device(Device::cpu, 1);
  std::mt19937 rng(12);
  Replicas reps(2, rng);
  DilocoConfig config;  // the paper's: lr 0.7, momentum 0.9, Nesterov
  DilocoOuter outer(reps.stores[0]->params, device.ctx(), config);
  const size_t n = reps.stores[0]->params.num_elements();
  std::vector<double> theta(n), m(n, 0.0);
  const Tensor start = reps.stores[0]->params.all_values();
  for (size_t i = 0; i < n; ++i) theta[i] = start.f32()[i];
  for (int sync = 0; sync < 4; ++sync) {
    reps.move(rng, 0.05f);
    std::vector<double> delta(n, 0.0);
    for (auto& s : reps.stores) {
      const Tensor v = s->params.all_values();
      for (size_t i = 0; i < n; ++i) delta[i] += (theta[i] - v.f32()[i]) / 2.0;
    }
    for (size_t i = 0; i < n; ++i) {
      m[i] = 0.9 * m[i] + delta[i];
      theta[i] -= 0.7 * (delta[i] + 0.9 * m[i]);
    }
    reps.sync(outer, device.ctx());
    for (auto& s : reps.stores) {
      const Tensor v = s->params.all_values();
      // fp32 state against double: values ~3 and a momentum that grows to a few times delta; 1e-5 is a few dozen
      // ulps after 4 syncs.
      for (size_t i = 0; i < n; ++i) ASSERT_NEAR(v.f32()[i], theta[i], 1e-5) << "sync " << sync << " element " << i;
    }
  }
}

TEST(Diloco, AverageSumsInReplicaOrder) {
  DeviceContext device(Device::cpu, 1);
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Arena arena("deltas", 8 * 1031 * sizeof(float) + 4096);
  std::vector<Tensor> deltas;
  for (int r = 0; r < 5; ++r) {
    deltas.push_back(arena.alloc({1031}));
    for (int64_t i = 0; i < 1031; ++i) deltas.back().f32()[i] = normal(rng);
  }
  const Tensor out = arena.alloc({1031});
  average_in_order(device.ctx(), Device::cpu, deltas, out);
  for (int64_t i = 0; i < 1031; ++i) {
    float sum = 0.0f;
    for (const Tensor& d : deltas) sum += d.f32()[i];
    ASSERT_EQ(out.f32()[i], sum * (1.0f / 5.0f)) << "the same order gives the same bits, on every process";
  }
}

}  // namespace
}  // namespace engine::optim
