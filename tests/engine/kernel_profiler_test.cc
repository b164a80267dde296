// tests/engine/kernel_profiler_test.cc: engine::KernelProfiler on the CPU: the engine's KERNEL dispatch reports each
// kernel call of a small MLP's forward and backward once, by name; the categories add up to the per-name totals; a
// context without a profiler records nothing; a full recording counts the calls it drops; the name -> phase table.
#include <cmath>
#include <map>
#include <string>

#include "engine/device.h"
#include "engine/kernel_profiler.h"
#include "engine/ops.h"
#include "gtest/gtest.h"

namespace engine {
namespace {

// One step of y = W2 gelu(W1 x + b1), loss = mean cross-entropy of y (V classes): 5 kernel calls forward. The
// weights are graph variables, so that nothing but the graph's own kernels runs.
struct Fixture {
  static constexpr int N = 64, C = 32, H = 128, V = 16;
  DeviceContext device{Device::cpu, 1};
  Graph g{device.ctx(), Device::cpu, 1 << 22};
  Arena host{"targets", 4096};
  Tensor targets = host.alloc({N}, DType::i32);

  Var filled(std::initializer_list<int64_t> shape) {
    Var v = g.new_var(shape);
    for (int64_t i = 0; i < v.value.numel(); i++) v.value.f32()[i] = 0.01f * static_cast<float>(i % 17 - 8);
    return v;
  }
  void step(bool backward) {
    g.reset();
    for (int n = 0; n < N; n++) targets.i32()[n] = n % V;
    const Var x = filled({N, C}), w1 = filled({H, C}), b1 = filled({H}), w2 = filled({V, H});
    Var loss = softmax_crossentropy(g, matmul(g, gelu(g, matmul(g, x, w1, b1)), w2), targets, V);
    if (backward) g.backward(loss);
  }
};

std::map<std::string, KernelProfiler::Total> by_name(const std::vector<KernelProfiler::Total>& totals) {
  std::map<std::string, KernelProfiler::Total> m;
  for (const auto& t : totals) m[t.name] = t;
  return m;
}

TEST(KernelProfiler, CountsEveryKernelCallOfTheForwardByName) {
  Fixture f;
  KernelProfiler profiler(Device::cpu);
  f.device.set_profiler(&profiler);
  f.step(/*backward=*/false);
  f.step(/*backward=*/false);
  profiler.collect();
  auto totals = by_name(profiler.totals());
  ASSERT_EQ(totals.size(), 4u) << "matmul_forward, gelu_forward, softmax_crossentropy_forward, mean_forward";
  EXPECT_EQ(totals["matmul_forward"].calls, 4);
  EXPECT_EQ(totals["gelu_forward"].calls, 2);
  EXPECT_EQ(totals["softmax_crossentropy_forward"].calls, 2);
  EXPECT_EQ(totals["mean_forward"].calls, 2);
  EXPECT_GT(totals["matmul_forward"].ms, 0.0);
  EXPECT_EQ(profiler.dropped(), 0);

  auto categories = by_name(profiler.by_category());
  ASSERT_EQ(categories.size(), 3u);
  EXPECT_EQ(categories["GEMMs"].calls, 4);
  EXPECT_EQ(categories["elementwise"].calls, 2);
  EXPECT_EQ(categories["cross-entropy"].calls, 4);
  EXPECT_DOUBLE_EQ(categories["GEMMs"].ms, totals["matmul_forward"].ms);
}

TEST(KernelProfiler, CategoriesAddUpToTheKernelsOverAForwardAndBackward) {
  Fixture f;
  KernelProfiler profiler(Device::cpu);
  f.device.set_profiler(&profiler);
  f.step(/*backward=*/true);
  profiler.collect();
  auto totals = by_name(profiler.totals());
  EXPECT_EQ(totals["matmul_backward"].calls, 2);
  EXPECT_EQ(totals["gelu_backward"].calls, 1);
  EXPECT_EQ(totals["softmax_crossentropy_backward"].calls, 1);
  int64_t calls = 0, category_calls = 0;
  double ms = 0.0, category_ms = 0.0;
  for (const auto& t : profiler.totals()) calls += t.calls, ms += t.ms;
  for (const auto& t : profiler.by_category()) {
    category_calls += t.calls, category_ms += t.ms;
    EXPECT_TRUE(std::isfinite(t.ms) && t.ms >= 0.0) << t.name << ": " << t.ms;
  }
  EXPECT_EQ(category_calls, calls);
  EXPECT_NEAR(category_ms, ms, 1e-9 * (1.0 + ms));
  EXPECT_GE(calls, 10);
}

TEST(KernelProfiler, NothingIsRecordedWithoutAProfilerInTheContext) {
  Fixture f;
  KernelProfiler profiler(Device::cpu);
  f.device.set_profiler(&profiler);
  f.step(/*backward=*/false);
  f.device.set_profiler(nullptr);
  f.step(/*backward=*/true);
  profiler.collect();
  int64_t calls = 0;
  for (const auto& t : profiler.totals()) calls += t.calls;
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(f.device.ctx().profiler, nullptr);
}

TEST(KernelProfiler, AFullRecordingCountsTheCallsItDrops) {
  Fixture f;
  KernelProfiler profiler(Device::cpu, /*capacity=*/3);
  f.device.set_profiler(&profiler);
  f.step(/*backward=*/false);
  profiler.collect();
  int64_t calls = 0;
  for (const auto& t : profiler.totals()) calls += t.calls;
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(profiler.dropped(), 2);
  // collect() empties the recording: the next step is recorded again.
  f.step(/*backward=*/false);
  profiler.collect();
  calls = 0;
  for (const auto& t : profiler.totals()) calls += t.calls;
  EXPECT_EQ(calls, 6);
  profiler.clear();
  EXPECT_TRUE(profiler.totals().empty());
  EXPECT_EQ(profiler.dropped(), 0);
}

TEST(KernelProfiler, KernelNamesMapToTheStepPhases) {
  const std::pair<const char*, const char*> cases[] = {
      {"matmul_forward_bf16", "GEMMs"},
      {"matmul_backward", "GEMMs"},
      {"gemm", "GEMMs"},
      {"flash_attention_forward_bf16", "attention forward"},
      {"attention_forward", "attention forward"},
      {"flash_attention_backward_bf16", "attention backward"},
      {"layernorm_backward_bf16", "layernorm"},
      {"embedding_forward", "embedding"},
      {"gelu_backward_bf16", "elementwise"},
      {"add_forward", "elementwise"},
      {"accumulate_bf16", "elementwise"},
      {"axpy", "elementwise"},
      {"scale_inplace", "elementwise"},
      {"softmax_crossentropy_fused_bf16", "cross-entropy"},
      {"mean_forward", "cross-entropy"},
      {"adamw_update_bf16", "optimizer"},
      {"sum_squares", "optimizer"},
      {"quantize_rows_int8_stochastic", "boundary codes"},
      {"dequantize_rows_int8", "boundary codes"},
      {"float_to_bf16", "boundary codes"},
      {"slice_columns_backward", "boundary codes"},
      {"something_new", "other"},
  };
  for (const auto& c : cases) EXPECT_STREQ(kernel_category(c.first), c.second) << c.first;
  for (const auto& c : cases) {
    bool listed = false;
    for (const std::string& category : kernel_categories()) listed |= category == c.second;
    EXPECT_TRUE(listed) << c.second << " missing from kernel_categories()";
  }
}

}  // namespace
}  // namespace engine
