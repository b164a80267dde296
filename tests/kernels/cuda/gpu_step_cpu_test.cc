// tests/kernels/cuda/gpu_step_cpu_test.cc: the GPU benchmark's training step (tools/bench/gpu_step/gpt2_step.h) run
// on the CPU twins, so that its wiring (buffer offsets, which gradient accumulates where, the residual stream's
// backward) is checked on a machine without a GPU: finite differences against the analytic gradients, loss at
// initialisation, overfitting one batch, and bitwise-equal reruns.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tools/bench/gpu_step/cpu_kernel_set.h"
#include "tools/bench/gpu_step/gpt2_step.h"

namespace {

using gpu_step::CpuKernels;

using Step = gpu_step::Gpt2Step<CpuKernels>;

gpu_step::Config tiny() {
  gpu_step::Config c;
  c.max_T = 16, c.V = 61, c.Vp = 64, c.L = 2, c.NH = 4, c.C = 32;
  return c;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch random_batch(uint64_t seed, int n, int V) {
  std::mt19937_64 gen(seed);
  Batch b;
  for (int i = 0; i < n; i++) b.tokens.push_back(static_cast<int32_t>(gen() % V));
  for (int i = 0; i < n; i++) b.targets.push_back(static_cast<int32_t>(gen() % V));
  return b;
}

uint64_t fresh_seed(const char* name) {
  std::random_device rd;
  const uint64_t s = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  std::printf("[ seed     ] %s: %llu\n", name, static_cast<unsigned long long>(s));
  return s;
}

TEST(GpuStepOnCpu, GradientsMatchFiniteDifferences) {
  const uint64_t seed = fresh_seed("GpuStepOnCpu.GradientsMatchFiniteDifferences");
  kernels::KernelContext ctx;
  const auto cfg = tiny();
  const int B = 2, T = 8;
  Step model(ctx, cfg, B, T);
  model.init_params(seed, /*std_scale=*/15.0);  // weights ~0.3: GELU, softmax and layernorm all far from linear
  const Batch batch = random_batch(seed + 1, B * T, cfg.V);
  model.set_batch(batch.tokens.data(), batch.targets.data());
  model.forward();
  model.backward();
  const float* params = model.params();
  std::vector<float> grads(model.grads(), model.grads() + model.num_parameters());
  // In every parameter tensor, the 4 elements with the largest gradients (plenty of signal for a float difference).
  const auto sizes = gpu_step::param_sizes(cfg);
  size_t off = 0;
  int checked = 0;
  for (size_t t = 0; t < sizes.size(); t++) {
    std::vector<size_t> idx(sizes[t]);
    for (size_t i = 0; i < sizes[t]; i++) idx[i] = off + i;
    const size_t top = std::min<size_t>(4, idx.size());
    std::partial_sort(idx.begin(), idx.begin() + top, idx.end(),
                      [&](size_t a, size_t b) { return std::fabs(grads[a]) > std::fabs(grads[b]); });
    for (size_t k = 0; k < top; k++) {
      const size_t i = idx[k];
      if (grads[i] == 0.0f) continue;  // e.g. wpe rows beyond T: no gradient to check
      float* p = const_cast<float*>(params) + i;
      const float saved = *p;
      const float h = 1e-2f;
      *p = saved + h;
      model.forward();
      const double up = model.loss();
      *p = saved - h;
      model.forward();
      const double down = model.loss();
      *p = saved;
      const double numeric = (up - down) / (2.0 * h);
      // Central differences: O(h^2) truncation (~1e-4 relative at h = 1e-2 on O(1) curvature) plus the fp32 loss's
      // rounding (~4e-7 * loss / h ~ 2e-4 absolute): 2% + 5e-4.
      EXPECT_NEAR(grads[i], numeric, 0.02 * std::fabs(numeric) + 5e-4) << "parameter tensor " << t << " element "
                                                                         << i - off;
      checked++;
    }
    off += sizes[t];
  }
  EXPECT_GE(checked, 50);
 // all 16 tensors but possibly biases of zero gradient
}

TEST(GpuStepOnCpu, InitialLossOverfitAndDeterminism) {
  const uint64_t seed = fresh_seed("GpuStepOnCpu.InitialLossOverfitAndDeterminism");
  kernels::KernelContext ctx;
  const auto cfg = tiny();
  const int B = 2, T = 8;
  std::vector<float> losses[2];
  for (int run = 0; run < 2; run++) {
    Step model(ctx, cfg, B, T);
    model.init_params(seed);
    const Batch batch = random_batch(seed + 1, B * T, cfg.V);
    model.set_batch(batch.tokens.data(), batch.targets.data());
    for (int t = 1; t <= 40; t++) {
      model.step(t, 1e-2f);
      losses[run].push_back(model.loss());
    }
  }
  // Small random weights give near-uniform predictions: loss ~ ln(V) = 4.11 (within 0.2).
  EXPECT_NEAR(losses[0][0], std::log(static_cast<double>(cfg.V)), 0.2);
  // One fixed batch is memorised: the loss falls well below half its start in 40 AdamW steps.
  EXPECT_LT(losses[0].back(), 0.5 * losses[0][0]) << "first " << losses[0][0] << " last " << losses[0].back();
  EXPECT_EQ(0, std::memcmp(losses[0].data(), losses[1].data(), losses[0].size() * sizeof(float)))
      << "two identical runs gave different losses";
}

}  // namespace
