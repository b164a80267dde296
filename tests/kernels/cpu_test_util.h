// tests/kernels/cpu_test_util.h: random inputs and comparisons for the CPU kernel tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/context.h"
#include "kernels/cpu/gemm_plans.h"

namespace kernels::cpu::testing {

// A context like engine::DeviceContext's: `threads` OpenMP threads and a cache of GEMM primitives (one per test
// binary, as one per process in the engine).
inline KernelContext context(int threads = 2) {
  static GemmPlans plans;
  KernelContext ctx;
  ctx.num_threads = threads;
  ctx.cpu_gemm_plans = &plans;
  return ctx;
}

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

inline std::vector<int32_t> randint(size_t n, uint32_t seed, int32_t upper) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, upper - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

// Every element within atol + rtol * |expected|; reports the first few misses.
inline void expect_close(const std::vector<float>& actual, const std::vector<double>& expected, double atol,
                         double rtol, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  int misses = 0;
  for (size_t i = 0; i < actual.size(); i++) {
    const double tol = atol + rtol * std::fabs(expected[i]);
    if (!(std::fabs(actual[i] - expected[i]) <= tol) && misses++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: " << actual[i] << " vs " << expected[i];
    }
  }
  EXPECT_EQ(misses, 0) << what;
}

}  // namespace kernels::cpu::testing
