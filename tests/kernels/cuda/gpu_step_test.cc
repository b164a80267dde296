// tests/kernels/cuda/gpu_step_test.cc: a whole GPT-2 training step (tools/bench/gpu_step/gpt2_step.h) on the GPU
// against the same step on the CPU twins: loss, every parameter gradient, 10 AdamW steps of losses, and bitwise
// equal losses from two GPU runs. Small model (L=2, C=64, NH=4), fresh seed, odd vocabulary.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cuda/cuda_test_util.h"
#include "tools/bench/gpu_step/cuda_kernel_set.h"
#include "tools/bench/gpu_step/cpu_kernel_set.h"
#include "tools/bench/gpu_step/gpt2_step.h"

namespace resbm_test {
namespace {

using gpu_step::CpuKernels;

[[maybe_unused]] gpu_step::Config small() {  // unused in a --config=nocuda build
  gpu_step::Config c;
  c.max_T = 64, c.V = 101, c.Vp = 128, c.L = 2, c.NH = 4, c.C = 64;
  return c;
}

TEST(CudaGpt2Step, MatchesCpuLossGradsAndTenSteps) {
  REQUIRE_CUDA_DEVICE();
#ifdef RESBM_HAVE_CUDA
  Rng rng("CudaGpt2Step.MatchesCpuLossGradsAndTenSteps");
  const auto cfg = small();
  const int B = 3, T = 37;  // odd: no dimension is a multiple of anything convenient
  const std::vector<int32_t> tokens = rng.ints(B * T, 0, cfg.V - 1), targets = rng.ints(B * T, 0, cfg.V - 1);
  CudaContext cuda;
  const auto cpu_ctx = cpu_context();
  gpu_step::Gpt2Step<gpu_step::CudaKernels> gpu(cuda.ctx(), cfg, B, T);
  gpu_step::Gpt2Step<CpuKernels> cpu(cpu_ctx, cfg, B, T);
  gpu.init_params(rng.seed(), 5.0);
  cpu.init_params(rng.seed(), 5.0);
  gpu.set_batch(tokens.data(), targets.data());
  cpu.set_batch(tokens.data(), targets.data());

  gpu.forward();
  gpu.backward();
  cpu.forward();
  cpu.backward();
  // Loss: every kernel agrees to ~1e-6 relative; through two blocks and the head the loss agrees to 1e-5 relative.
  EXPECT_NEAR(gpu.loss(), cpu.loss(), 1e-5 * std::fabs(cpu.loss())) << "loss";
  // Gradients, tensor by tensor: a chain of ~30 kernels, each within ~1e-6 relative of its twin, amplified by the
  // layernorms' 1/std: 1e-4 of the tensor's largest gradient, plus 1e-4 relative.
  std::vector<float> gg(cpu.num_parameters());
  gpu_step::CudaKernels::download(gg.data(), gpu.grads(), gg.size() * sizeof(float));
  const float* cg = cpu.grads();
  const auto sizes = gpu_step::param_sizes(cfg);
  size_t off = 0;
  for (size_t t = 0; t < sizes.size(); t++) {
    double scale = 0.0;
    for (size_t i = off; i < off + sizes[t]; i++) scale = std::max(scale, std::fabs(static_cast<double>(cg[i])));
    size_t bad = 0, first = 0;
    for (size_t i = off; i < off + sizes[t]; i++) {
      const double d = std::fabs(static_cast<double>(gg[i]) - cg[i]);
      if (!(d <= 1e-4 * scale + 1e-4 * std::fabs(cg[i])) && bad++ == 0) first = i;
    }
    EXPECT_EQ(bad, 0u) << "parameter tensor " << t << ": first at " << first - off << ": gpu " << gg[first] << " cpu "
                       << cg[first] << " (tensor max " << scale << ")";
    off += sizes[t];
  }

  // 10 AdamW steps from the same start: AdamW divides by sqrt(v), so tiny gradient differences move parameters by
  // at most ~lr each; losses stay within 1e-3 relative.
  std::vector<float> gpu_losses, cpu_losses;
  for (int t = 1; t <= 10; t++) {
    gpu.step(t, 1e-3f);
    cpu.step(t, 1e-3f);
    gpu_losses.push_back(gpu.loss());
    cpu_losses.push_back(cpu.loss());
    EXPECT_NEAR(gpu_losses.back(), cpu_losses.back(), 1e-3 * std::fabs(cpu_losses.back())) << "step " << t;
  }
  std::printf("[ compare  ] gpt2 step losses: gpu %.6f -> %.6f, cpu %.6f -> %.6f\n", gpu_losses.front(),
              gpu_losses.back(), cpu_losses.front(), cpu_losses.back());

  // Determinism: a second GPU model from the same seed gives bitwise the same 10 losses.
  gpu_step::Gpt2Step<gpu_step::CudaKernels> again(cuda.ctx(), cfg, B, T);
  again.init_params(rng.seed(), 5.0);
  again.set_batch(tokens.data(), targets.data());
  again.forward();
  again.backward();
  for (int t = 1; t <= 10; t++) {
    again.step(t, 1e-3f);
    const float l = again.loss();
    EXPECT_EQ(0, std::memcmp(&l, &gpu_losses[t - 1], sizeof(float))) << "GPU rerun differs at step " << t;
  }
#endif
}

}  // namespace
}  // namespace resbm_test
